--- A store's shared dictionary (truv.store.shdict): opening one for one
-- kind of store, the options every store constructor takes, and the units
-- the stores write in.
--
-- Kinds: the quota and the de-duplication stores never share a dictionary
-- (a de-duplication store's records may be evicted when the dictionary is
-- full, and an eviction of a quota record would let refreshes past the
-- limit): each store marks its dictionary with its kind ("truv.kind"), and
-- a store of another kind refuses to open it. Nothing else should write to
-- these dictionaries either.
--
-- Several handles may open one dictionary (every worker does): they share
-- everything under the same prefix (default "truv:").
local errors = require "truv.errors"
local lock = require "truv.store.shdict.lock"

local ngx = ngx
local type, error, tostring, pairs = type, error, tostring, pairs
local format = string.format
local floor, huge = math.floor, math.huge

local _M = {}

local DEFAULT_LOCK_WAIT_S = 3
local KIND_KEY = "truv.kind"          -- which kind of store a dictionary holds

-- Raises at the caller of the function that called argerror (or `level`
-- frames up, for checks made in a helper of that function).
function _M.argerror(fname, n, msg, level)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), level or 3)
end
local argerror = _M.argerror

function _M.finite(v)
  return type(v) == "number" and v == v and v ~= huge and v ~= -huge
end
local finite = _M.finite

--- Seconds -> the milliseconds the stores keep.
function _M.ms(t)
  return floor(t * 1000 + 0.5)
end

--- A store's failure: kind "internal" and `code`.
function _M.error(code, msg)
  return errors.new("internal", code, msg)
end

--- The options table of a store constructor (called from it): only
-- `allowed` keys, the key prefix (default "truv:") and lock_wait (seconds,
-- default 3). Returns opts (a table), the prefix and lock_wait.
function _M.options(fname, opts, allowed)
  opts = opts or {}
  if type(opts) ~= "table" then argerror(fname, 2, "table expected, got " .. type(opts), 4) end
  for k in pairs(opts) do
    if not allowed[k] then argerror(fname, 2, "unknown option '" .. tostring(k) .. "'", 4) end
  end
  local prefix = opts.prefix or "truv:"
  if type(prefix) ~= "string" then argerror(fname, 2, "'prefix' must be a string", 4) end
  local wait = opts.lock_wait or DEFAULT_LOCK_WAIT_S
  if not finite(wait) or wait <= 0 then
    argerror(fname, 2, "'lock_wait' must be a number of seconds > 0", 4)
  end
  return opts, prefix, wait
end

--- The shared dictionary `name` for a store of `kind` (called from the
-- store's constructor: misuse raises at its caller).
function _M.open(name, fname, kind)
  if type(name) ~= "string" or name == "" then
    argerror(fname, 1, "shared dictionary name expected, got " .. type(name))
  end
  if not (ngx and ngx.shared) then
    error(fname .. ": nginx shared dictionaries exist only inside nginx (OpenResty)", 3)
  end
  local dict = ngx.shared[name]
  if not dict then
    error(format("%s: no shared dictionary '%s' (add `lua_shared_dict %s 10m;` to the http " ..
                 "block of nginx.conf)", fname, name, name), 3)
  end
  if not lock.usable() then
    error(fname .. ": cannot read /proc/" .. ngx.worker.pid() .. "/stat (the stores' locks " ..
          "need Linux's /proc to tell a live lock holder from a dead one)", 3)
  end
  local ok, err = dict:safe_add(KIND_KEY, kind)
  local held = not ok and err == "exists" and dict:get(KIND_KEY)
  if not ok and not held then
    error(format("%s: the shared dictionary '%s' cannot hold a record: %s", fname, name,
                 tostring(err)), 3)
  end
  if held and held ~= kind then
    error(format("%s: the shared dictionary '%s' holds a %s store: give the %s store a " ..
                 "dictionary of its own (a de-duplication store may evict entries when full)",
                 fname, name, held, kind), 3)
  end
  return dict
end

--- What every store over dictionary `dict` keeps: where it is, its keys'
-- prefix, its locks' (truv.store.shdict.lock) and what it says it is.
function _M.fields(dict, name, prefix, lock_wait)
  return { dict = dict, name = name, prefix = prefix, lock_prefix = prefix .. "l",
           claim_prefix = prefix .. "b", want_prefix = prefix .. "w", lock_wait = lock_wait,
           kind = "shdict", path = name }
end

return _M
