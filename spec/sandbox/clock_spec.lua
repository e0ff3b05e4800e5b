-- The virtual clock: standing, moved by /_sandbox/clock, or following the wall clock.
local sandbox = require "spec.support.sandbox"
local socket = require "socket"

describe("the standing virtual clock", function()
  local sb

  lazy_setup(function()
    sb = sandbox.start{ args = { "--start-time", "1700000000" } }
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("starts at --start-time and stands still", function()
    local c = sb:admin("GET", "clock")
    assert.are.equal(1700000000, c.now)
    assert.are.equal("2023-11-14T22:13:20.000000Z", c.iso)
    assert.are.equal(false, c.realtime)
    socket.sleep(0.2)
    assert.are.equal(1700000000, sb:now())
  end)

  it("advances by advance_s, fractions included", function()
    local before = sb:now()
    assert.are.equal(before + 30, sb:advance(30))
    local c = sb:admin("POST", "clock", { advance_s = 0.5 })
    assert.are.equal(before + 30.5, c.now)
    assert.matches("%.500000Z$", c.iso)
  end)

  it("is set with set", function()
    local c = sb:admin("POST", "clock", { set = 1800000000 })
    assert.are.equal(1800000000, c.now)
    assert.are.equal("2027-01-15T08:00:00.000000Z", c.iso)
    assert.are.equal(1800000000, sb:now())
  end)

  it("rejects a negative advance, both or neither field, and non-numbers", function()
    for _, body in ipairs({ { advance_s = -1 }, { advance_s = 1, set = 2 }, {}, { advance_s = "1" },
                            { set = -5 } }) do
      local status, res = sb:request("POST", "/_sandbox/clock", body)
      assert.are.equal(400, status)
      assert.are.equal("incorrect_parameters", res.error.code)
    end
  end)

  it("stamps documents with virtual time", function()
    sb:set_time(1750000000)
    local _, o = sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B" })
    assert.are.equal("2025-06-15T15:06:40.000000Z", o.created_at)
    assert.are.equal("2025-06-18T15:06:40.000000Z", o.expired_at)
    assert.are.equal(false, o.is_expired)
    sb:advance(72 * 3600)
    local _, later = sb:request("GET", "orders/" .. o.id .. "/")
    assert.are.equal(true, later.is_expired)
  end)
end)

describe("the realtime virtual clock", function()
  local sb

  lazy_setup(function()
    sb = sandbox.start{ args = { "--realtime", "--time-scale", "100", "--start-time", "1700000000",
                                 "--seed-cases", "1", "--mix", "active=1", "--refresh-limit", "0" } }
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("follows the wall clock, scaled", function()
    local a = sb:now()
    local t0 = socket.gettime()
    socket.sleep(0.3)
    local b = sb:now()
    local wall = socket.gettime() - t0
    assert.is_true(b - a >= 25, "advanced " .. (b - a))
    assert.is_true(b - a <= wall * 100 + 5, "advanced " .. (b - a) .. " in " .. wall .. " s")
    assert.are.equal(true, sb:admin("GET", "clock").realtime)
  end)

  it("moves tasks along by itself", function()
    local token = sb:connections(sb:cases()[1].order_id)[1].access_token
    local _, t = sb:request("POST", "refresh/tasks/", { access_token = token, product_type = "income" })
    local done = sandbox.wait_until(function()
      local _, cur = sb:request("GET", "refresh/tasks/" .. t.task_id .. "/")
      return cur.status == "done"
    end, 3, 0.02)
    assert.is_true(done)
  end)

  it("can still be advanced and set", function()
    local a = sb:now()
    local b = sb:advance(3600)
    assert.is_true(b - a >= 3600)
    local c = sb:set_time(1900000000)
    assert.is_true(c >= 1900000000 and sb:now() < 1900000000 + 60)
  end)
end)
