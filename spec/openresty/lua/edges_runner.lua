-- Inside nginx: the client's edges (spec/openresty/api_edges_spec.lua).
-- Errors printed with ngx.say, ngx.print and ngx.log, cosocket timeouts,
-- the HTTP proxy (CONNECT for https, absolute form for http) and the
-- ngx.log logger adapter, against fake Truv endpoints of the same nginx
-- and a TLS server; each function answers what the spec checks.
local truv = require "truv"

local ngx = ngx
local _M = {}

local function respond(t)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(truv.encode(t))
end

local function client(opts)
  local o = { client_id = "cid", secret = "sandbox-secret", retry = { attempts = 1 },
              quota = false, base_url = "http://127.0.0.1:" .. ngx.var.server_port .. "/v1/" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(truv.new(o))
end

local function result(doc, meta)
  if doc then return { ok = true, doc = doc, status = meta.status } end
  return { ok = false, kind = meta.kind, code = meta.code, message = meta.message,
           maybe_sent = meta.maybe_sent, text = tostring(meta) }
end

--- /t/say: errors through ngx.say, ngx.print, .. and ngx.log; a plain-text
-- body, one line each, then the lines they should equal.
function _M.say()
  ngx.header["Content-Type"] = "text/plain"
  local made = truv.errors.new("quota", "refresh_quota", "spent", { op = "refresh_order" })
  -- one from the core and the transport: nothing listens on this port
  local _, failed = client{ base_url = "http://127.0.0.1:" .. ngx.var.arg_closed .. "/v1/" }
    :get_order("o1")
  for _, err in ipairs{ made, failed } do
    ngx.say("failed: ", err)
    ngx.print(err, "\n")
    ngx.say("x" .. err .. "y")
    ngx.say({ "in a table: ", err })
    ngx.log(ngx.WARN, "logged: ", err)
    ngx.say("expected: ", tostring(err))
  end
end

--- /t/timeouts: read and per-call timeouts against /v1/orders/slow/ (1 s).
function _M.timeouts()
  local out = {}
  local c = client()
  out.defaults = result(c:get_order("slow"))
  c:set_timeouts(nil, nil, 200)
  ngx.update_time()
  local t0 = ngx.now()
  out.read = result(c:get_order("slow"))
  ngx.update_time()
  out.read.elapsed = ngx.now() - t0
  c = client()
  t0 = ngx.now()
  out.call = result(c:get_order("slow", { timeout_ms = 150 }))
  ngx.update_time()
  out.call.elapsed = ngx.now() - t0
  out.after = result(c:get_order("conn-1"))
  respond(out)
end

--- /t/proxy?proxy=URL&tls=PORT&refused=PORT: through the spec's proxy.
function _M.proxy()
  local a = ngx.var.arg_proxy
  local tls = "https://127.0.0.1:" .. ngx.var.arg_tls .. "/v1/"
  local out = {}
  local c = client{ proxy = a, base_url = tls }
  out.tls1 = result(c:get_order("via-1"))
  out.tls2 = result(c:get_order("via-2"))            -- the pooled tunnel
  out.tls_create = result(c:create_bridge_token("u1", { product_type = "income" }))   -- fresh
  out.http = result(client{ proxy = a }:get_order("conn-via"))
  out.bypass = result(client{ proxy = a, no_proxy = "localhost,127.0.0.1" }:get_order("conn-by"))
  out.refused = result(client{ proxy = a, base_url = "https://127.0.0.1:" .. ngx.var.arg_refused ..
                                                     "/v1/" }:get_order("x"))
  respond(out)
end

--- /t/log: the ngx.log adapter: a failed call's events.
function _M.log()
  local c = client{ logger = truv.log.ngx() }
  respond(result(c:get_order("missing")))
end

return _M
