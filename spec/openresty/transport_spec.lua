-- The cosocket transport inside a real nginx: keep-alive pools (refreshes
-- in their own, never re-sent), other creates on fresh connections, chunked answers, timeouts that close the
-- socket, every failure mapped like libcurl's, TLS verification with SNI,
-- the phase error, and light threads refreshing through one client.
local openresty = require "spec.support.openresty"
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"

local function sh(cmd)
  assert(os.execute(openresty.NOPRELOAD .. cmd .. " >/dev/null 2>&1"), cmd)
end

-- A self-signed certificate (its own CA) for 127.0.0.1.
local function make_cert(dir, name)
  sh(string.format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes " ..
                   "-keyout %s/%s.key -out %s/%s.pem -days 2 -subj /CN=127.0.0.1 " ..
                   "-addext subjectAltName=DNS:127.0.0.1,IP:127.0.0.1", dir, name, dir, name))
end

-- Fake Truv answers that show which connection each request came on.
local FAKE = [==[
        location ~ ^/v1/orders/(conn[^/]*|tls[^/]*)/$ {
            default_type application/json;
            set $padding "0123456789012345678901234567890123456789012345678901234567890123456789";
            return 200 '{"id":"c$connection","requests":$connection_requests,"padding":"$padding"}';
        }
        location ~ ^/v1/users/[^/]+/tokens/$ {
            default_type application/json;
            return 200 '{"id":"c$connection","requests":$connection_requests,"bridge_token":"t"}';
        }
        location = /v1/orders/close/ {
            keepalive_timeout 0;
            default_type application/json;
            return 200 '{"id":"c$connection","requests":$connection_requests}';
        }
        location = /v1/orders/chunked/ {
            content_by_lua_block {
                ngx.header.content_type = "application/json"
                ngx.print('{"id":"chunk')
                ngx.flush(true)
                ngx.print('ed","requests":', ngx.var.connection_requests, '}')
            }
        }
        location = /v1/orders/slow/ {
            content_by_lua_block {
                ngx.sleep(0.3)
                ngx.header.content_type = "application/json"
                ngx.say('{"id":"late-', ngx.var.connection, '"}')
            }
        }
        location = /v1/orders/ {
            content_by_lua_block { require("transport_runner").created_order() }
        }
        location = /v1/orders/silent/ { return 444; }
        location = /v1/orders/silent-counted/ {
            content_by_lua_block {
                ngx.req.read_body()
                ngx.shared.test_phase:incr("silent_posts", 1, 0)
                ngx.exit(444)
            }
        }
        location = /t/silent_posts {
            content_by_lua_block { ngx.say(ngx.shared.test_phase:get("silent_posts") or 0) }
        }
        location = /v1/orders/garbage/ {
            content_by_lua_block {
                local s = ngx.req.socket(true)
                s:send("HTTP/1.1 2x0 What\r\nContent-Length: 2\r\n\r\n{}")
            }
        }
        location = /v1/orders/truncated/ {
            content_by_lua_block {
                local s = ngx.req.socket(true)
                s:send("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" ..
                       "Content-Length: 100\r\n\r\n{\"id\":")
            }
        }
        location ~ ^/t/(\w+)$ { content_by_lua_block { require("transport_runner")[ngx.var[1]]() } }
        location = /phase/set {
            set_by_lua_block $phase_code { return require("transport_runner").set_phase() }
            return 200 $phase_code;
        }
        location = /phase/log {
            content_by_lua_block { ngx.say("ok") }
            log_by_lua_block { require("transport_runner").record_phase() }
        }
        location = /phase/header_filter {
            content_by_lua_block { ngx.say("ok") }
            header_filter_by_lua_block { require("transport_runner").record_phase() }
        }
        location = /phase/body_filter {
            content_by_lua_block { ngx.say("ok") }
            body_filter_by_lua_block { require("transport_runner").record_phase() }
        }
        location = /phase/timer { content_by_lua_block { require("transport_runner").timer_phase() } }
        location = /phase/results { content_by_lua_block { require("transport_runner").phase_results() } }
]==]

describe("the cosocket transport in nginx", function()
  local srv, sb, certs, closed_port

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "12", "--rng-seed", "21", "--rate-limit", "0",
                                 "--mix", "active=1" } }
    certs = files.tmpdir("truv-certs")
    make_cert(certs, "good")
    make_cert(certs, "other")
    sh("chmod 755 " .. certs)
    srv = openresty.start{
      extra_ports = 2,
      env = { TRUV_BASE_URL = sb.base_url, TRUV_SECRET = sb.secret, TRUV_CLIENT_ID = sb.client_id },
      conf = openresty.config{
        workers = 2,
        main = "env TRUV_BASE_URL;\nenv TRUV_SECRET;\nenv TRUV_CLIENT_ID;\n",
        http = function(_, _, extra)
          return table.concat({
            "    lua_shared_dict test_phase 1m;",
            "    lua_shared_dict truv_quota 4m;",
            "    lua_ssl_trusted_certificate " .. certs .. "/good.pem;",
            "    lua_ssl_verify_depth 2;",
            "    init_by_lua_block { require('transport_runner').init() }",
            "    init_worker_by_lua_block { require('transport_runner').init_worker() }",
            -- two TLS servers: one with the trusted certificate, one without
            "    server { listen 127.0.0.1:" .. extra[1] .. " ssl;",
            "        ssl_certificate " .. certs .. "/good.pem;",
            "        ssl_certificate_key " .. certs .. "/good.key;",
            "        location / { default_type application/json;",
            "            return 200 '{\"id\":\"c$connection\",\"requests\":$connection_requests," ..
              "\"sni\":\"$ssl_server_name\"}'; } }",
            "    server { listen 127.0.0.1:" .. extra[2] .. " ssl;",
            "        ssl_certificate " .. certs .. "/other.pem;",
            "        ssl_certificate_key " .. certs .. "/other.key;",
            "        location / { default_type application/json;",
            "            return 200 '{\"id\":\"insecure-$connection\"}'; } }",
          }, "\n")
        end,
        server = FAKE,
      },
    }
    closed_port = openresty.free_port()
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if sb then sb:stop() end
    if certs then os.execute(openresty.NOPRELOAD .. "rm -rf '" .. certs .. "'") end
  end)

  local function t(name, query)
    local status, body = srv:request("GET", "/t/" .. name .. (query and ("?" .. query) or ""),
                                     nil, nil, 30)
    assert.equal(200, status, srv:error_log())
    return body
  end

  it("reuses pooled connections, sends creates on fresh ones, reads chunked answers", function()
    local r = t("pool")
    for i = 1, 8 do assert.is_true(r[i].ok, r[i].text) end
    local pooled = r[1].doc.id
    assert.equal(1, r[1].doc.requests)
    assert.equal(pooled, r[2].doc.id)            -- the same connection, its 2nd request
    assert.equal(2, r[2].doc.requests)
    assert.are_not.equal(pooled, r[3].doc.id)    -- a refresh: its own pool ...
    assert.equal(1, r[3].doc.requests)
    assert.equal(pooled, r[4].doc.id)            -- ... apart from the GETs'
    assert.equal(3, r[4].doc.requests)
    assert.equal(r[3].doc.id, r[11].doc.id)      -- the next refresh rides it: no new handshake
    assert.equal(2, r[11].doc.requests)
    assert.equal("chunked", r[5].doc.id)
    assert.equal(4, r[5].doc.requests)           -- a chunked answer keeps the connection
    assert.equal(pooled, r[6].doc.id)
    assert.equal(5, r[6].doc.requests)
    assert.equal(6, r[7].doc.requests)           -- Connection: close ...
    assert.are_not.equal(pooled, r[8].doc.id)    -- ... so the next one is fresh
    assert.equal(1, r[8].doc.requests)
    -- any other create (a bridge token) is not billed, but is not made twice
    -- either: a fresh connection, closed after it
    assert.is_true(r[9].ok, r[9].text)
    assert.are_not.equal(r[8].doc.id, r[9].doc.id)
    assert.equal(1, r[9].doc.requests)
    assert.equal(r[8].doc.id, r[10].doc.id)
    assert.equal(2, r[10].doc.requests)
  end)

  it("takes 201 Created (Truv's answer to a new order) as a success", function()
    local r = t("created")
    assert.is_true(r.ok, r.text)
    assert.equal(201, r.status)
    assert.equal("39aa1486ccca4bc19cda071ffc1ba392", r.doc.id)
    assert.equal("ad9f14440d624ec3b0f66e81e44518c7", r.doc.employer)
  end)

  it("closes a socket that timed out: its late answer never reaches the next request", function()
    local r = t("timeout")
    assert.is_true(r[1].ok)
    assert.is_false(r[2].ok)
    assert.equal("network", r[2].kind)
    assert.equal("timeout", r[2].code)
    assert.is_true(r[2].maybe_sent)
    assert.is_true(r[2].elapsed >= 0.14 and r[2].elapsed < 0.3, tostring(r[2].elapsed))
    for i = 3, 4 do
      assert.is_true(r[i].ok, r[i].text)
      assert.matches("^c%d+$", r[i].doc.id)     -- its own answer, not "late-..."
    end
    assert.are_not.equal(r[1].doc.id, r[3].doc.id)
    assert.equal(1, r[3].doc.requests)
  end)

  it("maps failures like libcurl: kind, code and whether the request may have left", function()
    local r = t("errors", "closed=" .. closed_port)
    local function check(name, code, maybe_sent)
      assert.is_false(r[name].ok, name)
      assert.equal("network", r[name].kind, name)
      assert.equal(code, r[name].code, name .. ": " .. tostring(r[name].text))
      assert.equal(maybe_sent, r[name].maybe_sent, name)
    end
    check("connect", "connect", false)
    check("dns", "dns", false)
    assert.matches("resolver", r.dns.message)
    check("silent", "reset", true)
    check("silent_billed", "reset", true)
    -- a refresh read whole on a kept-alive connection, then closed unanswered:
    -- maybe sent, and never sent again
    check("kept_silent_billed", "reset", true)
    assert.equal(1, r.kept_silent_posts.n)
    check("garbage", "network", true)
    assert.matches("malformed HTTP response", r.garbage.message)
    check("truncated", "truncated_body", true)
    assert.is_false(r.big.ok)
    assert.equal("protocol", r.big.kind)
    assert.equal("body_too_large", r.big.code)
    assert.is_true(r.ok_after.ok)
    -- no secret in any message
    for _, v in pairs(r) do assert.is_nil((v.text or ""):find("sandbox-secret", 1, true)) end
  end)

  it("verifies TLS against lua_ssl_trusted_certificate, with SNI", function()
    local good, bad = srv.extra_ports[1], srv.extra_ports[2]
    local r = t("tls", "good=" .. good .. "&bad=" .. bad)
    assert.is_true(r.good.ok, r.good.text)
    assert.equal("127.0.0.1", r.good.doc.sni)
    -- a pooled TLS connection is reused without a new handshake
    assert.equal(r.good.doc.id, r.good_again.doc.id)
    assert.equal(2, r.good_again.doc.requests)
    assert.is_false(r.untrusted.ok)
    assert.equal("network", r.untrusted.kind)
    assert.equal("tls", r.untrusted.code)
    assert.is_false(r.untrusted.maybe_sent)
    assert.matches("lua_ssl_trusted_certificate", r.untrusted.message)
    assert.is_true(r.insecure.ok, r.insecure.text)
    assert.is_true(r.billed.ok, r.billed.text)
    assert.equal(1, r.billed.doc.requests)
    -- the next refresh on the same kept-alive TLS connection: no handshake
    assert.is_true(r.billed_again.ok, r.billed_again.text)
    assert.equal(r.billed.doc.id, r.billed_again.doc.id)
    assert.equal(2, r.billed_again.doc.requests)
  end)

  it("refuses per-client CA files and proxies it cannot speak to instead of ignoring them", function()
    local r = t("options")
    assert.is_false(r.ca_file.made)
    assert.equal("ca_file", r.ca_file.code)
    assert.matches("lua_ssl_trusted_certificate", r.ca_file.message)
    assert.is_false(r.proxy.made)
    assert.equal("proxy", r.proxy.code)
    assert.matches("plain HTTP", r.proxy.message)
    assert.matches("proxy proxy:3128", r.http_proxy)
    assert.matches("^truv.transport.cosocket", r.default_transport)
  end)

  it("talks to the sandbox: documents are plain tables under LuaJIT", function()
    local case = sb:cases()[1]
    local r = t("sandbox", "id=" .. case.order_id)
    assert.is_true(r.ok, r.text)
    assert.equal(case.order_id, r.doc.id)
    assert.equal("table", r.doc.kind)
  end)

  it("returns a phase error naming the phase and ngx.timer.at where cosockets cannot run", function()
    assert.equal(200, (srv:request("GET", "/phase/set")))
    for _, name in ipairs{ "log", "header_filter", "body_filter" } do
      assert.equal(200, (srv:request("GET", "/phase/" .. name)))
    end
    assert.equal(200, (srv:request("GET", "/phase/timer")))
    local results
    assert(sandbox.wait_until(function()
      local _, body = srv:request("GET", "/phase/results")
      results = body
      return body.timer and body.log
    end, 5), "the timer and log phases recorded nothing")
    for _, phase in ipairs{ "init", "init_worker", "set", "log", "header_filter", "body_filter" } do
      local r = results[phase]
      assert.is_table(r, phase)
      assert.is_false(r.ok, phase)
      assert.equal("invalid", r.kind, phase)
      assert.equal("phase", r.code, phase)
      assert.equal(phase, r.err_phase)
      assert.matches("'?" .. phase .. "'? phase", r.message)
      assert.matches("ngx%.timer%.at", r.message)
    end
    assert.is_true(results.timer.ok, results.timer.text)
    assert.equal("timer", results.timer.phase)
  end)

  it("runs refreshes in light threads through one client, refusing a second one of the same order",
     function()
    local ids = {}
    for i = 1, 4 do
      local case = sb:cases()[i]
      ids[i] = case.order_id .. ":" .. case.product
    end
    local before = sb:stats().refresh.order_refreshes
    sb:faults{ latency_ms = 200 }
    local r = t("threads", "orders=" .. table.concat(ids, ","))
    sb:faults{ reset = true }
    for i = 1, 4 do assert.is_true(r.results[i].ok, r.results[i].text) end
    assert.is_false(r.again.ok)
    assert.equal("refresh_in_progress", r.again.code)
    -- at once: a GET and a POST of 200 ms each, not four times that
    assert.is_true(r.elapsed < 1.2, "took " .. r.elapsed .. " s")
    assert.equal(before + 4, sb:stats().refresh.order_refreshes)
  end)

  it("logged no error", function()
    -- nginx logs the socket errors the transport returned
    assert.same({}, srv:log_lines(nil, { "lua tcp socket read timed out", "connect() failed",
                                         "lua ssl certificate verify error",
                                         "no resolver defined" }))
  end)
end)
