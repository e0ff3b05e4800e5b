--- The checks of the fuzz_cases target (fuzz_cases.c beside this file).
-- The chunk returns check(text, path), which reads `text` through the real
-- reader three ways: as CSV text (each_csv), as JSON text (each_json), and
-- as the file `path`, which holds the same bytes and has no extension (read,
-- which sniffs the format). It raises when the reader breaks what cases.lua
-- promises:
--   - an accepted case lacks case_id, order_id or a known product, has an
--     order or connection id that is not an id, more than 5 connections of
--     a kind, or a case_id holding a control byte (a NUL included);
--   - two accepted cases of one reading share a case_id;
--   - a problem has no line or no message, a refusal (line 0) does not say
--     "line N: " (or "line N, column M: ") first, or anything follows a
--     refusal;
--   - read(path) agrees with neither reading of the same bytes (cases,
--     their ids, problems and messages alike), or its refusal does not name
--     the file. Reading the same bytes twice must give the same answer.
-- Any Lua error raised by the reader itself propagates, and the harness
-- aborts on it: the reader answers with cases, problems and refusals only.
local cases = require "truv.cases"

local format, concat, sort = string.format, table.concat, table.sort
local type, ipairs, tostring = type, ipairs, tostring
local mtype = math.type

local PRODUCTS = { income = true, employment = true, assets = true, insurance = true,
                   transactions = true }
local ID = "^[%w_%-]+$"
local CONTROL = "[\0-\31\127]"
local OPTIONAL = { "first_name", "last_name", "email", "phone", "order_number" }

local function fail(fmt, ...)
  error(format(fmt, ...), 0)
end

local function check_problem(what, p)
  if type(p) ~= "table" then fail("%s: a problem that is a %s", what, type(p)) end
  if mtype(p.line) ~= "integer" or p.line < 0 then
    fail("%s: a problem without a line (%s)", what, tostring(p.line))
  end
  if type(p.message) ~= "string" or p.message == "" then
    fail("%s: a problem on line %d without a message", what, p.line)
  end
  if p.case_id ~= nil and type(p.case_id) ~= "string" then
    fail("%s: a problem whose case_id is a %s", what, type(p.case_id))
  end
end

local function check_ids(what, c, key)
  local ids = c[key]
  if type(ids) ~= "table" then fail("%s: case %q: %s is a %s", what, c.case_id, key, type(ids)) end
  if #ids > 5 then fail("%s: case %q: %d %s", what, c.case_id, #ids, key) end
  for _, id in ipairs(ids) do
    if type(id) ~= "string" or not id:match(ID) then
      fail("%s: case %q: %s holds %q, not an id", what, c.case_id, key, tostring(id))
    end
  end
end

local function check_case(what, c, seen)
  if type(c) ~= "table" then fail("%s: an accepted case that is a %s", what, type(c)) end
  for _, k in ipairs{ "case_id", "order_id", "product" } do
    if type(c[k]) ~= "string" or c[k] == "" then
      fail("%s: a case accepted on line %s without %s", what, tostring(c.line), k)
    end
  end
  if mtype(c.line) ~= "integer" or c.line < 1 then
    fail("%s: case %q accepted without a line", what, c.case_id)
  end
  if c.case_id:find(CONTROL) then
    fail("%s: case %q accepted on line %d with a control byte in its id", what, c.case_id, c.line)
  end
  if seen[c.case_id] then
    fail("%s: case %q accepted twice, on lines %d and %d", what, c.case_id, seen[c.case_id],
         c.line)
  end
  seen[c.case_id] = c.line
  if not PRODUCTS[c.product] then fail("%s: case %q: product %q", what, c.case_id, c.product) end
  if not c.order_id:match(ID) then
    fail("%s: case %q: order_id %q is not an id", what, c.case_id, c.order_id)
  end
  check_ids(what, c, "employers")
  check_ids(what, c, "financial_accounts")
  for _, k in ipairs(OPTIONAL) do
    if c[k] ~= nil and (type(c[k]) ~= "string" or c[k] == "") then
      fail("%s: case %q: %s is %q", what, c.case_id, k, tostring(c[k]))
    end
  end
  if type(c.extra) ~= "table" then fail("%s: case %q without extra", what, c.case_id) end
end

-- What a reading gave, as text that two readings can be compared by:
-- the refusal's message, or each case and each problem in line order.
local function summary(list, problems)
  local out = {}
  for _, c in ipairs(list) do
    out[#out + 1] = format("case %d %q %q %q [%s] [%s]", c.line, c.case_id, c.order_id,
                           c.product, concat(c.employers, " "), concat(c.financial_accounts, " "))
  end
  local ps = {}
  for _, p in ipairs(problems) do ps[#ps + 1] = format("problem %d %q", p.line, p.message) end
  sort(ps)
  for _, p in ipairs(ps) do out[#out + 1] = p end
  return concat(out, "\n")
end

-- Drains an each_* iterator: its refusal message, or nil, its summary.
-- An iterator gives at most one thing per byte of text (a row or a list
-- item takes at least one), so more than that means it never ends.
local function drain(what, iter, size)
  local list, problems, seen, refusal = {}, {}, {}, nil
  for _ = 1, size + 2 do
    local ok, v = iter()
    if ok == nil then
      if v ~= nil then fail("%s: the iterator ended with a %s", what, type(v)) end
      return refusal, not refusal and summary(list, problems) or nil
    end
    if refusal then fail("%s: something follows the refusal %q", what, refusal) end
    if ok == true then
      check_case(what, v, seen)
      list[#list + 1] = v
    elseif ok == false then
      check_problem(what, v)
      if v.line == 0 then
        refusal = v.message
        if not refusal:find("^line %d+[:,] ") then
          fail("%s: refusal %q says no line", what, refusal)
        end
      else
        problems[#problems + 1] = v
      end
    else
      fail("%s: the iterator gave %s", what, tostring(ok))
    end
  end
  fail("%s: the iterator does not end", what)
end

local function check(text, path)
  local csv_refusal, csv = drain("csv", cases.each_csv(text), #text)
  local json_refusal, json = drain("json", cases.each_json(text), #text)

  local list, problems = cases.read(path)
  if list == nil then
    if type(problems) ~= "table" or #problems ~= 1 then fail("file: refused without one problem") end
    local p = problems[1]
    check_problem("file", p)
    if p.line ~= 0 then fail("file: refused with a problem on line %d", p.line) end
    local prefix = path .. ": "
    if p.message:sub(1, #prefix) ~= prefix then fail("file: refusal %q names no file", p.message) end
    local why = p.message:sub(#prefix + 1)
    if why ~= csv_refusal and why ~= json_refusal then
      fail("file: refused (%q), unlike both readings of its text", why)
    end
    return
  end
  if type(list) ~= "table" or type(problems) ~= "table" then fail("file: read answered no lists") end
  local seen = {}
  for _, c in ipairs(list) do check_case("file", c, seen) end
  for _, p in ipairs(problems) do
    check_problem("file", p)
    if p.line == 0 then fail("file: a refusal among the problems: %q", p.message) end
  end
  local got = summary(list, problems)
  if got ~= csv and got ~= json then
    fail("file: read it as neither reading of its text:\n%s\n-- csv:\n%s\n-- json:\n%s", got,
         csv or csv_refusal, json or json_refusal)
  end
end

return check
