-- One renewal run for the benchmarks: truv.renewal over a cases file
-- against a running sandbox, in this process, measuring what it costs.
--
--   lua5.4 bench/renewal_run.lua BASE_URL CASES JOURNAL CONCURRENCY [POLL_S] [RSS_EVERY]
--
-- Prints one JSON line: cases, cpu_s (os.clock: this process, user +
-- system), wall_s, rss_kb_max, and with RSS_EVERY an rss series (KB, one
-- sample every RSS_EVERY routed cases).
local renewal = require "truv.renewal"
local core = require "truv.core"

local base, cases, journal, concurrency = arg[1], arg[2], arg[3], tonumber(arg[4])
local poll_s, rss_every = tonumber(arg[5] or "0.01"), tonumber(arg[6] or "0")

local function rss_kb()
  for l in io.lines("/proc/self/status") do
    local v = l:match("^VmRSS:%s+(%d+)")
    if v then return tonumber(v) end
  end
end

-- a store of the run's own: the sandbox's connections are not the machine's
local quota_path = journal .. "-quota.db"
for _, f in ipairs{ journal, quota_path, quota_path .. "-wal", quota_path .. "-shm" } do
  os.remove(f)
end
local routed, series, peak, docs_peak, lua_peak = 0, {}, 0, { 0, 0 }, 0
local rss_start = rss_kb()
local c0, t0 = os.clock(), core.monotonic()
local summary = assert(renewal.run{
  cases = cases, journal = journal, quota = quota_path, concurrency = concurrency,
  rate_per_minute = 0,
  poll = { interval_s = poll_s, max_interval_s = 1 },
  client = { client_id = os.getenv("TRUV_CLIENT_ID"), secret = os.getenv("TRUV_SECRET"),
             base_url = base, timeout_ms = 60000 },
  on_event = function(ev)
    if ev.event == "routed" then
      routed = routed + 1
      if rss_every > 0 and routed % rss_every == 0 then series[#series + 1] = rss_kb() end
      if routed % 100 == 0 then
        peak = math.max(peak, rss_kb())
        local docs, bytes = core.documents_alive()
        if bytes > docs_peak[2] then docs_peak = { docs, bytes } end
        lua_peak = math.max(lua_peak, collectgarbage("count"))
      end
    end
  end,
})
local cpu, wall = os.clock() - c0, core.monotonic() - t0
local parts = {}
for i, v in ipairs(series) do parts[i] = tostring(v) end
print(string.format('{"cases":%d,"routed":%d,"cpu_s":%.3f,"wall_s":%.3f,"rss_kb_start":%d,'
                    .. '"rss_kb_max":%d,"lua_kb_max":%d,"docs_alive_max":%d,"docs_kb_max":%d,'
                    .. '"rss_series":[%s],"done":%d}', summary.total, routed, cpu, wall, rss_start,
                    math.max(peak, rss_kb()), lua_peak // 1, docs_peak[1], docs_peak[2] // 1024,
                    table.concat(parts, ","), summary.routes.done or 0))
