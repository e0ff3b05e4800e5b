--- Errors: every runtime failure in lua-truv is `nil, err` where `err` is an
-- error object made here (errors.is(err) tells one).
--
-- Fields (absent when they do not apply):
--   kind        one of the core's kinds (truv/err.h, read here as
--               errors.KINDS): "invalid", "auth", "not_found", "throttled",
--               "refresh_limit", "quota", "server", "network", "protocol",
--               "api", "internal", "expired" (a connection that needs the
--               user again, refused before sending), "handler" (a route
--               handler raised)
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
-- tostring(err) gives one line for logs, formatted by the core
-- (truv_err_format_facts, the line C errors print as) behind "truv: ",
-- and an error behaves like that line wherever a string is expected:
--
--   "failed: " .. err, err .. ""        (__concat)
--   ngx.say("failed: ", err)            (ngx.say / ngx.print take arrays of
--   ngx.log(ngx.ERR, "failed: ", err)    strings: err[1] is the line)
--
-- ngx.say and ngx.print refuse a table with any key that is not an array
-- index, so an error holds its line at [1] and nothing else: the fields
-- live in a table of their own, read through __index (err.kind, err.code,
-- ... as always) and written through __newindex, which renders the line
-- again. pairs(err) walks the fields where pairs() honours __pairs (Lua
-- 5.2+); on LuaJIT, errors.fields(err) gives them as a plain table.
local core = require "truv.core"

local redact = core.redact
local render = core.format_error   -- the one line, from the facts, redacted whole
local type, pairs, ipairs, next = type, pairs, ipairs, next
local setmetatable, getmetatable, rawget, rawset = setmetatable, getmetatable, rawget, rawset
local tostring, error = tostring, error

local _M = { _VERSION = core._VERSION }

-- The kinds an error may have: the core's list, and no other.
local KINDS = {}
for _, k in ipairs(core.lists.kinds) do KINDS[k] = true end
_M.KINDS = core.lists.kinds

local IS_ERROR = {}   -- the mark of an error's metatable

local function fields_of(e)
  return getmetatable(e).__index
end

local function line(e)
  return render(fields_of(e))
end

local function newindex(e, k, v)
  local f = fields_of(e)
  f[k] = v
  rawset(e, 1, render(f))
end

local function as_text(v)
  local t = type(v)
  if t == "string" or t == "number" then return v end
  local mt = getmetatable(v)
  if type(mt) == "table" and rawget(mt, IS_ERROR) then return line(v) end
  error("attempt to concatenate a " .. t .. " value", 3)
end

local function concat_texts(a, b)
  return as_text(a) .. as_text(b)
end

local function walk(e)
  return next, fields_of(e), nil
end

--- Makes the error object over a table of facts (which it keeps).
local function wrap(facts)
  local mt = { __index = facts, __newindex = newindex, __tostring = line,
               __concat = concat_texts, __pairs = walk, __name = "truv.error",
               [IS_ERROR] = true }
  return setmetatable({ render(facts) }, mt)
end

--- Is `v` a lua-truv error (optionally of that kind)?
local function is(v, kind)
  local mt = getmetatable(v)
  return type(mt) == "table" and rawget(mt, IS_ERROR) == true
         and (kind == nil or v.kind == kind)
end
_M.is = is

--- The fields of an error as a plain table (a copy): for JSON, or for
-- walking them where pairs() ignores __pairs (LuaJIT).
function _M.fields(e)
  if not is(e) then
    error("bad argument #1 to 'fields' (a truv error expected, got " .. type(e) .. ")", 2)
  end
  local out = {}
  for k, v in next, fields_of(e) do out[k] = v end
  return out
end

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

--- Makes an error from Lua code. `kind` is one of errors.KINDS (another
-- raises). `fields` is optional. Every text (message, code, request_id,
-- fields) loses its SSN-shaped runs; no secret may be passed (this layer
-- does not know them).
function _M.new(kind, code, message, extra)
  if not KINDS[kind] then
    error("bad argument #1 to 'new' (an error kind of truv.errors.KINDS expected, got " ..
          tostring(kind) .. ")", 2)
  end
  local e = { kind = kind, code = clean(code), message = clean(message or "") }
  if extra then
    for k, v in pairs(extra) do e[k] = (k == "fields") and clean_fields(v) or clean(v) end
  end
  return wrap(e)
end

--- The error for a rule broken before sending: one entry per field.
function _M.invalid(fields, message)
  return wrap({ kind = "invalid", code = "invalid_params",
                message = clean(message or "invalid parameters"),
                fields = clean_fields(fields) })
end

-- the errors the C core makes go through wrap() too
core.set_error_maker(wrap)

return _M
