-- What Truv already did counts before the client refreshes: its count of an
-- order's refreshes in the last 24 h (the original's refresh_order, its
-- refresh orders' events), read before every refresh, so that a client with
-- an empty quota store (another host, another tool, a new store) does not
-- send a refresh Truv would refuse; and `not_within`, with which an order
-- refreshed a moment ago is answered with that refresh, nothing sent.
local world = require "spec.support.world"
local truv = require "truv"
local quota = require "truv.quota"

describe("Truv's own count of an order's refreshes", function()
  local w

  lazy_setup(function()
    w = world.new{ args = { "--seed-cases", "12", "--mix", "active=1", "--rng-seed", "23",
                            "--rate-limit", "0" } }
  end)
  lazy_teardown(function() if w then w:stop() end end)

  local used = {}
  local function one_employer_case()
    for _, c in ipairs(w.cases) do
      if not used[c.case_id] and #c.employers == 1 and c.product ~= "assets" then
        used[c.case_id] = true
        return c
      end
    end
    error("no unused one-employer case")
  end

  -- A second client on the same sandbox and clock, with a store of its own.
  local function other_client(store, extra)
    local o = { client_id = w.sb.client_id, secret = w.sb.secret, base_url = w.sb.base_url,
                clock = function() return w.now end, sleep = function(s) w:advance(s) end,
                quota = store }
    for k, v in pairs(extra or {}) do o[k] = v end
    return assert(truv.new(o))
  end

  local function posts()
    local e = w.sb:stats().requests.by_endpoint["POST /v1/orders/{id}/"] or {}
    local n = 0
    for _, c in pairs(e) do n = n + c end
    return n
  end

  it("refuses locally, with an empty store, what another client spent, and records it", function()
    local case = one_employer_case()
    local params = { products = { case.product } }
    local t0 = w.now
    for i = 1, 3 do
      assert(w.client:refresh_order(case.order_id, params))
      if i < 3 then w:advance(600) end
    end
    local store = quota.memory()
    local elsewhere = other_client(store)
    local before = posts()
    local res, err = elsewhere:refresh_order(case.order_id, params)
    assert.is_nil(res)
    assert.equal("quota", err.kind)
    assert.equal("defer", truv.route(err).route)
    -- the first of the three leaves Truv's window first (to the millisecond)
    assert.near(t0 + 86400, err.retry_at, 0.001)
    assert.equal(before, posts())
    local token = w:connections(case.order_id)[1].access_token
    assert.equal(3, (store:usage(quota.key(token), w.now)))
    elsewhere:close()
  end)

  it("counts each refresh against the connections it refreshed, and adds nothing twice",
     function()
    local case
    for _, c in ipairs(w.cases) do
      if not used[c.case_id] and #c.employers >= 2 and c.product ~= "assets" then case = c end
    end
    used[case.case_id] = true
    local conns = w:connections(case.order_id)
    local store = quota.memory()
    local a = other_client(store)
    -- the first employer alone, twice, from a client whose store is then lost
    local lost = other_client(quota.memory())
    for _ = 1, 2 do
      assert(lost:refresh_order(case.order_id, { products = { case.product },
                                                 employers = { { id = case.employers[1].id } } }))
      w:advance(60)
    end
    lost:close()
    -- the whole order: the first employer has one slot left, the others three
    local fresh, meta = a:refresh_order(case.order_id, { products = { case.product } })
    assert.is_truthy(fresh, tostring(meta))
    assert.equal(#case.employers, meta.connections)
    local k1, k2 = quota.key(conns[1].access_token), quota.key(conns[2].access_token)
    assert.equal(3, (store:usage(k1, w.now)))
    assert.equal(1, (store:usage(k2, w.now)))
    -- read again (another refresh tried): the store's own refresh is not counted twice
    local res, err = a:refresh_order(case.order_id, { products = { case.product } })
    assert.is_nil(res)
    assert.equal("quota", err.kind)
    assert.equal(3, (store:usage(k1, w.now)))
    assert.equal(1, (store:usage(k2, w.now)))
    a:close()
  end)

  it("answers an order refreshed less than not_within ago with that refresh", function()
    local case = one_employer_case()
    local params = { products = { case.product } }
    local first = assert(w.client:refresh_order(case.order_id, params))
    w:advance(3600)
    local before = posts()
    local again, meta = w.client:refresh_order(case.order_id, params, { not_within = 2 * 3600 })
    assert.is_truthy(again, tostring(meta))
    assert.equal(first.id, again.id)
    assert.equal(0, meta.sends)
    assert.equal(first.id, meta.recent.id)
    assert.near(3600, meta.recent.age_s, 1)
    assert.equal(before, posts())
    -- waited on and routed as any refresh
    local result = assert(w.client:wait_for_refresh(again))
    assert.equal("done", result.decision.route)
    -- the caller's own refresh is not taken as someone else's, and an older one is not recent
    local fresh = assert(w.client:refresh_order(case.order_id, params,
                                                { not_within = 2 * 3600, own_refresh = first.id }))
    assert.are_not.equal(first.id, fresh.id)
    w:advance(3 * 3600)
    local later = assert(w.client:refresh_order(case.order_id, params, { not_within = 2 * 3600 }))
    assert.are_not.equal(fresh.id, later.id)
    assert.equal(before + 2, posts())
    -- a client may make it its default; a bad value is refused where it is given
    local c = other_client(quota.memory(), { refresh = { not_within = 86400 } })
    local r2 = assert(c:refresh_order(case.order_id, params))
    assert.equal(later.id, r2.id)
    c:close()
    assert.has_error(function() other_client(nil, { refresh = { not_within = -1 } }) end)
    assert.has_error(function() other_client(nil, { refresh = { truv_count = "no" } }) end)
  end)

  it("can be turned off (refresh.truv_count = false): only the store counts", function()
    local case = one_employer_case()
    local params = { products = { case.product } }
    for _ = 1, 3 do assert(w.client:refresh_order(case.order_id, params)) end
    local counting = other_client(quota.memory())
    local blind = other_client(quota.memory(), { refresh = { truv_count = false } })
    local before = posts()
    local res, err = counting:refresh_order(case.order_id, params)
    assert.is_nil(res)
    assert.equal("quota", err.kind)
    assert.equal(before, posts())
    -- sent: whatever Truv answers, its answer is the only count
    blind:refresh_order(case.order_id, params)
    assert.equal(before + 1, posts())
    counting:close()
    blind:close()
  end)
end)

describe("where the quota store lives", function()
  local function env(t) return function(name) return t[name] end end

  it("is the state directory's, /var/lib as root, or the home's", function()
    assert.same({ "/srv/state/truv/quota.db", "/srv/state/truv" },
                { quota.default_path{ getenv = env{ XDG_STATE_HOME = "/srv/state/",
                                                    HOME = "/home/a" }, euid = 1000 } })
    assert.equal("/srv/state/truv/quota.db",
                 quota.default_path{ getenv = env{ XDG_STATE_HOME = "/srv/state" }, euid = 0 })
    assert.equal("/var/lib/truv/quota.db",
                 quota.default_path{ getenv = env{ HOME = "/root" }, euid = 0 })
    assert.equal("/home/a/.local/state/truv/quota.db",
                 quota.default_path{ getenv = env{ HOME = "/home/a" }, euid = 1000 })
    -- a relative XDG_STATE_HOME is ignored, as the XDG specification says
    assert.equal("/home/a/.local/state/truv/quota.db",
                 quota.default_path{ getenv = env{ XDG_STATE_HOME = "state", HOME = "/home/a" },
                                     euid = 1000 })
    local path, err = quota.default_path{ getenv = env{}, euid = 1000 }
    assert.is_nil(path)
    assert.matches("XDG_STATE_HOME or HOME", err.message)
  end)

  it("is named by a path or a URL whose scheme is recognised", function()
    assert.same({ kind = "sqlite", path = "/var/q.db" }, quota.location("/var/q.db"))
    assert.same({ kind = "sqlite", path = "q.db" }, quota.location("q.db"))
    assert.same({ kind = "sqlite", path = "/var/q.db" }, quota.location("file:///var/q.db"))
    assert.same({ kind = "redis", url = "redis://127.0.0.1:6379/0" },
                quota.location("redis://127.0.0.1:6379/0"))
    assert.same({ kind = "redis", url = "REDISS://cache" }, quota.location("REDISS://cache"))
    assert.same({ kind = "redis", url = "unix:///run/redis.sock?db=2" },
                quota.location("unix:///run/redis.sock?db=2"))
    local loc, err = quota.location("redis://")
    assert.is_nil(loc)
    assert.equal("invalid", err.kind)
    assert.matches("no host in the Redis URL", err.message)
    loc, err = quota.location("s3://bucket/q.db")
    assert.is_nil(loc)
    assert.matches("unknown scheme 's3'", err.message)
  end)
end)
