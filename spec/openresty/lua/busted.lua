-- A busted-compatible shim for running spec blocks inside nginx (LuaJIT),
-- where busted's own runner cannot run: describe, it, before_each,
-- after_each, finally and pending, recorded by describe/it and run by
-- run(). Assertions are luassert's own (the system's Lua 5.1 modules).
--
-- Only what spec/support/store_conformance.lua and the OpenResty specs'
-- in-nginx blocks use; a block's tests run in order, each between its
-- enclosing blocks' before_each (outer first) and after_each (inner first).
local M = {}

local blocks, tests, cleanups

function M.reset()
  blocks = { { name = nil, before = {}, after = {} } }
  tests = {}
  cleanups = nil
end
M.reset()

local function current() return blocks[#blocks] end

function M.describe(name, fn)
  local parent = current()
  local full = parent.name and (parent.name .. " " .. name) or name
  blocks[#blocks + 1] = { name = full, before = {}, after = {} }
  local ok, err = pcall(fn)
  blocks[#blocks] = nil
  if not ok then
    tests[#tests + 1] = { name = full .. " (describe)", fn = function() error(err, 0) end,
                          chain = {} }
  end
end

function M.it(name, fn)
  local chain = {}
  for i = 1, #blocks do chain[i] = blocks[i] end
  local b = current()
  tests[#tests + 1] = { name = (b.name and (b.name .. " ") or "") .. name, fn = fn, chain = chain }
end

function M.before_each(fn) local b = current(); b.before[#b.before + 1] = fn end
function M.after_each(fn) local b = current(); b.after[#b.after + 1] = fn end
function M.pending() end

--- Inside a running test: fn runs when the test ends, pass or fail.
function M.finally(fn)
  assert(cleanups, "finally() outside a test")
  cleanups[#cleanups + 1] = fn
end

local function run_one(t)
  local errs = {}
  local function try(fn)
    local ok, err = xpcall(fn, debug.traceback)
    if not ok then errs[#errs + 1] = tostring(err) end
    return ok
  end
  cleanups = {}
  local fine = true
  for _, b in ipairs(t.chain) do
    for _, f in ipairs(b.before) do fine = fine and try(f) end
  end
  if fine then try(t.fn) end
  for i = #cleanups, 1, -1 do try(cleanups[i]) end
  cleanups = nil
  for i = #t.chain, 1, -1 do
    for _, f in ipairs(t.chain[i].after) do try(f) end
  end
  return #errs == 0, table.concat(errs, "\n")
end

--- Runs every recorded test; returns { passed =, failed =, names = {...},
-- failures = { {name =, error =}, ... } } and forgets them.
function M.run()
  local res = { passed = 0, failed = 0, names = {}, failures = {} }
  for _, t in ipairs(tests) do
    local ok, err = run_one(t)
    res.names[#res.names + 1] = t.name
    if ok then
      res.passed = res.passed + 1
    else
      res.failed = res.failed + 1
      res.failures[#res.failures + 1] = { name = t.name, error = err }
    end
  end
  M.reset()
  return res
end

return M
