-- Looking before paying: truv-renew report JOURNAL (the summary and report
-- of a journal, no call to Truv, no credentials: re-running a finished
-- journal to see its summary used to send the retries that came due),
-- --dry-run (the plan, nothing billed, created or written) and
-- --max-billed (a hard cap on the billed refreshes of a run).
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local core = require "truv.core"


local quote, read = files.quote, files.read

local renew = require("spec.support.renew").run

describe("truv-renew, looking before paying", function()
  local sb, dir, input, state

  local function stats()
    local s = sb:stats()
    local e = s.requests.by_endpoint["POST /v1/orders/{id}/"] or {}
    local posts = 0
    for _, c in pairs(e) do posts = posts + c end
    return { total = s.requests.total, posts = posts, tasks = s.refresh.tasks_created,
             created = s.orders.created, by_order = s.refresh.by_order or {} }
  end

  local function journal_recs(path)
    local j = assert(core.journal_open(path))
    local recs = {}
    for rec in j:each{} do recs[rec.case_id] = rec end
    j:close()
    return recs
  end

  local function args(journal, extra)
    local a = { "--journal", dir .. "/" .. journal, "--base-url", sb.base_url, "--rate", "0",
                "--poll-interval", "0.1", "--json" }
    for _, x in ipairs(extra or {}) do a[#a + 1] = x end
    a[#a + 1] = input
    return a
  end

  lazy_setup(function()
    dir = files.tmpdir("truv-rerun-spec")
    state = dir .. "/state"
    sb = sandbox.start{ args = { "--seed-cases", "12", "--rng-seed", "41", "--rate-limit", "0",
                                 -- the outages outlast the spec (72 s at 50x), so that the
                                 -- cases refreshed while a provider is down are retries
                                 -- however long a loaded machine takes to get to them
                                 "--mix", "active=2,provider_down=1", "--provider-down-s", "3600",
                                 "--realtime", "--time-scale", "50",
                                 "--cases-out", dir .. "/cases.csv" } }
    input = dir .. "/cases.csv"
  end)

  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. quote(dir)) end
  end)

  it("plans a run without billing, creating or writing anything (--dry-run)", function()
    local before = stats()
    local code, out, err = renew(dir, args("plan.journal", { "--dry-run" }),
                                 { XDG_STATE_HOME = state })
    assert.equal(0, code, err)
    local after = stats()
    assert.equal(before.posts, after.posts)
    assert.equal(before.created, after.created)
    assert.is_true(after.total > before.total)          -- the orders were read
    assert.matches("dry run: nothing was billed, created or written; orders were read from "
                   .. "Truv %(%d+ GET requests%)", out)
    local lines = 0
    for _ in out:gmatch("\ncase%-%d+ +refresh +%d+ billed refresh") do lines = lines + 1 end
    assert.equal(12, lines)
    assert.matches("quota used 0/3 %(here 0, Truv 0%)", out)
    assert.matches("would refresh 12 cases %(%d+ billed refreshes%)", out)
    assert.is_nil(read(dir .. "/plan.journal"))
    assert.is_nil(read(state .. "/truv/quota.db"))
  end)

  it("stops at --max-billed and leaves the cases past it due for the next run", function()
    local before = stats()
    local code, out, err = renew(dir, args("capped.journal", { "--max-billed", "5" }),
                                 { XDG_STATE_HOME = state })
    assert.equal(0, code, err)
    local mid = stats()
    assert.is_true(mid.tasks - before.tasks <= 5, (mid.tasks - before.tasks) .. " billed")
    assert.is_true(mid.tasks - before.tasks >= 3)
    local recs = journal_recs(dir .. "/capped.journal")
    local left = 0
    for _, rec in pairs(recs) do
      if rec.state == "new" then left = left + 1 end
    end
    assert.is_true(left > 0)
    assert.matches("billed refreshes this run: %d of at most 5 %(%-%-max%-billed%); " .. left
                   .. " cases? %a+ left due: run the same command again to continue", out)
    -- the next run does the rest, and nothing twice
    code, out, err = renew(dir, args("capped.journal"), { XDG_STATE_HOME = state })
    assert.equal(0, code, err)
    for id, rec in pairs(journal_recs(dir .. "/capped.journal")) do
      assert.is_truthy(rec.route, id)
    end
    for oid, o in pairs(stats().by_order) do
      assert.is_true(o.refresh_orders <= 1, oid)
    end
    assert.is_nil(out:match("billed refreshes this run"))
  end)

  it("reports a journal with no call to Truv and no credentials, whatever came due", function()
    local journal = dir .. "/capped.journal"
    -- the provider outages' retries come due
    local j = assert(core.journal_open(journal))
    local due = 0
    for rec in j:each{ state = "scheduled" } do
      assert(j:put(rec.case_id, { retry_at = core.now() - 1 }))
      due = due + 1
    end
    j:close()
    assert.is_true(due > 0)
    local before = stats()
    local code, out, err = renew(dir, { "report", "--report", dir .. "/report", journal },
                                 { TRUV_CLIENT_ID = false, TRUV_SECRET = false,
                                   XDG_STATE_HOME = state })
    assert.equal(0, code, err)
    assert.equal(before.total, stats().total)
    assert.matches("\nretry +" .. due .. " ", out)
    assert.matches("journal: " .. journal:gsub("%p", "%%%0"), out)
    assert.is_string(read(dir .. "/report/report.html"))
    assert.is_string(read(dir .. "/report/cases.csv"))
    for _, rec in pairs(journal_recs(journal)) do
      if rec.route == "retry" then assert.equal("scheduled", rec.state) end
    end
    -- what it refuses
    local cases = {
      { { "report" }, 2, "one JOURNAL expected" },
      { { "report", dir .. "/none.journal" }, 1, "no journal at" },
      { { "report", "--concurrency", "3", journal }, 2, "does not apply" },
      { { "--report", dir .. "/r2", "report", journal }, 2, "report is a command of its own "
                                                           .. "and comes first" },
    }
    for _, c in ipairs(cases) do
      code, _, err = renew(dir, c[1], { TRUV_CLIENT_ID = false, TRUV_SECRET = false })
      assert.equal(c[2], code, err)
      assert.matches(c[3], err)
    end
    assert.is_nil(read(dir .. "/none.journal"))
  end)

  it("plans what a journal in progress would do: fresh, deferred, due, routed", function()
    local code, out, err = renew(dir, args("capped.journal", { "--dry-run" }),
                                 { XDG_STATE_HOME = state })
    assert.equal(0, code, err)
    -- the done cases are routed; the due retries were refreshed a moment ago (by
    -- this journal: its own refresh, so not "fresh") and would be refreshed again
    assert.matches("\ncase%-%d+ +routed +done completed", out)
    assert.matches("\ncase%-%d+ +refresh ", out)
    -- the same orders from another journal: already fresh, nothing billed
    code, out, err = renew(dir, args("other.journal", { "--dry-run" }),
                           { XDG_STATE_HOME = state })
    assert.equal(0, code, err)
    assert.matches("\ncase%-%d+ +fresh +refreshed %d+m ago %(%x+%): done, recently_refreshed", out)
    assert.matches("would refresh 0 cases %(0 billed refreshes%); 12 already fresh", out)
  end)
end)
