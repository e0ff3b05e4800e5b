--- The de-duplication store on an nginx shared dictionary
-- (truv.store.shdict.dedupe): truv.dedupe's contract, checked by the same
-- conformance specs as the C stores; every read-decide-write under the
-- locks of truv.store.shdict.lock.
--
-- Layout (all under `prefix`, default "truv:"): records are kept in
-- buckets, `buckets` of each kind per dictionary (its capacity / 2048, set
-- when a store opens it), "<prefix>s:<n>" for webhook ids and
-- "<prefix>o:<n>" for objects (the last updated_at of an event type about
-- an object, truv.receiver's object keys). A bucket's value is a string of
-- 26-byte entries: the id or object key in 16 bytes (its MD5: ids are
-- Truv's and signed, nobody picks them to collide), a time in
-- 6 bytes (ms + 2^47, big-endian: a webhook's expiry, an object's
-- updated_at) and, in 4, when the entry leaves (seconds on nginx's clock:
-- `ttl` after a webhook was seen plus a minute, 30 days after an object's
-- update, as the C stores); the bucket is kept by nginx until its last
-- entry leaves. Entries that left are dropped when their bucket is
-- written. A webhook costs about 35 bytes of the dictionary instead of the
-- 128 of a record of its own (nginx's node is 68 bytes before its key and
-- value, in a slab of 128), its object's entry as much.
--
-- Records of the layout before buckets (one per id, "<prefix>s:<id>", and
-- per object, "<prefix>o:<object key>", numbers of ms) that a reload kept
-- are still read, never written, until nginx lets them go.
--
-- No silent loss: a bucket holds at most MAX_ENTRIES; one that would hold
-- more drops its oldest entries, nginx may evict the least recently used
-- buckets of a full dictionary (`forcible` writes), and a bucket for which
-- nginx finds no room of its size (its slabs are by size) gives up its
-- oldest entries until the rest fits: a full dictionary still records every
-- webhook, at the cost of the oldest entries. All of it is counted
-- (the `counters` option, "evicted:<dict name>", which the gateway's
-- /metrics shows as truv_store_evictions_total) and logged at warn (the
-- first at once, then at most once a minute with the count since): a
-- webhook whose entry was lost could be handled twice. Size the dictionary
-- for `ttl` worth of webhooks (examples/openresty/README.md), and give it
-- to no quota store (truv.store.shdict.dict: a dictionary holds one kind of
-- store).
local core = require "truv.core"
local dict_mod = require "truv.store.shdict.dict"
local lock = require "truv.store.shdict.lock"
local counters_mod = require "truv.counters"

local ngx = ngx
local type, tostring, setmetatable = type, tostring, setmetatable
local format, find, char, byte, sub = string.format, string.find, string.char, string.byte,
                                     string.sub
local concat = table.concat
local floor, ceil, min, max = math.floor, math.ceil, math.min, math.max
local md5_bin = ngx and ngx.md5_bin
local argerror, finite, ms, store_error = dict_mod.argerror, dict_mod.finite, dict_mod.ms,
                                         dict_mod.error
local with_locks, owns, lost_error = lock.with_locks, lock.owns, lock.lost_error

local _M = {}

local ORDER_TTL_S = core.lists.defaults.order_retention_s   -- an ordering record's life,
                                                            -- as the C stores (truv/dedupe.h)
local MAX_LIFE_S = 2 ^ 31   -- an entry's life in seconds is kept in 4 bytes (from 2026: 2094)

local WARN_EVERY_S = 60     -- evictions are logged at most this often (after the first)
local ENTRY = 26            -- bytes per entry: id 16, time 6, leaves 4
local MAX_ENTRIES = 150     -- per bucket: 3 900 bytes, one 4 KB page at most
local BUCKET_BYTES = 4096   -- of capacity per bucket of each kind
local TIME_BIAS = 2 ^ 47    -- times are kept as ms + 2^47 (about 4 400 years either side)
local TIME_MAX = 2 ^ 48 - 1

local Dedupe = {}
Dedupe.__index = Dedupe
_M.Dedupe = Dedupe

local function check_id(fname, id)
  if type(id) ~= "string" then argerror(fname, 1, "string expected, got " .. type(id)) end
end

-- n >= 0 as `width` (4 or 6) big-endian bytes (at most 256^width - 1), and back.
local function pack(n, width)
  n = min(n, 256 ^ width - 1)
  local lo = n % 65536
  local hi = (n - lo) / 65536
  local b4 = lo % 256
  local b3 = (lo - b4) / 256
  if width == 4 then return char(floor(hi / 256), hi % 256, b3, b4) end
  local b2 = hi % 256
  hi = (hi - b2) / 256
  return char(floor(hi / 65536), floor(hi / 256) % 256, hi % 256, b2, b3, b4)
end

local function unpack_at(s, at, width)
  local n = 0
  for i = at, at + width - 1 do n = n * 256 + byte(s, i) end
  return n
end

local function pack_time(t_ms)
  local v = t_ms + TIME_BIAS
  if v < 0 then v = 0 elseif v > TIME_MAX then v = TIME_MAX end
  return pack(v, 6)
end

-- The bucket of `key16` among this dictionary's buckets of kind `tag`.
function Dedupe:_bucket(tag, key16)
  return self.prefix .. tag .. (unpack_at(key16, 1, 4) % self.buckets)
end

-- An entry lost to make room: counted, and logged (the first at once, then
-- with the count since, at most once a minute).
function Dedupe:_evicted(n)
  if self.counters then self.counters:incr(self.evicted_name, n) end
  self.unlogged = (self.unlogged or 0) + n
  local now = ngx.now()
  if self.logged_at and now - self.logged_at < WARN_EVERY_S then return end
  ngx.log(ngx.WARN, "truv: the shared dictionary '", self.name, "' is full: ",
          self.unlogged, " of its webhook records were evicted",
          self.logged_at and " in the last minute" or "", " (their webhooks could be handled ",
          "twice): make it larger")
  self.logged_at, self.unlogged = now, 0
end

-- Finds key16 in bucket value `v`: its position (1-based) and its time
-- (ms), or nil. Entries that left are skipped.
local function find_entry(v, key16, now_s)
  local from = 1
  while true do
    local at = find(v, key16, from, true)
    if not at then return nil end
    if (at - 1) % ENTRY == 0 then
      if unpack_at(v, at + 22, 4) > now_s then
        return at, unpack_at(v, at + 16, 6) - TIME_BIAS
      end
      return nil
    end
    from = at + 1
  end
end

-- Writes bucket `bkey` (value v, nil for none) without the entry at `skip`
-- (0: none), with `add` appended (nil: none), dropping entries that left
-- and, past MAX_ENTRIES, the oldest (counted as evicted).
function Dedupe:_write(bkey, v, skip, add, now_s)
  local keep, last = {}, now_s
  local n = v and #v / ENTRY or 0
  for i = 0, n - 1 do
    local at = i * ENTRY + 1
    local leaves = unpack_at(v, at + 22, 4)
    if at ~= skip and leaves > now_s then
      keep[#keep + 1] = sub(v, at, at + ENTRY - 1)
      if leaves > last then last = leaves end
    end
  end
  if add then
    keep[#keep + 1] = add
    local leaves = unpack_at(add, 23, 4)
    if leaves > last then last = leaves end
  end
  local lost = #keep - MAX_ENTRIES
  local first = 1
  if lost > 0 then
    first = lost + 1
    self:_evicted(lost)
  end
  if first > #keep then
    self.dict:delete(bkey)
    return true
  end
  local dict, ttl = self.dict, last - now_s + 1
  local ok, err, forcible = dict:set(bkey, concat(keep, "", first), ttl)
  if not ok and err == "no memory" then
    -- nginx evicted what it could and found no room of this size (its slabs
    -- are by size): the bucket's own slot is freed, then its oldest entries
    -- are given up half by half (counted) until the rest fits; the new entry
    -- is the last to go
    dict:delete(bkey)
    ok, err, forcible = dict:set(bkey, concat(keep, "", first), ttl)
    while not ok and err == "no memory" and first < #keep do
      local drop = max(1, floor((#keep - first) / 2))
      self:_evicted(drop)
      first = first + drop
      ok, err, forcible = dict:set(bkey, concat(keep, "", first), ttl)
    end
    if not ok and #keep > 1 then self:_evicted(#keep - 1) end   -- the rest is gone too
  end
  if not ok then
    return nil, store_error("store_full", format("the shared dictionary '%s' cannot hold a " ..
                            "webhook record: %s", self.name, tostring(err)))
  end
  -- nginx made room by evicting whole buckets (how many entries, it does not say)
  if forcible then self:_evicted(1) end
  return true
end

-- A bucket's value (nil for none, or for what is no bucket: see legacy).
local function bucket_at(dict, bkey)
  local v = dict:get(bkey)
  if type(v) ~= "string" then return nil end
  return v
end

-- A record of the layout before buckets ("<prefix>s:<id>", "<prefix>o:<object
-- key>": a number of ms), read until it leaves (at most 30 days after an
-- upgrade), so that ids seen before it are not handled again; never written.
local function legacy(dict, key)
  local v = dict:get(key)
  if type(v) ~= "number" then return nil end
  return v
end

local function seen_locked(self, lkey, token, bkey, key16, now_ms, expiry_ms, leaves_s, id)
  local now_s = ngx.time()
  local v = bucket_at(self.dict, bkey)
  local at, expiry = nil, nil
  if v then at, expiry = find_entry(v, key16, now_s) end
  if at and expiry > now_ms then return false end
  local old = not at and legacy(self.dict, self.prefix .. "s:" .. id)
  if old and old > now_ms then return false end
  if not owns(self.dict, lkey, token) then return nil, lost_error() end
  local ok, err = self:_write(bkey, v, at or 0, key16 .. pack_time(expiry_ms)
                              .. pack(now_s + leaves_s, 4), now_s)
  if not ok then return nil, err end
  return true
end

--- store:seen(id, now, ttl) -> true | false | nil, err
function Dedupe:seen(id, now, ttl)
  check_id("seen", id)
  if not finite(now) then argerror("seen", 2, "finite time expected") end
  if not finite(ttl) then argerror("seen", 3, "finite ttl in seconds expected") end
  if ttl < 0 then argerror("seen", 3, "ttl must be >= 0") end
  local key16 = md5_bin(id)
  local bkey = self:_bucket("s:", key16)
  return with_locks(self, self.lock_prefix .. bkey, seen_locked, bkey, key16, ms(now),
                    ms(now + ttl), ceil(min(ttl, MAX_LIFE_S)) + 60, id)
end

local function last_update_locked(self, lkey, token, bkey, key16, at_ms, object_key)
  local now_s = ngx.time()
  local v = bucket_at(self.dict, bkey)
  local at, cur = nil, nil
  if v then at, cur = find_entry(v, key16, now_s) end
  if not at then cur = legacy(self.dict, self.prefix .. "o:" .. object_key) end
  if cur and at_ms < cur then return false end
  if not owns(self.dict, lkey, token) then return nil, lost_error() end
  local ok, err = self:_write(bkey, v, at or 0, key16 .. pack_time(at_ms)
                              .. pack(now_s + ORDER_TTL_S, 4), now_s)
  if not ok then return nil, err end
  return true
end

--- store:last_update(object_key, updated_at) -> true | false | nil, err
function Dedupe:last_update(object_key, updated_at)
  check_id("last_update", object_key)
  if not finite(updated_at) then argerror("last_update", 2, "finite time expected") end
  local key16 = md5_bin(object_key)
  local bkey = self:_bucket("o:", key16)
  return with_locks(self, self.lock_prefix .. bkey, last_update_locked, bkey, key16,
                    ms(updated_at), object_key)
end

local function forget_locked(self, lkey, token, bkey, key16, id)
  local now_s = ngx.time()
  local v = bucket_at(self.dict, bkey)
  local at = v and find_entry(v, key16, now_s)
  local old = self.prefix .. "s:" .. id
  if not at and not legacy(self.dict, old) then return true end
  if not owns(self.dict, lkey, token) then return nil, lost_error() end
  if legacy(self.dict, old) then self.dict:delete(old) end
  if not at then return true end
  return self:_write(bkey, v, at, nil, now_s)
end

--- store:forget(id) -> true | nil, err
function Dedupe:forget(id)
  check_id("forget", id)
  local key16 = md5_bin(id)
  local bkey = self:_bucket("s:", key16)
  return with_locks(self, self.lock_prefix .. bkey, forget_locked, bkey, key16, id)
end

function Dedupe.close()
  return true
end

function Dedupe:__tostring()
  return format("truv.store.shdict dedupe (%s)", self.name)
end

--- shdict.dedupe(dict_name [, opts]) -> store
-- opts: prefix (default "truv:"), lock_wait (as for quota), counters (a
-- truv.counters object: evictions are counted there as "evicted:<name>").
function _M.new(name, opts)
  local o, prefix, lock_wait = dict_mod.options("dedupe", opts, { prefix = true,
                                                                  lock_wait = true,
                                                                  counters = true })
  if o.counters ~= nil and not counters_mod.is(o.counters) then
    argerror("dedupe", 2, "'counters' must be a counters object (incr, snapshot)")
  end
  local dict = dict_mod.open(name, "dedupe", "dedupe")
  local self = dict_mod.fields(dict, name, prefix, lock_wait)
  self.counters, self.evicted_name = o.counters, "evicted:" .. name
  -- every worker opens the same dictionary, so finds the same count
  self.buckets = max(16, floor((dict.capacity and dict:capacity() or 16 * 2 ^ 20) / BUCKET_BYTES))
  return setmetatable(self, Dedupe)
end

return _M
