-- lua-truv's own client (truv.core, libcurl easy) against the sandbox: CPU
-- per request, over the base URL given (http or https with its CA file), for
-- N billed refreshes (POST /v1/orders/{id}/) under lua-truv's rule (they may
-- ride the kept-alive connection, never sent twice: truv_request_connection)
-- and the same with billed_reuse_idle_s = 0 (a fresh connection each, the
-- rule before), N billed refresh tasks (POST /v1/refresh/tasks/: always a
-- fresh connection) and N GETs of an order (kept alive).
--   lua5.4 bench/tls_client.lua BASE_URL CA_FILE|- ACCESS_TOKEN ORDER_ID PRODUCT N
local core = require "truv.core"
local base, ca, token, order, product, n = arg[1], arg[2], arg[3], arg[4], arg[5], tonumber(arg[6])
local function http(idle)
  return assert(core.http{ proxy = "", ca_file = ca ~= "-" and ca or nil,
                           billed_reuse_idle_s = idle })
end
local cfg = { client_id = "sandbox-client-id", secret = "sandbox-secret", base_url = base }

local function run(label, h, build)
  -- one request first: the connection the GETs keep is there, as in a run
  assert(h:perform(assert(core.build(cfg, "get_order", order)), core.now(), "view"))
  local c0, w0 = os.clock(), core.monotonic()
  for _ = 1, n do
    local doc, meta = h:perform(build(), core.now(), "view")
    if not doc then error(label .. ": " .. tostring(meta and meta.message or meta)) end
  end
  io.write(string.format("%s requests=%d cpu_us_per_request=%.0f wall_us_per_request=%.0f\n",
                         label, n, (os.clock() - c0) * 1e6 / n, (core.monotonic() - w0) * 1e6 / n))
  h:close()
end

local function refresh()
  return assert(core.build(cfg, "refresh_order", order, { products = { product } }))
end
run("refresh_reused", http(nil), refresh)
run("refresh_fresh", http(0), refresh)
run("refresh_task", http(nil), function()
  return assert(core.build(cfg, "create_refresh_task", nil, { access_token = token,
                                                              product_type = product }))
end)
run("get_order", http(nil), function() return assert(core.build(cfg, "get_order", order)) end)
