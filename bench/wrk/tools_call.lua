-- wrk script: POST one MCP 2026-07-28 `tools/call` request, again and again, on every connection.
--
-- Environment (set by bench/governed_vs_bare.py):
--   BENCH_BODY_FILE  the JSON-RPC request body (the same bytes for both servers)
--   BENCH_TOOL       the tool name, for the Mcp-Name header
--   BENCH_KEY        the API key for the Authorization header (the bare server ignores it)
--
-- At the end it prints one line, `BENCH_RESULT {json}`, with the counts and latency percentiles in
-- microseconds. There is deliberately no response() callback: parsing every body in Lua would make wrk the
-- bottleneck. Non-2xx answers still count, in errors.status, and the benchmark refuses a run that has any.

local body_file = assert(os.getenv("BENCH_BODY_FILE"), "BENCH_BODY_FILE is not set")
local handle = assert(io.open(body_file, "rb"))
wrk.body = handle:read("*a")
handle:close()

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = assert(os.getenv("BENCH_TOOL"), "BENCH_TOOL is not set")
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("BENCH_KEY"), "BENCH_KEY is not set")

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p999": %d, "mean": %.1f, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max
  ))
end
