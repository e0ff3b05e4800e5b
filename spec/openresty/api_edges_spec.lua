-- The client's edges inside a real nginx: an error printed by ngx.say,
-- ngx.print, ngx.log and concatenation reads as its line; the cosocket
-- transport's read and per-call timeouts; an HTTP proxy (a CONNECT tunnel
-- for https with TLS to the server end to end, absolute form for http,
-- no_proxy, a refused tunnel reported as never sent); the ngx.log logger.
local openresty = require "spec.support.openresty"
local files = require "spec.support.files"
local connect_proxy = require "spec.support.connect_proxy"

local function sh(cmd)
  assert(os.execute(openresty.NOPRELOAD .. cmd .. " >/dev/null 2>&1"), cmd)
end

local FAKE = [==[
        location ~ ^/v1/orders/(conn[^/]*)/$ {
            default_type application/json;
            return 200 '{"id":"c$connection","requests":$connection_requests}';
        }
        location = /v1/orders/slow/ {
            content_by_lua_block {
                ngx.sleep(1)
                ngx.header.content_type = "application/json"
                ngx.say('{"id":"slow"}')
            }
        }
        location = /v1/orders/missing/ {
            default_type application/json;
            return 404 '{"detail":"Not found."}';
        }
        location ~ ^/t/(\w+)$ { content_by_lua_block { require("edges_runner")[ngx.var[1]]() } }
]==]

describe("the client's edges in nginx", function()
  local srv, certs, proxy

  lazy_setup(function()
    certs = files.tmpdir("truv-certs")
    sh(string.format("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes " ..
                     "-keyout %s/good.key -out %s/good.pem -days 2 -subj /CN=127.0.0.1 " ..
                     "-addext subjectAltName=IP:127.0.0.1", certs, certs))
    sh("chmod 755 " .. certs)
    srv = openresty.start{
      extra_ports = 2,
      conf = openresty.config{
        workers = 1,
        http = function(_, _, extra)
          return table.concat({
            "    lua_ssl_trusted_certificate " .. certs .. "/good.pem;",
            "    lua_ssl_verify_depth 2;",
            "    server { listen 127.0.0.1:" .. extra[1] .. " ssl;",
            "        ssl_certificate " .. certs .. "/good.pem;",
            "        ssl_certificate_key " .. certs .. "/good.key;",
            "        location / { default_type application/json;",
            "            return 200 '{\"id\":\"tls-$connection\",\"requests\":" ..
              "$connection_requests,\"bridge_token\":\"t\"}'; } }",
          }, "\n")
        end,
        server = FAKE,
      },
    }
    proxy = connect_proxy.start{ auth = "agency:pr0xy-pass", refuse = { [srv.extra_ports[2]] = true } }
  end)

  lazy_teardown(function()
    if proxy then proxy:stop() end
    if srv then srv:stop() end
    if certs then os.execute("rm -rf '" .. certs .. "'") end
  end)

  local function t(name, query)
    local status, body, _, raw = srv:request("GET", "/t/" .. name .. (query and ("?" .. query) or ""),
                                             nil, nil, 30)
    assert.equal(200, status, srv:error_log())
    return body, raw
  end

  it("prints an error as its line with ngx.say, ngx.print, .. and ngx.log", function()
    local _, raw = t("say", "closed=" .. openresty.free_port())
    local lines = {}
    for line in raw:gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(10, #lines, raw)
    local texts = {}
    for i = 0, 1 do
      local text = lines[i * 5 + 5]:match("^expected: (.+)$")
      assert(text, raw)
      texts[#texts + 1] = text
      assert.equal("failed: " .. text, lines[i * 5 + 1])
      assert.equal(text, lines[i * 5 + 2])
      assert.equal("x" .. text .. "y", lines[i * 5 + 3])
      assert.equal("in a table: " .. text, lines[i * 5 + 4])
      assert.truthy(srv:error_log():find("logged: " .. text, 1, true), srv:error_log())
    end
    assert.equal("truv: quota in refresh_order (refresh_quota): spent", texts[1])
    assert.matches("^truv: network in get_order %(connect%)", texts[2])
  end)

  it("ends a stalled answer at the read timeout, and a call at its own timeout", function()
    local r = t("timeouts")
    assert.is_true(r.defaults.ok, r.defaults.text)      -- 1 s is within the 30 s default
    assert.is_false(r.read.ok)
    assert.equal("timeout", r.read.code)
    assert.matches("read timeout", r.read.message)
    assert.is_true(r.read.maybe_sent)
    assert.is_true(r.read.elapsed >= 0.15 and r.read.elapsed < 0.9, tostring(r.read.elapsed))
    assert.is_false(r.call.ok)
    assert.equal("timeout", r.call.code)
    assert.equal("no complete answer within 150 ms", r.call.message)
    assert.is_true(r.call.elapsed < 0.9, tostring(r.call.elapsed))
    assert.is_true(r.after.ok, r.after.text)            -- the next call has the defaults again
  end)

  it("goes through an HTTP proxy: a tunnel for https, absolute form for http", function()
    local tls, refused = srv.extra_ports[1], srv.extra_ports[2]
    local url = proxy.url:gsub("^http://", "http://agency:pr0xy-pass@")
    local r = t("proxy", "proxy=" .. url .. "&tls=" .. tls .. "&refused=" .. refused)
    -- TLS with the server itself, through the tunnel; the tunnel is pooled
    assert.is_true(r.tls1.ok, r.tls1.text)
    assert.is_true(r.tls2.ok, r.tls2.text)
    assert.equal(r.tls1.doc.id, r.tls2.doc.id)
    assert.equal(2, r.tls2.doc.requests)
    -- a request that creates something opens a tunnel of its own
    assert.is_true(r.tls_create.ok, r.tls_create.text)
    assert.are_not.equal(r.tls1.doc.id, r.tls_create.doc.id)
    assert.is_true(r.http.ok, r.http.text)
    assert.is_true(r.bypass.ok, r.bypass.text)
    -- a refused tunnel: nothing reached the server, the password is in no message
    assert.is_false(r.refused.ok)
    assert.equal("network", r.refused.kind)
    assert.equal("connect", r.refused.code)
    assert.is_false(r.refused.maybe_sent)
    assert.matches("refused the tunnel to 127%.0%.0%.1:" .. refused .. " %(HTTP 403%)", r.refused.text)
    assert.is_nil(r.refused.text:find("pr0xy-pass", 1, true))
    assert.same({
      { method = "CONNECT", target = "127.0.0.1:" .. tls, auth = "yes" },
      { method = "CONNECT", target = "127.0.0.1:" .. tls, auth = "yes" },
      { method = "GET", target = "http://127.0.0.1:" .. srv.port .. "/v1/orders/conn-via/",
        auth = "yes" },
      { method = "CONNECT", target = "127.0.0.1:" .. refused, auth = "yes" },
    }, proxy:requests())
  end)

  it("logs the client's events through ngx.log at their nginx level", function()
    local r = t("log")
    assert.equal("not_found", r.kind)
    local line
    for _, l in ipairs(srv:log_lines{ "warn" }) do
      if l:find("truv: warn error op=get_order path=orders/missing/ status=404 kind=not_found",
                1, true) then
        line = l
      end
    end
    assert.truthy(line, srv:error_log())
    -- the response (debug) and nothing else of the call is above nginx's notice level
    assert.is_nil(srv:error_log():find("truv: debug", 1, true))
  end)

  it("logged no error but nginx's own socket errors (lua_socket_log_errors)", function()
    assert.same({}, srv:log_lines(nil, { "connect() failed (111: Connection refused)",
                                         "lua tcp socket read timed out" }))
  end)
end)
