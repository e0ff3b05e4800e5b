-- Failures about the run, not about a case, stop the run and route nothing,
-- so that the corrected run does every case: a wrong base URL, a server
-- that cannot be reached. A transient failure (a busy quota store) is
-- retried, never final. A case whose order really is unknown still goes to
-- fix once the run has shown that its configuration works.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local core = require "truv.core"
local errors = require "truv.errors"
local quota_mod = require "truv.quota"
local renewal = require "truv.renewal"

local CASES = 30

describe("a run-wide failure", function()
  local sb, dir, client

  lazy_setup(function()
    dir = files.tmpdir("truv-run-wide")
    sb = sandbox.start{ args = { "--seed-cases", tostring(CASES), "--rng-seed", "8",
      "--mix", "active=1", "--rate-limit", "0", "--realtime", "--time-scale", "100",
      "--cases-out", dir .. "/cases.csv" } }
    client = { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url,
               retry = { base_ms = 5, cap_ms = 20 } }
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. files.quote(dir)) end
  end)

  local function with(t)
    local o = {}
    for k, v in pairs(client) do o[k] = v end
    for k, v in pairs(t) do o[k] = v end
    return o
  end

  local function run(journal, c, extra)
    local opts = { cases = dir .. "/cases.csv", journal = dir .. "/" .. journal, client = c,
                   rate_per_minute = 0, concurrency = 8, poll = { interval_s = 0.05 } }
    for k, v in pairs(extra or {}) do opts[k] = v end
    return renewal.run(opts)
  end

  local function routes(journal)
    local j = assert(core.journal_open(dir .. "/" .. journal))
    local r = j:route_counts()
    j:close()
    return r
  end

  it("stops on a wrong base URL with nothing routed; the corrected run does every case", function()
    sb:reset_stats()
    local summary, err = run("url.journal", with{ base_url = sb.origin .. "/v2/" })
    assert.is_nil(summary)
    assert.equal("run_wide", err.code)
    assert.matches("base URL", tostring(err))
    assert.same({}, routes("url.journal"))
    assert.equal(0, sb:stats().refresh.order_refreshes)
    summary = assert(run("url.journal", client))
    assert.equal(CASES, summary.routes.done)
    assert.is_nil(summary.routes.fix)
  end)

  it("stops when the server cannot be reached, with nothing routed or scheduled", function()
    -- a port nobody listens on
    local s = require("socket").bind("127.0.0.1", 0)
    local _, port = s:getsockname()
    s:close()
    local summary, err = run("refused.journal",
                             with{ base_url = "http://127.0.0.1:" .. port .. "/v1/" })
    assert.is_nil(summary)
    assert.equal("run_wide", err.code)
    assert.equal("network", err.kind)
    local j = assert(core.journal_open(dir .. "/refused.journal"))
    assert.same({ new = CASES }, j:counts())
    j:close()
  end)

  it("routes an unknown order to fix once another case has succeeded", function()
    local text = files.slurp(dir .. "/cases.csv")
    local header, first = text:match("^([^\n]*\n)([^\n]*\n)")
    -- the unknown order comes first: it is held until the next case succeeds
    local bogus = first:gsub("^[^,]*,[^,]*,", "case-bogus," .. string.rep("0", 32) .. ",")
    files.write(dir .. "/mixed.csv", header .. bogus .. first)
    local summary = assert(run("mixed.journal", client, { cases = dir .. "/mixed.csv",
                                                          concurrency = 1 }))
    assert.equal(1, summary.routes.fix)
    assert.equal(1, summary.routes.done)
    local j = assert(core.journal_open(dir .. "/mixed.journal"))
    assert.equal("not_found", j:get("case-bogus").reason)
    j:close()
  end)

  it("retries the cases whose quota store was busy, never routes them to fix", function()
    -- a quota store that is busy for its first calls (another process
    -- holding its lock for longer than its busy timeout)
    local inner = quota_mod.memory()
    local busy = 10
    local store = setmetatable({
      reserve = function(_, keys, now)
        if busy > 0 then
          busy = busy - 1
          return nil, errors.new("internal", "store_busy", "the store stayed locked for 10 s")
        end
        return inner:reserve(keys, now)
      end,
    }, { __index = function(_, k)
      local v = inner[k]
      if type(v) == "function" then return function(_, ...) return v(inner, ...) end end
      return v
    end })
    -- the cases were refreshed a moment ago by the runs above: refreshed again
    -- (not_within off), so that each reserves its quota
    local summary = assert(run("busy.journal", client, { quota = store, not_within = false }))
    assert.equal(10, summary.routes.retry)
    assert.is_nil(summary.routes.fix)
    local j = assert(core.journal_open(dir .. "/busy.journal"))
    for rec in j:each{ route = "retry" } do
      assert.equal("scheduled", rec.state)
      assert.equal("store_busy", rec.reason)
      assert(j:put(rec.case_id, { retry_at = core.now() - 1 }))
    end
    j:close()
    summary = assert(run("busy.journal", client, { quota = store, not_within = false }))
    assert.equal(CASES, summary.routes.done)
  end)
end)
