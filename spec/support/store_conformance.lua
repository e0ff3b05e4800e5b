--- Store conformance: the quota and de-duplication store contracts (see
-- truv/quota.lua and truv/dedupe.lua) as busted blocks, for ANY store: the
-- C ones, and Lua ones (nginx shared dict, Redis) written later.
--
--   local conformance = require "spec.support.store_conformance"
--   conformance.quota("memory quota store", function(policy)
--     return quota.memory(policy)
--   end, { make_pair = ... })
--   conformance.dedupe("memory dedupe store", function() return dedupe.memory() end)
--
-- quota's make_store(policy) returns a new, empty store applying `policy`
-- ({ limit =, window = }, nil fields meaning the defaults 3 and 86400), and
-- optionally a cleanup function run after the test. dedupe's make_store()
-- is the same without a policy. opts.make_pair(policy), when given, returns
-- two handles on one backing store (one file, one Redis database), and the
-- sharing tests run too. The connection facts (store:note, store:facts) are
-- checked too, unless opts.facts == false (a store that does not keep them:
-- the optional part of the contract).
--
-- Only the contract is checked: no store internals, no error kinds beyond
-- "misuse raises". Times are injected; nothing sleeps.
local busted = require "busted"
local assert = require "luassert"
local quota = require "truv.quota"

-- a required module does not see the spec file's environment
local describe, it, after_each = busted.describe, busted.it, busted.after_each

local _M = {}

local T0 = 1700000000
local DAY = 86400

-- Tracks what a test opened, to close it afterwards.
local function tracker(make)
  local opened, cleanups = {}, {}
  local function open(...)
    local a, b = make(...)
    assert(a, "make_store returned nothing: " .. tostring(b))
    if type(b) == "function" then cleanups[#cleanups + 1] = b end
    opened[#opened + 1] = a
    return a, type(b) ~= "function" and b or nil
  end
  local function close_all()
    for i = #opened, 1, -1 do opened[i]:close() end
    for i = #cleanups, 1, -1 do cleanups[i]() end
    opened, cleanups = {}, {}
  end
  return open, close_all, function(s) opened[#opened + 1] = s end
end

local function key(name) return quota.key("conformance-token-" .. name) end

local function sorted(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  return c
end

--- The quota store contract.
function _M.quota(name, make_store, opts)
  opts = opts or {}
  describe(name .. " (quota store contract)", function()
    local open, close_all, adopt = tracker(make_store)
    after_each(close_all)

    local function fill(store, k, times)
      for _, t in ipairs(times) do assert.is_string(store:reserve({ k }, t)) end
    end

    it("exposes its limit and window as numbers", function()
      local s = open({})
      assert.equal(3, s.limit)
      assert.equal(86400, s.window)
      local p = open({ limit = 5, window = 3600 })
      assert.equal(5, p.limit)
      assert.equal(3600, p.window)
    end)

    it("admits `limit` reserves in the window and refuses the next with the exact not_before",
       function()
      local s, k = open({}), key("a")
      fill(s, k, { T0, T0 + 60, T0 + 120.25 })
      local ticket, not_before, spent = s:reserve({ k }, T0 + 3600)
      assert.is_false(ticket)
      assert.equal(T0 + DAY, not_before)
      assert.same({ k }, spent)
    end)

    it("succeeds at exactly not_before, and one second after the next one", function()
      local s, k = open({}), key("a")
      fill(s, k, { T0, T0 + 60, T0 + 120 })
      local ok, not_before = s:reserve({ k }, T0 + DAY - 0.001)
      assert.is_false(ok)
      assert.equal(T0 + DAY, not_before)
      assert.is_string(s:reserve({ k }, not_before))
      ok, not_before = s:reserve({ k }, T0 + DAY + 1)
      assert.is_false(ok)
      assert.equal(T0 + 60 + DAY, not_before)
      assert.is_string(s:reserve({ k }, not_before + 1))
    end)

    it("keeps millisecond precision", function()
      local s, k = open({}), key("ms")
      fill(s, k, { T0 + 0.123, T0 + 0.456, T0 + 0.789 })
      local ok, not_before = s:reserve({ k }, T0 + 1)
      assert.is_false(ok)
      assert.is_true(math.abs(not_before - (T0 + 0.123 + DAY)) < 1e-6)
      assert.is_false((s:reserve({ k }, T0 + 0.122 + DAY)))
      assert.is_string(s:reserve({ k }, T0 + 0.123 + DAY))
    end)

    it("applies its policy's limit and window", function()
      local s, k = open({ limit = 1, window = 60 }), key("p")
      assert.is_string(s:reserve({ k }, T0))
      local ok, not_before = s:reserve({ k }, T0 + 59.999)
      assert.is_false(ok)
      assert.equal(T0 + 60, not_before)
      assert.is_string(s:reserve({ k }, T0 + 60))
    end)

    it("gives every key one entry under one ticket", function()
      local s = open({})
      local ks = { key("1"), key("2"), key("3") }
      local ticket = s:reserve(ks, T0)
      assert.is_string(ticket)
      for _, k in ipairs(ks) do assert.equal(1, (s:usage(k, T0))) end
      assert.is_true(s:release(ks, ticket))
      for _, k in ipairs(ks) do assert.equal(0, (s:usage(k, T0))) end
    end)

    it("refuses all keys when one is full, and leaves the others untouched", function()
      local s = open({})
      local b, full, c = key("b"), key("full"), key("c")
      fill(s, full, { T0, T0 + 1, T0 + 2 })
      local ok, not_before, spent = s:reserve({ b, full, c }, T0 + 10)
      assert.is_false(ok)
      assert.equal(T0 + DAY, not_before)
      assert.same({ full }, spent)
      local used, next_free = s:usage(b, T0 + 10)
      assert.equal(0, used)
      assert.is_nil(next_free)
      assert.equal(0, (s:usage(c, T0 + 10)))
      assert.equal(3, (s:usage(full, T0 + 10)))
    end)

    it("answers not_before when every full key has room, listing each full key", function()
      local s = open({})
      local early, late, free = key("early"), key("late"), key("free")
      fill(s, early, { T0, T0 + 1, T0 + 2 })
      fill(s, late, { T0 + 500, T0 + 501, T0 + 502 })
      local ok, not_before, spent = s:reserve({ early, free, late }, T0 + 1000)
      assert.is_false(ok)
      assert.equal(T0 + 500 + DAY, not_before)
      assert.same(sorted({ early, late }), sorted(spent))
      assert.is_string(s:reserve({ early, free, late }, not_before))
    end)

    it("slides: each entry leaves exactly a window after it was made", function()
      local s, k = open({}), key("slide")
      fill(s, k, { T0, T0 + 10, T0 + 20 })
      assert.is_string(s:reserve({ k }, T0 + DAY))
      local ok, not_before = s:reserve({ k }, T0 + DAY)
      assert.is_false(ok)
      assert.equal(T0 + 10 + DAY, not_before)
    end)

    it("release removes only that ticket's entries, only from the keys named", function()
      local s = open({})
      local k1, k2 = key("r1"), key("r2")
      local a = s:reserve({ k1, k2 }, T0)
      local b = s:reserve({ k1 }, T0 + 1)
      assert.is_string(a)
      assert.is_string(b)
      assert.are_not.equal(a, b)
      assert.is_true(s:release({ k1, k2 }, a))
      assert.equal(1, (s:usage(k1, T0 + 2)))
      assert.equal(0, (s:usage(k2, T0 + 2)))
      assert.is_true(s:release({ k2 }, b))
      assert.equal(1, (s:usage(k1, T0 + 2)))
      assert.is_true(s:release({ k1 }, b))
      assert.equal(0, (s:usage(k1, T0 + 2)))
    end)

    it("release of a ticket twice, or of one never issued, changes nothing", function()
      local s, k = open({}), key("r3")
      local t = s:reserve({ k }, T0)
      s:reserve({ k }, T0 + 1)
      assert.is_true(s:release({ k }, t))
      assert.is_true(s:release({ k }, t))
      assert.is_true(s:release({ k }, "999999999"))
      assert.is_true(s:release({ k }, "not-a-ticket"))
      assert.equal(1, (s:usage(k, T0 + 2)))
    end)

    it("issues a distinct ticket per reserve", function()
      local s, seen = open({}), {}
      for i = 1, 50 do
        local t = s:reserve({ key("t" .. i) }, T0)
        assert.is_string(t)
        assert.is_nil(seen[t])
        seen[t] = true
      end
    end)

    it("record_limit makes the key full until exactly a window from then", function()
      local s, k = open({}), key("limit")
      fill(s, k, { T0 })
      assert.is_true(s:record_limit(k, T0 + 100))
      local used, next_free = s:usage(k, T0 + 100)
      assert.equal(3, used)
      assert.equal(T0 + 100 + DAY, next_free)
      local ok, not_before = s:reserve({ k }, T0 + DAY)
      assert.is_false(ok)
      assert.equal(T0 + 100 + DAY, not_before)
      assert.is_string(s:reserve({ k }, T0 + 100 + DAY))
      assert.equal(1, (s:usage(k, T0 + 100 + DAY)))
    end)

    it("record_limit drops every entry before now, even a millisecond before, and keeps one at now",
       function()
      local s, k, now = open({}), key("limit-edge"), T0 + 100
      fill(s, k, { now - 0.5, now - 0.001 })
      assert.is_true(s:record_limit(k, now))
      local used, next_free = s:usage(k, now)
      assert.equal(3, used)
      assert.equal(now + DAY, next_free)          -- not now - 0.5 + DAY
      local ok, not_before = s:reserve({ k }, now + DAY - 0.001)
      assert.is_false(ok)
      assert.equal(now + DAY, not_before)
      fill(s, k, { now + DAY, now + DAY, now + DAY })   -- the whole limit is free then
      -- an entry exactly at now stays, and counts toward the limit
      local k2 = key("limit-at-now")
      fill(s, k2, { now })
      assert.is_true(s:record_limit(k2, now))
      assert.equal(3, (s:usage(k2, now)))
      assert.is_false((s:reserve({ k2 }, now)))
    end)

    it("record_limit works on a key never reserved, and twice", function()
      local s, k = open({}), key("fresh")
      assert.is_true(s:record_limit(k, T0))
      assert.is_true(s:record_limit(k, T0))
      local used, next_free = s:usage(k, T0)
      assert.equal(3, used)
      assert.equal(T0 + DAY, next_free)
    end)

    it("record_count keeps Truv's count when it is larger, at Truv's times", function()
      local s, k = open({}), key("count")
      -- another host refreshed twice: an empty store now holds both, at their instants
      assert.is_true(s:record_count(k, { T0 + 20, T0 + 10 }, T0 + 100))
      local used = s:usage(k, T0 + 100)
      assert.equal(2, used)
      fill(s, k, { T0 + 100 })
      local ok, not_before = s:reserve({ k }, T0 + 200)
      assert.is_false(ok)
      assert.equal(T0 + 10 + DAY, not_before)   -- the oldest of Truv's leaves first
      assert.is_string(s:reserve({ k }, T0 + 10 + DAY))
    end)

    it("record_count never counts a refresh twice, nor removes one", function()
      local s, k = open({}), key("count-same")
      fill(s, k, { T0 })
      -- Truv shows the store's own refresh (a moment later by its clock)
      assert.is_true(s:record_count(k, { T0 + 1 }, T0 + 10))
      assert.equal(1, (s:usage(k, T0 + 10)))
      -- again, and with the same times: nothing changes
      assert.is_true(s:record_count(k, { T0 + 1 }, T0 + 10))
      assert.equal(1, (s:usage(k, T0 + 10)))
      -- Truv counts fewer than the store: nothing goes
      fill(s, k, { T0 + 20 })
      assert.is_true(s:record_count(k, { T0 + 1 }, T0 + 30))
      assert.equal(2, (s:usage(k, T0 + 30)))
      -- and more: the missing ones come in at the oldest of Truv's times
      assert.is_true(s:record_count(k, { T0 + 2, T0 + 1, T0 + 25 }, T0 + 30))
      local used, next_free = s:usage(k, T0 + 30)
      assert.equal(3, used)
      assert.equal(T0 + DAY, next_free)
      assert.is_true(s:record_count(k, { T0 + 2, T0 + 1, T0 + 25 }, T0 + 30))
      assert.equal(3, (s:usage(k, T0 + 30)))
    end)

    it("record_count ignores times out of the window and counts the newest limit", function()
      local s, k = open({}), key("count-window")
      assert.is_true(s:record_count(k, {}, T0))
      assert.equal(0, (s:usage(k, T0)))
      assert.is_true(s:record_count(k, { T0 - DAY, T0 - DAY - 5 }, T0))
      assert.equal(0, (s:usage(k, T0)))
      -- five refreshes in the window (a limit raised by Truv, several hosts): the key is
      -- full until the third newest leaves
      assert.is_true(s:record_count(k, { T0 - 50, T0 - 40, T0 - 30, T0 - 20, T0 - 10 }, T0))
      local used, next_free = s:usage(k, T0)
      assert.equal(3, used)
      assert.equal(T0 - 30 + DAY, next_free)
      -- a key that is not one, a time that is not finite: misuse raises
      assert.has_error(function() s:record_count("nope", { T0 }, T0) end)
      assert.has_error(function() s:record_count(k, { 0 / 0 }, T0) end)
      assert.has_error(function() s:record_count(k, T0, T0) end)
      assert.has_error(function() s:record_count(k, { T0 }, nil) end)
    end)

    it("usage counts the entries in the window and says when a slot frees", function()
      local s, k = open({}), key("u")
      local used, next_free = s:usage(k, T0)
      assert.equal(0, used)
      assert.is_nil(next_free)
      fill(s, k, { T0, T0 + 5 })
      used, next_free = s:usage(k, T0 + 6)
      assert.equal(2, used)
      assert.is_nil(next_free)
      fill(s, k, { T0 + 7.5 })
      used, next_free = s:usage(k, T0 + 8)
      assert.equal(3, used)
      assert.equal(T0 + DAY, next_free)
      assert.equal(2, (s:usage(k, T0 + DAY)))
      assert.equal(0, (s:usage(k, T0 + 7.5 + DAY)))
    end)

    it("counts a key listed twice once", function()
      local s = open({})
      local d, e = key("d"), key("e")
      local t = s:reserve({ d, d, e }, T0)
      assert.is_string(t)
      assert.equal(1, (s:usage(d, T0)))
      s:reserve({ d, d }, T0 + 1)
      s:reserve({ d }, T0 + 2)
      local ok, _, spent = s:reserve({ d, d, e }, T0 + 3)
      assert.is_false(ok)
      assert.same({ d }, spent)
      assert.is_true(s:release({ d, d, e }, t))
      assert.equal(2, (s:usage(d, T0 + 3)))
      assert.equal(0, (s:usage(e, T0 + 3)))
    end)

    it("keeps connections apart, however many", function()
      local s, n = open({}), 1000
      for i = 1, n do assert.is_string(s:reserve({ key("many" .. i) }, T0 + i / 1000)) end
      for i = 1, n, 37 do assert.equal(1, (s:usage(key("many" .. i), T0 + 2))) end
      assert.equal(0, (s:usage(key("many0"), T0 + 2)))
    end)

    it("raises on misuse", function()
      local s, k = open({}), key("m")
      assert.has_error(function() s:reserve({}, T0) end)
      assert.has_error(function() s:reserve(k, T0) end)
      assert.has_error(function() s:reserve({ k }, "now") end)
      assert.has_error(function() s:reserve({ k }, 0 / 0) end)
      assert.has_error(function() s:usage(nil, T0) end)
      assert.has_error(function() s:record_limit(k, nil) end)
      assert.equal(0, (s:usage(k, T0)))
    end)

    if opts.facts ~= false then
      it("keeps connection facts: the latest instant of each, the reason of the latest death",
         function()
        local s, k, other = open({}), key("facts"), key("facts-other")
        assert.is_true(quota.has_facts(s))
        assert.same({}, s:facts(k))
        assert.is_true(s:note(k, "alive", T0))
        assert.is_true(s:note(k, "dead", T0 + 10.5, "login_error"))
        assert.same({ alive_at = T0, dead_at = T0 + 10.5, dead_reason = "login_error" }, s:facts(k))
        -- an older sighting changes nothing
        assert.is_true(s:note(k, "dead", T0 + 5, "mfa_error"))
        assert.is_true(s:note(k, "alive", T0 - 100))
        assert.same({ alive_at = T0, dead_at = T0 + 10.5, dead_reason = "login_error" }, s:facts(k))
        -- a newer one moves the instant and the reason
        assert.is_true(s:note(k, "dead", T0 + 20, "link-disconnected"))
        assert.is_true(s:note(k, "auth", T0 + 30.001))
        local f = s:facts(k)
        assert.equal(T0 + 20, f.dead_at)
        assert.equal("link-disconnected", f.dead_reason)
        assert.is_true(math.abs(f.auth_at - (T0 + 30.001)) < 1e-6)
        assert.is_true(s:note(k, "dead", T0 + 40))
        assert.is_nil(s:facts(k).dead_reason)
        assert.same({}, s:facts(other))
      end)

      it("keeps facts apart from the refresh log", function()
        local s, k = open({ limit = 1 }), key("facts-log")
        assert.is_true(s:note(k, "dead", T0, "mfa_error"))
        assert.equal(0, (s:usage(k, T0)))
        assert.is_string(s:reserve({ k }, T0 + 1))
        assert.is_true(s:record_limit(k, T0 + 2))
        assert.same({ dead_at = T0, dead_reason = "mfa_error" }, s:facts(k))
        assert.is_true(s:note(k, "alive", T0 + 3))
        assert.equal(1, (s:usage(k, T0 + 3)))
      end)

      it("raises on facts misuse, recording nothing", function()
        local s, k = open({}), key("facts-misuse")
        assert.has_error(function() s:note(k, "gone", T0) end)
        assert.has_error(function() s:note(k, "alive", T0, "login_error") end)
        assert.has_error(function() s:note(k, "dead", T0, "Login Error") end)
        assert.has_error(function() s:note(k, "dead", T0, string.rep("a", 32)) end)
        assert.has_error(function() s:note(k, "dead", 0 / 0) end)
        assert.has_error(function() s:note("not-a-key", "dead", T0) end)
        assert.has_error(function() s:facts(nil) end)
        assert.same({}, s:facts(k))
        assert.is_true(s:note(k, "dead", T0, string.rep("a", 31)))
      end)
    end

    if opts.make_pair and opts.facts ~= false then
      it("shares connection facts between two handles on one backing store", function()
        local a, b = opts.make_pair({})
        adopt(a)
        adopt(b)
        local k = key("facts-shared")
        assert.is_true(a:note(k, "dead", T0, "account_locked"))
        assert.is_true(b:note(k, "auth", T0 + 1))
        assert.same({ dead_at = T0, dead_reason = "account_locked", auth_at = T0 + 1 }, a:facts(k))
      end)
    end

    if opts.make_pair then
      it("shares one log between two handles on one backing store", function()
        local a, b = opts.make_pair({})
        adopt(a)
        adopt(b)
        local k = key("shared")
        local t = a:reserve({ k }, T0)
        assert.is_string(b:reserve({ k }, T0 + 1))
        assert.is_string(a:reserve({ k }, T0 + 2))
        assert.equal(3, (b:usage(k, T0 + 3)))
        local ok, not_before = b:reserve({ k }, T0 + 3)
        assert.is_false(ok)
        assert.equal(T0 + DAY, not_before)
        assert.is_true(b:release({ k }, t))
        assert.equal(2, (a:usage(k, T0 + 3)))
        assert.is_true(a:record_limit(k, T0 + 4))
        assert.equal(T0 + 4 + DAY, select(2, b:usage(k, T0 + 4)))
      end)
    end
  end)
end

--- The de-duplication store contract.
function _M.dedupe(name, make_store, opts)
  opts = opts or {}
  describe(name .. " (dedupe store contract)", function()
    local open, close_all, adopt = tracker(make_store)
    after_each(close_all)

    it("sees an id first once, then as a duplicate", function()
      local s = open()
      assert.is_true(s:seen("wh-1", T0, 3600))
      assert.is_false(s:seen("wh-1", T0 + 1, 3600))
      assert.is_false(s:seen("wh-1", T0 + 2, 3600))
      assert.is_true(s:seen("wh-2", T0 + 2, 3600))
    end)

    it("sees an id first again exactly when its ttl ends", function()
      local s = open()
      assert.is_true(s:seen("wh-ttl", T0, 100))
      assert.is_false(s:seen("wh-ttl", T0 + 99.999, 100))
      assert.is_true(s:seen("wh-ttl", T0 + 100, 100))
      assert.is_false(s:seen("wh-ttl", T0 + 150, 100))
      assert.is_true(s:seen("wh-ttl", T0 + 200, 100))
    end)

    it("does not extend the ttl on a duplicate", function()
      local s = open()
      assert.is_true(s:seen("wh-x", T0, 100))
      assert.is_false(s:seen("wh-x", T0 + 90, 1000))
      assert.is_true(s:seen("wh-x", T0 + 100, 100))
    end)

    it("sees a forgotten id first again; forgetting an unknown id is fine", function()
      local s = open()
      assert.is_true(s:seen("wh-f", T0, 3600))
      assert.is_true(s:forget("wh-f"))
      assert.is_true(s:seen("wh-f", T0 + 1, 3600))
      assert.is_false(s:seen("wh-f", T0 + 2, 3600))
      assert.is_true(s:forget("never-seen"))
    end)

    it("records an updated_at that is not older, per object", function()
      local s = open()
      assert.is_true(s:last_update("task:1", T0))
      assert.is_true(s:last_update("task:1", T0 + 0.5))
      assert.is_true(s:last_update("task:1", T0 + 0.5))    -- equal: a retried delivery
      assert.is_false(s:last_update("task:1", T0 - 10))
      assert.is_false(s:last_update("task:1", T0 + 0.25))
      assert.is_true(s:last_update("task:2", T0 - 10))
      assert.is_true(s:last_update("task:1", T0 + 0.501))
    end)

    it("keeps ids and object keys apart", function()
      local s = open()
      assert.is_true(s:last_update("same", T0))
      assert.is_true(s:seen("same", T0, 3600))
      assert.is_true(s:last_update("same", T0 + 1))
      assert.is_false(s:seen("same", T0, 3600))
    end)

    it("keeps many ids apart", function()
      local s = open()
      for i = 1, 1000 do assert.is_true(s:seen("many-" .. i, T0, 3600)) end
      for i = 1, 1000, 7 do assert.is_false(s:seen("many-" .. i, T0 + 1, 3600)) end
    end)

    it("raises on misuse", function()
      local s = open()
      assert.has_error(function() s:seen(nil, T0, 3600) end)
      assert.has_error(function() s:seen("x", "now", 3600) end)
      assert.has_error(function() s:seen("x", T0, -1) end)
      assert.has_error(function() s:seen("x", T0, 1 / 0) end)
      assert.has_error(function() s:last_update("o", nil) end)
      assert.is_true(s:seen("x", T0, 3600))
    end)

    if opts.make_pair then
      it("shares what it saw between two handles on one backing store", function()
        local a, b = opts.make_pair()
        adopt(a)
        adopt(b)
        assert.is_true(a:seen("wh-s", T0, 3600))
        assert.is_false(b:seen("wh-s", T0, 3600))
        assert.is_true(b:last_update("order:1", T0))
        assert.is_false(a:last_update("order:1", T0 - 1))
        assert.is_true(b:forget("wh-s"))
        assert.is_true(a:seen("wh-s", T0, 3600))
      end)
    end
  end)
end

return _M
