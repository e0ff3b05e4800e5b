-- A sandbox and a truv client that share one virtual clock: the client's
-- clock reads the sandbox's time, and the client's sleep advances it, so a
-- spec waits out a 24 h window or a task's progress in milliseconds.
--
--   local world = require "spec.support.world"
--   local w = world.new{ args = { "--seed-cases", "3", "--mix", "active=1" }, client = { ... } }
--   (tls = true: the sandbox serves HTTPS and the client trusts its test CA)
--   w.client:get_order(w.cases[1].order_id)
--   w:advance(3600)
--   w:stop()
local sandbox = require "spec.support.sandbox"
local truv = require "truv"

local _M = {}
local World = {}
World.__index = World

function _M.new(opts)
  opts = opts or {}
  local sb = sandbox.start{ args = opts.args or {}, tls = opts.tls }
  local self = setmetatable({ sb = sb, logs = {}, slept = 0 }, World)
  self.now = sb:now()
  local copts = {
    client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url,
    clock = function() return self.now end,
    sleep = function(s)
      self.slept = self.slept + s
      self:advance(s)
    end,
    logger = function(level, event) self.logs[#self.logs + 1] = { level = level, event = event } end,
    retry = { base_ms = 10, cap_ms = 50 },
    ca_file = sb.ca_file,   -- opts.tls: the sandbox's test CA
  }
  for k, v in pairs(opts.client or {}) do copts[k] = v end
  self.client = assert(truv.new(copts))
  self.cases = sb:cases()
  return self
end

function World:advance(seconds)
  if seconds > 0 then self.now = self.sb:advance(seconds) end
  return self.now
end

--- The first seeded case whose state is `state` (and product, if given).
function World:case(state, product)
  for _, c in ipairs(self.cases) do
    if c.state == state and (not product or c.product == product) then return c end
  end
  error("no seeded case in state " .. state)
end

--- The sandbox's connections of an order (with their access tokens).
function World:connections(order_id)
  return self.sb:connections(order_id)
end

function World:stop()
  self.client:close()
  self.sb:shutdown()
end

return _M
