-- --tls: the sandbox serves HTTPS with a test CA made at start.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"

describe("the sandbox over TLS", function()
  local sb
  lazy_setup(function()
    sb = sandbox.start{ tls = true, args = { "--seed-cases", "2", "--mix", "active=1" } }
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("writes its CA before serving and announces https", function()
    local ca = files.read(sb.ca_file)
    assert.matches("^%-%-%-%-%-BEGIN CERTIFICATE%-%-%-%-%-\n", ca)
    assert.matches("truv%-sandbox listening on https://127%.0%.0%.1:" .. sb.port .. "\n",
                   sb:stdout())
    assert.matches("^https://127%.0%.0%.1:%d+/v1/$", sb.base_url)
  end)

  it("answers the API and the control endpoints over verified TLS", function()
    local case = sb:cases()[1]
    local status, order = sb:request("GET", "orders/" .. case.order_id .. "/")
    assert.are.equal(200, status)
    assert.are.equal(case.order_id, order.id)
    assert.is_number(sb:advance(5))
  end)

  it("speaks no plain HTTP on its port", function()
    local got = sandbox.raw(sb.port, "GET /_sandbox/clock HTTP/1.1\r\nHost: x\r\n\r\n", 5)
    assert.is_nil(got:match("^HTTP/1%.1 %d%d%d"))
  end)

  it("is not trusted through another run's CA", function()
    local other = sandbox.start{ tls = true }
    local status, err = sandbox.http("127.0.0.1", sb.port, "GET", "/_sandbox/clock", {}, nil, 5,
                                     other.ca_file)
    other:shutdown()
    assert.is_nil(status)
    assert.matches("certificate", err)
  end)

  it("refuses --ca-out without --tls", function()
    local _, _, code = os.execute(sandbox.bin() .. " --ca-out /nonexistent/ca.pem >/dev/null 2>&1")
    assert.are.equal(2, code)
  end)

  it("exits 1 with the reason when it cannot write the CA", function()
    local _, _, code = os.execute(sandbox.bin() ..
                                  " --tls --ca-out /nonexistent/dir/ca.pem >/dev/null 2>&1")
    assert.are.equal(1, code)
  end)
end)
