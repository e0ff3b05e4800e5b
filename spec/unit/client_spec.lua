-- The client without a network: construction, validation that sends
-- nothing, retries of safe calls, no blind retry of billed ones, the 429
-- cooldown, and logs free of secrets.
local truv = require "truv"
local fake = require "spec.support.fake_transport"

local SECRET = "sandbox-unit-secret-1234"

local function client_with(replies, extra)
  local t = fake.clock()
  local transport = fake.new(replies)
  local logs = {}
  local opts = {
    client_id = "cid", secret = SECRET, base_url = "http://sandbox.test/v1/",
    transport = transport, clock = t.clock, sleep = t.sleep,
    logger = function(level, event) logs[#logs + 1] = { level = level, event = event } end,
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(truv.new(opts)), transport, t, logs
end

local ORDER = '{"id":"o1","products":["income"],"refresh_order":null,"employers":[' ..
  '{"id":"e1","status":"completed","access_token":"tok-e1","created_at":"2027-01-10T00:00:00Z"}]}'

describe("truv.new", function()
  it("returns an invalid error when credentials are missing", function()
    local c, err = truv.new{ client_id = "x" }
    assert.is_nil(c)
    assert.equal("invalid", err.kind)
    assert.equal("secret", err.fields[1].field)
  end)

  it("raises on wrong option types", function()
    assert.has_error(function() truv.new("x") end)
    assert.has_error(function() truv.new{ client_id = 1, secret = "s" } end)
    assert.has_error(function() truv.new{ client_id = "a", secret = "s", timeout_ms = "1" } end)
    assert.has_error(function() truv.new{ client_id = "a", secret = "s", retry = { tries = 1 } } end)
  end)

  it("defaults to Truv's production URL", function()
    local c = assert(truv.new{ client_id = "a", secret = "s" })
    assert.equal("https://prod.truv.com/v1/", c.base_url)
    c:close()
  end)
end)

describe("a client method", function()
  it("returns the document and meta on success", function()
    local c, transport = client_with{ { status = 200, body = ORDER,
                                        headers = { ["X-Request-Id"] = "rq1" } } }
    local order, meta = c:get_order("o1")
    assert.equal("o1", order.id)
    assert.same({ status = 200, request_id = "rq1" }, meta)
    assert.same({ method = "GET", path = "orders/o1/", op = "get_order", billed = false },
                { method = transport.sent[1].method, path = transport.sent[1].path,
                  op = transport.sent[1].op, billed = transport.sent[1].billed })
  end)

  it("can keep only an order's model", function()
    local core = require "truv.core"
    local c = client_with{ { status = 200, body = ORDER } }
    local docs = core.documents_alive()
    local model, meta = c:get_order_model("o1")
    assert.equal(200, meta.status)
    assert.equal("o1", model.id)
    assert.equal("tok-e1", model.connections[1].access_token)
    assert.equal(docs, (core.documents_alive()))
  end)

  it("sends nothing when the request breaks a rule", function()
    local c, transport = client_with{}
    local res, err = c:create_order{ products = { "income" }, first_name = "A" }
    assert.is_nil(res)
    assert.equal("invalid", err.kind)
    assert.equal("last_name", err.fields[1].field)
    assert.equal("create_order", err.op)
    res, err = c:create_refresh_task{ access_token = "t", product_type = "salary" }
    assert.is_nil(res)
    assert.equal("product_type", err.fields[1].field)
    assert.equal(0, #transport.sent)
  end)

  it("raises on wrong argument types", function()
    local c = client_with{}
    assert.has_error(function() c:get_order(42) end,
      "bad argument #1 to 'get_order' (string expected, got number)")
    assert.has_error(function() c:refresh_order("o1", "income") end)
    assert.has_error(function() c:create_bridge_token("u1") end)
  end)
end)

describe("retries", function()
  it("retry a safe call after a 5xx and a network failure, with backoff", function()
    local c, transport, t = client_with{
      { status = 503, body = "{}" },
      { network = "reset", maybe_sent = true },
      { status = 200, body = ORDER },
    }
    local order = assert(c:get_order("o1"))
    assert.equal("o1", order.id)
    assert.equal(3, #transport.sent)
    assert.equal(2, #t.slept)
    assert.is_true(t.slept[1] <= 0.25 and t.slept[2] <= 0.5)
  end)

  it("honour Retry-After and Truv's 'available in N seconds'", function()
    local c, _, t = client_with{
      { status = 503, body = "{}", headers = { ["Retry-After"] = "7" } },
      { status = 429, body = '{"detail":"Request was throttled. Expected available in 3 seconds."}' },
      { status = 200, body = ORDER },
    }
    assert(c:get_order("o1"))
    assert.same({ 7, 3 }, t.slept)
  end)

  it("stop at the attempt limit and return the last error", function()
    local c, transport = client_with({
      { status = 500, body = "{}" }, { status = 500, body = "{}" }, { status = 500, body = "{}" },
    }, { retry = { attempts = 3 } })
    local res, err = c:get_order("o1")
    assert.is_nil(res)
    assert.equal("server", err.kind)
    assert.equal(3, #transport.sent)
  end)

  it("stop at the deadline", function()
    local c, transport = client_with({
      { status = 503, body = "{}", headers = { ["Retry-After"] = "120" } },
    }, { retry = { deadline_ms = 60000 } })
    local res, err = c:get_order("o1")
    assert.is_nil(res)
    assert.equal(1, #transport.sent)
    assert.equal(1800000120, err.retry_at)
  end)

  it("never retry what a retry cannot fix", function()
    local c, transport = client_with{ { status = 404, body = '{"detail":"Not Found."}' } }
    local res, err = c:get_order("o1")
    assert.is_nil(res)
    assert.equal("not_found", err.kind)
    assert.equal(1, #transport.sent)
  end)

  it("never re-send a billed refresh task after an ambiguous failure", function()
    local c, transport = client_with{ { network = "reset", maybe_sent = true } }
    local res, err = c:create_refresh_task{ access_token = "tok-1", product_type = "income" }
    assert.is_nil(res)
    assert.equal("network", err.kind)
    assert.is_true(err.maybe_sent)
    assert.equal(1, #transport.sent)
  end)
end)

describe("a 429", function()
  it("pauses every later call of the client until the cooldown ends", function()
    local c, _, t = client_with({
      { status = 429, body = "{}", headers = { ["Retry-After"] = "30" } },
      { status = 200, body = '{"task_id":"t1"}' },
    })
    local res, err = c:create_refresh_task{ access_token = "tok-1", product_type = "income" }
    assert.is_nil(res)
    assert.equal("throttled", err.kind)
    local start = t.now
    assert(c:create_refresh_task{ access_token = "tok-1", product_type = "income" })
    assert.equal(30, t.now - start)
  end)

  it("without a hint backs off 5, 15, 30, 60 seconds", function()
    local replies = {}
    for i = 1, 4 do replies[i] = { status = 429, body = "{}" } end
    local c, _, t = client_with(replies, { retry = { attempts = 1 } })
    for _ = 1, 4 do c:get_order("o1") end
    assert.same({ 5, 15, 30 }, t.slept)
  end)
end)

describe("logs", function()
  it("never contain the secret or an access token", function()
    local c, _, _, logs = client_with{
      { status = 400, body = '{"error":{"code":"incorrect_parameters","message":"tok-secret-9 is bad for '
                             .. SECRET .. '"}}' },
      { status = 500, body = "oops " .. SECRET },
    }
    c:create_refresh_task{ access_token = "tok-secret-9", product_type = "income" }
    c:create_refresh_task{ access_token = "tok-secret-9", product_type = "income" }
    assert.is_true(#logs >= 2)
    for _, l in ipairs(logs) do
      for _, v in pairs(l.event) do
        assert.is_nil(tostring(v):find(SECRET, 1, true))
        assert.is_nil(tostring(v):find("tok-secret-9", 1, true))
      end
    end
  end)
end)
