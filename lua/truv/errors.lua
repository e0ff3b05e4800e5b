--- Errors: every runtime failure in lua-truv is `nil, err` where `err` is a
-- table with this metatable.
--
-- Fields (absent when they do not apply):
--   kind        "invalid", "auth", "not_found", "throttled", "refresh_limit",
--               "quota", "server", "network", "protocol", "api", "internal"
--   status      HTTP status (nil when nothing was answered)
--   code        Truv's error.code, or a local code ("timeout", "connect", ...)
--   message     human-readable, never holding a secret, token or SSN (the core
--               redacts what it copies from Truv's answers with the request's
--               secrets; errors made here and tostring(err) lose SSN-shaped runs)
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
local redact = core.redact
local type, pairs, ipairs = type, pairs, ipairs

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
  -- texts may have been set after the error was made: the line is redacted whole
  return redact(concat(parts))
end

--- Is `v` a lua-truv error (optionally of that kind)?
function Error.is(v, kind)
  return getmetatable(v) == Error and (kind == nil or v.kind == kind)
end

_M.metatable = Error
_M.is = Error.is

local function clean(v)
  if type(v) == "string" then return redact(v) end
  return v
end

local function clean_fields(fields)
  if type(fields) ~= "table" then return fields end
  local out = {}
  for i, f in ipairs(fields) do
    local c = {}
    for k, v in pairs(f) do c[k] = clean(v) end
    out[i] = c
  end
  return out
end

--- Makes an error from Lua code. `fields` is optional. Every text
-- (message, code, request_id, fields) loses its SSN-shaped runs; no secret
-- may be passed (this layer does not know them).
function _M.new(kind, code, message, extra)
  local e = { kind = kind, code = clean(code), message = clean(message or "") }
  if extra then
    for k, v in pairs(extra) do e[k] = (k == "fields") and clean_fields(v) or clean(v) end
  end
  return setmetatable(e, Error)
end

--- The error for a rule broken before sending: one entry per field.
function _M.invalid(fields, message)
  return setmetatable({ kind = "invalid", code = "invalid_params",
                        message = clean(message or "invalid parameters"),
                        fields = clean_fields(fields) }, Error)
end

core.set_error_metatable(Error)

return _M
