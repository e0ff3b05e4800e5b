-- Route handlers run at least once per outcome: a run killed after a
-- handler returned and before the case's route was committed calls it again
-- when the journal resumes. The handler gets outcome.key, the same string
-- every time for the same outcome of a case, to be idempotent on.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local core = require "truv.core"

local q = files.quote
local CASES = 24

local SCRIPT = [[
local renewal = require "truv.renewal"
local truv = require "truv"
local dir, base_url, kill_after = arg[1], arg[2], tonumber(arg[3])
local pid = io.open("/proc/self/stat"):read("l"):match("^(%d+)")
local out = assert(io.open(dir .. "/calls", "a"))
local calls = 0
local function note(d, case, outcome)
  out:write(case.case_id, " ", d.route, " ", tostring(outcome.key), " ",
            tostring(outcome.refresh_order_id), "\n")
  out:flush()
  calls = calls + 1
  -- killed once the handler has done its work, before the route is recorded
  if calls == kill_after then os.execute("kill -9 " .. pid) end
end
local router = truv.router{ done = note, reverify = note, retry = note, defer = note,
                            no_data = note, fix = note }
assert(renewal.run{ cases = dir .. "/cases.csv", journal = dir .. "/run.journal",
                    client = { client_id = "sandbox-client-id", secret = "sandbox-secret",
                               base_url = base_url },
                    router = router, rate_per_minute = 0, concurrency = 4,
                    poll = { interval_s = 0.05 } })
]]

describe("a handler of a run killed and resumed", function()
  local sb, dir
  lazy_setup(function()
    dir = files.tmpdir("truv-handlers")
    sb = sandbox.start{ args = { "--seed-cases", tostring(CASES), "--rng-seed", "19",
      "--rate-limit", "0", "--realtime", "--time-scale", "100",
      "--mix", "active=3,credentials=1,no_data=1", "--cases-out", dir .. "/cases.csv" } }
    files.write(dir .. "/run.lua", SCRIPT)
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  local function run(kill_after)
    return os.execute(string.format("lua5.4 %s %s %s %d 2>>%s", q(dir .. "/run.lua"), q(dir),
                                    q(sb.base_url), kill_after, q(dir .. "/err")))
  end

  it("is called again with the same key, and every case is routed once", function()
    run(6)                       -- killed in its 6th handler call
    assert(run(0), files.read(dir .. "/err"))   -- the resumed run goes to the end
    local seen, lines = {}, 0
    for case_id, route, key, refresh in files.slurp(dir .. "/calls"):gmatch(
        "(%S+) (%S+) (%S+) (%S+)\n") do
      lines = lines + 1
      assert.matches("^" .. case_id:gsub("%-", "%%-") .. "#%d+$", key)
      local s = seen[case_id]
      if s then
        -- called again: the same outcome, the same key
        assert.equal(s.key, key)
        assert.equal(s.route, route)
        assert.equal(s.refresh, refresh)
        s.calls = s.calls + 1
      else
        seen[case_id] = { key = key, route = route, refresh = refresh, calls = 1 }
      end
    end
    local cases, again = 0, 0
    for _, s in pairs(seen) do
      cases = cases + 1
      if s.calls > 1 then again = again + 1 end
    end
    assert.equal(CASES, cases)
    assert.is_true(again >= 1, "no handler was called again after the kill")
    assert.is_true(lines > CASES)
    -- the journal routed each case once
    local j = assert(core.journal_open(dir .. "/run.journal"))
    for rec in j:each{} do
      assert.equal("routed", rec.state)
      assert.equal(seen[rec.case_id].route, rec.route)
    end
    j:close()
  end)
end)
