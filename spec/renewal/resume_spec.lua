-- A renewal killed at any instant (kill -9), many times, and started again
-- with the same journal: no case lost, no refresh sent twice, no applicant
-- given two verification orders, routed cases left alone. The sandbox's own
-- accounting (/_sandbox/stats) is compared with the journal.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local core = require "truv.core"

local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
local BIN = SRC .. "/bin/truv-renew"
local KILLS = tonumber(os.getenv("TRUV_RESUME_KILLS") or "") or 12
local CASES = 150

local q = files.quote
local function tmpdir() return files.tmpdir("truv-resume") end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

-- Starts truv-renew in the background; returns its pid.
local function start(dir, sb)
  local cmd = string.format(
    "TRUV_CLIENT_ID=%s TRUV_SECRET=%s sh -c 'echo $$; exec lua5.4 %s --json --journal %s "
    .. "--base-url %s --rate 0 --concurrency 16 --poll-interval 0.2 %s >>%s 2>>%s' &",
    q(sb.client_id), q(sb.secret), q(BIN), q(dir .. "/run.journal"), q(sb.base_url),
    q(dir .. "/cases.csv"), q(dir .. "/out"), q(dir .. "/err"))
  local p = assert(io.popen(cmd))
  local pid = tonumber(p:read("l"))
  p:close()
  return pid
end

local function sleep(s) os.execute(string.format("sleep %.3f", s)) end

describe("a renewal killed at random points", function()
  local sb, dir
  lazy_setup(function()
    dir = tmpdir()
    sb = sandbox.start{ args = {
      "--seed-cases", tostring(CASES), "--rng-seed", "77", "--rate-limit", "0",
      "--realtime", "--time-scale", "60", "--latency-ms", "3", "--latency-jitter-ms", "6",
      "--fault-reset-after", "0.1", "--fault-match", "POST /v1/orders/",
      "--cases-out", dir .. "/cases.csv" } }
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("resumes with nothing lost and nothing refreshed twice", function()
    math.randomseed(tonumber(os.getenv("TRUV_RESUME_SEED") or "") or os.time())
    local kills = 0
    for _ = 1, KILLS do
      local pid = start(dir, sb)
      sleep(0.05 + math.random() * 0.6)
      if alive(pid) then
        os.execute("kill -9 " .. pid)
        kills = kills + 1
      end
      -- let the kernel reap it before the next run opens the journal
      for _ = 1, 100 do
        if not alive(pid) then break end
        sleep(0.01)
      end
    end
    assert.is_true(kills >= KILLS // 2, "only " .. kills .. " runs were still going when killed")

    -- the last run, to the end (bounded)
    local pid = start(dir, sb)
    for _ = 1, 600 do
      if not alive(pid) then break end
      sleep(0.1)
    end
    assert.is_false(alive(pid), "the final run did not finish in 60 s")

    local j = assert(core.journal_open(dir .. "/run.journal"))
    local refreshed = {}
    local n = 0
    for rec in j:each{} do
      n = n + 1
      assert(rec.state == "routed" or rec.state == "scheduled",
             "case " .. rec.case_id .. " left in state " .. tostring(rec.state))
      if rec.refresh_order_id then refreshed[rec.order_id] = rec.refresh_order_id end
    end
    j:close()
    assert.equal(CASES, n)                       -- no case lost

    local stats = sb:stats()
    local journaled = 0
    for _ in pairs(refreshed) do journaled = journaled + 1 end
    for order_id, s in pairs(stats.refresh.by_order) do
      assert.equal(1, s.refresh_orders, "order " .. order_id .. " was refreshed "
                   .. s.refresh_orders .. " times")
      assert.is_truthy(refreshed[order_id], "the journal lost the refresh of " .. order_id)
    end
    assert.equal(journaled, stats.refresh.order_refreshes)
    assert.is_true(stats.faults.reset_after > 0)
    -- no applicant got two verification orders, and each one made is in
    -- the journal (or its case awaits a person: its creation was unconfirmed)
    local links, unconfirmed = 0, 0
    j = assert(core.journal_open(dir .. "/run.journal"))
    for rec in j:each{} do
      if rec.reverify_order_id then links = links + 1 end
      if rec.reason == "reverify_unconfirmed" then unconfirmed = unconfirmed + 1 end
    end
    j:close()
    for number, made in pairs(stats.orders.by_order_number) do
      assert.equal(1, made, "order_number " .. number .. " got " .. made .. " verification orders")
    end
    assert.is_true(stats.orders.created >= links and stats.orders.created <= links + unconfirmed,
                   stats.orders.created .. " orders made, " .. links .. " in the journal, "
                   .. unconfirmed .. " unconfirmed")
  end)
end)
