-- core.lists: the core's own lists, which the Lua modules read instead of
-- writing them again; each checked against what the core does with it.
local core = require "truv.core"

local lists = core.lists
local CONFIG = { client_id = "c", secret = "s", base_url = "http://127.0.0.1:9/v1/" }

local function set_of(list)
  local s = {}
  for _, v in ipairs(list) do s[v] = true end
  return s
end

-- The invalid fields of building `op` with these arguments (nil when it builds).
local function refused(op, id, params)
  local req, err = core.build(CONFIG, op, id, params)
  if req then return nil end
  local out = {}
  for _, f in ipairs(err.fields or {}) do out[#out + 1] = f.field .. ": " .. f.message end
  return table.concat(out, "; ")
end

describe("core.lists", function()
  it("names every route of the routing table, and only those", function()
    local routes = set_of(lists.routes)
    assert.equal(7, #lists.routes)
    assert.equal("wait", lists.routes[1])
    for _, entries in pairs(core.route_table()) do
      for name, e in pairs(entries) do assert.is_true(routes[e.route], name) end
    end
  end)

  it("names every error kind, each with exactly one row of the routing table", function()
    local rows = core.route_table().error
    local n = 0
    for _ in pairs(rows) do n = n + 1 end
    assert.equal(#lists.kinds, n)
    for _, kind in ipairs(lists.kinds) do assert.is_table(rows[kind], kind) end
    assert.is_true(set_of(lists.kinds).expired)
    assert.is_true(set_of(lists.kinds).handler)
  end)

  it("lists the products each operation takes, as the builder checks them", function()
    for _, p in ipairs(lists.products.refresh_order) do
      assert.is_nil(refused("refresh_order", "o1", { products = { p } }), p)
      assert.is_string(lists.refreshes[p], p)
    end
    for _, p in ipairs(lists.products.create_order) do
      assert.is_nil(refused("create_order", nil, { products = { p }, first_name = "A",
                                                   last_name = "B" }), p)
    end
    for _, p in ipairs(lists.products.create_refresh_task) do
      assert.is_nil(refused("create_refresh_task", nil, { access_token = "t", product_type = p }))
    end
    local refreshable = set_of(lists.products.refresh_order)
    for _, p in ipairs(lists.products.create_order) do
      if not refreshable[p] then
        assert.matches("unknown product", refused("refresh_order", "o1", { products = { p } }))
        assert.is_nil(lists.refreshes[p])
      end
    end
    assert.equal("employers", lists.refreshes.income)
    assert.equal("financial_accounts", lists.refreshes.assets)
  end)

  it("holds the connection limit the builder enforces", function()
    local five, six = {}, {}
    for i = 1, lists.limits.connections do five[i] = { id = "e" .. i } end
    for i = 1, lists.limits.connections + 1 do six[i] = { id = "e" .. i } end
    assert.is_nil(refused("refresh_order", "o1", { products = { "income" }, employers = five }))
    assert.matches("at most " .. lists.limits.connections,
                   refused("refresh_order", "o1", { products = { "income" }, employers = six }))
  end)

  it("answers valid_id as the builder does", function()
    local long = ("a"):rep(lists.limits.id_length)
    for _, id in ipairs{ "o1", "ab-1_x", long, long .. "a", "a b", "", "a/b", "é" } do
      assert.equal(core.valid_id(id), refused("get_order", id) == nil, id)
    end
    assert.is_false(core.valid_id("a\0b"))
    assert.is_false(core.valid_id(5))
  end)

  it("gives the defaults the core applies", function()
    local d = lists.defaults
    local req = assert(core.build({ client_id = "c", secret = "s" }, "get_order", "o1"))
    assert.equal(d.base_url .. "orders/o1/", req.url)
    assert.equal(3, d.quota_limit)
    assert.equal(86400, d.quota_window_s)
    local q = core.quota_memory{}
    assert.equal(d.quota_limit, q.limit)
    assert.equal(d.quota_window_s, q.window)
    assert.is_true(d.connect_timeout_ms > 0 and d.timeout_ms > d.connect_timeout_ms)
    -- the README's and truv-renew --help's
    assert.equal(4, d.billed_reuse_idle_s)
  end)
end)
