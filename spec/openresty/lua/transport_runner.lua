-- Inside nginx: the cosocket transport exercised against fake Truv
-- endpoints of the same nginx (which show the connection each request came
-- on: $connection, $connection_requests), TLS servers, the sandbox, and
-- every nginx phase. Each function answers JSON for the spec to check.
local truv = require "truv"
local shdict = require "truv.store.shdict"

local ngx = ngx
local _M = {}

local function respond(t)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(truv.encode(t))
end

local function self_url()
  return "http://127.0.0.1:" .. ngx.var.server_port .. "/v1/"
end

local function client(opts)
  local o = { client_id = "cid", secret = "sandbox-secret", retry = { attempts = 1 }, quota = false }
  for k, v in pairs(opts or {}) do o[k] = v end
  o.base_url = o.base_url or self_url()
  return assert(truv.new(o))
end

-- What a call returned, as JSON.
local function result(doc, meta)
  if doc then
    return { ok = true, doc = doc, status = meta.status, request_id = meta.request_id }
  end
  local e = meta
  return { ok = false, kind = e.kind, code = e.code, message = e.message,
           maybe_sent = e.maybe_sent, status = e.status, text = tostring(e) }
end

local function billed(c, id)
  local req = assert(c:build("refresh_order", id, { products = { "income" } }))
  assert(req.billed)
  return result(c:send(req))
end

--- /t/pool: keep-alive, refreshes in their own pool, other creates on fresh connections.
function _M.pool()
  local c = client()
  local out = {}
  out[1] = result(c:get_order("conn-a"))
  out[2] = result(c:get_order("conn-a"))
  out[3] = billed(c, "conn-b")
  out[4] = result(c:get_order("conn-a"))
  out[5] = result(c:get_order("chunked"))
  out[6] = result(c:get_order("conn-a"))
  out[7] = result(c:get_order("close"))      -- answers with Connection: close
  out[8] = result(c:get_order("conn-a"))
  out[9] = result(c:create_bridge_token("u1", { product_type = "income" }))
  out[10] = result(c:get_order("conn-a"))
  out[11] = billed(c, "conn-b")
  respond(out)
end

-- Truv's documented order (spec/fixtures/truv-docs/order.json).
local function documented_order()
  local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$")
  local f = assert(io.open(here .. "/../../fixtures/truv-docs/order.json", "rb"))
  local text = f:read("a")
  f:close()
  return text
end

--- POST /v1/orders/: 201 Created with Truv's documented order, as Truv answers.
function _M.created_order()
  ngx.status = 201
  ngx.header["Content-Type"] = "application/json"
  ngx.print(documented_order())
end

--- /t/created: create_order through cosockets, answered 201.
function _M.created()
  local c = client()
  local r = result(c:create_order{ products = { "income" }, first_name = "John",
                                   last_name = "Doe" })
  if r.ok then r.doc = { id = r.doc.id, employer = r.doc.employers[1].id } end
  respond(r)
end

--- /t/timeout: a late answer never reaches the next request.
function _M.timeout()
  local c = client{ timeout_ms = 150 }
  local out = {}
  out[1] = result(c:get_order("conn-t"))    -- a pooled connection
  ngx.update_time()
  local t0 = ngx.now()
  out[2] = result(c:get_order("slow"))      -- takes it, times out after 150 ms
  ngx.update_time()
  out[2].elapsed = ngx.now() - t0
  out[3] = result(c:get_order("conn-t"))    -- must come on a new connection
  ngx.sleep(0.4)                            -- the late answer has been sent by now
  out[4] = result(c:get_order("conn-t"))
  respond(out)
end

--- /t/errors?closed=PORT: failures mapped like libcurl's.
function _M.errors()
  local args = ngx.req.get_uri_args()
  local out = {}
  out.connect = result(client{ base_url = "http://127.0.0.1:" .. args.closed .. "/v1/" }
                       :get_order("x"))
  out.dns = result(client{ base_url = "http://truv-test.invalid/v1/" }:get_order("x"))
  out.silent = result(client():get_order("silent"))
  out.silent_billed = billed(client(), "silent")
  local kept = client()
  assert(billed(kept, "conn-k").ok)
  out.kept_silent_billed = billed(kept, "silent-counted")
  out.kept_silent_posts = { n = ngx.shared.test_phase:get("silent_posts") }
  out.garbage = result(client():get_order("garbage"))
  out.truncated = result(client():get_order("truncated"))
  out.big = result(client{ transport = require("truv.transport.cosocket").new{ max_body = 64 } }
                   :get_order("conn-big"))
  out.ok_after = result(client():get_order("conn-e"))
  respond(out)
end

--- /t/tls?good=PORT&bad=PORT: verification on, SNI, insecure.
function _M.tls()
  local args = ngx.req.get_uri_args()
  local good = "https://127.0.0.1:" .. args.good .. "/v1/"
  local bad = "https://127.0.0.1:" .. args.bad .. "/v1/"
  local out = {}
  out.good = result(client{ base_url = good }:get_order("tls-1"))
  out.good_again = result(client{ base_url = good }:get_order("tls-1"))
  out.untrusted = result(client{ base_url = bad }:get_order("tls-2"))
  out.insecure = result(client{ base_url = bad, insecure = true }:get_order("tls-2"))
  local tls_client = client{ base_url = good }
  out.billed = billed(tls_client, "tls-3")
  out.billed_again = billed(tls_client, "tls-3")
  respond(out)
end

--- /t/options: what truv.new refuses inside nginx, and a proxy it takes.
function _M.options()
  local out = {}
  local c, err = truv.new{ client_id = "cid", secret = "s", ca_file = "/etc/ssl/x.pem" }
  out.ca_file = { made = c ~= nil, code = err and err.code, message = err and err.message }
  -- a proxy it speaks to (plain HTTP) is taken; one it cannot is refused
  c, err = truv.new{ client_id = "cid", secret = "s", proxy = "socks5://proxy:1080" }
  out.proxy = { made = c ~= nil, code = err and err.code, message = err and err.message }
  c = truv.new{ client_id = "cid", secret = "s", proxy = "http://proxy:3128" }
  out.http_proxy = c and tostring(c._transport)
  c = truv.new{ client_id = "cid", secret = "s" }
  out.default_transport = tostring(c._transport)
  respond(out)
end

--- /t/sandbox?id=ORDER: a real order from the sandbox (base URL from env).
function _M.sandbox()
  local c = client{ base_url = os.getenv("TRUV_BASE_URL"), secret = os.getenv("TRUV_SECRET"),
                    client_id = os.getenv("TRUV_CLIENT_ID") }
  local args = ngx.req.get_uri_args()
  local r = result(c:get_order(args.id))
  if r.ok then r.doc = { id = r.doc.id, products = r.doc.products, kind = type(r.doc) } end
  respond(r)
end

--- /t/threads?orders=id:product,...: light threads refreshing several orders through
-- one client at once, and the first order a second time meanwhile.
function _M.threads()
  local c = assert(truv.new{
    client_id = os.getenv("TRUV_CLIENT_ID"), secret = os.getenv("TRUV_SECRET"),
    base_url = os.getenv("TRUV_BASE_URL"),
    quota = shdict.quota("truv_quota", { prefix = "threads:" }),
  })
  local ids, products = {}, {}
  for id, product in ngx.var.arg_orders:gmatch("([^,:]+):([^,]+)") do
    ids[#ids + 1], products[#ids + 1] = id, product
  end
  ngx.update_time()
  local t0 = ngx.now()
  local threads = {}
  for i, id in ipairs(ids) do
    threads[i] = ngx.thread.spawn(function()
      return result(c:refresh_order(id, { products = { products[i] } }))
    end)
  end
  -- the same order again while its refresh is in flight
  local again = ngx.thread.spawn(function()
    return result(c:refresh_order(ids[1], { products = { products[1] } }))
  end)
  local out = { results = {} }
  for i, th in ipairs(threads) do
    local ok, r = ngx.thread.wait(th)
    out.results[i] = ok and r or { ok = false, text = tostring(r) }
    if out.results[i].ok then out.results[i].doc = { id = r.doc.id } end
  end
  local ok, r = ngx.thread.wait(again)
  out.again = ok and r or { ok = false, text = tostring(r) }
  if out.again.ok then out.again.doc = { id = r.doc.id } end
  ngx.update_time()
  out.elapsed = ngx.now() - t0
  respond(out)
end

-- ------------------------------------------------------------------ phases

local function try_in_phase()
  local c = truv.new{ client_id = "cid", secret = "sandbox-secret",
                      base_url = "http://127.0.0.1:1/v1/", quota = false }
  local doc, err = c:get_order("x")
  return { phase = ngx.get_phase(), ok = doc ~= nil, kind = err and err.kind,
           code = err and err.code, message = err and err.message,
           err_phase = err and err.phase, text = err and tostring(err) }
end

local function record(r)
  ngx.shared.test_phase:set(r.phase, truv.encode(r))
end

function _M.init()
  record(try_in_phase())
end

function _M.init_worker()
  if ngx.worker.id() == 0 then record(try_in_phase()) end
end

function _M.set_phase()
  local r = try_in_phase()
  record(r)
  return r.code or "none"
end

function _M.record_phase()
  record(try_in_phase())
end

function _M.timer_phase()
  local base = self_url()
  local ok = ngx.timer.at(0, function()
    local c = client{ base_url = base }
    local doc, err = c:get_order("conn-timer")
    ngx.shared.test_phase:set("timer", truv.encode{ phase = ngx.get_phase(), ok = doc ~= nil,
                                                    text = err and tostring(err) })
  end)
  ngx.say(ok and "started" or "failed")
end

function _M.phase_results()
  local out = {}
  for _, k in ipairs(ngx.shared.test_phase:get_keys(0)) do
    out[k] = truv.decode(ngx.shared.test_phase:get(k), "table")
  end
  respond(out)
end

return _M
