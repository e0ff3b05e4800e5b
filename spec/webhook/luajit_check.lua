-- The webhook API under LuaJIT (run by verify_spec.lua, or by hand:
--   LUA_CPATH="build/lua/luajit/?.so;;" LUA_PATH="lua/?.lua;;" luajit spec/webhook/luajit_check.lua
-- ). Prints "ok" or raises.
local webhook = require "truv.webhook"

local fixtures = os.getenv("TRUV_FIXTURES") or "spec/fixtures"
local f = assert(io.open(fixtures .. "/webhooks/task-status-updated.json", "rb"))
local body = f:read("*a")
f:close()

local secret = "sandbox-8f14e45fceea167a5a36dedd4bea2543"
local sig = assert(webhook.sign(body, secret))
assert(sig == "v1=415a4db244bbb2b67c0acd71444ab56feaca6cbba06436d13518989159820e79", sig)
assert(webhook.verify(body, { ["X-Webhook-Sign"] = { sig } }, { "old-secret", secret }) == true)
local ok, err = webhook.verify(body .. " ", sig, secret)
assert(ok == nil and err.code == "signature_mismatch")
assert(not tostring(err):find(secret, 1, true))
assert(tostring(err):find("truv: auth", 1, true))
ok, err = webhook.verify(body, "v1=zz", secret)
assert(ok == nil and err.code == "bad_hex")
local keys = assert(webhook.keys({ "old-secret", secret }))
for _ = 1, 3 do
  assert(webhook.verify(body, { ["x-webhook-sign"] = sig }, keys) == true)
  assert(webhook.verify(body .. "x", sig, keys) == nil)
end
assert(tostring(keys) == "truv.webhook.keys: 2 secrets")

for _, mode in ipairs{ "view", "table" } do
  local ev = assert(webhook.parse(body, mode))
  assert(ev.kind == "task-status-updated" and ev.category == "task-status-updated")
  assert(ev.webhook_id == "1a3c5e7f9b0d4f2a8c6e0b2d4f6a8c91")
  assert(ev.status == "done" and ev.task_id == "c4e6a8b0d2f14e3c9a7b5d3f1e0c2a46")
  assert(math.abs(ev.updated_at - 1709691058.761230) < 1e-6)
  assert(ev.document.tracking_info == "ad9f14440d624ec3b0f66e81e44518c7")
  assert(ev.template_id == nil)
end
local ev, perr = webhook.parse('{"webhook_id":"w"')
assert(ev == nil and perr.kind == "protocol" and perr.code == "malformed_json")
assert(not pcall(webhook.verify, body, 42, secret))
collectgarbage()
print("ok")
