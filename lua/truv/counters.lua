--- Counters of what clients did, for metrics.
--
--   local counters = truv.counters.memory()
--   local client = truv.new{ ..., counters = counters }   -- clients may share one
--   client:counters()   --> { requests = 12, billed = 3, retries = 1, throttled = 0,
--                       --     errors = 2, routes = { done = 2, defer = 1 } }
--   truv.counters.prometheus(counters:snapshot())         -- Prometheus text format
--
-- A counters object has two methods: incr(name [, n]) adds n (default 1) to
-- a counter, snapshot() returns { [name] = value } of every counter. Names:
--   requests        exchanges with Truv (every attempt, retries included)
--   billed          billed requests sent (a refresh order, a refresh task):
--                   each may cost a refresh, whatever its answer
--   retries         safe calls tried again, and refreshes sent again after
--                   proving the earlier send created nothing
--   throttled       answers 429 Too Many Requests
--   errors          exchanges that failed (any kind)
--   route:<route>   outcomes routed (done, reverify, retry, defer, no_data,
--                   fix, wait)
--   webhook:<result> webhooks received, by result (the gateway's)
--   evicted:<dict>  records a full shared dictionary evicted to make room
--                   (truv.store.shdict.dedupe: webhooks that could be
--                   handled twice)
-- truv.counters.memory() counts in this Lua state; inside nginx,
-- require("truv.store.shdict").counters(dict_name) counts in a shared dictionary, for
-- every worker at once (what a /metrics endpoint reads).
local type, pairs, ipairs, tostring, error, setmetatable =
  type, pairs, ipairs, tostring, error, setmetatable
local format = string.format
local sort, concat = table.sort, table.concat
local floor = math.floor

local _M = {}

--- The counter names a client increments (see above).
_M.NAMES = { "requests", "billed", "retries", "throttled", "errors" }

local Memory = {}
Memory.__index = Memory

function _M.memory()
  return setmetatable({ values = {} }, Memory)
end

function Memory:incr(name, n)
  local v = self.values
  v[name] = (v[name] or 0) + (n or 1)
  return v[name]
end

function Memory:snapshot()
  local out = {}
  for k, v in pairs(self.values) do out[k] = v end
  return out
end

--- Is `c` a counters object (incr and snapshot)?
function _M.is(c)
  local t = type(c)
  return (t == "table" or t == "userdata") and type(c.incr) == "function"
         and type(c.snapshot) == "function"
end

--- A snapshot as a structured table: the client's counters (0 when never
-- incremented), routes = { [route] = n }, webhooks = { [result] = n }, and
-- evicted = { [dict] = n } when a store counts there.
function _M.table(snapshot)
  local out = { routes = {}, webhooks = {} }
  for _, name in ipairs(_M.NAMES) do out[name] = 0 end
  for k, v in pairs(snapshot) do
    local family, label = k:match("^(%a+):(.+)$")
    if family == "route" then out.routes[label] = v
    elseif family == "webhook" then out.webhooks[label] = v
    elseif family == "evicted" then
      out.evicted = out.evicted or {}
      out.evicted[label] = v
    elseif not family then out[k] = v end
  end
  return out
end

local HELP = {
  requests = { "truv_requests_total", "Exchanges with Truv (every attempt)." },
  billed = { "truv_billed_requests_total", "Billed requests sent to Truv (refreshes)." },
  retries = { "truv_retries_total", "Requests sent again." },
  throttled = { "truv_throttled_total", "Answers 429 Too Many Requests." },
  errors = { "truv_errors_total", "Exchanges with Truv that failed." },
}
local FAMILIES = {
  route = { "truv_routes_total", "Outcomes routed, by route.", "route" },
  webhook = { "truv_webhooks_total", "Webhooks received, by result.", "result" },
  evicted = { "truv_store_evictions_total",
              "Records a full shared dictionary evicted (their webhooks could be handled twice).",
              "dict" },
}
local VALUES = { route = "routes", webhook = "webhooks", evicted = "evicted" }

local function number(v)
  if v == floor(v) and v > -2^53 and v < 2^53 then return format("%d", v) end
  return format("%.17g", v)
end

-- A label value as Prometheus escapes it.
local function label(s)
  return (tostring(s):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

--- A snapshot in Prometheus' text exposition format (version 0.0.4): the
-- client's counters always, routes and webhooks by label when any.
function _M.prometheus(snapshot)
  if type(snapshot) ~= "table" then
    error("bad argument #1 to 'prometheus' (a snapshot table expected, got " .. type(snapshot)
          .. ")", 2)
  end
  local t = _M.table(snapshot)
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  for _, name in ipairs(_M.NAMES) do
    local h = HELP[name]
    add("# HELP " .. h[1] .. " " .. h[2])
    add("# TYPE " .. h[1] .. " counter")
    add(h[1] .. " " .. number(t[name]))
  end
  for _, family in ipairs{ "route", "webhook", "evicted" } do
    local f = FAMILIES[family]
    local values = t[VALUES[family]] or {}
    local keys = {}
    for k in pairs(values) do keys[#keys + 1] = k end
    if #keys > 0 then
      sort(keys)
      add("# HELP " .. f[1] .. " " .. f[2])
      add("# TYPE " .. f[1] .. " counter")
      for _, k in ipairs(keys) do
        add(format('%s{%s="%s"} %s', f[1], f[3], label(k), number(values[k])))
      end
    end
  end
  return concat(lines, "\n") .. "\n"
end

return _M
