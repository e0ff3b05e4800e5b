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
end)

describe("redaction", function()
  it("removes secrets and SSN-shaped numbers from any text", function()
    local core = require "truv.core"
    assert.equal("token [redacted], ssn [redacted] and [redacted], order 133982343355",
      core.redact("token tok-abcdef, ssn 991-91-9991 and 123456789, order 133982343355",
                  "tok-abcdef"))
  end)
end)
