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
-- De-duplication is not included here: it belongs to the receiver benchmark.
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

local name = jit and "luajit" or _VERSION:gsub("Lua ", "lua")
print(string.format("%s %.0f", name, measure(SECRET)))
print(string.format("%s-keys %.0f", name, measure(assert(webhook.keys(SECRET)))))
