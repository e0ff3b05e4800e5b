--- Errors: every runtime failure in lua-truv is `nil, err` where `err` is a
-- table with this metatable.
--
-- Fields (absent when they do not apply):
--   kind        "invalid", "auth", "not_found", "throttled", "refresh_limit",
--               "quota", "server", "network", "protocol", "api", "internal"
--   status      HTTP status (nil when nothing was answered)
--   code        Truv's error.code, or a local code ("timeout", "connect", ...)
--   message     human-readable, never holding a secret, token or SSN
--   retry_at    epoch seconds: when trying again makes sense
--   request_id  Truv's X-Request-Id, for support
--   maybe_sent  network errors: whether the request may have reached Truv
--   fields      invalid: { {field =, message =}, ... }
--   op          the client method that failed ("refresh_order", ...)
--   route       set by truv.route when the error has been routed
--
-- tostring(err) gives one line for logs.
local core = require "truv.core"

local format = string.format
local concat = table.concat
local date = os.date

local _M = { _VERSION = core._VERSION }

local Error = {}
Error.__index = Error
Error.__name = "truv.error"

local function when(t)
  return date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

function Error.__tostring(e)
  local parts = { "truv: ", e.kind or "error" }
  if e.op then parts[#parts + 1] = " in " .. e.op end
  if e.status and e.code then
    parts[#parts + 1] = format(" (HTTP %d, %s)", e.status, e.code)
  elseif e.status then
    parts[#parts + 1] = format(" (HTTP %d)", e.status)
  elseif e.code then
    parts[#parts + 1] = format(" (%s)", e.code)
  end
  if e.message and e.message ~= "" then parts[#parts + 1] = ": " .. e.message end
  if e.fields and #e.fields > 0 then
    local fs = {}
    for i, f in ipairs(e.fields) do fs[i] = f.field .. ": " .. f.message end
    parts[#parts + 1] = " [" .. concat(fs, "; ") .. "]"
  end
  if e.kind == "network" then
    parts[#parts + 1] = e.maybe_sent and " (the request may have reached Truv)"
                                      or " (the request did not reach Truv)"
  end
  if e.retry_at then parts[#parts + 1] = "; retry at " .. when(e.retry_at) end
  if e.request_id then parts[#parts + 1] = " [request " .. e.request_id .. "]" end
  return concat(parts)
end

--- Is `v` a lua-truv error (optionally of that kind)?
function Error.is(v, kind)
  return getmetatable(v) == Error and (kind == nil or v.kind == kind)
end

_M.metatable = Error
_M.is = Error.is

--- Makes an error from Lua code. `fields` is optional.
-- `message` must not contain secrets: callers pass only text they wrote.
function _M.new(kind, code, message, extra)
  local e = { kind = kind, code = code, message = message or "" }
  if extra then
    for k, v in pairs(extra) do e[k] = v end
  end
  return setmetatable(e, Error)
end

--- The error for a rule broken before sending: one entry per field.
function _M.invalid(fields, message)
  return setmetatable({ kind = "invalid", code = "invalid_params",
                        message = message or "invalid parameters", fields = fields }, Error)
end

core.set_error_metatable(Error)

return _M
