-- Shared by the wrk scripts of bench/: prints the one machine-readable line that
-- bench/harness.py parses. Latencies in microseconds; "non2xx" is wrk's "Non-2xx or
-- 3xx responses" (status > 399, in fact). `extra` is a string of more key=value pairs.
function bench_result(summary, latency, extra)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d non2xx=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d%s\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    extra or ""))
end

