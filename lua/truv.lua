--- lua-truv: a client for Truv's data refresh workflow.
--
--   local truv = require "truv"
--   local client = assert(truv.new{ client_id = ..., secret = ... })
--   local order, err = client:refresh_order(id, { products = { "income" } })
--   local r = truv.route(err or order)
--
-- Submodules load on first use: truv.quota, truv.webhook, truv.renewal,
-- truv.log, truv.counters, ...
local core = require "truv.core"
local errors = require "truv.errors"
local client = require "truv.client"
local route = require "truv.route"

local _M = {
  _VERSION = core._VERSION,
  null = core.null,            -- JSON null (equal to cjson.null)
  errors = errors,
  new = client.new,
  route = route.route,
  router = route.router,
  totable = core.totable,      -- a plain, mutable copy of a document
  isdocument = core.isdocument,
  decode = core.decode,        -- JSON text -> document (view or tables)
  encode = core.encode,        -- Lua value -> JSON text
}

-- truv.quota, truv.webhook, truv.renewal, truv.dedupe, truv.refresh,
-- truv.tracker, truv.log (loggers), truv.counters (metrics)
local LAZY = { quota = true, webhook = true, renewal = true, dedupe = true, refresh = true,
               tracker = true, log = true, counters = true }

--- truv.receiver{ ... }: a verified, de-duplicated webhook receiver (see truv.receiver).
function _M.receiver(opts)
  return require("truv.receiver").new(opts)
end

return setmetatable(_M, {
  __index = function(t, k)
    if LAZY[k] then
      local m = require("truv." .. k)
      rawset(t, k, m)
      return m
    end
  end,
})
