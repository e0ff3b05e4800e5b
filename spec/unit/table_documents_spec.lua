-- Documents as plain tables (the default under LuaJIT) keep an empty JSON
-- array an array: an order read that way converts back to JSON (for its
-- model, for a request) with [] where Truv sent [].
local core = require "truv.core"

describe("table documents", function()
  it("keep an empty array an array when converted back to JSON", function()
    local doc = core.decode('{"employers":[{"id":"e1"}],"financial_accounts":[],"extra":{}}',
                            "table")
    local json = core.encode(doc)
    assert.matches('"financial_accounts":%[%]', json)
    assert.matches('"extra":{}', json)
    assert.matches('"employers":%[{"id":"e1"}%]', json)
    assert.equal(0, #doc.financial_accounts)
    assert.is_nil(getmetatable(doc.extra))
    assert.is_nil(getmetatable(doc.employers))
  end)

  it("read as an order model with no financial accounts", function()
    local doc = core.decode('{"id":"o1","products":["income"],"employers":[],' ..
                            '"financial_accounts":[]}', "table")
    local model = assert(core.order_model(doc))
    assert.equal("o1", model.id)
    assert.equal(0, #model.connections)
  end)
end)
