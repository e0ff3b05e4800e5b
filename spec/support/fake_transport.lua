-- A scripted transport for unit specs: answers each request with the next
-- scripted reply (status, headers, body) through the real classifier, or a
-- network error; records every request it was given (with the timeouts it
-- carried). With `fake.yield = true`, each exchange yields its request from
-- the calling coroutine before answering.
local core = require "truv.core"
local errors = require "truv.errors"

local _M = {}
local Fake = {}
Fake.__index = Fake

--- replies: list of { status =, headers =, body = } or { network = code,
-- maybe_sent = bool } or a function(req) returning one of those.
function _M.new(replies)
  return setmetatable({ replies = replies or {}, sent = {} }, Fake)
end

function Fake:perform(req, now, mode)
  self.sent[#self.sent + 1] = { method = req.method, path = req.path, op = req.op,
                                body = req:body(), billed = req.billed, timeouts = req.timeouts }
  if self.yield then coroutine.yield(req) end   -- lets another coroutine run meanwhile
  local r = table.remove(self.replies, 1)
  if type(r) == "function" then r = r(req) end
  assert(r, "fake transport: no reply scripted for " .. req.method .. " " .. req.path)
  if r.network then
    return nil, errors.new("network", r.network, "scripted " .. r.network,
                           { maybe_sent = r.maybe_sent or false })
  end
  return core.classify(req, r.status or 200, r.headers or {}, r.body or "", now, mode)
end

function Fake.close() end

--- A fake clock and sleep: sleeping advances the clock.
function _M.clock(start)
  local t = { now = start or 1800000000, slept = {} }
  t.clock = function() return t.now end
  t.sleep = function(s)
    t.slept[#t.slept + 1] = s
    t.now = t.now + s
  end
  return t
end

return _M
