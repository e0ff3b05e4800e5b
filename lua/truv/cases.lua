--- Reading the cases of a renewal batch from CSV or JSON, as the sandbox's
-- --cases-out writes them and as an agency would export them.
--
--   local cases, problems = require("truv.cases").read(path)
--   cases    = { { case_id =, order_id =, product =, employers = { ids }, financial_accounts = { ids },
--                  first_name =, last_name =, email =, phone =, order_number =, line = N,
--                  extra = { other columns } }, ... }
--   problems = { { line = N, case_id = <if known>, message = "..." }, ... }
--
-- A bad row never stops the reading: it is reported with its line (for
-- JSON, its position in the list) and left out. Required: case_id,
-- order_id, product (income, employment, assets, insurance, transactions).
-- employers / financial_accounts list connection ids separated by ';' or
-- '|' (CSV) or as arrays of ids or of { id = } (JSON); empty means every
-- connection of the order.
local core = require "truv.core"

local type, ipairs, pairs, tostring = type, ipairs, pairs, tostring
local format, lower = string.format, string.lower
local byte, find, sub, concat = string.byte, string.find, string.sub, table.concat

local _M = {}

local PRODUCTS = { income = true, employment = true, assets = true, insurance = true,
                   transactions = true }
local KNOWN = { case_id = true, order_id = true, product = true, employers = true,
                financial_accounts = true, first_name = true, last_name = true, email = true,
                phone = true, order_number = true }
local ID_PATTERN = "^[%w_%-]+$"

--- Parses CSV text (RFC 4180: quoted fields, "" escapes, CRLF or LF, line
-- breaks inside quotes). Returns rows, each { fields..., line = N } where N
-- is the line the row starts on; or nil, message for an unterminated quote
-- or text after a closing quote. Unquoted runs are found with string.find,
-- so a large export parses at C speed rather than a character at a time.
function _M.parse_csv(text)
  local rows, row = {}, {}
  local i, n, line, row_line = 1, #text, 1, 1
  local function end_row()
    if not (#row == 1 and row[1] == "") then
      row.line = row_line
      rows[#rows + 1] = row
    end
    row = {}
    row_line = line
  end
  while true do
    local field
    if byte(text, i) == 34 then                       -- a quoted field
      local parts, j = {}, i + 1
      while true do
        local q = find(text, '"', j, true)
        if not q then return nil, format("line %d: a quoted field is never closed", row_line) end
        parts[#parts + 1] = sub(text, j, q - 1)
        if byte(text, q + 1) ~= 34 then
          i = q + 1
          break
        end
        parts[#parts + 1] = '"'
        j = q + 2
      end
      field = concat(parts)
      for _ in field:gmatch("\n") do line = line + 1 end
    else
      local d = find(text, "[,\r\n]", i)
      field = sub(text, i, (d or n + 1) - 1)
      i = d or n + 1
    end
    row[#row + 1] = field
    local c = byte(text, i)
    if c == 44 then                                     -- ,
      i = i + 1
    elseif c == 10 or c == 13 then                     -- LF, CR LF, CR
      i = i + ((c == 13 and byte(text, i + 1) == 10) and 2 or 1)
      line = line + 1
      end_row()
    elseif c == nil then
      end_row()
      return rows
    else
      return nil, format("line %d: text after a closing quote", line)
    end
  end
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function split_ids(v)
  local ids = {}
  if v == nil or v == "" or v == core.null then return ids end
  if type(v) == "table" then
    for _, e in ipairs(v) do
      local id = type(e) == "table" and e.id or e
      ids[#ids + 1] = type(id) == "string" and id or tostring(id)
    end
    return ids
  end
  for part in tostring(v):gmatch("[^;|]+") do
    local id = trim(part)
    if id ~= "" then ids[#ids + 1] = id end
  end
  return ids
end

local function as_string(v)
  if v == nil or v == core.null then return nil end
  if type(v) ~= "string" then v = tostring(v) end
  v = trim(v)
  return v ~= "" and v or nil
end

-- Checks and normalises one record (a table of column -> value).
local function normalise(rec, line)
  local c = { line = line, extra = {} }
  for k, v in pairs(rec) do
    local key = lower(trim(tostring(k)))
    if KNOWN[key] then c[key] = v else c.extra[key] = v end
  end
  c.case_id = as_string(c.case_id)
  c.order_id = as_string(c.order_id)
  c.product = c.product and lower(as_string(c.product) or "") or nil
  for _, k in ipairs{ "first_name", "last_name", "email", "phone", "order_number" } do
    c[k] = as_string(c[k])
  end
  c.employers = split_ids(c.employers)
  c.financial_accounts = split_ids(c.financial_accounts)
  local missing = {}
  for _, k in ipairs{ "case_id", "order_id", "product" } do
    if not c[k] or c[k] == "" then missing[#missing + 1] = k end
  end
  if #missing > 0 then return nil, "missing " .. table.concat(missing, ", ") end
  if not PRODUCTS[c.product] then return nil, format("unknown product '%s'", c.product) end
  if not c.order_id:match(ID_PATTERN) then return nil, "order_id is not an id" end
  for _, k in ipairs{ "employers", "financial_accounts" } do
    for _, id in ipairs(c[k]) do
      if not id:match(ID_PATTERN) then return nil, format("%s: '%s' is not an id", k, id) end
    end
    if #c[k] > 5 then return nil, format("%s: at most 5 per order", k) end
  end
  return c
end

local function collect(records)
  local cases, problems, seen = {}, {}, {}
  for _, r in ipairs(records) do
    local c, why = normalise(r.fields, r.line)
    if c and seen[c.case_id] then
      c, why = nil, format("duplicate case_id '%s' (first on line %d)", c.case_id, seen[c.case_id])
    end
    if c then
      seen[c.case_id] = r.line
      cases[#cases + 1] = c
    else
      local id = type(r.fields) == "table" and as_string(r.fields.case_id) or nil
      problems[#problems + 1] = { line = r.line, case_id = id, message = why }
    end
  end
  return cases, problems
end

function _M.from_csv(text)
  local rows, err = _M.parse_csv(text)
  if not rows then return nil, { { line = 0, message = err } } end
  if #rows == 0 then return {}, { { line = 1, message = "no header row" } } end
  local header = rows[1]
  local records, bad_width = {}, {}
  for i = 2, #rows do
    local row = rows[i]
    if #row ~= #header then
      bad_width[#bad_width + 1] = { line = row.line, message = format(
        "expected %d columns as in the header, got %d", #header, #row) }
    else
      local rec = {}
      for j, name in ipairs(header) do rec[name] = row[j] end
      records[#records + 1] = { line = row.line, fields = rec }
    end
  end
  local cases, problems = collect(records)
  for _, p in ipairs(bad_width) do problems[#problems + 1] = p end
  table.sort(problems, function(a, b) return a.line < b.line end)
  return cases, problems
end

function _M.from_json(text)
  local doc, err = core.decode(text, "table")
  if not doc then return nil, { { line = 0, message = "not valid JSON: " .. err.message } } end
  local list = doc.cases or doc
  if type(list) ~= "table" then
    return nil, { { line = 0, message = "expected a list of cases or { \"cases\": [...] }" } }
  end
  local records = {}
  for i, item in ipairs(list) do
    records[#records + 1] = { line = i, fields = type(item) == "table" and item or {} }
  end
  return collect(records)
end

--- Reads a file by extension (.csv or .json; anything else is sniffed).
function _M.read(path)
  local f, ferr = io.open(path, "rb")
  if not f then return nil, { { line = 0, message = ferr } } end
  local text = f:read("a")
  f:close()
  if path:match("%.json$") or (not path:match("%.csv$") and text:match("^%s*[%[{]")) then
    return _M.from_json(text)
  end
  return _M.from_csv(text)
end

return _M
