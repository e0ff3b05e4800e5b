--- Loggers for truv.new{ logger = ... }.
--
-- A logger is a function(level, event). `level` is "debug", "info", "warn"
-- or "error"; `event` a table naming what happened in `event` with its
-- facts, never a secret, a token, a body or a header:
--
--   debug  { event = "response", op =, path =, status =, request_id =, attempt =, elapsed_ms = }
--   info   { event = "retry", op =, path =, attempt =, wait_s =, kind = }
--   info   { event = "cooldown", seconds = }            a 429 pauses the client
--   info   { event = "reconcile" | "resend", op = "refresh_order", ... }
--   warn   { event = "error", op =, path =, status =, kind =, code =, request_id =,
--            attempt =, elapsed_ms =, error = <tostring(err)> }
--   warn   { event = "hook_failed", hook = "on_request" | "on_response", error = }
--   warn   { event = "tasks_unreadable" | ..., ... }    facts that could not be read or kept
--
-- Adapters:
--   truv.log.ngx([opts])           ngx.log at ngx.DEBUG / ngx.INFO / ngx.WARN / ngx.ERR
--   truv.log.stderr([opts])        one line per event on stderr (scripts, cron jobs)
--   truv.log.lines(write [, opts]) one line per event handed to write(line)
-- opts.level: the least level written (default "debug" for ngx, whose
-- error_log level filters anyway; "info" for stderr and lines).
--
-- A line: `truv: warn error op=get_order path=orders/ab12/ status=503 ...`,
-- the event's fields in a stable order, text values quoted when they hold
-- a space, a quote or a control character (format(level, event)).
local type, pairs, ipairs, tostring, error = type, pairs, ipairs, tostring, error
local format, find = string.format, string.find
local sort, concat = table.sort, table.concat

local _M = {}

local RANK = { debug = 1, info = 2, warn = 3, error = 4 }
_M.LEVELS = { "debug", "info", "warn", "error" }

-- Fields shown first, in this order; the rest sorted by name.
local FIRST = { "op", "path", "status", "kind", "code", "attempt", "elapsed_ms", "request_id" }

local function value(v)
  if type(v) == "number" then
    if v % 1 == 0 and v > -2^53 and v < 2^53 then return format("%d", v) end
    return format("%.6g", v)
  end
  local s = tostring(v)
  if s == "" or find(s, "[%s\"%c=]") then return (format("%q", s):gsub("\\\n", "\\n")) end
  return s
end

--- The line for one event.
function _M.format(level, event)
  local parts = { "truv:", tostring(level), tostring(event.event or "event") }
  local seen = { event = true }
  for _, k in ipairs(FIRST) do
    if event[k] ~= nil then
      parts[#parts + 1] = k .. "=" .. value(event[k])
      seen[k] = true
    end
  end
  local rest = {}
  for k in pairs(event) do
    if not seen[k] and type(k) == "string" then rest[#rest + 1] = k end
  end
  sort(rest)
  for _, k in ipairs(rest) do parts[#parts + 1] = k .. "=" .. value(event[k]) end
  return concat(parts, " ")
end

local function least(opts, default, fname)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #1 to '" .. fname .. "' (table expected, got " .. type(opts) .. ")", 3)
  end
  local l = opts.level or default
  if not RANK[l] then
    error("bad option 'level' to '" .. fname .. "' (\"debug\", \"info\", \"warn\" or " ..
          "\"error\" expected, got " .. tostring(l) .. ")", 3)
  end
  return RANK[l]
end

--- A logger writing each event as one line through write(line).
function _M.lines(write, opts)
  if type(write) ~= "function" then
    error("bad argument #1 to 'lines' (function expected, got " .. type(write) .. ")", 2)
  end
  local min = least(opts, "info", "lines")
  return function(level, event)
    if (RANK[level] or 4) >= min then write(_M.format(level, event)) end
  end
end

--- A logger writing each event as one line on stderr.
function _M.stderr(opts)
  local min = least(opts, "info", "stderr")
  local stderr = io.stderr
  return function(level, event)
    if (RANK[level] or 4) >= min then stderr:write(_M.format(level, event), "\n") end
  end
end

--- A logger for nginx: ngx.log at the level's nginx counterpart. nginx's
-- error_log directive then decides what is written (its default, `error`,
-- keeps only "error" events).
function _M.ngx(opts)
  local min = least(opts, "debug", "ngx")
  local ngx = ngx
  if type(ngx) ~= "table" or type(ngx.log) ~= "function" then
    error("truv.log.ngx: not inside nginx (no ngx.log)", 2)
  end
  local map = { debug = ngx.DEBUG, info = ngx.INFO, warn = ngx.WARN, error = ngx.ERR }
  local log = ngx.log
  return function(level, event)
    if (RANK[level] or 4) >= min then log(map[level] or ngx.ERR, _M.format(level, event)) end
  end
end

return _M
