-- rediss:// outside nginx: TLS through the core's OpenSSL (Debian's hiredis
-- 0.14 has none), verified against a CA file and the address in the
-- certificate; an unknown certificate is refused before any command.
local quota = require "truv.quota"
local core = require "truv.core"
local socket = require "socket"
local files = require "spec.support.files"
local redis_server = require "spec.support.redis_server"
local openresty = require "spec.support.openresty"

describe("Redis over TLS", function()
  local srv, dir, tls_port

  lazy_setup(function()
    dir = files.tmpdir("truv-redis-tls")
    -- a self-signed certificate for 127.0.0.1, its own CA
    assert(os.execute(string.format(
      "LD_PRELOAD= openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 " ..
      "-addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem >/dev/null 2>&1",
      files.quote(dir), files.quote(dir))))
    local s = assert(socket.bind("127.0.0.1", 0))
    tls_port = select(2, s:getsockname())
    s:close()
    srv = redis_server.start{ args = { "--tls-port", tostring(tls_port),
      "--tls-cert-file", dir .. "/cert.pem", "--tls-key-file", dir .. "/key.pem",
      "--tls-ca-cert-file", dir .. "/cert.pem", "--tls-auth-clients", "no" } }
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if dir then os.execute("rm -rf " .. files.quote(dir)) end
  end)

  it("keeps the quota over a verified TLS connection", function()
    local q = assert(quota.redis{ url = "rediss://127.0.0.1:" .. tls_port .. "/2",
                                  ca_file = dir .. "/cert.pem",
                                  namespace = "truv:tls-" .. core.redis_ticket() })
    local k = quota.key("tls")
    assert.is_string(q:reserve({ k }, 1700000000))
    assert.equal(1, (q:usage(k, 1700000000)))
    q:close()
  end)

  it("passes the store contracts over cosockets with TLS inside nginx (sslhandshake, verified)",
     function()
    local ngx_srv = openresty.start{ conf = openresty.config{
      workers = 1,
      http = "    lua_socket_log_errors off;\n    lua_ssl_trusted_certificate " .. dir ..
             "/cert.pem;",
      server = [[
        location = /redis/conformance { content_by_lua_block { require("redis_runner").conformance() } }
      ]],
    } }
    local u = ("rediss://127.0.0.1:" .. tls_port .. "/3"):gsub("[^%w]", function(c)
      return string.format("%%%02X", c:byte())
    end)
    local status, body = ngx_srv:request("GET", "/redis/conformance?url=" .. u, nil, nil, 60)
    local log = ngx_srv:error_log()
    ngx_srv:stop()
    assert.equal(200, status, log)
    for name, at_least in pairs{ quota_redis = 27, dedupe_redis = 9 } do
      local r = body.suites[name]
      local msgs = {}
      for _, f in ipairs(r.failures) do msgs[#msgs + 1] = f.name .. "\n" .. f.error end
      assert.equal(0, r.failed, table.concat(msgs, "\n\n"))
      assert.is_true(r.passed >= at_least, name .. ": only " .. r.passed .. " ran")
    end
  end)

  it("refuses a certificate it cannot verify, and plain text on a TLS port", function()
    local q, err = quota.redis{ url = "rediss://127.0.0.1:" .. tls_port .. "/0",
                                namespace = "truv:tls-x", timeout_ms = 2000 }
    assert.is_nil(q)
    assert.equal("internal", err.kind)
    assert.equal("store_unavailable", err.code)
    assert.matches("certificate", err.message)
    local p, perr = quota.redis{ url = "redis://127.0.0.1:" .. tls_port .. "/0",
                                 namespace = "truv:tls-y", timeout_ms = 500,
                                 connect_timeout_ms = 500 }
    assert.is_nil(p)
    assert.equal("internal", perr.kind)
  end)
end)
