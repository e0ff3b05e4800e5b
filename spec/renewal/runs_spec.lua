-- Billing across runs: truv-renew run night after night, each run with a
-- journal of its own, against the sandbox. A new journal is not a new
-- quota: the quota lives in one place that outlives journals (--quota, or
-- the state directory), Truv's own count of an order's refreshes is read
-- before refreshing (so another host's refreshes are respected with an
-- empty store), and an order refreshed less than --not-within ago is
-- reported fresh instead of paid for again (--force overrides).
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local cjson = require("cjson").new()
local truv = require "truv"
local core = require "truv.core"
local cases_mod = require "truv.cases"


local quote, read = files.quote, files.read

local renew = require("spec.support.renew").run

local function json_lines(text)
  local out = {}
  for l in text:gmatch("[^\n]+") do
    local ok, v = pcall(cjson.decode, l)
    if ok then out[#out + 1] = v end
  end
  return out
end

local function mode_of(path)
  local p = assert(io.popen("stat -c %a " .. quote(path)))
  local m = p:read("l")
  p:close()
  return m
end

describe("truv-renew across runs", function()
  local sb, dir, input, state, n

  -- POST /v1/orders/{id}/ (refreshes, billed or refused) sent so far
  local function refresh_posts()
    local e = sb:stats().requests.by_endpoint["POST /v1/orders/{id}/"] or {}
    local total = 0
    for _, c in pairs(e) do total = total + c end
    return total
  end

  local function journal_recs(path)
    local j = assert(core.journal_open(path))
    local recs = {}
    for rec in j:each{} do recs[rec.case_id] = rec end
    j:close()
    return recs
  end

  local function run(name, extra, env)
    local args = { "--journal", dir .. "/" .. name .. ".journal", "--report", dir .. "/" .. name,
                   "--base-url", sb.base_url, "--rate", "0", "--poll-interval", "0.1", "--json" }
    for _, a in ipairs(extra or {}) do args[#args + 1] = a end
    args[#args + 1] = input
    local e = { XDG_STATE_HOME = state }
    for k, v in pairs(env or {}) do e[k] = v end
    local posts = refresh_posts()
    local code, out, err = renew(dir, args, e)
    assert.equal(0, code, err)
    return { posts = refresh_posts() - posts, out = out, err = err,
             recs = journal_recs(dir .. "/" .. name .. ".journal"),
             events = json_lines(err) }
  end

  local function routes(r)
    local by = {}
    for _, rec in pairs(r.recs) do
      local k = tostring(rec.route) .. "/" .. tostring(rec.reason)
      by[k] = (by[k] or 0) + 1
    end
    return by
  end

  lazy_setup(function()
    dir = files.tmpdir("truv-runs-spec")
    state = dir .. "/state"
    sb = sandbox.start{ args = { "--seed-cases", "6", "--mix", "active=1", "--rng-seed", "7",
                                 "--rate-limit", "0", "--realtime", "--time-scale", "50",
                                 "--cases-out", dir .. "/cases.csv" } }
    input = dir .. "/cases.csv"
    n = #assert(cases_mod.parse_csv(assert(read(input)))) - 1
  end)

  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. quote(dir)) end
  end)

  it("keeps the quota in the state directory, private, whatever the journal", function()
    local r = run("night1")
    assert.equal(n, r.posts)
    assert.same({ ["done/completed"] = n }, routes(r))
    local db = state .. "/truv/quota.db"
    assert.is_string(read(db), "no quota store at " .. db)
    assert.equal("600", mode_of(db))
    assert.equal("700", mode_of(state .. "/truv"))
    assert.is_nil(read(dir .. "/night1.journal.quota"))
    assert.matches("quota: " .. db:gsub("%p", "%%%0"), r.out)
  end)

  it("reports an order refreshed within --not-within as fresh, paying nothing", function()
    local before = sb:stats().refresh.tasks_created
    local r = run("night2")
    assert.equal(0, r.posts)
    assert.equal(before, sb:stats().refresh.tasks_created)
    assert.same({ ["done/recently_refreshed"] = n }, routes(r))
    -- the case took the refresh it found: its data is handed on as fresh
    local first = journal_recs(dir .. "/night1.journal")
    for id, rec in pairs(r.recs) do
      assert.equal(first[id].refresh_order_id, rec.refresh_order_id, id)
    end
    assert.matches(n .. " cases were refreshed less than 20h ago", r.out)
    assert.matches("%-%-force", r.out)
    local csv = assert(read(dir .. "/night2/cases.csv"))
    assert.truthy(csv:find("recently_refreshed", 1, true))
  end)

  it("refreshes again with --force, up to the quota, then defers without sending", function()
    assert.equal(n, run("night3", { "--force" }).posts)
    assert.equal(n, run("night4", { "--force" }).posts)
    -- a fourth journal the same day: three refreshes already, from the stable store
    local r = run("night5", { "--force" })
    assert.equal(0, r.posts)
    assert.same({ ["defer/refresh_quota"] = n }, routes(r))
  end)

  it("respects Truv's own count with an empty store (another host, another tool)", function()
    local r = run("elsewhere", { "--force", "--quota", dir .. "/empty-quota.db" })
    assert.equal(0, r.posts)
    assert.same({ ["defer/refresh_quota"] = n }, routes(r))
    -- not before the oldest of the day's three refreshes leaves Truv's window
    local oldest = math.huge
    for _, rec in pairs(journal_recs(dir .. "/night1.journal")) do
      oldest = math.min(oldest, rec.updated_at)
    end
    for id, rec in pairs(r.recs) do
      assert.is_true(rec.not_before > oldest + 86400 - 3600, id)
      assert.is_true(rec.not_before < oldest + 86400 + 3 * 3600, id)
    end
    -- and the empty store now holds Truv's count
    local q = assert(truv.quota.sqlite(dir .. "/empty-quota.db"))
    local _, any = next(r.recs)
    local c = sb:connections(any.order_id)[1]
    assert.equal(3, (q:usage(truv.quota.key(c.access_token), core.now())))
    q:close()
  end)

  it("keeps using the quota store of a journal begun before (JOURNAL.quota), and says so",
     function()
    -- two new orders, never refreshed; a journal of an earlier version stopped
    -- half-way, its quota store beside it holding its run's reservations on one of them
    local fresh = sb:seed{ cases = 2, mix = "active=1" }
    local list = dir .. "/old-cases.csv"
    files.write(list, "case_id,order_id,product\n" .. fresh[1].case_id .. "," ..
                      fresh[1].order_id .. "," .. fresh[1].product .. "\n" ..
                      fresh[2].case_id .. "," .. fresh[2].order_id .. "," .. fresh[2].product ..
                      "\n")
    local old = dir .. "/old.journal"
    local j = assert(core.journal_open(old))
    j:close()
    local q = assert(truv.quota.sqlite(old .. ".quota"))
    for _, c in ipairs(sb:connections(fresh[1].order_id)) do
      local k = truv.quota.key(c.access_token)
      for i = 1, 3 do assert.is_string(q:reserve({ k }, core.now() - 60 + i)) end
    end
    q:close()
    local posts = refresh_posts()
    local code, out, err = renew(dir, { "--journal", old, "--base-url", sb.base_url, "--rate", "0",
                                        "--poll-interval", "0.1", "--json", list },
                                 { XDG_STATE_HOME = state })
    assert.equal(0, code, err)
    assert.matches("old%.journal%.quota", out)
    assert.matches("begun before", out)
    -- its reservations hold: that order is deferred, the other refreshed
    assert.equal(1, refresh_posts() - posts)
    local recs = journal_recs(old)
    assert.equal("defer", recs[fresh[1].case_id].route)
    assert.equal("done", recs[fresh[2].case_id].route)
    -- another store cannot be given for that journal: its reservations would be lost
    code, out, err = renew(dir, { "--journal", old, "--quota", dir .. "/other.db",
                                  "--base-url", sb.base_url, list }, { XDG_STATE_HOME = state })
    assert.equal("", out)
    assert.equal(2, code)
    assert.matches("old%.journal%.quota", err)
  end)

  it("refuses a quota URL it cannot use, and a bad --not-within", function()
    local cases = {
      { { "--quota", "redis://127.0.0.1:99999/0" }, "a Redis port is 1 to 65535" },
      { { "--redis", "http://cache" }, "%-%-redis: unknown scheme .http." },
      { { "--redis", "/tmp/q.db" }, "%-%-redis: a redis:// URL expected" },
      { { "--redis", "redis://cache", "--quota", "/tmp/q.db" }, "%-%-redis and %-%-quota" },
      { { "--quota", "memcached://x" }, "unknown scheme 'memcached'" },
      { { "--not-within", "soon" }, "%-%-not%-within: a duration" },
      { { "--not-within", "-5h" }, "%-%-not%-within: a duration" },
      { { "--not-within", "3w" }, "%-%-not%-within: a duration" },
      { { "--not-within", "20h", "--force" }, "%-%-force and %-%-not%-within" },
    }
    for _, c in ipairs(cases) do
      local args = { "--journal", dir .. "/bad.journal" }
      for _, a in ipairs(c[1]) do args[#args + 1] = a end
      args[#args + 1] = input
      local code, _, err = renew(dir, args, { XDG_STATE_HOME = state })
      assert.equal(2, code, table.concat(c[1], " ") .. ": " .. err)
      assert.matches(c[2], err)
    end
    assert.is_nil(read(dir .. "/bad.journal"))
    -- durations a person writes are taken
    for _, d in ipairs{ "90m", "20h", "2d", "3600s", "1.5h" } do
      local code, _, err = renew(dir, { "--journal", dir .. "/ok-" .. d .. ".journal",
                                        "--not-within", d, "--base-url", sb.base_url,
                                        "--rate", "0", "--dry-run", input },
                                 { XDG_STATE_HOME = state })
      assert.equal(0, code, d .. ": " .. err)
    end
  end)
end)
