--- The de-duplication store on an nginx shared dictionary
-- (truv.store.shdict.dedupe): truv.dedupe's contract, checked by the same
-- conformance specs as the C stores; every read-decide-write under the
-- locks of truv.store.shdict.lock.
--
-- Layout (all under `prefix`, default "truv:"): a record per webhook id,
-- "<prefix>s:<id>" = its expiry in ms, kept by nginx `ttl` after it was
-- seen (plus a minute), and one per object, "<prefix>o:<object>" = its
-- updated_at in ms, kept 30 days (as the C stores). They use `set` and
-- may evict the least recently used entries when the dictionary is full (a
-- very old webhook could then be handled twice; a warning is logged): size
-- the dictionary for `ttl` worth of webhooks, and give it to no quota
-- store (truv.store.shdict.dict: a dictionary holds one kind of store).
local core = require "truv.core"
local dict_mod = require "truv.store.shdict.dict"
local lock = require "truv.store.shdict.lock"

local ngx = ngx
local type, tostring, setmetatable = type, tostring, setmetatable
local format = string.format
local argerror, finite, ms, store_error = dict_mod.argerror, dict_mod.finite, dict_mod.ms,
                                         dict_mod.error
local with_locks, owns, lost_error = lock.with_locks, lock.owns, lock.lost_error

local _M = {}

local ORDER_TTL_S = core.lists.defaults.order_retention_s   -- an ordering record's life,
                                                            -- as the C stores (truv/dedupe.h)

local Dedupe = {}
Dedupe.__index = Dedupe
_M.Dedupe = Dedupe

local function check_id(fname, id)
  if type(id) ~= "string" then argerror(fname, 1, "string expected, got " .. type(id)) end
end

function Dedupe:_set(rkey, value, expire_s)
  local ok, err, forcible = self.dict:set(rkey, value, expire_s)
  if not ok then
    return nil, store_error("store_full", format("the shared dictionary '%s' cannot hold a " ..
                            "webhook record: %s", self.name, tostring(err)))
  end
  if forcible and not self.warned then
    self.warned = true
    ngx.log(ngx.WARN, "truv: the shared dictionary '", self.name, "' is full: the least ",
            "recently used webhook records are being evicted (make it larger)")
  end
  return true
end

local function seen_locked(self, lkey, token, rkey, now_ms, expiry_ms, expire_s)
  local cur = self.dict:get(rkey)
  if cur and cur > now_ms then return false end
  if not owns(self.dict, lkey, token) then return nil, lost_error() end
  local ok, err = self:_set(rkey, expiry_ms, expire_s)
  if not ok then return nil, err end
  return true
end

--- store:seen(id, now, ttl) -> true | false | nil, err
function Dedupe:seen(id, now, ttl)
  check_id("seen", id)
  if not finite(now) then argerror("seen", 2, "finite time expected") end
  if not finite(ttl) then argerror("seen", 3, "finite ttl in seconds expected") end
  if ttl < 0 then argerror("seen", 3, "ttl must be >= 0") end
  local rkey = self.prefix .. "s:" .. id
  return with_locks(self, self.lock_prefix .. rkey, seen_locked, rkey, ms(now), ms(now + ttl),
                    ttl + 60)
end

local function last_update_locked(self, lkey, token, rkey, at_ms)
  local cur = self.dict:get(rkey)
  if cur and at_ms < cur then return false end
  if not owns(self.dict, lkey, token) then return nil, lost_error() end
  local ok, err = self:_set(rkey, at_ms, ORDER_TTL_S)
  if not ok then return nil, err end
  return true
end

--- store:last_update(object_key, updated_at) -> true | false | nil, err
function Dedupe:last_update(object_key, updated_at)
  check_id("last_update", object_key)
  if not finite(updated_at) then argerror("last_update", 2, "finite time expected") end
  local rkey = self.prefix .. "o:" .. object_key
  return with_locks(self, self.lock_prefix .. rkey, last_update_locked, rkey, ms(updated_at))
end

local function forget_locked(self, lkey, token, rkey)
  if not owns(self.dict, lkey, token) then return nil, lost_error() end
  self.dict:delete(rkey)
  return true
end

--- store:forget(id) -> true | nil, err
function Dedupe:forget(id)
  check_id("forget", id)
  local rkey = self.prefix .. "s:" .. id
  return with_locks(self, self.lock_prefix .. rkey, forget_locked, rkey)
end

function Dedupe.close()
  return true
end

function Dedupe:__tostring()
  return format("truv.store.shdict dedupe (%s)", self.name)
end

--- shdict.dedupe(dict_name [, opts]) -> store
-- opts: prefix (default "truv:"), lock_wait (as for quota).
function _M.new(name, opts)
  local _, prefix, lock_wait = dict_mod.options("dedupe", opts, { prefix = true,
                                                                 lock_wait = true })
  local dict = dict_mod.open(name, "dedupe", "dedupe")
  return setmetatable(dict_mod.fields(dict, name, prefix, lock_wait), Dedupe)
end

return _M
