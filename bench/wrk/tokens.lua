-- wrk script that sends each bearer token of a file exactly once, to the URL's path: the
-- distinct-token phase of bench/bench.py. Thread i of N takes the tokens i, i+N, i+2N, ...
-- of the file (one a line). A thread whose tokens are all sent keeps its connections busy
-- with a filler, `GET /api/greeting/v1/` without a token (told apart by its "Hello World"
-- body; never counted as a token answer), and stops once every token request of its own
-- is answered, printing a `BENCH_THREAD_DONE` line; bench/harness.py interrupts wrk when
-- every thread has printed one (wrk itself would wait for its -d).
-- Counts the answers to token requests: 200, other statuses; fillers apart.
-- Usage: wrk -tN ... -s tokens.lua URL -- TOKENS_FILE N
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

local tokens = {}
local sent, answered, share = 0, 0, 0
local verified = false
local filler
ok, bad, fillers, share_n = 0, 0, 0, 0

function init(args)
  local path, n = args[1], tonumber(args[2])
  local i = 0
  for line in io.lines(path) do
    if line ~= "" then
      if i % n == id - 1 then
        tokens[#tokens + 1] = line
      end
      i = i + 1
    end
  end
  share = #tokens
  share_n = share
  filler = wrk.format("GET", "/api/greeting/v1/", {})
end

local function token_request(t)
  return wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. t })
end

function request()
  -- wrk asks thread 1 for one request before the run, to learn its shape; that one is
  -- never sent, so it takes no token.
  if id == 1 and not verified then
    verified = true
    return token_request(tokens[1] or "x")
  end
  if sent < share then
    sent = sent + 1
    return token_request(tokens[sent])
  end
  return filler
end

function response(status, headers, body)
  if status == 200 and body and body:find("Hello World", 1, true) then
    fillers = fillers + 1
    return
  end
  answered = answered + 1
  if status == 200 then
    ok = ok + 1
  else
    bad = bad + 1
  end
  if answered == share then
    io.write(string.format("BENCH_THREAD_DONE %d %d\n", id, answered))
    io.flush()
    wrk.thread:stop()
  end
end

done = function(summary, latency, requests)
  local o, b, f, s = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    o = o + t:get("ok")
    b = b + t:get("bad")
    f = f + t:get("fillers")
    s = s + t:get("share_n")
  end
  bench_result(summary, latency, string.format(" tokens=%d ok=%d bad=%d fillers=%d", s, o, b, f))
end
