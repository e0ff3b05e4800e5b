-- truv.renewal.run from Lua against the sandbox: handlers per route, the
-- link for re-verification (a new order, or bridge tokens), scheduled
-- retries picked up by a later run once due, bad rows re-read with the
-- input, and a credentials error stopping the run without routing anything.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local truv = require "truv"
local core = require "truv.core"
local renewal = require "truv.renewal"

local write, read = files.write, files.slurp
local function tmpdir() return files.tmpdir("truv-run-spec") end

describe("renewal.run", function()
  local sb, dir, client
  lazy_setup(function()
    dir = tmpdir()
    sb = sandbox.start{ args = { "--seed-cases", "40", "--rng-seed", "31", "--rate-limit", "0",
      "--realtime", "--time-scale", "100", "--provider-down-s", "3600",
      "--mix", "active=4,credentials=1,provider_down=1,unsupported=1,expired=1",
      "--cases-out", dir .. "/cases.csv" } }
    client = { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url }
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf '" .. dir .. "'") end
  end)

  it("routes every case, calls the handlers, and makes links for reverify", function()
    local seen, lent = {}, 0
    local function note(d, case, outcome)
      seen[case.case_id] = d.route
      if d.route == "done" then
        -- the fresh order is lent for the call
        assert.is_string(outcome.order.id)
        lent = lent + 1
      end
    end
    local router = truv.router{ done = note, reverify = note, retry = note, fix = note,
                                no_data = note, defer = note }
    local summary = assert(renewal.run{ cases = dir .. "/cases.csv", journal = dir .. "/j1",
                                        client = client, router = router, concurrency = 8,
                                        rate_per_minute = 0, poll = { interval_s = 0.05 } })
    assert.equal(40, summary.total)
    local n = 0
    for _ in pairs(seen) do n = n + 1 end
    assert.equal(40, n)
    assert.is_true(lent > 0)
    assert.equal(lent, summary.routes.done)
    local j = assert(core.journal_open(dir .. "/j1"))
    local links = 0
    for rec in j:each{ route = "reverify" } do
      assert.matches("^https://cdn%.truv%.com/", rec.share_url)
      links = links + 1
    end
    assert.equal(summary.routes.reverify, links)
    for rec in j:each{ route = "retry" } do
      assert.equal("scheduled", rec.state)
      assert.equal("unavailable", rec.reason)
      assert.is_true(rec.retry_at > core.now())
    end
    j:close()
  end)

  it("leaves scheduled cases until they are due, then retries them", function()
    local before = sb:stats().requests.total
    local summary = assert(renewal.run{ cases = dir .. "/cases.csv", journal = dir .. "/j1",
                                        client = client, concurrency = 8, rate_per_minute = 0 })
    assert.equal(before, sb:stats().requests.total)    -- nothing due: nothing sent
    local retries = summary.routes.retry or 0
    assert.is_true(retries > 0)
    -- the provider comes back, and the clock passes the retry time
    local j = assert(core.journal_open(dir .. "/j1"))
    for rec in j:each{ state = "scheduled" } do
      j:put(rec.case_id, { retry_at = core.now() - 1 })
    end
    j:close()
    sb:advance(7200)
    summary = assert(renewal.run{ journal = dir .. "/j1", client = client, concurrency = 8,
                                  rate_per_minute = 0, poll = { interval_s = 0.05 } })
    assert.is_nil(summary.routes.retry)
    assert.equal(40, summary.total)
  end)

  it("reports bad rows with their lines, as the current input has them", function()
    local text = read(dir .. "/cases.csv")
    local header, first = text:match("^([^\n]*\n)([^\n]*\n)")
    write(dir .. "/bad.csv", header .. first .. "c-x,,income,,,,,,,,,\n")
    local events = {}
    assert(renewal.run{ cases = dir .. "/bad.csv", journal = dir .. "/j2", client = client,
                        rate_per_minute = 0, poll = { interval_s = 0.05 },
                        on_event = function(ev)
                          if ev.event == "bad_row" then events[#events + 1] = ev end
                        end })
    assert.equal(1, #events)
    assert.equal(3, events[1].line)
    -- the same journal, the bad row now on line 4 behind a blank line
    write(dir .. "/bad.csv", header .. first .. "\nc-x,,income,,,,,,,,,\n")
    assert(renewal.run{ cases = dir .. "/bad.csv", journal = dir .. "/j2", client = client,
                        rate_per_minute = 0 })
    local j = assert(core.journal_open(dir .. "/j2"))
    local failed = {}
    for rec in j:each{ state = "failed" } do failed[#failed + 1] = rec.line end
    j:close()
    assert.same({ 4 }, failed)
  end)

  it("stops on a credentials error without routing any case", function()
    local summary, err = renewal.run{ cases = dir .. "/cases.csv", journal = dir .. "/j3",
      client = { client_id = sb.client_id, secret = "sandbox-wrong", base_url = sb.base_url },
      rate_per_minute = 0 }
    assert.is_nil(summary)
    assert.equal("auth", err.kind)
    local j = assert(core.journal_open(dir .. "/j3"))
    assert.same({}, j:route_counts())
    j:close()
    summary = assert(renewal.run{ journal = dir .. "/j3", client = client, rate_per_minute = 0,
                                  poll = { interval_s = 0.05 } })
    assert.equal(40, summary.total)
  end)

  it("reports a handler's error with its case and keeps going", function()
    local j = assert(core.journal_open(dir .. "/j1"))
    local victim
    for rec in j:each{ route = "done" } do victim = victim or rec.case_id end
    j:close()
    local router = truv.router{ done = function(_, case)
      if case.case_id == victim then error("pre-fill service down") end
    end }
    local errors_seen = {}
    local summary = assert(renewal.run{ cases = dir .. "/cases.csv", journal = dir .. "/j4",
      client = client, router = router, rate_per_minute = 0, poll = { interval_s = 0.05 },
      on_event = function(ev)
        if ev.event == "handler_error" then errors_seen[#errors_seen + 1] = ev end
      end })
    assert.equal(40, summary.total)
    assert.equal(1, #errors_seen)
    assert.equal(victim, errors_seen[1].case_id)
    assert.matches("pre%-fill service down", errors_seen[1].message)
    j = assert(core.journal_open(dir .. "/j4"))
    assert.matches("pre%-fill service down", j:get(victim).handler_error)
    j:close()
  end)

  it("makes bridge tokens in update mode for the connections whose refresh failed", function()
    local before = sb:stats().bridge_tokens.created
    local summary = assert(renewal.run{ cases = dir .. "/cases.csv", journal = dir .. "/j5",
                                        client = client, concurrency = 8, rate_per_minute = 0,
                                        reverify = { mode = "bridge" },
                                        poll = { interval_s = 0.05 } })
    assert.is_true((summary.routes.reverify or 0) > 0)
    local j = assert(core.journal_open(dir .. "/j5"))
    local tokens = 0
    for rec in j:each{ route = "reverify" } do
      assert.is_true(rec.bridge_tokens >= 1, rec.case_id .. ": " .. tostring(rec.error))
      tokens = tokens + rec.bridge_tokens
    end
    for rec in j:each{ route = "fix" } do assert.are_not.equal("reverify_failed", rec.reason) end
    j:close()
    assert.equal(tokens, sb:stats().bridge_tokens.created - before)
  end)

  it("refuses an unknown reverify mode before opening anything", function()
    assert.has_error(function()
      renewal.run{ journal = dir .. "/j6", client = client, reverify = { mode = "email" } }
    end, 'renewal.run: reverify.mode must be "order" or "bridge", got email')
    assert.is_nil(io.open(dir .. "/j6"))
  end)
end)
