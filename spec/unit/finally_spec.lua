-- The suite's cleanups: every finally(fn) a test registers runs, last first
-- (spec/support/finally.lua, loaded by every spec's helper), even when one
-- of them fails. busted alone keeps only the last one.
describe("finally, in the specs", function()
  local ran = {}
  it("registers several cleanups in one test", function()
    finally(function() ran[#ran + 1] = "server" end)
    finally(function() ran[#ran + 1] = "client" end)
  end)
  it("ran them all, the last registered first", function()
    assert.same({ "client", "server" }, ran)
  end)
end)
