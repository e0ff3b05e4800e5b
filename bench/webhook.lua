-- Webhook verify + parse through the Lua binding (truv.webhook), for one
-- 2 KB signed body: what a gateway pays per delivery before its own logic.
--
--   lua5.4 bench/webhook.lua BODY_FILE SECONDS    (LUA_PATH / LUA_CPATH as for the specs;
--   luajit works too). Prints two lines, "<interpreter> <ops per second>"
--   with the secret given as a string, and "<interpreter>-keys <ops per
--   second>" with keys prepared once by webhook.keys.
--
-- Each iteration verifies the header (given as a headers table, the way a
-- receiver gets it), parses the event with its document as a lazy view, and
-- reads the fields a receiver reads (webhook_id, kind, updated_at).
-- A third line, "<interpreter>-receiver", is the whole receiving path of
-- truv.receiver: verify, parse, de-duplicate (webhook_id in a memory store;
-- the clock advances past the TTL every call, so every delivery is recorded
-- as new, the costlier case), order by updated_at, route, call the route's
-- (empty) handler.
-- Run by bench/webhook.sh.
local core = require "truv.core"
local webhook = require "truv.webhook"

local path, seconds = arg[1], tonumber(arg[2]) or 2
local SECRET = "sandbox-8f14e45fceea167a5a36dedd4bea2543"

local f = assert(io.open(assert(path, "usage: webhook.lua BODY_FILE [SECONDS]"), "rb"))
local body = f:read("*a")
f:close()

local headers = {
  ["content-type"] = "application/json",
  ["user-agent"] = "Truv-Webhook-Service/2.0",
  ["x-webhook-sign"] = assert(webhook.sign(body, SECRET)),
}

local verify, parse, monotonic = webhook.verify, webhook.parse, core.monotonic

-- `secrets` is what the receiver holds: the secret itself, or keys prepared
-- once with webhook.keys (the key setup then leaves the per-delivery path).
local function deliver(secrets)
  local ok = verify(body, headers, secrets)
  local ev = ok and parse(body)
  if not ev or ev.updated_at <= 0 or ev.kind ~= "order-status-updated" then
    error("a delivery failed")
  end
  return #ev.webhook_id
end

local function measure(secrets)
  for _ = 1, 2000 do deliver(secrets) end   -- warm up (and let LuaJIT compile)
  collectgarbage()
  local ops, t0 = 0, monotonic()
  local elapsed
  repeat
    for _ = 1, 1000 do deliver(secrets) end
    ops = ops + 1000
    elapsed = monotonic() - t0
  until elapsed >= seconds
  return ops / elapsed
end

local function measure_receiver()
  local truv = require "truv"
  local tick = 0
  local function noop() end
  local receiver = truv.receiver{
    secrets = SECRET, dedupe = require("truv.dedupe").memory(), ttl = 0.5,
    clock = function() tick = tick + 1; return tick end,
    router = truv.router{ done = noop, wait = noop, retry = noop, reverify = noop, fix = noop,
                         no_data = noop, defer = noop },
  }
  local function one()
    local status, res = receiver:handle(body, headers)
    if status ~= 200 or res.duplicate then error("a delivery failed: " .. tostring(status)) end
  end
  for _ = 1, 2000 do one() end
  collectgarbage()
  local ops, t0 = 0, monotonic()
  local elapsed
  repeat
    for _ = 1, 1000 do one() end
    ops = ops + 1000
    elapsed = monotonic() - t0
  until elapsed >= seconds
  return ops / elapsed
end

local name = jit and "luajit" or _VERSION:gsub("Lua ", "lua")
print(string.format("%s %.0f", name, measure(SECRET)))
print(string.format("%s-keys %.0f", name, measure(assert(webhook.keys(SECRET)))))
print(string.format("%s-receiver %.0f", name, measure_receiver()))
