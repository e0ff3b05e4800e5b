-- truv-renew --reuse-model AGE: a case the journal saw before (here: a
-- retry after a provider outage) refreshes with the original order's model
-- as the journal kept it, instead of reading the order again, unless the
-- model is older than AGE or a refusal says it is wrong. Requests are
-- counted at the sandbox (its --verbose request log): the reads of each
-- case's original order and of its events (Truv's history).
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local core = require "truv.core"

local quote, write = files.quote, files.write
local renew = require("spec.support.renew").run

describe("truv-renew --reuse-model", function()
  local sb, dir, state
  local groups = {}     -- name -> { cases = { sandbox cases }, journal =, input = }
  local tokens = {}     -- every access token of the seeded orders

  -- The sandbox's request log: lines "truv-sandbox: METHOD URL STATUS TIME".
  local function log() return sb:stderr() end

  -- GETs of the group's originals and of their events since `mark` (an
  -- offset in the log), per order id.
  local function reads(group, mark)
    local text = log():sub(mark + 1)
    local orders, events = {}, {}
    for _, c in ipairs(group.cases) do
      local id = c.order_id
      orders[id] = select(2, text:gsub("GET /v1/orders/" .. id .. "/ ", ""))
      events[id] = select(2, text:gsub("GET /v1/orders/" .. id .. "/events/", ""))
    end
    return orders, events
  end

  local function recs(group)
    local j = assert(core.journal_open(group.journal))
    local out = {}
    for rec in j:each{} do out[rec.case_id] = rec end
    j:close()
    return out
  end

  local function edit(group, fn)
    local j = assert(core.journal_open(group.journal))
    local list = {}
    for rec in j:each{} do list[#list + 1] = rec end
    for _, rec in ipairs(list) do
      local fields = fn(rec)
      if fields then assert(j:put(rec.case_id, fields)) end
    end
    assert(j:close())
  end

  local function run(group, extra)
    local args = { "--journal", group.journal, "--base-url", sb.base_url, "--rate", "0",
                   "--poll-interval", "0.1", "--json" }
    for _, x in ipairs(extra or {}) do args[#args + 1] = x end
    args[#args + 1] = group.input
    local code, out, err = renew(dir, args, { XDG_STATE_HOME = state })
    assert.equal(0, code, err)
    return out, err
  end

  local function billed_for(group)
    local by_order = sb:stats().refresh.by_order or {}
    local n = 0
    for _, c in ipairs(group.cases) do n = n + ((by_order[c.order_id] or {}).tasks or 0) end
    return n
  end

  -- The group's cases come due (their retry time is now) with their
  -- providers back up.
  local function due(group)
    for _, c in ipairs(group.cases) do sb:set_state{ order_id = c.order_id, state = "active" } end
    edit(group, function(rec)
      if rec.state == "scheduled" then return { retry_at = core.now() - 1 } end
    end)
  end

  lazy_setup(function()
    dir = files.tmpdir("truv-reuse-spec")
    state = dir .. "/state"
    -- every provider is down for longer than the spec (1 h virtual at 50x):
    -- the first run of every case ends in a retry
    sb = sandbox.start{ args = { "--seed-cases", "12", "--rng-seed", "23", "--rate-limit", "0",
                                 "--mix", "provider_down=1", "--provider-down-s", "3600",
                                 "--realtime", "--time-scale", "50", "--verbose" } }
    local all = sb:cases()
    local names = { "reuse", "read", "old", "changed", "other_tool", "shared" }
    for i, name in ipairs(names) do
      groups[name] = { cases = { all[2 * i - 1], all[2 * i] },
                       journal = dir .. "/" .. name .. ".journal",
                       input = dir .. "/" .. name .. ".json" }
    end
    for _, c in ipairs(all) do
      local _, conns = sb:request("GET", "/_sandbox/connections?order_id=" .. c.order_id)
      for _, k in ipairs(conns.connections) do tokens[#tokens + 1] = k.access_token end
    end
    for _, name in ipairs(names) do
      local g, list = groups[name], {}
      for i, c in ipairs(g.cases) do
        local emp, fin = {}, {}
        for _, e in ipairs(c.employers or {}) do emp[#emp + 1] = e.id end
        for _, f in ipairs(c.financial_accounts or {}) do fin[#fin + 1] = f.id end
        list[i] = { case_id = c.case_id, order_id = c.order_id, product = c.product,
                    email = "case@example.com",
                    employers = #emp > 0 and emp or nil,
                    financial_accounts = #fin > 0 and fin or nil }
      end
      write(g.input, sandbox.json.encode{ cases = list })
      -- the first run: every case refreshes, its provider is down, a retry
      run(g)
      for id, rec in pairs(recs(g)) do
        assert.equal("retry", rec.route, id)
        assert.equal("scheduled", rec.state, id)
      end
    end
  end)

  lazy_teardown(function()
    if sb then
      local code, err = sb:stop()
      assert.equal(0, code, err)
    end
    if dir then os.execute("rm -rf " .. quote(dir)) end
  end)

  it("journals each case's original as read, with quota keys and no token", function()
    for name, g in pairs(groups) do
      for id, rec in pairs(recs(g)) do
        assert.is_string(rec.original_model, name .. " " .. id)
        assert.is_number(rec.original_read_at)
        local m = core.decode(rec.original_model, "table")
        assert.is_true(#m.connections > 0)
        for _, c in ipairs(m.connections) do
          assert.is_nil(c.access_token)
          if c.status == "completed" then assert.matches("^%x+$", c.quota_key) end
        end
        -- the refresh of the first run is the case's own, and how it failed
        -- (for the link-disconnected Truv sends with it: truv.refresh's
        -- own_failure)
        assert.is_string(rec.own_refreshes)
        assert.equal("unavailable", rec.failed_status, name .. " " .. id)
        assert.is_true(rec.failed_at >= rec.sent_at)
      end
      local bytes = assert(files.read(g.journal))
      for _, t in ipairs(tokens) do
        assert.is_nil(bytes:find(t, 1, true), "a token in the journal " .. g.journal)
      end
    end
  end)

  it("refreshes a retried case without reading its original again", function()
    local g = groups.reuse
    due(g)
    -- the dry run takes the kept model the same way, and says that Truv's
    -- count was not read (rather than showing it as 0)
    local plan = run(g, { "--reuse-model", "1d", "--dry-run" })
    for _, c in ipairs(g.cases) do
      local line = plan:match("[^\n]*" .. c.case_id:gsub("%p", "%%%0") .. "[^\n]*")
      assert.is_string(line, c.case_id)
      assert.matches("Truv's count not read, the journal's model", line, 1, true)
      assert.matches("original from the journal, read", line, 1, true)
      assert.is_nil(line:find("Truv 0", 1, true))
    end
    local mark, billed = #log(), billed_for(g)
    local _, err = run(g, { "--reuse-model", "1d" })
    local orders, events = reads(g, mark)
    for _, c in ipairs(g.cases) do
      assert.equal(0, orders[c.order_id], c.case_id)
      assert.equal(0, events[c.order_id], c.case_id)
    end
    assert.matches('"event":"model_reused"', err)
    local conns = 0
    for id, rec in pairs(recs(g)) do
      assert.equal("done", rec.route, id)
      assert.is_nil(rec.failed_status)   -- the failure is behind it
      local m = core.decode(rec.original_model, "table")
      for _, c in ipairs(m.connections) do
        if c.quota_key then conns = conns + 1 end
      end
    end
    assert.equal(billed + conns, billed_for(g))   -- each connection refreshed once
  end)

  it("reads the original again without the flag", function()
    local g = groups.read
    due(g)
    local mark = #log()
    run(g)
    local orders, events = reads(g, mark)
    for _, c in ipairs(g.cases) do
      assert.is_true(orders[c.order_id] >= 1, c.case_id)
      assert.is_true(events[c.order_id] >= 1, c.case_id)   -- Truv's count: its own refresh
    end
    for id, rec in pairs(recs(g)) do assert.equal("done", rec.route, id) end
  end)

  it("reads an original kept longer than AGE ago again", function()
    local g = groups.old
    due(g)
    edit(g, function() return { original_read_at = core.now() - 7200 } end)
    local mark = #log()
    local _, err = run(g, { "--reuse-model", "1h" })
    local orders = reads(g, mark)
    for _, c in ipairs(g.cases) do assert.is_true(orders[c.order_id] >= 1, c.case_id) end
    assert.is_nil(err:find('"event":"model_reused"', 1, true))
    for id, rec in pairs(recs(g)) do
      assert.equal("done", rec.route, id)
      assert.is_true(rec.original_read_at > core.now() - 600, id)   -- the new read is kept
    end
  end)

  it("reads the original again when a run sharing the quota store refreshed it since", function()
    local g = groups.shared
    due(g)
    -- another run (another journal, the same store) reserved a refresh of
    -- each case's first connection since the model was read
    local store = assert(require("truv.quota").open_file(state .. "/truv/quota.db"))
    edit(g, function(rec)
      local m = core.decode(rec.original_model, "table")
      for _, c in ipairs(m.connections) do
        if c.quota_key then
          assert(store:reserve({ c.quota_key }, core.now()))
          break
        end
      end
    end)
    store:close()
    local mark = #log()
    local _, err = run(g, { "--reuse-model", "1d" })
    local orders = reads(g, mark)
    for _, c in ipairs(g.cases) do assert.is_true(orders[c.order_id] >= 1, c.case_id) end
    assert.is_nil(err:find('"event":"model_reused"', 1, true))
  end)

  it("reads again, once, when the kept original no longer names the case's connection", function()
    local g = groups.changed
    due(g)
    -- the order changed since it was read: the model kept lacks the
    -- connection the case refreshes (as if the user had replaced it)
    edit(g, function(rec)
      local m = core.decode(rec.original_model, "table")
      local case = core.decode(rec.input, "table")
      local named = (case.employers or case.financial_accounts or {})[1]
      assert.is_string(named)
      local kept = {}
      for _, c in ipairs(m.connections) do
        if c.id ~= named then kept[#kept + 1] = c end
      end
      assert.is_true(#kept < #m.connections)
      m.connections = kept
      return { original_model = core.encode(m) }
    end)
    local mark, billed = #log(), billed_for(g)
    local before = sb:stats().refresh.by_order or {}
    local _, err = run(g, { "--reuse-model", "1d" })
    local orders = reads(g, mark)
    assert.matches('"event":"model_reread"', err)
    local after = sb:stats().refresh.by_order or {}
    for _, c in ipairs(g.cases) do
      assert.equal(1, orders[c.order_id], c.case_id)            -- read again, once
      assert.equal((before[c.order_id] or {}).refresh_orders + 1,
                   after[c.order_id].refresh_orders, c.case_id) -- refreshed once
    end
    assert.is_true(billed_for(g) > billed)
    for id, rec in pairs(recs(g)) do assert.equal("done", rec.route, id) end
  end)

  it("reads again when Truv refuses a refresh over its limit, and adopts another tool's",
     function()
    local g = groups.other_tool
    due(g)
    -- another tool refreshes each order three times since the model was
    -- read: with the first run's refresh, Truv allows no more in the window
    -- (4 task creations a day when the connection's own is older); the
    -- store saw none of them
    for _, c in ipairs(g.cases) do
      for _ = 1, 3 do
        local status = sb:request("POST", "orders/" .. c.order_id .. "/",
                                  { products = { c.product } })
        assert.equal(200, status)
      end
    end
    local billed = billed_for(g)
    local _, err = run(g, { "--reuse-model", "1d" })
    assert.matches('"event":"model_reread"', err)
    -- the refusal billed nothing, and the other tool's refresh is taken
    assert.equal(billed, billed_for(g))
    for id, rec in pairs(recs(g)) do
      assert.equal("done", rec.route, id)
      assert.equal("recently_refreshed", rec.reason, id)
    end
  end)
end)
