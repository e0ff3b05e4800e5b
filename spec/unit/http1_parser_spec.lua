-- core.http1_parser: the incremental HTTP/1.1 response parser that byte-pipe
-- transports (nginx cosockets) feed, classifying in C like libcurl's path.
local core = require "truv.core"
local errors = require "truv.errors"

local CONFIG = { client_id = "cid", secret = "sandbox-very-secret", base_url = "https://x.test/v1/" }

local ORDER = '{"id":"o1","products":["income"],"employers":[],"financial_accounts":[]}'
local RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Request-Id: rq-1\r\n" ..
                 "Transfer-Encoding: chunked\r\n\r\n" ..
                 string.format("%x;ext=1\r\n%s\r\n0\r\nX-Trailer: t\r\n\r\n", #ORDER, ORDER)

describe("core.http1_parser", function()
  local req = assert(core.build(CONFIG, "get_order", "o1"))

  it("parses an answer fed in pieces of any size and classifies it", function()
    for size = 1, #RESPONSE, 7 do
      local p = core.http1_parser()
      local done
      for i = 1, #RESPONSE, size do
        local err
        done, err = p:feed(RESPONSE:sub(i, i + size - 1))
        assert.is_not_nil(done, tostring(err))
        if i + size <= #RESPONSE then assert.is_false(done) end
      end
      assert.is_true(done)
      assert.is_true(p:done())
      assert.is_true(p:keepalive())
      assert.equal(#RESPONSE, p:received())
      local doc, meta = p:classify(req, 1800000000, "table")
      assert.equal("o1", doc.id)
      assert.equal(200, meta.status)
      assert.equal("rq-1", meta.request_id)
      local status, headers, body = p:response()
      assert.equal(200, status)
      assert.equal(ORDER, body)
      assert.is_nil(headers["X-Trailer"])
      p:close()
    end
  end)

  it("turns an error answer into the typed error, secrets redacted", function()
    local p = core.http1_parser()
    local body = '{"error":{"code":"authentication_failed","message":"bad sandbox-very-secret"}}'
    assert.is_true(p:feed("HTTP/1.1 401 Unauthorized\r\nContent-Length: " .. #body ..
                          "\r\n\r\n" .. body))
    local doc, err = p:classify(req, 1800000000)
    assert.is_nil(doc)
    assert.is_true(errors.is(err, "auth"))
    assert.is_nil(err.message:find("sandbox-very-secret", 1, true))
  end)

  it("reports the end of the connection inside an answer", function()
    local p = core.http1_parser()
    assert.is_false(p:feed("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{"))
    local ok, err = p:eof()
    assert.is_nil(ok)
    assert.equal("network", err.kind)
    assert.equal("truncated_body", err.code)
    assert.is_true(err.maybe_sent)
    p:reset()
    ok, err = p:eof()
    assert.is_nil(ok)
    assert.equal("reset", err.code)
    p:reset()
    assert.is_false(p:feed("HTTP/1.1 200 OK\r\n\r\n" .. ORDER))
    assert.is_true(p:eof())
    assert.is_true(p:done())
    assert.is_false(p:keepalive())   -- framed by the close
    assert.equal("o1", (p:classify(req, 0, "table")).id)
  end)

  it("refuses malformed and oversized answers", function()
    local p = core.http1_parser()
    local ok, err = p:feed("NOT HTTP\r\n\r\n")
    assert.is_nil(ok)
    assert.equal("network", err.kind)
    assert.matches("malformed HTTP response", err.message)
    p = core.http1_parser{ max_body = 10 }
    ok, err = p:feed("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n")
    assert.is_nil(ok)
    assert.equal("protocol", err.kind)
    assert.equal("body_too_large", err.code)
    p = core.http1_parser{ max_header_bytes = 64 }
    ok, err = p:feed("HTTP/1.1 200 OK\r\nX-Long: " .. string.rep("a", 100) .. "\r\n\r\n")
    assert.is_nil(ok)
    assert.equal("headers_too_large", err.code)
  end)

  it("is not reusable after bytes beyond the answer", function()
    local p = core.http1_parser()
    assert.is_true(p:feed("HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200"))
    assert.is_false(p:keepalive())
  end)

  it("raises on misuse", function()
    local p = core.http1_parser()
    assert.has_error(function() p:feed({}) end)
    assert.has_error(function() p:classify(req, 0) end)   -- not complete
    assert.has_error(function() core.http1_parser{ max_body = -1 } end)
    assert.has_error(function() core.http1_parser("x") end)
    p:close()
    assert.has_error(function() p:feed("x") end)
    assert.matches("closed", tostring(p))
  end)
end)
