-- Reading Truv's webhook events from Lua: every kind, the fields the
-- workflow routes on, the whole document, and bodies that are not events.
local webhook = require "truv.webhook"
local truv = require "truv"
local errors = require "truv.errors"

local function fixture(name)
  local f = assert(io.open((os.getenv("TRUV_FIXTURES") or "spec/fixtures") .. "/" .. name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local KINDS = {
  ["order-created"] = "order-created",
  ["order-status-updated"] = "order-status-updated",
  ["order-refresh-failed"] = "order-refresh-failed",
  ["order-finalized"] = "order-finalized",
  ["task-status-updated"] = "task-status-updated",
  ["link-connected"] = "link-connected",
  ["link-disconnected"] = "link-disconnected",
  ["link-deleted"] = "link-deleted",
  ["certification-completed"] = "certification-completed",
  ["employment-updated"] = "data",
  ["statements-created"] = "data",
  ["unknown-event"] = "unknown",
}

for _, mode in ipairs{ "view", "table" } do
  describe("webhook.parse (" .. mode .. ")", function()
    for name, category in pairs(KINDS) do
      it("reads " .. name, function()
        local ev = assert(webhook.parse(fixture("webhooks/" .. name .. ".json"), mode))
        local expected_type = name == "unknown-event" and "payroll-widget-opened" or name
        assert.equal(expected_type, ev.kind)
        assert.equal(expected_type, ev.type)
        assert.equal(expected_type, ev.event_type)
        assert.equal(category, ev.category)
        assert.equal(32, #ev.webhook_id)
        assert.equal("99dd17074ac94aa9ace2621d657c7610", ev.user_id)
        assert.is_true(ev.updated_at > 1700000000)
        assert.equal(ev.webhook_id, ev.document.webhook_id)
      end)
    end

    it("gives a task event's ids, status and times", function()
      local ev = assert(webhook.parse(fixture("webhooks/task-status-updated.json"), mode))
      assert.equal("c4e6a8b0d2f14e3c9a7b5d3f1e0c2a46", ev.task_id)
      assert.equal("24d7e80942ce4ad58a93f70ce4115f5c", ev.link_id)
      assert.equal("income", ev.product)
      assert.equal("payroll", ev.data_source)
      assert.equal("ad9f14440d624ec3b0f66e81e44518c7", ev.tracking_info)
      assert.equal("done", ev.status)
      assert.near(1709691058.761230, ev.updated_at, 1e-6)
      assert.equal("2024-03-06T02:10:58.761230Z", ev.updated_at_iso)
      assert.near(1709691058.904417, ev.event_created_at, 1e-6)
      assert.equal("2024-03-06T02:10:58.904417Z", ev.event_created_at_iso)
      assert.is_nil(ev.template_id)
      assert.equal(truv.null, ev.document.template_id)   -- null kept in the document
    end)

    it("gives an order event's order, suborder and status", function()
      local ev = assert(webhook.parse(fixture("webhooks/order-refresh-failed.json"), mode))
      assert.equal("5e0a7c2b9d1f4e3a8c6b0d2f4a6c8e10", ev.order_id)
      assert.equal("1534332", ev.order_number)
      assert.equal("0f3b5d7e9a1c4b2d8e6f0a2c4e6b8d13", ev.employer_id)
      assert.equal("login_error", ev.status)
    end)

    it("keeps fields it does not know in the document", function()
      local ev = assert(webhook.parse(fixture("webhooks/unknown-event.json"), mode))
      assert.equal("w-77f0", ev.document.widget.session_id)
      assert.equal(2, ev.document.widget.step)
      local ev2 = assert(webhook.parse(fixture("webhooks/statements-created.json"), mode))
      assert.equal(12, ev2.document.objects_count)
    end)

    it("falls back from updated_at to event_created_at, then to 0", function()
      local ev = assert(webhook.parse('{"webhook_id":"w","event_type":"link-deleted",' ..
                                      '"event_created_at":"2024-03-06T02:10:58Z"}', mode))
      assert.equal(1709691058, ev.updated_at)
      assert.is_nil(ev.updated_at_iso)
      ev = assert(webhook.parse('{"webhook_id":"w","event_type":"link-deleted",' ..
                                '"updated_at":"not a time"}', mode))
      assert.equal(0, ev.updated_at)
      assert.equal("not a time", ev.updated_at_iso)
      assert.equal(0, ev.event_created_at)
    end)

    it("keeps long ids whole", function()
      local id = string.rep("f", 5000)
      local ev = assert(webhook.parse('{"webhook_id":"' .. id .. '","event_type":"x","task_id":"' ..
                                      id .. '"}', mode))
      assert.equal(id, ev.webhook_id)
      assert.equal(id, ev.task_id)
    end)
  end)
end

describe("webhook.parse refusals", function()
  local cases = {
    { "", "malformed_json" },
    { "{", "malformed_json" },
    { "<html>502 Bad Gateway</html>", "malformed_json" },
    { '{"webhook_id":"w","event_type":"task-status-up', "malformed_json" },
    { "[]", "unexpected_shape" },
    { "null", "unexpected_shape" },
    { '{"event_type":"order-created"}', "missing_webhook_id" },
    { '{"webhook_id":null,"event_type":"order-created"}', "missing_webhook_id" },
    { '{"webhook_id":"w"}', "missing_event_type" },
  }
  for _, c in ipairs(cases) do
    it(c[2] .. " for " .. string.format("%q", c[1]):sub(1, 30), function()
      local ev, err = webhook.parse(c[1])
      assert.is_nil(ev)
      assert.is_true(errors.is(err, "protocol"))
      assert.equal(c[2], err.code)
      assert.is_truthy(tostring(err):find("webhook", 1, true))
    end)
  end

  it("says a truncated body looks truncated", function()
    local body = fixture("webhooks/order-created.json")
    local _, err = webhook.parse(body:sub(1, 100))
    assert.equal("malformed_json", err.code)
    assert.is_truthy(err.message:find("truncated", 1, true))
  end)

  it("raises on wrong argument types", function()
    assert.has_error(function() webhook.parse(nil) end)
    assert.has_error(function() webhook.parse({}) end)
    assert.has_error(function() webhook.parse("{}", "tables") end)
  end)
end)

describe("a parsed event", function()
  it("routes with truv.route", function()
    local ev = assert(webhook.parse(fixture("webhooks/order-refresh-failed.json")))
    assert.equal("reverify", truv.route(ev).route)
    ev = assert(webhook.parse(fixture("webhooks/link-disconnected.json")))
    assert.equal("reverify", truv.route(ev).route)
  end)

  it("survives the garbage collector while its document is in use", function()
    local doc
    do
      doc = assert(webhook.parse(fixture("webhooks/employment-updated.json"))).document
    end
    collectgarbage()
    collectgarbage()
    assert.equal("6e8a0c2e4b6d4f8a9b1d3f5a7c9e1b04", doc.employment_id)
  end)
end)
