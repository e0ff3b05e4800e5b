-- A refresh reserves its quota slots before its write-ahead is made
-- durable; when the journal cannot commit that write-ahead (a full disk, an
-- I/O error) the run stops and the refresh is never sent. Its reservation
-- must go back then: kept, it would count a refresh Truv never made, and the
-- connection would be deferred ("quota spent") a refresh early for 24 h.
-- The journal here is a real one whose commit fails once a refresh's
-- write-ahead is in it, as a disk that fills at that moment does.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local core = require "truv.core"
local renewal = require "truv.renewal"

local CASES = 8

-- A journal whose commits fail from the first one holding a "sending"
-- write-ahead on (rolled back, as SQLite does after SQLITE_FULL).
local function failing_journal(path)
  local real = assert(core.journal_open(path, { exclusive = true }))
  local armed = false
  local j = {
    real = real,
    put = function(_, id, fields)
      if fields.state == "sending" then armed = true end
      return real:put(id, fields)
    end,
    commit = function()
      if armed then
        real:rollback()
        return nil, { code = "disk_full", message = "database or disk is full" }
      end
      return real:commit()
    end,
  }
  return setmetatable(j, { __index = function(_, k)
    return function(_, ...) return real[k](real, ...) end
  end })
end

describe("a write-ahead the journal cannot commit", function()
  local dir, sandboxes = nil, {}

  lazy_setup(function() dir = files.tmpdir("truv-write-ahead") end)
  lazy_teardown(function()
    for _, sb in ipairs(sandboxes) do sb:shutdown() end
    if dir then os.execute("rm -rf " .. files.quote(dir)) end
  end)

  -- A sandbox of its own for each test (a refresh made a moment ago by
  -- another test would be adopted, not sent), its cases file and a client.
  local function world(name, seed)
    local sb = sandbox.start{ args = { "--seed-cases", tostring(CASES), "--rng-seed", seed,
      "--mix", "active=1", "--rate-limit", "0", "--realtime", "--time-scale", "100",
      "--cases-out", dir .. "/" .. name .. ".csv" } }
    sandboxes[#sandboxes + 1] = sb
    return sb, { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url },
           dir .. "/" .. name .. ".csv"
  end

  -- Every connection's quota count against the tasks the sandbox made on it.
  local function quota_vs_sandbox(sb, quota)
    local stats = sb:stats()
    local counted, made = 0, 0
    for _, case in ipairs(sb:cases()) do
      for _, conn in ipairs(sb:connections(case.order_id)) do
        local used = assert(quota:usage(core.quota_key(conn.access_token), core.now()))
        local s = stats.refresh.by_access_token[sandbox.token_key(conn.access_token)]
        assert.equal(s and s.created or 0, used, "connection " .. conn.suborder_id)
        counted, made = counted + used, made + (s and s.created or 0)
      end
    end
    return counted, made
  end

  it("stops the run before the refresh is sent and gives its quota reservation back", function()
    local sb, client, cases = world("run", "23")
    local quota = assert(require("truv.quota").sqlite(dir .. "/run.quota"))
    local journal = failing_journal(dir .. "/run.journal")
    local summary, err = renewal.run{ cases = cases, journal = journal,
                                      client = client, quota = quota, rate_per_minute = 0,
                                      concurrency = 4, poll = { interval_s = 0.05 } }
    journal.real:close()
    assert.is_nil(summary)
    assert.equal("disk_full", err.code)
    assert.equal(0, sb:stats().refresh.order_refreshes)
    assert.same({ 0, 0 }, { quota_vs_sandbox(sb, quota) })

    -- the same journal, writable again: every case refreshed once, and the
    -- quota counts exactly the refreshes Truv made
    summary = assert(renewal.run{ journal = dir .. "/run.journal", client = client, quota = quota,
                                  rate_per_minute = 0, concurrency = 4,
                                  poll = { interval_s = 0.05 } })
    assert.equal(CASES, summary.routes.done)
    local counted, made = quota_vs_sandbox(sb, quota)
    assert.is_true(made >= CASES)
    assert.equal(made, counted)
    quota:close()
  end)

  it("says which reservations it could not give back when the quota store cannot be written "
     .. "either", function()
    local sb, client, cases = world("full", "29")
    local store = assert(require("truv.quota").sqlite(dir .. "/full.quota"))
    -- the quota store on the same full disk: reserving worked a moment ago,
    -- writing the release does not
    local quota = setmetatable({
      release = function() return nil, { message = "database or disk is full" } end,
    }, { __index = function(_, k)
      local v = store[k]
      if type(v) ~= "function" then return v end
      return function(_, ...) return v(store, ...) end
    end })
    local journal = failing_journal(dir .. "/full.journal")
    local events = {}
    local summary, err = renewal.run{ cases = cases, journal = journal,
                                      client = client, quota = quota, rate_per_minute = 0,
                                      concurrency = 4, poll = { interval_s = 0.05 },
                                      on_event = function(ev) events[#events + 1] = ev end }
    journal.real:close()
    assert.is_nil(summary)
    assert.equal("disk_full", err.code)
    local reported = {}
    for _, ev in ipairs(events) do
      if ev.event == "quota_unreleased" then
        assert.is_nil(reported[ev.case_id])
        reported[ev.case_id] = true
        assert.matches("could not be given back %(database or disk is full%)", ev.message)
      end
    end
    assert.equal("run_stopped", events[#events].event)
    -- exactly the reservations still held are reported, one event per case
    assert.is_truthy(next(reported))
    for _, case in ipairs(sb:cases()) do
      -- an assets refresh reserves the bank accounts, the others the employers
      local kind = case.product == "assets" and "financial_account" or "employer"
      for _, conn in ipairs(sb:connections(case.order_id)) do
        local used = assert(store:usage(core.quota_key(conn.access_token), core.now()))
        assert.equal((reported[case.case_id] and conn.kind == kind) and 1 or 0, used, case.case_id)
      end
    end
    store:close()
  end)
end)
