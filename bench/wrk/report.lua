-- wrk script: leaves the requests alone (so -H headers apply) and prints one
-- machine-readable line at the end for bench/run.sh to parse.
-- Latencies are in microseconds; "non2xx" is wrk's "Non-2xx or 3xx responses".
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
