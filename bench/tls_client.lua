-- lua-truv's own client (truv.core, libcurl easy) against the sandbox: CPU
-- per request for N billed POSTs (POST /v1/refresh/tasks/, each on a fresh
-- connection: the rule for every non-GET) and N GETs of an order (kept
-- alive), over the base URL given (http or https with its CA file).
--   lua5.4 bench/tls_client.lua BASE_URL CA_FILE|- ACCESS_TOKEN ORDER_ID N
local core = require "truv.core"
local base, ca, token, order, n = arg[1], arg[2], arg[3], arg[4], tonumber(arg[5])
local http = assert(core.http{ proxy = "", ca_file = ca ~= "-" and ca or nil })
local cfg = { client_id = "sandbox-client-id", secret = "sandbox-secret", base_url = base }

local function run(label, build)
  local c0, w0 = os.clock(), core.monotonic()
  for _ = 1, n do
    local doc, meta = http:perform(build(), core.now(), "view")
    if not doc then error(label .. ": " .. tostring(meta and meta.message or meta)) end
  end
  io.write(string.format("%s requests=%d cpu_us_per_request=%.0f wall_us_per_request=%.0f\n",
                         label, n, (os.clock() - c0) * 1e6 / n, (core.monotonic() - w0) * 1e6 / n))
end

run("billed_post", function()
  return assert(core.build(cfg, "create_refresh_task", nil, { access_token = token,
                                                              product_type = "employment" }))
end)
run("get_order", function() return assert(core.build(cfg, "get_order", order)) end)
http:close()
