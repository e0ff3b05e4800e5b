-- Memory per waiting case, for the benchmarks: truv.renewal over a cases
-- file against a sandbox whose refreshes do not finish, in this process.
--
--   lua5.4 bench/waiting_run.lua BASE_URL CASES JOURNAL N CONCURRENCY
--
-- N cases are let in progress at once (concurrency request slots,
-- active_per_request = N / concurrency); each reads its original order,
-- sends its refresh and then waits (the poll interval is an hour, the
-- sandbox's tasks do not end). When N refreshes have been sent, after a
-- full collection, prints one JSON line: rss_kb, lua_kb, docs (documents
-- alive), docs_kb; bench/waiting.sh subtracts two runs (N and 2N cases) so
-- that the fixed costs of the process, its journal and its client cancel
-- out. The process then exits (the run would wait an hour).
local renewal = require "truv.renewal"
local core = require "truv.core"

local base, cases, journal = arg[1], arg[2], arg[3]
local n, concurrency = tonumber(arg[4]), tonumber(arg[5])

local function rss_kb()
  for l in io.lines("/proc/self/status") do
    local v = l:match("^VmRSS:%s+(%d+)")
    if v then return tonumber(v) end
  end
end

local function sample()
  collectgarbage()
  collectgarbage()
  local docs, bytes = core.documents_alive()
  return { rss_kb = rss_kb(), lua_kb = collectgarbage("count"), docs = docs,
           docs_kb = bytes / 1024 }
end

local quota_path = journal .. "-quota.db"
for _, f in ipairs{ journal, quota_path, quota_path .. "-wal", quota_path .. "-shm" } do
  os.remove(f)
end
local sent = 0
renewal.run{
  cases = cases, journal = journal, quota = quota_path, concurrency = concurrency,
  active_per_request = n / concurrency, rate_per_minute = 0,
  poll = { interval_s = 3600, max_interval_s = 3600 },
  client = { client_id = os.getenv("TRUV_CLIENT_ID"), secret = os.getenv("TRUV_SECRET"),
             base_url = base, timeout_ms = 60000 },
  on_event = function(ev)
    if ev.event ~= "sent" then return end
    sent = sent + 1
    if sent < n then return end
    local s = sample()
    print(string.format('{"cases":%d,"rss_kb":%d,"lua_kb":%.0f,"docs":%d,"docs_kb":%.0f}', n,
                        s.rss_kb, s.lua_kb, s.docs, s.docs_kb))
    io.stdout:flush()
    os.exit(0)
  end,
}
error("the run ended before " .. n .. " refreshes were sent")
