--- Counters on an nginx shared dictionary (truv.store.shdict.counters): a
-- truv.counters object every worker adds to, what a /metrics endpoint
-- reads. Each counter is "<prefix>c:<name>" (dict:incr, atomic across
-- workers).
local dict_mod = require "truv.store.shdict.dict"

local ngx = ngx
local type, tostring, ipairs, setmetatable = type, tostring, ipairs, setmetatable
local format = string.format

local _M = {}

local Counters = {}
Counters.__index = Counters
_M.Counters = Counters

--- store:incr(name [, n]): adds n (default 1); atomic across workers.
-- Never raises: a dictionary that cannot hold the counter logs a warning
-- and returns nil, err.
function Counters:incr(name, n)
  local v, err = self.dict:incr(self.prefix .. name, n or 1, 0)
  if not v and not self.warned then
    self.warned = true
    ngx.log(ngx.WARN, "truv: the shared dictionary '", self.name, "' cannot hold counter ",
            tostring(name), ": ", tostring(err), " (make it larger)")
  end
  return v, err
end

--- store:snapshot() -> { [name] = value } of every counter of every worker.
function Counters:snapshot()
  local out, prefix = {}, self.prefix
  local n = #prefix
  for _, k in ipairs(self.dict:get_keys(0)) do
    if k:sub(1, n) == prefix then
      local v = self.dict:get(k)
      if type(v) == "number" then out[k:sub(n + 1)] = v end
    end
  end
  return out
end

function Counters:__tostring()
  return format("truv.store.shdict counters (%s)", self.name)
end

--- shdict.counters(dict_name [, opts]) -> a counters object (truv.counters)
-- kept in a shared dictionary of its own, so that every worker adds to the
-- same numbers (what a /metrics endpoint reads). opts: prefix (default
-- "truv:"). A few hundred bytes hold every counter: `lua_shared_dict
-- truv_metrics 1m;`.
function _M.new(name, opts)
  local _, prefix = dict_mod.options("counters", opts, { prefix = true })
  local dict = dict_mod.open(name, "counters", "counters")
  return setmetatable({ dict = dict, name = name, prefix = prefix .. "c:" }, Counters)
end

return _M
