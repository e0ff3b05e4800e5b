-- Errors print well, carry their facts, and never a secret.
local truv = require "truv"
local errors = truv.errors

describe("an error", function()
  it("prints on one line with kind, status, code, message, retry time and request id", function()
    local e = errors.new("throttled", "throttled", "slow down",
                         { status = 429, retry_at = 1800000000, request_id = "r1", op = "get_order" })
    assert.equal("truv: throttled in get_order (HTTP 429, throttled): slow down; "
                 .. "retry at 2027-01-15T08:00:00Z [request r1]", tostring(e))
  end)

  it("says whether a failed request may have reached Truv", function()
    local e = errors.new("network", "reset", "connection reset", { maybe_sent = true })
    assert.matches("may have reached Truv", tostring(e))
    e = errors.new("network", "connect", "refused", { maybe_sent = false })
    assert.matches("did not reach Truv", tostring(e))
  end)

  it("lists invalid fields", function()
    local e = errors.invalid({ { field = "products", message = "is required" },
                               { field = "email", message = "is not a valid email address" } })
    assert.equal("truv: invalid (invalid_params): invalid parameters [products: is required; "
                 .. "email: is not a valid email address]", tostring(e))
    assert.is_true(errors.is(e))
    assert.is_true(errors.is(e, "invalid"))
    assert.is_false(errors.is(e, "auth"))
    assert.is_false(errors.is({ kind = "invalid" }))
  end)

  it("prints as the core prints its own errors: one formatter for both", function()
    local core = require "truv.core"
    -- the core refuses these fields; an error made in Lua with the same facts
    local _, c = core.build({ client_id = "c", secret = "s" }, "refresh_order", "bad id",
                            { products = { "pll" } })
    local fields = {}
    for i, f in ipairs(c.fields) do fields[i] = { field = f.field, message = f.message } end
    assert.equal(tostring(c), tostring(errors.invalid(fields)))
    -- what only one of them used to print: the fields the core had no room for
    assert.matches("; and 2 more%]$", tostring(errors.new("invalid", "invalid_params", "x",
      { fields = { { field = "a", message = "b" } }, fields_dropped = 2 })))
  end)

  it("has a kind of the core's list, and no other", function()
    assert.same(require("truv.core").lists.kinds, errors.KINDS)
    for _, kind in ipairs(errors.KINDS) do assert.equal(kind, errors.new(kind, nil, "x").kind) end
    assert.has_error(function() errors.new("timeout", nil, "x") end,
                     "bad argument #1 to 'new' (an error kind of truv.errors.KINDS expected, "
                     .. "got timeout)")
  end)
end)

describe("redaction", function()
  it("removes secrets and SSN-shaped numbers from any text", function()
    local core = require "truv.core"
    assert.equal("token [redacted], ssn [redacted] and [redacted], order 133982343355",
      core.redact("token tok-abcdef, ssn 991-91-9991 and 123456789, order 133982343355",
                  "tok-abcdef"))
  end)
end)

describe("an error made from Truv's answer", function()
  local core = require "truv.core"
  local SECRET = "Zq7vK2mX9pL4wR8tY3nB6cH1jF5gD0sA"
  local TOKEN = "tokQ8wE3rT6yU1iO4pA7sD2fG5hJ9kL0"
  local SSN = "987-65-4329"

  -- four bytes in a row of a canary, anywhere in s
  local function shows(s, canary)
    for i = 1, #canary - 3 do
      if s:find(canary:sub(i, i + 3), 1, true) then return true end
    end
    return false
  end

  local function every_text(err)
    local list = { tostring(err), err.message or "", err.code or "", err.request_id or "" }
    for _, f in ipairs(err.fields or {}) do
      list[#list + 1] = f.field
      list[#list + 1] = f.message
    end
    return list
  end

  local function assert_clean(err, where)
    for _, text in ipairs(every_text(err)) do
      for _, canary in ipairs{ SECRET, TOKEN, SSN } do
        assert(not shows(text, canary), where .. ": '" .. text .. "' shows part of " .. canary)
      end
    end
  end

  local function refresh_task_request()
    local c = assert(truv.new{ client_id = "cid", secret = SECRET, transport = {} })
    return assert(c:build("create_refresh_task", nil,
                          { access_token = TOKEN, product_type = "income" }))
  end

  local function invalid_params(field, message)
    return string.format('{"error":{"code":"invalid","message":"bad","extra":{"invalid-params":'
                         .. '[{"field":"%s","message":"%s"}]}}}', field, message)
  end

  it("redacts a token or an SSN inside an invalid-params field name", function()
    local req = refresh_task_request()
    local _, err = core.classify(req, 400, { ["X-Request-Id"] = "rq-" .. SSN },
                                 invalid_params("employers[" .. TOKEN .. "]", SSN .. " is wrong"),
                                 1800000000)
    assert.equal("invalid", err.kind)
    assert.equal("employers[[redacted]]", err.fields[1].field)
    assert.equal("[redacted] is wrong", err.fields[1].message)
    assert.equal("rq-[redacted]", err.request_id)
    assert_clean(err, "field name")
  end)

  it("leaves nothing of a secret that straddles the cut of a message or a field", function()
    local req = refresh_task_request()
    for _, canary in ipairs{ SECRET, TOKEN, SSN } do
      for at = 0, 270 do
        local text = string.rep("x", at) .. canary .. " tail"
        local _, err = core.classify(req, 400, {}, '{"error":{"code":"c","message":"' .. text
                                     .. '"}}', 1800000000)
        assert_clean(err, "message at " .. at)
        _, err = core.classify(req, 400, {}, invalid_params(text, text), 1800000000)
        assert_clean(err, "field at " .. at)
      end
    end
  end)

  it("made in Lua, redacts SSN-shaped runs in every text and in tostring", function()
    local e = errors.new("handler", "handler_error", "handler failed on " .. SSN,
                         { request_id = "r-" .. SSN })
    assert.equal("handler failed on [redacted]", e.message)
    assert_clean(e, "errors.new")
    e = errors.invalid({ { field = "ssn " .. SSN, message = "is " .. SSN } }, "bad " .. SSN)
    assert.same({ field = "ssn [redacted]", message = "is [redacted]" }, e.fields[1])
    assert_clean(e, "errors.invalid")
    e.message = "set later " .. SSN   -- a field written after the fact: the line is redacted
    assert.equal("truv: invalid (invalid_params): set later [redacted] "
                 .. "[ssn [redacted]: is [redacted]]", tostring(e))
  end)
end)
