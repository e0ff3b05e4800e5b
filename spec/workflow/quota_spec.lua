-- The refresh quota: 3 refreshes per connection per rolling 24 h, refused
-- locally with the exact instant a slot frees, atomic across the
-- connections of one refresh, and Truv's own refusal believed.
local world = require "spec.support.world"
local truv = require "truv"

-- The first seeded case from `from` on with at least `n` employers.
local function case_with(w, n, from)
  for i = from, #w.cases do
    local c = w.cases[i]
    if #c.employers >= n and c.product ~= "assets" then return c end
  end
  error("no seeded case with " .. n .. " employers")
end

local function refresh(w, case, params, opts)
  return w.client:refresh_order(case.order_id, params or { products = { case.product } }, opts)
end

describe("the refresh quota against the sandbox", function()
  local w
  lazy_setup(function()
    w = world.new{ args = { "--seed-cases", "30", "--mix", "active=1", "--rng-seed", "21",
                            "--rate-limit", "0" } }
  end)
  lazy_teardown(function() if w then w:stop() end end)

  it("refuses the 4th refresh in 24 h locally with the exact retry_at, then allows it", function()
    local case = case_with(w, 1, 1)
    local t0 = w.now
    for i = 1, 3 do
      assert(refresh(w, case))
      if i < 3 then w:advance(600) end
    end
    local before = w.sb:stats().requests.total
    local res, err = refresh(w, case)
    assert.is_nil(res)
    assert.equal("quota", err.kind)
    -- the store keeps milliseconds
    assert.near(t0 + 86400, err.retry_at, 0.001)
    assert.equal("defer", truv.route(err).route)
    assert.equal(err.retry_at, truv.route(err).not_before)
    -- nothing but the read of the original order was sent
    assert.equal(before + 1, w.sb:stats().requests.total)
    w:advance(err.retry_at - w.now - 1)
    res, err = refresh(w, case)
    assert.is_nil(res)
    assert.equal("quota", err.kind)
    w:advance(2)     -- one second after retry_at
    assert(refresh(w, case))
  end)

  it("reserves all the connections of a refresh or none", function()
    local case = case_with(w, 2, 10)
    local conns = w:connections(case.order_id)
    -- spend the first employer's connection through refresh tasks
    for _ = 1, 3 do
      assert(w.client:create_refresh_task{ access_token = conns[1].access_token,
                                           product_type = case.product })
    end
    local store = w.client.quota
    local k2 = truv.quota.key(conns[2].access_token)
    local used_before = store:usage(k2, w.now)
    local res, err = refresh(w, case)
    assert.is_nil(res)
    assert.equal("quota", err.kind)
    assert.equal(used_before, store:usage(k2, w.now))   -- the free one was not touched
    -- with partial, the free connection is refreshed and the spent one deferred
    local fresh, meta = refresh(w, case, nil, { partial = true })
    assert.is_truthy(fresh, tostring(meta))
    assert.equal(#case.employers - 1, meta.connections)
    assert.equal(1, #meta.deferred)
    assert.equal(case.employers[1].id, meta.deferred[1].id)
    assert.is_true(meta.deferred[1].not_before > w.now)
    assert.equal(#case.employers - 1, #fresh.employers)
  end)

  it("believes Truv's refusal and stops asking until the window frees", function()
    local case = case_with(w, 1, 20)
    local token = w:connections(case.order_id)[1].access_token
    -- another client (another process, the dashboard) used the connection
    local other = assert(truv.new{ client_id = w.sb.client_id, secret = w.sb.secret,
                                   base_url = w.sb.base_url, quota = false })
    for _ = 1, 4 do assert(other:create_refresh_task{ access_token = token, product_type = "income" }) end
    local res, err = refresh(w, case, { products = { case.product },
                                        employers = { { id = case.employers[1].id } } })
    assert.is_nil(res)
    assert.equal("refresh_limit", err.kind)
    assert.near(w.now + 86400, err.retry_at, 0.001)
    local sent = w.sb:stats().requests.total
    res, err = refresh(w, case, { products = { case.product },
                                  employers = { { id = case.employers[1].id } } })
    assert.is_nil(res)
    assert.equal("quota", err.kind)
    assert.equal(sent + 1, w.sb:stats().requests.total)   -- only the GET of the order
  end)

  it("releases a reservation when the request provably never left", function()
    local case = case_with(w, 1, 24)
    local token = w:connections(case.order_id)[1].access_token
    local key = truv.quota.key(token)
    local c = assert(truv.new{ client_id = "x", secret = "sandbox-x", retry = { attempts = 1 },
                               base_url = "http://127.0.0.1:1/v1/", quota = w.client.quota,
                               clock = w.client._clock, sleep = function() end })
    local used = w.client.quota:usage(key, w.now)
    local res, err = c:create_refresh_task{ access_token = token, product_type = "income" }
    assert.is_nil(res)
    assert.is_false(err.maybe_sent)
    assert.equal(used, w.client.quota:usage(key, w.now))
  end)

  it("keeps a reservation when the request may have reached Truv", function()
    local case = case_with(w, 1, 27)
    local token = w:connections(case.order_id)[1].access_token
    local key = truv.quota.key(token)
    w.sb:faults{ reset_after = 1, match = "POST /v1/refresh/tasks/" }
    local used = w.client.quota:usage(key, w.now)
    local res, err = w.client:create_refresh_task{ access_token = token, product_type = "income" }
    w.sb:faults{ reset = true }
    assert.is_nil(res)
    assert.is_true(err.maybe_sent)
    assert.equal(used + 1, w.client.quota:usage(key, w.now))
  end)
end)
