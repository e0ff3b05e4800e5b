--- Webhooks: verifying Truv's signature and reading the event it signs.
--
--   local webhook = require "truv.webhook"
--   local ok, err = webhook.verify(raw_body, headers, { current_secret, previous_secret })
--   if not ok then return 401 end           -- err.code says why
--   local event, err = webhook.parse(raw_body)
--   if not event then return 400 end
--   -- event.kind == "task-status-updated", event.status, event.task_id, ...
--
-- Truv signs each delivery with `X-WEBHOOK-SIGN: v1=<hex>`, the hex being
-- HMAC-SHA256 over the raw body bytes with the account's access secret as
-- key. Verify the body exactly as received, before any JSON decoding or
-- re-encoding. The scheme has no timestamp: a receiver de-duplicates by
-- `webhook_id` and orders by `updated_at` (truv.receiver does both).
--
-- Wrong argument types raise; bodies, headers and secrets that do not verify
-- or parse return nil, err (a truv.errors error). Error messages never hold
-- a secret or a signature.
local core = require "truv.core"
require "truv.errors"   -- errors made by truv.core carry truv.errors' metatable

local type, error, format = type, error, string.format
local core_verify, core_sign, core_parse = core.webhook_verify, core.webhook_sign,
                                           core.webhook_parse
local core_keys = core.webhook_keys
local route_of = require("truv.route").route

local _M = {
  _VERSION = core._VERSION,
  HEADER = core.WEBHOOK_HEADER,   -- "X-WEBHOOK-SIGN"
}

local function bad_argument(n, fname, expected, value)
  error(format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, expected, type(value)),
        3)
end

local MODES = { view = true, table = true }

--- Checks a delivery's signature.
-- @param raw_body  the request body exactly as received (a string)
-- @param header    the X-WEBHOOK-SIGN value (nil when the request had none), or
--                  the request's headers table (`ngx.req.get_headers()`,
--                  lua-resty-http, ...): the name is matched in any case, and
--                  of a header given several times (a list) the first value
--                  is used
-- @param secrets   the access secret, or a list of them while rotating keys
--                  (any one matching is enough; all are always computed, so
--                  timing says nothing about which matched), or keys from
--                  webhook.keys(secrets)
-- @return true, or nil, err with err.kind "auth" and err.code one of
--   "missing_signature", "bad_prefix", "bad_hex", "signature_mismatch";
--   or kind "invalid", code "no_secret" when no non-empty secret was given.
function _M.verify(raw_body, header, secrets)
  if type(raw_body) ~= "string" then bad_argument(1, "verify", "string", raw_body) end
  local th = type(header)
  if th ~= "string" and th ~= "table" and th ~= "nil" then
    bad_argument(2, "verify", "header value or headers table", header)
  end
  local ts = type(secrets)
  if ts ~= "string" and ts ~= "table" and ts ~= "userdata" then
    bad_argument(3, "verify", "secret, list of secrets or webhook keys", secrets)
  end
  local ok, err = core_verify(raw_body, header, secrets)
  return ok, err
end

--- Prepares secrets once for many verifications: each secret's keyed HMAC
-- state is made here instead of per delivery (a third of the HMAC of a 2 KB
-- body). Give the result to webhook.verify in place of the secrets.
-- tostring(keys) shows how many secrets they hold, never the secrets.
-- @param secrets  the access secret, or a list of them
-- @return keys, or nil, err (kind "invalid", code "no_secret") when no
--   non-empty secret was given.
function _M.keys(secrets)
  local ts = type(secrets)
  if ts ~= "string" and ts ~= "table" then
    bad_argument(1, "keys", "secret or list of secrets", secrets)
  end
  local keys, err = core_keys(secrets)
  return keys, err
end

--- Signs a body the way Truv does (for tests, local senders, benchmarks).
-- @return "v1=<64 lowercase hex>", or nil, err (kind "invalid", code
--   "no_secret") for an empty secret.
function _M.sign(body, secret)
  if type(body) ~= "string" then bad_argument(1, "sign", "string", body) end
  if type(secret) ~= "string" then bad_argument(2, "sign", "string", secret) end
  local sig, err = core_sign(body, secret)
  return sig, err
end

--- Reads the event a (verified) body carries.
-- @param raw_body  the request body
-- @param mode      optional: "view" (default: the document is a lazy,
--                  read-only view) or "table" (plain tables)
-- @return event, or nil, err (kind "protocol"; code "malformed_json",
--   "unexpected_shape", "missing_webhook_id" or "missing_event_type").
--
-- event = {
--   kind, type, event_type  the event type as sent ("task-status-updated", ...;
--                           an unknown type is kept as sent)
--   category                "order-created", "order-status-updated",
--                           "order-refresh-failed", "order-finalized",
--                           "task-status-updated", "link-connected",
--                           "link-disconnected", "link-deleted",
--                           "certification-completed", "data" (employment-,
--                           profile-, statements-, shifts-, bank-accounts-
--                           -created/-updated) or "unknown"
--   webhook_id              always present: the de-duplication key
--   updated_at              epoch seconds; event_created_at when updated_at is
--                           absent or unreadable; 0 when neither is readable
--   updated_at_iso          updated_at as sent
--   event_created_at        epoch seconds, 0 when absent or unreadable
--   event_created_at_iso    as sent
--   user_id, template_id, order_id, order_number, employer_id, link_id,
--   task_id, product, data_source, tracking_info, status
--                           strings, nil when absent or null
--   document                the whole payload, unknown fields included
--   route                   the event's route by the default table
--                           (truv.route): { route =, reason =, ... }; a
--                           receiver with its own router routes again
-- }
function _M.parse(raw_body, mode)
  if type(raw_body) ~= "string" then bad_argument(1, "parse", "string", raw_body) end
  if mode ~= nil and not MODES[mode] then
    error(format("bad argument #2 to 'parse' (\"view\" or \"table\" expected, got %s)",
                 type(mode) == "string" and format("%q", mode) or type(mode)), 2)
  end
  local event, err = core_parse(raw_body, mode)
  if event then event.route = route_of(event) end
  return event, err
end

return _M
