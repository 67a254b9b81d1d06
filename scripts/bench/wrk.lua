-- wrk script for the REST side of the REST-vs-gRPC comparison.
--   PARLEY_TOKEN   the user token (Authorization: Bearer ...)
--   WRK_METHOD     POST (a 100-byte message, like the loadgen's) or GET
-- done() prints one line "WRKJSON {...}" that scripts/bench/run.sh keeps.
wrk.method = os.getenv("WRK_METHOD") or "GET"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("PARLEY_TOKEN") or "")
if wrk.method == "POST" then
  wrk.headers["Content-Type"] = "application/json"
  wrk.body = '{"text":"' .. string.rep("x", 100) .. '"}'
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"calls_per_s":%.1f,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,' ..
    '"errors_status":%d,"errors_timeout":%d,"latency_p50_ms":%.3f,' ..
    '"latency_p90_ms":%.3f,"latency_p99_ms":%.3f,"latency_p999_ms":%.3f,' ..
    '"latency_max_ms":%.3f,"latency_mean_ms":%.3f}\n',
    summary.requests, summary.duration / 1e6,
    summary.requests / (summary.duration / 1e6),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3,
    latency:percentile(99) / 1e3, latency:percentile(99.9) / 1e3,
    latency.max / 1e3, latency.mean / 1e3))
end
