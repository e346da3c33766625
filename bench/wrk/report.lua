-- wrk script for plain GETs: leaves the requests alone (wrk's fast static request, and
-- -H headers apply) and prints the result line at the end.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "result.lua")

done = function(summary, latency, requests)
  bench_result(summary, latency)
end
