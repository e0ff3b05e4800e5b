-- truv-sandbox answers every error in Truv's shape.
local sandbox = require "spec.support.sandbox"

describe("sandbox error shapes", function()
  local sb, order_id

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "1", "--mix", "active=1" } }
    order_id = sb:cases()[1].order_id
  end)

  lazy_teardown(function()
    if sb then sb:shutdown() end
  end)

  local function auth_failed(status, body)
    assert.are.equal(401, status)
    assert.are.same({ error = { code = "authentication_failed",
      message = "Authentication credentials were not provided or are invalid." } }, body)
  end

  it("rejects a request without X-Access-Client-Id", function()
    auth_failed(sb:request("GET", "orders/" .. order_id .. "/", nil,
                           { ["X-Access-Client-Id"] = false }))
  end)

  it("rejects a request without X-Access-Secret", function()
    auth_failed(sb:request("GET", "orders/" .. order_id .. "/", nil,
                           { ["X-Access-Secret"] = false }))
  end)

  it("rejects a wrong secret and a wrong client id", function()
    auth_failed(sb:request("GET", "orders/" .. order_id .. "/", nil,
                           { ["X-Access-Secret"] = "sandbox-wrong" }))
    auth_failed(sb:request("GET", "orders/" .. order_id .. "/", nil,
                           { ["X-Access-Client-Id"] = "someone-else" }))
  end)

  it("checks credentials before the method", function()
    auth_failed(sb:request("PUT", "orders/" .. order_id .. "/", nil,
                           { ["X-Access-Secret"] = false }))
  end)

  it("answers 404 {detail: Not Found.} for an unknown order id", function()
    local status, body = sb:request("GET", "orders/" .. string.rep("ab", 16) .. "/")
    assert.are.equal(404, status)
    assert.are.same({ detail = "Not Found." }, body)
    status, body = sb:request("GET", "orders/not-an-id/")
    assert.are.equal(404, status)
    assert.are.same({ detail = "Not Found." }, body)
  end)

  it("matches ids exactly: 32 lowercase hex digits", function()
    local status = sb:request("GET", "orders/" .. order_id:upper() .. "/")
    assert.are.equal(404, status)
    status = sb:request("GET", "orders/" .. order_id .. "0/")
    assert.are.equal(404, status)
  end)

  it("ignores the body of a GET", function()
    local status, body = sb:request("GET", "orders/" .. order_id .. "/", "not json",
                                    { ["Content-Type"] = "text/plain" })
    assert.are.equal(200, status)
    assert.are.equal(order_id, body.id)
  end)

  -- Truv's own quickstarts GET refresh/tasks/{id} and links/{id}/{product}/report
  -- without the slash; Django's APPEND_SLASH answers them before any view runs
  it("redirects a path missing only its final slash (301, query kept), before authentication", function()
    local status, body, headers = sb:request("GET", "orders/" .. order_id .. "?a=b+c&flag", nil,
                                             { ["X-Access-Secret"] = false })
    assert.are.equal(301, status)
    assert.are.equal("/v1/orders/" .. order_id .. "/?a=b%20c&flag", headers["location"])
    assert.are.equal("0", headers["content-length"])
    assert.are.equal("", body.raw)
    assert.matches("^text/html", headers["content-type"])
    status, body = sb:request("GET", headers["location"])
    assert.are.equal(200, status)
    assert.are.equal(order_id, body.id)
    for _, req in ipairs({ { "POST", "orders" }, { "POST", "refresh/tasks" },
                           { "HEAD", "refresh/tasks/" .. order_id },
                           { "GET", "links/" .. order_id .. "/income/report" },
                           { "GET", "orders/" .. order_id .. "/events" } }) do
      status, _, headers = sb:request(req[1], req[2], req[1] == "POST" and {} or nil)
      assert.are.equal(301, status, req[2])
      assert.are.equal("/v1/" .. req[2] .. "/", headers["location"])
    end
  end)

  it("answers 404 for a path that is unknown with its final slash too", function()
    for _, path in ipairs({ "nope", "orders/" .. order_id .. "/refresh", "links/" .. order_id ..
                            "/pll/report", "users/" .. order_id .. "/reports" }) do
      local status, body = sb:request("GET", path)
      assert.are.equal(404, status, path)
      assert.are.same({ detail = "Not Found." }, body, path)
    end
  end)

  it("answers 404 for unknown paths", function()
    for _, path in ipairs({ "/v1/", "/v1/links/", "/v1/orders/" .. order_id .. "/refresh/",
                            "/", "/v2/orders/", "/_sandbox/nope" }) do
      local status, body = sb:request("GET", path)
      assert.are.equal(404, status, path)
      assert.are.same({ detail = "Not Found." }, body, path)
    end
  end)

  it("answers 405 with an Allow header for a wrong method", function()
    local status, body, headers = sb:request("PUT", "orders/" .. order_id .. "/", {})
    assert.are.equal(405, status)
    assert.are.same({ detail = 'Method "PUT" not allowed.' }, body)
    assert.are.equal("GET, POST, HEAD", headers["allow"])
    status, body, headers = sb:request("GET", "orders/")
    assert.are.equal(405, status)
    assert.are.same({ detail = 'Method "GET" not allowed.' }, body)
    assert.are.equal("POST", headers["allow"])
    local _
    status, _, headers = sb:request("DELETE", "refresh/tasks/")
    assert.are.equal(405, status)
    assert.are.equal("POST", headers["allow"])
    status, _, headers = sb:request("POST", "orders/" .. order_id .. "/events/", {})
    assert.are.equal(405, status)
    assert.are.equal("GET, HEAD", headers["allow"])
  end)

  it("answers 415 for a body that is not application/json", function()
    local status, body = sb:request("POST", "orders/", "products=income", {
      ["Content-Type"] = "application/x-www-form-urlencoded" })
    assert.are.equal(415, status)
    assert.are.same({ detail = 'Unsupported media type "application/x-www-form-urlencoded" in request.' },
                    body)
    status, body = sb:request("POST", "orders/", "{}", { ["Content-Type"] = false })
    assert.are.equal(415, status)
    assert.are.same({ detail = 'Unsupported media type "" in request.' }, body)
  end)

  it("accepts Content-Type parameters such as charset", function()
    local status, body = sb:request("POST", "orders/", { products = { "income" },
      first_name = "A", last_name = "B" }, { ["Content-Type"] = "application/json;charset=UTF-8" })
    assert.are.equal(201, status)
    assert.are.same({ "income" }, body.products)
  end)

  it("answers 400 incorrect_parameters for malformed JSON", function()
    local status, body = sb:request("POST", "orders/", '{"products": ["income"')
    assert.are.equal(400, status)
    assert.are.equal("incorrect_parameters", body.error.code)
    local p = body.error.extra["invalid-params"][1]
    assert.are.equal("non_field_errors", p.field)
    assert.matches("^JSON parse error", p.message)
    status, body = sb:request("POST", "orders/", '{"a":1} trailing')
    assert.are.equal(400, status)
    assert.matches("JSON parse error", body.error.extra["invalid-params"][1].message)
  end)

  it("answers 400 for a body that is not UTF-8", function()
    local status, body = sb:request("POST", "orders/", '{"first_name": "\xff\xfe"}')
    assert.are.equal(400, status)
    assert.matches("not valid UTF%-8", body.error.extra["invalid-params"][1].message)
  end)

  it("answers 400 when the body is not a JSON object", function()
    local status, body = sb:request("POST", "orders/", "[1, 2]")
    assert.are.equal(400, status)
    assert.are.equal("Invalid data. Expected a dictionary, but got list.",
                     body.error.extra["invalid-params"][1].message)
  end)

  it("answers 413 for a body over 1 MiB", function()
    local status, body = sb:request("POST", "orders/", '{"notes":"' .. string.rep("x", 1100000) .. '"}')
    assert.are.equal(413, status)
    assert.are.equal("Request body is too large.", body.detail)
  end)

  it("puts X-Request-Id (32 hex) and Content-Type: application/json on every answer", function()
    local seen = {}
    for _, req in ipairs({ { "GET", "orders/" .. order_id .. "/" }, { "GET", "nope/" },
                           { "PUT", "orders/" }, { "GET", "/_sandbox/clock" } }) do
      local status, _, headers = sb:request(req[1], req[2])
      assert.is_number(status)
      assert.matches("^%x+$", headers["x-request-id"])
      assert.are.equal(32, #headers["x-request-id"])
      assert.is_nil(seen[headers["x-request-id"]])
      seen[headers["x-request-id"]] = true
      assert.are.equal("application/json", headers["content-type"])
    end
  end)

  it("serves HEAD like GET without a body", function()
    local status, body, headers = sb:request("HEAD", "orders/" .. order_id .. "/")
    assert.are.equal(200, status)
    assert.are.equal("", body.raw)
    assert.is_true(tonumber(headers["content-length"]) > 1000)
  end)
end)

describe("--strict", function()
  it("answers 404 for a path without its final slash", function()
    local sb = sandbox.start{ args = { "--seed-cases", "1", "--mix", "active=1", "--strict" } }
    finally(function() sb:shutdown() end)
    local id = sb:cases()[1].order_id
    local status, body = sb:request("GET", "orders/" .. id)
    assert.are.equal(404, status)
    assert.are.same({ detail = "Not Found." }, body)
    assert.are.equal(404, (sb:request("POST", "refresh/tasks", {})))
  end)
end)

describe("sandbox rate limit", function()
  local sb

  lazy_setup(function()
    sb = sandbox.start{ args = { "--rate-limit", "20" } }
  end)

  lazy_teardown(function()
    if sb then sb:shutdown() end
  end)

  it("allows N requests a minute, then answers 429 throttled with Retry-After", function()
    for i = 1, 20 do
      local status = sb:request("GET", "refresh/tasks/" .. string.rep("0", 32) .. "/")
      assert.are.equal(404, status, "request " .. i)
    end
    local status, body, headers = sb:request("GET", "refresh/tasks/" .. string.rep("0", 32) .. "/")
    assert.are.equal(429, status)
    assert.are.equal("throttled", body.error.code)
    local n = tonumber(body.error.message:match(
      "^Request was throttled%. Expected available in (%d+) seconds?%.$"))
    assert.is_number(n)
    assert.is_true(n >= 1 and n <= 60)
    assert.are.equal(tostring(n), headers["retry-after"])
  end)

  it("does not count or limit /_sandbox/ calls, unauthenticated requests and slash redirects", function()
    for _ = 1, 30 do sb:now() end
    local status = sb:request("GET", "orders/" .. string.rep("0", 32) .. "/", nil,
                              { ["X-Access-Secret"] = false })
    assert.are.equal(401, status)
    -- the window is spent, yet the redirect comes before authentication and throttling
    status = sb:request("GET", "refresh/tasks/" .. string.rep("0", 32))
    assert.are.equal(301, status)
    local stats = sb:stats()
    assert.are.equal(20, stats.requests.by_endpoint["GET /v1/refresh/tasks/{id}/"]["404"])
    assert.is_true(stats.requests.by_endpoint["GET /v1/refresh/tasks/{id}/"]["429"] >= 1)
  end)

  it("can be switched off and back at run time", function()
    sb:config{ rate_limit = 0 }
    local status = sb:request("GET", "refresh/tasks/" .. string.rep("0", 32) .. "/")
    assert.are.equal(404, status)
    sb:config{ rate_limit = 1 }
    assert.are.equal(404, (sb:request("GET", "refresh/tasks/" .. string.rep("0", 32) .. "/")))
    assert.are.equal(429, (sb:request("GET", "refresh/tasks/" .. string.rep("0", 32) .. "/")))
  end)
end)

describe("sandbox default rate limit", function()
  it("is 300 requests per minute", function()
    local sb = sandbox.start{}
    finally(function() sb:shutdown() end)
    assert.are.equal(300, sb:config().rate_limit)
    local statuses = {}
    for _ = 1, 301 do
      local status = sb:request("GET", "nope/", nil, nil)
      statuses[#statuses + 1] = status
    end
    -- unknown paths are 404 before authentication: they do not count
    assert.are.equal(404, statuses[301])
    for i = 1, 300 do
      local status = sb:request("GET", "refresh/tasks/" .. string.rep("1", 32) .. "/")
      assert.are.equal(404, status, "request " .. i)
    end
    local status, _, headers = sb:request("GET", "refresh/tasks/" .. string.rep("1", 32) .. "/")
    assert.are.equal(429, status)
    assert.is_truthy(headers["retry-after"])
  end)
end)
