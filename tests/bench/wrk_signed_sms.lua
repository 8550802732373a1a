-- wrk script for the inbound-SMS benchmark (tests/bench/bench_inbound.py).
--
--   wrk -t1 -c128 -d10s -s tests/bench/wrk_signed_sms.lua URL -- FILE MODE RATE THREADS
--
-- FILE     signed requests, one a line: "<X-Twilio-Signature>\t<url-encoded form>". Python
--          signs them in advance (service.telephony.signature.sign, HMAC-SHA1 over the
--          public URL and the sorted parameters), so signing costs the load generator
--          nothing and the signatures are the library's own, not a Lua re-implementation.
-- MODE     "sms": POST each line once (never a repeat: thread k of THREADS sends the lines
--          k, k+THREADS, ...); "noop": GET /healthz, the no-op baseline.
-- RATE     0: closed loop (each connection sends its next request when the last one is
--          answered). N > 0: paced, N requests/s in all, on a fixed schedule; set
--          WRK_PACED=1 in the environment too.
--
-- Paced: request j of a thread is due at t0 + j / (RATE / THREADS). ``delay()`` holds a free
-- connection until the next due time; when no connection is free at a due time (the server
-- is behind), the request goes out late. wrk measures latency from when a request is
-- written, so this script also records each request's lateness (written minus due) and
-- the benchmark reports both, and the bound p99(from due) <= p99.5(latency) +
-- p99.5(lateness). When the lateness stays near zero, wrk's latency is the latency from due.
--
-- If a thread runs out of lines it sends GET /__exhausted (a 404, which wrk counts) and sets
-- ``exhausted``: the benchmark refuses such a run.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } mimamori_timespec;
int clock_gettime(int clk_id, mimamori_timespec *tp);
]])
local ts = ffi.new("mimamori_timespec")
local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local next_thread = 0
function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
end

tid = 0
sent = 0
exhausted = false
late = {}
local requests = {}
local mode, interval_us, t0, due_index = "sms", 0, nil, 0
local noop_request, exhausted_request

function init(args)
  local file, threads = args[1], tonumber(args[4] or "1")
  mode = args[2] or "sms"
  local rate = tonumber(args[3] or "0")
  if rate > 0 then
    interval_us = 1000000 * threads / rate
  end
  noop_request = wrk.format("GET", "/healthz")
  exhausted_request = wrk.format("GET", "/__exhausted")
  if mode ~= "sms" then
    return
  end
  local n = 0
  for line in io.lines(file) do
    if n % threads == tid then
      local tab = line:find("\t", 1, true)
      local headers = {
        ["Content-Type"] = "application/x-www-form-urlencoded",
        ["X-Twilio-Signature"] = line:sub(1, tab - 1),
      }
      requests[#requests + 1] = wrk.format("POST", "/twilio/sms", headers, line:sub(tab + 1))
    end
    n = n + 1
  end
end

-- wrk asks whether ``delay`` exists once, before ``init``: so the rate also comes from the
-- environment (WRK_PACED=1), and a closed loop has no delay at all.
if os.getenv("WRK_PACED") == "1" then
  function delay()
    local now = now_us()
    if t0 == nil then
      t0 = now
    end
    local due = t0 + due_index * interval_us
    due_index = due_index + 1
    local wait = (due - now) / 1000
    if wait < 0 then
      return 0
    end
    return math.floor(wait)
  end
end

function request()
  if interval_us > 0 and t0 ~= nil then
    -- The j-th request written against the j-th due time: how far behind the schedule.
    local lateness = now_us() - (t0 + sent * interval_us)
    late[#late + 1] = lateness > 0 and math.floor(lateness) or 0
  end
  sent = sent + 1
  if mode ~= "sms" then
    return noop_request
  end
  local r = requests[sent]
  if r == nil then
    exhausted = true
    return exhausted_request
  end
  return r
end

threads_seen = {}

function done(summary, latency, requests_stats)
  -- One JSON object on the last line of stdout, for bench_inbound.py.
  local sent_all, exhausted_any, lates = 0, false, {}
  for _, thread in ipairs(threads_seen) do
    sent_all = sent_all + thread:get("sent")
    exhausted_any = exhausted_any or thread:get("exhausted")
    for _, v in ipairs(thread:get("late") or {}) do
      lates[#lates + 1] = v
    end
  end
  table.sort(lates)
  local function pct(values, p)
    if #values == 0 then
      return 0
    end
    local rank = math.max(1, math.ceil(p / 100 * #values))
    return values[rank]
  end
  local e = summary.errors
  io.write(string.format(
    '\nWRK_JSON {"duration_us": %d, "requests": %d, "sent": %d, "exhausted": %s, '
      .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
      .. '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "p995": %d, "max": %d, "mean": %.1f}, '
      .. '"late_us": {"n": %d, "p50": %d, "p99": %d, "p995": %d, "max": %d}}\n',
    summary.duration, summary.requests, sent_all, tostring(exhausted_any),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.5), latency.max, latency.mean,
    #lates, pct(lates, 50), pct(lates, 99), pct(lates, 99.5), lates[#lates] or 0
  ))
end

local original_setup = setup
function setup(thread)
  threads_seen[#threads_seen + 1] = thread
  original_setup(thread)
end
