-- Verifying Truv's webhook signature from Lua: the raw body, the header in
-- any case, key rotation, every refusal, and errors that never leak a secret.
local webhook = require "truv.webhook"
local truv = require "truv"
local errors = require "truv.errors"
local luajit = require "spec.support.luajit"

local function fixture(name)
  local f = assert(io.open((os.getenv("TRUV_FIXTURES") or "spec/fixtures") .. "/" .. name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local SECRET = "sandbox-8f14e45fceea167a5a36dedd4bea2543"
local PREVIOUS = "sandbox-c9f0f895fb98ab9159f51fd0297e236d"
local PROD = "prod-3c59dc048e8850243be8079a5c74d079"
local BODY = fixture("webhooks/task-status-updated.json")
-- `openssl dgst -sha256 -hmac $SECRET -r spec/fixtures/webhooks/task-status-updated.json`
local OPENSSL_SIG = "v1=415a4db244bbb2b67c0acd71444ab56feaca6cbba06436d13518989159820e79"

describe("webhook.sign", function()
  it("signs like openssl dgst -hmac", function()
    assert.equal(OPENSSL_SIG, webhook.sign(BODY, SECRET))
  end)

  it("signs RFC 4231 test case 2", function()
    assert.equal("v1=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                 webhook.sign("what do ya want for nothing?", "Jefe"))
  end)

  it("refuses an empty secret with nil, err", function()
    local sig, err = webhook.sign(BODY, "")
    assert.is_nil(sig)
    assert.equal("invalid", err.kind)
    assert.equal("no_secret", err.code)
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() webhook.sign(nil, SECRET) end)
    assert.has_error(function() webhook.sign(BODY, 42) end)
  end)
end)

describe("webhook.verify", function()
  it("accepts Truv's signature of the raw body", function()
    assert.is_true(webhook.verify(BODY, OPENSSL_SIG, SECRET))
  end)

  it("is reachable as truv.webhook", function()
    assert.equal(webhook.verify, truv.webhook.verify)
  end)

  it("refuses a body with any one byte changed", function()
    local refused = 0
    for i = 1, #BODY do
      local b = BODY:byte(i)
      local tampered = BODY:sub(1, i - 1) .. string.char((b + 1) % 256) .. BODY:sub(i + 1)
      local ok, err = webhook.verify(tampered, OPENSSL_SIG, SECRET)
      if ok == nil and err.code == "signature_mismatch" then refused = refused + 1 end
    end
    assert.equal(#BODY, refused)
  end)

  it("refuses a body with a byte added or removed", function()
    assert.is_nil(webhook.verify(BODY .. " ", OPENSSL_SIG, SECRET))
    assert.is_nil(webhook.verify(BODY:sub(1, -2), OPENSSL_SIG, SECRET))
    assert.is_nil(webhook.verify(BODY:gsub("%s", ""), OPENSSL_SIG, SECRET))   -- re-serialised
  end)

  it("accepts upper-case hex and blanks around the value", function()
    assert.is_true(webhook.verify(BODY, "v1=" .. OPENSSL_SIG:sub(4):upper(), SECRET))
    assert.is_true(webhook.verify(BODY, "  " .. OPENSSL_SIG .. "\t", SECRET))
  end)

  describe("given the request's headers", function()
    for _, name in ipairs{ "X-WEBHOOK-SIGN", "x-webhook-sign", "X-Webhook-Sign", "x-WeBhOoK-sIgN" } do
      it("finds " .. name, function()
        local headers = { ["Content-Type"] = "application/json", [name] = OPENSSL_SIG,
                          ["User-Agent"] = "Truv-Webhook-Service/2.0" }
        assert.is_true(webhook.verify(BODY, headers, SECRET))
      end)
    end

    it("uses the first value of a header given twice", function()
      local bad = "v1=" .. string.rep("0", 64)
      assert.is_true(webhook.verify(BODY, { ["x-webhook-sign"] = { OPENSSL_SIG, bad } }, SECRET))
      local ok, err = webhook.verify(BODY, { ["x-webhook-sign"] = { bad, OPENSSL_SIG } }, SECRET)
      assert.is_nil(ok)
      assert.equal("signature_mismatch", err.code)
    end)

    it("prefers the lower-case name when several spellings are present", function()
      local bad = "v1=" .. string.rep("0", 64)
      local headers = { ["x-webhook-sign"] = OPENSSL_SIG, ["X-WEBHOOK-SIGN"] = bad,
                        ["X-Webhook-Sign"] = bad }
      assert.is_true(webhook.verify(BODY, headers, SECRET))
    end)

    it("says the signature is missing when no header matches", function()
      local ok, err = webhook.verify(BODY, { ["X-Webhook-Signature"] = OPENSSL_SIG,
                                             ["x-webhook-sig"] = OPENSSL_SIG }, SECRET)
      assert.is_nil(ok)
      assert.equal("missing_signature", err.code)
    end)

    it("treats a header value that is not text as missing", function()
      local _, err = webhook.verify(BODY, { ["x-webhook-sign"] = {} }, SECRET)
      assert.equal("missing_signature", err.code)
      _, err = webhook.verify(BODY, { ["x-webhook-sign"] = true }, SECRET)
      assert.equal("missing_signature", err.code)
    end)
  end)

  describe("with several secrets (rotation)", function()
    it("accepts a body signed with any of them", function()
      for _, signer in ipairs{ PREVIOUS, SECRET, PROD } do
        local sig = webhook.sign(BODY, signer)
        assert.is_true(webhook.verify(BODY, sig, { PREVIOUS, SECRET, PROD }))
      end
    end)

    it("refuses a body signed with none of them", function()
      local ok, err = webhook.verify(BODY, OPENSSL_SIG, { PREVIOUS, PROD })
      assert.is_nil(ok)
      assert.equal("signature_mismatch", err.code)
    end)

    it("skips empty secrets", function()
      assert.is_true(webhook.verify(BODY, OPENSSL_SIG, { "", SECRET }))
    end)
  end)

  describe("with prepared keys", function()
    it("answers as the secrets would, delivery after delivery", function()
      local keys = assert(webhook.keys({ PREVIOUS, SECRET }))
      for _ = 1, 3 do
        assert.is_true(webhook.verify(BODY, OPENSSL_SIG, keys))
        local ok, err = webhook.verify(BODY .. " ", OPENSSL_SIG, keys)
        assert.is_nil(ok)
        assert.equal("signature_mismatch", err.code)
        assert.is_true(webhook.verify(BODY, { ["X-Webhook-Sign"] = OPENSSL_SIG }, keys))
        _, err = webhook.verify(BODY, "v1=00", keys)
        assert.equal("bad_hex", err.code)
      end
      assert.is_nil(webhook.verify(BODY, OPENSSL_SIG, assert(webhook.keys(PROD))))
    end)

    it("show how many secrets they hold, never the secrets", function()
      local keys = assert(webhook.keys({ PREVIOUS, "", SECRET }))
      assert.equal("truv.webhook.keys: 2 secrets", tostring(keys))
      assert.equal(false, getmetatable(keys))
    end)

    it("need a usable secret", function()
      local keys, err = webhook.keys({ "" })
      assert.is_nil(keys)
      assert.equal("no_secret", err.code)
      assert.has_error(function() webhook.keys(42) end)
      assert.has_error(function() webhook.verify(BODY, OPENSSL_SIG, io.stdout) end)
    end)
  end)

  describe("refusals", function()
    local cases = {
      { nil, "auth", "missing_signature" },
      { "", "auth", "missing_signature" },
      { "sha256=" .. OPENSSL_SIG:sub(4), "auth", "bad_prefix" },
      { OPENSSL_SIG:sub(4), "auth", "bad_prefix" },
      { "v1=xyz", "auth", "bad_hex" },
      { OPENSSL_SIG .. "00", "auth", "bad_hex" },
      { OPENSSL_SIG:sub(1, -2) .. "g", "auth", "bad_hex" },
      { webhook.sign(BODY, PROD), "auth", "signature_mismatch" },
    }
    for _, c in ipairs(cases) do
      it("answers " .. c[3] .. " for " .. string.format("%q", tostring(c[1])):sub(1, 24), function()
        local ok, err = webhook.verify(BODY, c[1], SECRET)
        assert.is_nil(ok)
        assert.is_true(errors.is(err))
        assert.equal(c[2], err.kind)
        assert.equal(c[3], err.code)
      end)
    end

    it("answers no_secret when no usable secret is given", function()
      for _, secrets in ipairs{ "", {}, { "" } } do
        local ok, err = webhook.verify(BODY, OPENSSL_SIG, secrets)
        assert.is_nil(ok)
        assert.equal("invalid", err.kind)
        assert.equal("no_secret", err.code)
      end
    end)

    it("never shows a secret or a signature in an error", function()
      local headers = { nil, "x", "v1=", "v1=abcd", OPENSSL_SIG, webhook.sign(BODY, PROD),
                        { ["X-WEBHOOK-SIGN"] = OPENSSL_SIG } }
      for i = 1, 7 do
        local _, err = webhook.verify(BODY .. "!", headers[i], { PREVIOUS, PROD })
        local text = tostring(err)
        assert.is_truthy(text:find("truv: auth", 1, true))
        for _, s in ipairs{ PREVIOUS, PROD, SECRET, "c9f0f895", "3c59dc04", OPENSSL_SIG:sub(4),
                            OPENSSL_SIG:sub(20, 40), webhook.sign(BODY .. "!", PROD):sub(4, 30) } do
          assert.is_nil(text:find(s, 1, true))
        end
      end
    end)
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() webhook.verify(nil, OPENSSL_SIG, SECRET) end)
    assert.has_error(function() webhook.verify(BODY, 42, SECRET) end)
    assert.has_error(function() webhook.verify(BODY, OPENSSL_SIG, nil) end)
    assert.has_error(function() webhook.verify(BODY, OPENSSL_SIG, 42) end)
    assert.has_error(function() webhook.verify(BODY, OPENSSL_SIG, { SECRET, 42 }) end)
  end)
end)

describe("truv.core under LuaJIT", function()
  it("verifies and parses the same way", function()
    local build = luajit.build()
    local src = os.getenv("TRUV_SOURCE_DIR") or "."
    assert.equal("ok\n", luajit.run(build, src .. "/spec/webhook/luajit_check.lua"))
  end)
end)
