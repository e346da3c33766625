-- wrk script for POST /api/resource/v1/: a unique name per request (run prefix, thread
-- number, counter), so every request is a real insert and none is a 409. Counts the 201
-- answers and the others, per thread, and adds them to the result line.
-- Usage: wrk ... -s create.lua -H 'Authorization: Bearer T' URL -- PREFIX
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = {}
local next_id = 0

function setup(thread)
  next_id = next_id + 1
  thread:set("id", next_id)
  table.insert(threads, thread)
end

local prefix, counter = "bench", 0
created, other = 0, 0

function init(args)
  prefix = args[1] or prefix
end

function request()
  counter = counter + 1
  local body = string.format('{"name":"%s-%d-%d"}', prefix, id, counter)
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status == 201 then
    created = created + 1
  else
    other = other + 1
  end
end

done = function(summary, latency, requests)
  local c, o = 0, 0
  for _, t in ipairs(threads) do
    c = c + t:get("created")
    o = o + t:get("other")
  end
  bench_result(summary, latency, string.format(" created=%d other=%d", c, o))
end
