--- Webhook de-duplication stores. Truv may deliver one webhook several times
-- and its signature has no timestamp, so a receiver remembers each
-- `webhook_id` for a while and ignores an event older than the last one it
-- handled for the same object.
--
--   local dedupe = require "truv.dedupe"
--   local store = dedupe.memory()                          -- one process
--   local store = assert(dedupe.sqlite("/var/lib/app/hooks.db"))  -- shared, durable
--
-- THE STORE CONTRACT. The receiver calls exactly these; any store (the C ones
-- here, an nginx shared dict, Redis) implements them with these semantics,
-- and spec/support/store_conformance.lua checks them. Times are seconds
-- since the epoch (numbers), kept to the millisecond for expiries.
--
--   store:seen(id, now, ttl)  --> true | false | nil, err
--     Atomic add-if-absent: true when `id` was not recorded (or its record
--     expired: expiry <= now), and it is now recorded until now + ttl; false,
--     changing nothing, when it is recorded. Of concurrent calls with one id
--     (any worker, any process sharing the store) exactly one gets true.
--   store:last_update(object_key, updated_at)  --> true | false | nil, err
--     Atomic compare-and-set: true when nothing is recorded for the object or
--     updated_at is not older than what is (greater or equal: a retried
--     delivery carries the same updated_at), and it is now recorded; false,
--     changing nothing, for an older event.
--   store:forget(id)  --> true | nil, err
--     Drops the record of `id`, so that Truv's retry of a delivery whose
--     handler failed is handled again. Forgetting an unknown id returns true.
--   store:close()
--
-- Ids and object keys are strings; misuse (another type, a time or ttl that
-- is not a finite number, a negative ttl) raises. Ordering records may be
-- dropped 30 days after their updated_at: nothing is redelivered that late.
local core = require "truv.core"
local options = require "truv.options"

local type, error, tostring = type, error, tostring
local format = string.format

-- How long a webhook_id is remembered, by a receiver and by a run's inbox
-- alike: 7 days. Truv's signature carries no timestamp, so the id is all
-- that tells a delivery replayed later from a new one; a week outlasts
-- Truv's retries (minutes) by far, for about 120 bytes an id in a shared
-- dictionary and a few dozen in memory (README, "Webhooks").
local _M = {
  _VERSION = core._VERSION,
  DEFAULT_TTL = 7 * 86400,
}

--- An in-process store; `expected` (optional) sizes it for that many ids.
function _M.memory(expected)
  if expected ~= nil and (type(expected) ~= "number" or expected < 0 or expected > 1e9) then
    error(format("bad argument #1 to 'memory' (number of ids >= 0 expected, got %s)",
                 type(expected)), 2)
  end
  return core.dedupe_memory(expected)
end

--- A durable store in a SQLite file, shared by every process that opens it
-- (each its own handle, opened after any fork: see "Processes" in
-- truv.quota); may be the same file as a quota store's. Returns the store
-- or nil, err.
function _M.sqlite(path)
  if type(path) ~= "string" or path == "" then
    error("bad argument #1 to 'sqlite' (file path expected, got " .. type(path) .. ")", 2)
  end
  return core.dedupe_sqlite(path)
end

--- A store in Redis shared by a whole fleet (see truv.store.redis): a
-- webhook delivered to two hosts is handled once. opts: url (or host,
-- port, ...), namespace, timeouts. Returns the store or nil, err.
function _M.redis(opts)
  return require("truv.store.redis").dedupe(opts)
end

--- A receiver's `dedupe` option, made into the store it names (see
-- truv.quota.from_option): nil is the in-memory default (where.default =
-- true: the receiver says so in its log), "memory" an in-memory store
-- chosen, a path a SQLite file opened here (a failure is returned, never
-- replaced by memory), a store itself. Returns store, where = { kind =,
-- path =, default = }, or nil, nil, err.
function _M.from_option(v)
  if v == nil then return _M.memory(), { kind = "memory", default = true } end
  if v == "memory" then return _M.memory(), { kind = "memory" } end
  if type(v) == "string" and v:match("^%a[%w+.-]*://") and not v:match("^file://") then
    local store, err = _M.redis{ url = v }
    if not store then return nil, nil, err end
    return store, { kind = "redis", path = store.path }
  end
  if type(v) == "string" then
    local store, err = _M.sqlite(v)
    if not store then
      err.message = format("cannot open the de-duplication store %s: %s", v,
                           tostring(err.message))
      return nil, nil, err
    end
    return store, { kind = "sqlite", path = v }
  end
  if type(v) ~= "table" and type(v) ~= "userdata" then
    error(format("bad option 'dedupe' (a store, \"memory\" or a file path expected, got %s)",
                 type(v)), 3)
  end
  return v, options.store_where(v)
end

return _M
