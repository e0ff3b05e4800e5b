-- Truv's documents in Lua: the whole document, unknown fields kept, amounts
-- as strings, null as cjson.null, as a lazy view or as plain tables.
local truv = require "truv"
local cjson = require "cjson"

local function fixture(name)
  local f = assert(io.open((os.getenv("TRUV_FIXTURES") or "spec/fixtures") .. "/" .. name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local ORDER = fixture("order-example.json")

for _, mode in ipairs{ "view", "table" } do
  describe("a decoded order (" .. mode .. ")", function()
    local order
    before_each(function() order = assert(truv.decode(ORDER, mode)) end)

    it("keeps every field, known or not", function()
      assert.equal("39aa1486ccca4bc19cda071ffc1ba392", order.id)
      assert.equal("string", order.custom_field)
      assert.equal("floify", order.source)
      assert.equal(true, order.is_expired)
    end)

    it("keeps amounts as the strings Truv sends", function()
      local employment = order.employers[1].employments[1]
      assert.equal("70000.00", employment.income)
      assert.equal("11500.32", employment.statements[1].net_pay)
    end)

    it("gives arrays a length and ipairs", function()
      assert.equal(1, #order.employers)
      local ids = {}
      for i, e in ipairs(order.employers) do ids[i] = e.id end
      assert.same({ "ad9f14440d624ec3b0f66e81e44518c7" }, ids)
      assert.same({ "income" }, truv.totable(order.products))
    end)

    it("iterates objects with pairs", function()
      local keys = {}
      for k in pairs(order.employers[1].provider) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.same({ "id", "logo_url", "name" }, keys)
    end)

    it("converts to plain tables equal to cjson's decoding", function()
      local plain = truv.totable(order)
      assert.equal("table", type(plain))
      assert.same(cjson.decode(ORDER), plain)
    end)

    it("represents JSON null as cjson.null", function()
      local doc = assert(truv.decode('{"a":null,"b":[null]}', mode))
      assert.equal(cjson.null, doc.a)
      assert.equal(truv.null, doc.b[1])
      assert.is_nil(doc.missing)
    end)
  end)
end

describe("a document view", function()
  it("is read-only, with a way to a mutable copy", function()
    local order = assert(truv.decode(ORDER, "view"))
    assert.has_error(function() order.id = "x" end,
      "truv: documents are read-only (truv.totable() makes a mutable copy)")
    local copy = truv.totable(order)
    copy.id = "x"
    assert.equal("x", copy.id)
    assert.equal("39aa1486ccca4bc19cda071ffc1ba392", order.id)
  end)

  it("compares equal to another view of the same node", function()
    local order = assert(truv.decode(ORDER, "view"))
    assert.is_true(order.employers[1] == order.employers[1])
    assert.is_false(order.employers[1] == order.employers)
    assert.is_true(truv.isdocument(order))
    assert.is_false(truv.isdocument({}))
  end)

  it("outlives the document it came from", function()
    local employer = assert(truv.decode(ORDER, "view")).employers[1]
    collectgarbage()
    collectgarbage()
    assert.equal("Facebook Demo", employer.company_name)
  end)

  it("prints what it is", function()
    local order = assert(truv.decode(ORDER, "view"))
    assert.matches("^truv.document: object with %d+ fields$", tostring(order))
    assert.equal("truv.document: array of 1", tostring(order.employers))
  end)

  it("walks a long array in order without slowing down", function()
    local parts = {}
    for i = 1, 20000 do parts[i] = tostring(i) end
    local arr = assert(truv.decode("[" .. table.concat(parts, ",") .. "]"))
    local sum = 0
    for _, v in ipairs(arr) do sum = sum + v end
    assert.equal(20000 * 20001 / 2, sum)
    assert.equal(20000, arr[20000])
    assert.equal(1, arr[1])
    assert.is_nil(arr[0])
    assert.is_nil(arr[20001])
    assert.is_nil(arr["1"])
  end)
end)

describe("decoding bad input", function()
  it("returns a protocol error saying where", function()
    local doc, err = truv.decode('{"id": "abc", "employers": [')
    assert.is_nil(doc)
    assert.equal("protocol", err.kind)
    assert.equal("malformed_json", err.code)
    assert.matches("truncated", err.message)
    doc, err = truv.decode("<html>")
    assert.is_nil(doc)
    assert.matches("not valid JSON %(at byte 0 of 6%)", err.message)
  end)

  it("raises on a wrong argument type", function()
    assert.has_error(function() truv.decode(nil) end)
    assert.has_error(function() truv.decode("{}", "lazy") end)
  end)
end)

describe("encoding Lua values", function()
  it("writes arrays, objects, null and marked empty arrays", function()
    local out = cjson.decode(truv.encode{ a = { 1, 2 }, b = truv.null,
                                          c = setmetatable({}, { __jsontype = "array" }), d = {} })
    assert.same({ 1, 2 }, out.a)
    assert.equal(cjson.null, out.b)
    assert.equal("[]", truv.encode(setmetatable({}, { __jsontype = "array" })))
    assert.equal("{}", truv.encode({}))
  end)

  it("raises on what JSON cannot hold", function()
    assert.has_error(function() truv.encode{ f = print } end, "truv: a function cannot be sent as JSON")
    assert.has_error(function() truv.encode{ 1, 2, x = 3 } end)
    assert.has_error(function() truv.encode{ n = 0 / 0 } end,
      "truv: NaN or infinity cannot be sent as JSON")
    local cycle = {}
    cycle.self = cycle
    assert.has_error(function() truv.encode(cycle) end)
  end)

  it("writes keys in order when asked, the listed ones first: the same value, the same text", function()
    local v = { zeta = 1, alpha = { y = 2, b = { 3, 1 } }, event = "x", ts = "t" }
    assert.equal('{"alpha":{"b":[3,1],"y":2},"event":"x","ts":"t","zeta":1}', truv.encode(v, true))
    assert.equal('{"ts":"t","event":"x","alpha":{"b":[3,1],"y":2},"zeta":1}',
                 truv.encode(v, { "ts", "event", "case_id" }))
    assert.equal("[2,1]", truv.encode({ 2, 1 }, true))
    assert.has_error(function() truv.encode(v, "sorted") end)
  end)

  it("round-trips a view", function()
    local order = assert(truv.decode(ORDER))
    assert.same(cjson.decode(ORDER), cjson.decode(truv.encode(order)))
  end)
end)

describe("releasing a document", function()
  local core = require "truv.core"
  it("gives its memory back at once, and its views raise afterwards", function()
    local docs0, bytes0 = core.documents_alive()
    local order = assert(truv.decode(ORDER))
    local employer = order.employers[1]
    local docs1, bytes1 = core.documents_alive()
    assert.equal(docs0 + 1, docs1)
    assert.is_true(bytes1 > bytes0 + #ORDER)
    core.release(order)
    assert.equal(docs0, (core.documents_alive()))
    assert.has_error(function() return order.id end, "truv: this document was released")
    assert.has_error(function() return employer.id end, "truv: this document was released")
    assert.has_error(function() return truv.totable(order) end)
    assert.equal("truv.document: released", tostring(order))
    core.release(order)   -- twice: nothing
  end)
end)

describe("an order's model", function()
  local core = require "truv.core"
  it("is what the workflow reads, without keeping the document", function()
    local docs0 = core.documents_alive()
    local m = assert(truv.decode(ORDER, "model"))
    assert.equal(docs0, (core.documents_alive()))
    assert.equal("39aa1486ccca4bc19cda071ffc1ba392", m.id)
    assert.same({ "income" }, m.products)
    assert.equal(2, #m.connections)
    assert.same({ "employers", "ad9f14440d624ec3b0f66e81e44518c7", "Facebook Demo",
                  "e4100fccdae94691b4414c7306220c06", "133982343355" },
                { m.connections[1].kind, m.connections[1].id, m.connections[1].company_name,
                  m.connections[1].access_token, m.connections[1].suborder_number })
    assert.equal("financial_accounts", m.connections[2].kind)
    local _, err = truv.decode('{"no":"id"}', "model")
    assert.equal("protocol", err.kind)
    assert.equal("unexpected_shape", err.code)
  end)
end)

describe("a loop of small documents", function()
  local core = require "truv.core"
  -- Each view's arena is owed to the collector, small ones added up: a loop
  -- that drops what it reads keeps the Lua heap and the documents alive
  -- bounded, whatever the count (a step asked for each document under 4 KB
  -- grew Lua 5.4's heap by 85 bytes a document, 8.5 MB here).
  it("keeps the heap and the documents alive bounded", function()
    local small = '{"id":"6c5d1b2e","status":"pending","created_at":"2026-01-01T00:00:00Z"}'
    collectgarbage()
    local heap0 = collectgarbage("count")
    local most_alive, most_heap = 0, 0
    for i = 1, 100000 do
      local doc = truv.decode(small)
      assert(doc.status == "pending")
      if i % 1000 == 0 then
        local alive = core.documents_alive()
        if alive > most_alive then most_alive = alive end
        local heap = collectgarbage("count") - heap0
        if heap > most_heap then most_heap = heap end
      end
    end
    assert.is_true(most_alive < 5000, "documents alive: " .. most_alive)
    assert.is_true(most_heap < 3072, "heap growth (KB): " .. most_heap)
  end)
end)
