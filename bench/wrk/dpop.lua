-- wrk script for a DPoP-bound token (RFC 9449): every request carries a fresh proof, each
-- proof sent once (the server accepts a proof once). The proofs are minted by bench/dpop.mjs
-- right before the run, one file per thread: thread i reads PREFIX.i. The token comes with
-- -H 'Authorization: DPoP <token>'. The request is wrk's own format of the URL and the -H
-- headers with a `DPoP` header added, so only the proof differs from a static request.
-- A thread whose proofs run out never reuses one: its connections send untokened
-- `GET /api/greeting/v1/` fillers instead (counted apart; bench/bench.py takes them out of
-- the requests), and it prints a `BENCH_THREAD_DONE` line, so bench/harness.py interrupts
-- wrk once every thread has (the run then ends at the shortfall, not at -d).
-- Usage: wrk -tN ... -s dpop.lua -H 'Authorization: DPoP T' URL -- PREFIX
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

local proofs = {}
local sent, share = 0, 0
local verified, out = false, false
local before, after, filler
fillers, proofs_n, proofs_sent = 0, 0, 0

function init(args)
  for line in io.lines(args[1] .. "." .. id) do
    if line ~= "" then
      proofs[#proofs + 1] = line
    end
  end
  share = #proofs
  proofs_n = share
  local headers = {}
  for k, v in pairs(wrk.headers) do
    headers[k] = v
  end
  headers["DPoP"] = "\1PROOF\1"
  before, after = wrk.format(nil, nil, headers):match("^(.-)\1PROOF\1(.*)$")
  filler = wrk.format("GET", "/api/greeting/v1/", {})
end

function request()
  -- wrk asks thread 1 for one request before the run, to learn its shape; that one is
  -- never sent, so it takes no proof.
  if id == 1 and not verified then
    verified = true
    return before .. (proofs[1] or "x") .. after
  end
  if sent < share then
    sent = sent + 1
    proofs_sent = sent
    return before .. proofs[sent] .. after
  end
  if not out then
    out = true
    io.write(string.format("BENCH_THREAD_DONE %d %d\n", id, sent))
    io.flush()
  end
  fillers = fillers + 1
  return filler
end

done = function(summary, latency, requests)
  local f, n, s = 0, 0, 0
  for _, t in ipairs(threads) do
    f = f + t:get("fillers")
    n = n + t:get("proofs_n")
    s = s + t:get("proofs_sent")
  end
  bench_result(summary, latency, string.format(" proofs=%d proofs_sent=%d fillers=%d", n, s, f))
end
