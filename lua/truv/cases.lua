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
-- order_id (an id as Truv's rule has it: core.valid_id), product (one a
-- refresh takes: income, employment, assets, insurance, transactions, as
-- core.lists.products.refresh_order says). Column and key names are read
-- lowercase and trimmed ("Case_ID " is case_id). Fields are text; in JSON a
-- whole number below 2^53 is read as its digits, and any other value (a
-- list, an object, a boolean, a fraction, a larger number, which the
-- decoder may have rounded) is the row's problem, as is a JSON case naming
-- a field twice ("case_id" and "CASE_ID"). employers / financial_accounts
-- list connection ids separated by ';' or '|' (CSV) or as lists of ids or
-- of { id = } (JSON), at most core.lists.limits.connections (5) each;
-- empty means every connection of the order, so that an object or an item
-- without an id is the row's problem instead.
--
-- What spreadsheets export is read as it is: a UTF-8 byte order mark,
-- CRLF line ends, and ',' ';' or tab between fields (the one the header
-- line uses most). A file that is malformed as a whole is refused up front
-- instead, so that no case is lost or merged with another: read() answers
-- nil, { problem } where the problem has line 0 and its message says where
-- ("line 3: ...", and the file for read/each) and why:
--   - an empty file, a CSV without a header row, a header without one of
--     the required columns or with a column twice (a header of one column
--     is said to use none of the delimiters read);
--   - text that is not UTF-8: UTF-16 (a spreadsheet's "Unicode text"), or
--     bytes that are not UTF-8 (a "CSV" saved as Windows-1252 or Latin-1,
--     whose accented names would reach the report and the new orders
--     garbled): the line of the first such byte is named;
--   - JSON that is not a list of cases or an object with a "cases" list, or
--     that holds the escape \u0000 (decoded strings end at a NUL);
--   - a case_id with a control character (a NUL byte would cut it short, and
--     two cases would become one), under whichever spelling of its name;
--   - a case_id given twice.
local core = require "truv.core"

local type, ipairs, pairs, tostring, tonumber, next = type, ipairs, pairs, tostring, tonumber, next
local getmetatable = getmetatable
local format, lower, mtype = string.format, string.lower, math.type
local byte, find, sub, concat = string.byte, string.find, string.sub, table.concat

local BOM = "\239\187\191"
local REQUIRED = { "case_id", "order_id", "product" }

local _M = {}

-- What the core accepts: the products a refresh takes, ids, connections per order.
local PRODUCTS = {}
for _, p in ipairs(core.lists.products.refresh_order) do PRODUCTS[p] = true end
local MAX_CONNECTIONS = core.lists.limits.connections
local valid_id = core.valid_id
local KNOWN = { case_id = true, order_id = true, product = true, employers = true,
                financial_accounts = true, first_name = true, last_name = true, email = true,
                phone = true, order_number = true }
local EXACT = 2 ^ 53   -- JSON numbers are decoded as doubles: from here on, rounded
local TEXT_FIELDS = { "case_id", "order_id", "product", "first_name", "last_name", "email", "phone",
                      "order_number" }

--- An iterator over the rows of CSV text (RFC 4180: quoted fields, ""
-- escapes, CRLF or LF, line breaks inside quotes): each call returns the
-- next row, { fields..., line = N } where N is the line the row starts on,
-- then nil at the end; or nil, message for an unterminated quote or text
-- after a closing quote. Empty lines are skipped. Unquoted runs are found
-- with string.find, so a large export parses at C speed, one row at a time.
-- `delimiter` is ",", ";" or "\t" (default ",").
function _M.csv_rows(text, delimiter)
  local i, n, line = 1, #text, 1
  local failed = false
  local delim = byte(delimiter or ",")
  local stop = "[" .. (delimiter == "\t" and "\t" or (delimiter or ",")) .. "\r\n]"
  return function()
    while not failed and i <= n do
      local row, row_line = {}, line
      while true do
        local field
        if byte(text, i) == 34 then                     -- a quoted field
          local parts, j = {}, i + 1
          while true do
            local q = find(text, '"', j, true)
            if not q then
              failed = true
              return nil, format("line %d: a quoted field is never closed", row_line)
            end
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
          local d = find(text, stop, i)
          field = sub(text, i, (d or n + 1) - 1)
          i = d or n + 1
        end
        row[#row + 1] = field
        local c = byte(text, i)
        if c == delim then                                -- the delimiter
          i = i + 1
        elseif c == 10 or c == 13 or c == nil then        -- LF, CR LF, CR, the end
          if c then
            i = i + ((c == 13 and byte(text, i + 1) == 10) and 2 or 1)
            line = line + 1
          end
          break
        else
          failed = true
          return nil, format("line %d: text after a closing quote", line)
        end
      end
      if not (#row == 1 and row[1] == "") then
        row.line = row_line
        return row
      end
    end
    return nil
  end
end

--- All the rows of CSV text at once (see csv_rows), or nil, message.
function _M.parse_csv(text, delimiter)
  local rows, next_row = {}, _M.csv_rows(text, delimiter)
  while true do
    local row, err = next_row()
    if err then return nil, err end
    if not row then return rows end
    rows[#rows + 1] = row
  end
end

local function trim(s)
  return (s:gsub("^%s+", ""):gsub("%s+$", ""))
end

-- Whether t is a list (keys 1..n, nothing else); an empty table is one.
local function is_list(t)
  if type(t) ~= "table" then return false end
  local n = #t
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then return false end
  end
  return true
end

-- A field's text: a string trimmed, a whole number written out (JSON); nil
-- for nothing (null, empty, blanks); false for what a case file cannot mean
-- as text (a list, an object, a boolean, a fraction), which tostring would
-- turn into "table: 0x..." or "true", and for a number from 2^53 on, which
-- may be another that the decoder rounded (2^53 + 1 is read as 2^53).
local function as_text(v)
  if v == nil or v == core.null then return nil end
  if type(v) == "string" then
    v = trim(v)
    return v ~= "" and v or nil
  end
  if mtype(v) == "integer" and v < EXACT and v > -EXACT then return tostring(v) end
  return false
end

-- What a value that is not text is, for a message. An empty JSON list
-- decodes to an empty table marked { __jsontype = "array" }, an empty object
-- to a bare one.
local function kind_of(v)
  if type(v) == "table" then
    if next(v) == nil then
      local mt = getmetatable(v)
      return mt and mt.__jsontype == "array" and "a list" or "an object"
    end
    return is_list(v) and "a list" or "an object"
  end
  if type(v) == "number" then
    if v >= EXACT or v <= -EXACT then
      return format("a number too large to be read exactly (read as %s): write it as text",
                    tostring(v))
    end
    return "a number that is not whole (" .. tostring(v) .. ")"
  end
  return "a " .. type(v)
end

-- The ids of employers / financial_accounts: text separated by ';' or '|'
-- (CSV), or a list of ids or of { id = } objects (JSON); or nil, why. An
-- object or an item without an id is an error, never "no connections named"
-- (which means every connection of the order).
local function split_ids(key, v)
  local ids = {}
  if type(v) == "table" then
    if not is_list(v) then return nil, format("%s must be a list of ids, got an object", key) end
    for i, e in ipairs(v) do
      local id = as_text(type(e) == "table" and e.id or e)
      if not id then return nil, format("%s: item %d has no id", key, i) end
      ids[#ids + 1] = id
    end
    return ids
  end
  local text = as_text(v)
  if text == false then return nil, format("%s must be a list of ids, got %s", key, kind_of(v)) end
  for part in (text or ""):gmatch("[^;|]+") do
    local id = trim(part)
    if id ~= "" then ids[#ids + 1] = id end
  end
  return ids
end

-- A record (a table of column or key -> value) with its names as the reader
-- knows them, lowercase and trimmed: the known fields, and the others under
-- extra; unnamed columns are left out. Or nil, why when two names are one
-- field (JSON: "case_id" and "CASE_ID"; such a CSV header is refused before),
-- since which of the two would win depends on the order of a hash table.
local function fold(rec)
  local c, named = { extra = {} }, {}
  for k, v in pairs(rec) do
    local name = tostring(k)
    local key = lower(trim(name))
    if key ~= "" then
      if named[key] then
        local a, b = named[key], name
        if b < a then a, b = b, a end
        return nil, format("the field '%s' is given twice (as '%s' and '%s')", key, a, b)
      end
      named[key] = name
      if KNOWN[key] then c[key] = v else c.extra[key] = v end
    end
  end
  return c
end

-- Checks and normalises one folded record.
local function normalise(c, line)
  c.line = line
  for _, k in ipairs(TEXT_FIELDS) do
    local v = as_text(c[k])
    if v == false then return nil, format("%s must be text, got %s", k, kind_of(c[k])) end
    c[k] = v
  end
  c.product = c.product and lower(c.product)
  local why
  for _, k in ipairs{ "employers", "financial_accounts" } do
    c[k], why = split_ids(k, c[k])
    if not c[k] then return nil, why end
  end
  local missing = {}
  for _, k in ipairs(REQUIRED) do
    if not c[k] then missing[#missing + 1] = k end
  end
  if #missing > 0 then return nil, "missing " .. concat(missing, ", ") end
  if not PRODUCTS[c.product] then return nil, format("unknown product '%s'", c.product) end
  if not valid_id(c.order_id) then return nil, "order_id is not an id" end
  for _, k in ipairs{ "employers", "financial_accounts" } do
    for _, id in ipairs(c[k]) do
      if not valid_id(id) then return nil, format("%s: '%s' is not an id", k, id) end
    end
    if #c[k] > MAX_CONNECTIONS then
      return nil, format("%s: at most %d per order", k, MAX_CONNECTIONS)
    end
  end
  return c
end

local function has_control(s)
  for i = 1, #s do
    local b = byte(s, i)
    if b < 32 or b == 127 then return true end
  end
  return false
end

-- A case id as it may be shown in a message: control bytes escaped.
local function shown_id(id)
  return (format("%q", id):gsub("\\\n", "\\n"))
end

-- A filter over records: checks each, and returns true, case or false,
-- problem per call (nil at the end). A record source returns fields, line;
-- or nil, line, why for a bad row; or nil, 0, why when the input is
-- refused as a whole (why says where). A case id with a control byte or
-- given twice refuses the input too: after such a problem, nothing more.
local function checked(next_record)
  local seen, done = {}, false
  local function refuse(line, why)
    done = true
    return false, { line = 0, message = format("line %d: %s", line, why) }
  end
  return function()
    if done then return nil end
    local fields, line, why = next_record()
    if fields == nil and why == nil then return nil end
    if why and line == 0 then
      done = true
      return false, { line = 0, message = why }
    end
    if why then return false, { line = line, message = why } end
    local rec, c
    rec, why = fold(fields)
    local id = rec and as_text(rec.case_id) or nil
    if id and has_control(id) then
      return refuse(line, format("case_id %s holds a control character (a NUL byte would "
                                 .. "cut it short and merge it with another case)", shown_id(id)))
    end
    if rec then c, why = normalise(rec, line) end
    if c and seen[c.case_id] then
      return refuse(line, format("case_id '%s' is given twice (first on line %d)", c.case_id,
                                 seen[c.case_id]))
    end
    if c then
      seen[c.case_id] = line
      return true, c
    end
    return false, { line = line, case_id = id, message = why }
  end
end

-- The delimiter of CSV text: whichever of ',' ';' and tab its first line
-- (the header) holds most often outside quotes; ',' when none.
local function sniff(text)
  local counts, quoted = { [","] = 0, [";"] = 0, ["\t"] = 0 }, false
  for i = 1, #text do
    local ch = sub(text, i, i)
    if ch == '"' then
      quoted = not quoted
    elseif not quoted then
      if ch == "\n" or ch == "\r" then break end
      if counts[ch] then counts[ch] = counts[ch] + 1 end
    end
  end
  local best = ","
  for _, d in ipairs{ ";", "\t" } do
    if counts[d] > counts[best] then best = d end
  end
  return best
end

local function strip_bom(text)
  if sub(text, 1, 3) == BOM then return sub(text, 4) end
  return text
end

-- The line of byte `at` of text.
local function line_of(text, at)
  local line = 1
  for _ in sub(text, 1, at):gmatch("\n") do line = line + 1 end
  return line
end

-- Why text (its BOM removed) cannot be read as UTF-8, or nil; `save_as`
-- says how to write it again.
local function encoding_problem(text, save_as)
  local head = sub(text, 1, 2)
  -- a BOM, or (without one) the NUL beside every ASCII character
  local _, nuls = sub(text, 1, 64):gsub("%z", "")
  if head == "\255\254" or head == "\254\255" or nuls >= 16 then
    return "line 1: the file is UTF-16 text (a spreadsheet's \"Unicode text\"), not UTF-8: "
           .. save_as
  end
  if not utf8 then return nil end            -- LuaJIT: not checked
  local ok, at = utf8.len(text)
  if ok then return nil end
  local line_start = 1
  for i = at - 1, 1, -1 do
    if byte(text, i) == 10 then line_start = i + 1 break end
  end
  return format("line %d, column %d: the byte 0x%02X is not UTF-8 text (the file may be "
                .. "Windows-1252 or Latin-1): %s", line_of(text, at), at - line_start + 1,
                byte(text, at), save_as)
end

-- The header's problem, or nil: a required column missing, a column twice.
local function header_problem(header)
  local names = {}
  for j, name in ipairs(header) do
    local key = lower(trim(name))
    if key ~= "" and names[key] then
      return format("the header names the column '%s' twice (columns %d and %d)", key,
                    names[key], j)
    end
    names[key] = j
  end
  local missing = {}
  for _, k in ipairs(REQUIRED) do
    if not names[k] then missing[#missing + 1] = k end
  end
  if #missing > 0 then
    return format("the header has no %s column%s (required: %s; found: %s)%s",
                  concat(missing, ", "), #missing > 1 and "s" or "", concat(REQUIRED, ", "),
                  concat(header, ", "), #header == 1 and find(header[1], "%p")
                  and "; its fields are not separated by ',' ';' or a tab" or "")
  end
end

--- An iterator over the cases of CSV text, one row at a time:
--   for ok, v in cases.each_csv(text) do
--     if ok then <v is a case> else <v is a problem: { line =, case_id =, message = }> end
--   end
-- A problem with line 0 means the text is refused (its message says where
-- and why) and is the last thing the iterator returns.
function _M.each_csv(text)
  text = strip_bom(text)
  local refused = encoding_problem(text, 'save it from the spreadsheet as "CSV UTF-8"')
  local rows = _M.csv_rows(text, sniff(text))
  local header, done = nil, false
  return checked(function()
    local row, err
    if refused and not done then
      done = true
      return nil, 0, refused
    end
    while not done do
      row, err = rows()
      if err then
        done = true
        return nil, 0, err
      end
      if not row then
        done = true
        if not header then
          return nil, 0, find(text, "%S") and "line 1: no header row" or "line 1: the file is empty"
        end
        return nil
      end
      if not header then
        header = row
        local why = header_problem(header)
        if why then
          done = true
          return nil, 0, format("line %d: %s", row.line, why)
        end
      elseif #row ~= #header then
        return nil, row.line, format("expected %d columns as in the header, got %d",
                                     #header, #row)
      else
        local rec = {}
        for j, name in ipairs(header) do rec[name] = row[j] end
        return rec, row.line
      end
    end
    return nil
  end)
end

-- Where JSON text holds the escape \u0000 (a run of backslashes of odd
-- length before u0000), or nil. The decoder's strings end at a NUL: "c\u0000a"
-- would be read as "c", and a key "case_id\u0000x" as "case_id".
local function nul_escape(text)
  local from = 1
  while true do
    local s, e = find(text, "\\+u0000", from)
    if not s then return nil end
    if (e - s - 4) % 2 == 1 then return s end
    from = e + 1
  end
end

--- The same over JSON text: a list of case objects, or { "cases": [...] }
-- (the sandbox's --cases-out). A case's "line" is its position in the list.
function _M.each_json(text)
  text = strip_bom(text)
  local doc, err = core.decode(text, "table")
  local list
  local refused = encoding_problem(text, "write it as UTF-8")
  local nul = doc ~= nil and nul_escape(text)
  if refused then
    list = nil
  elseif not find(text, "%S") then
    refused = "line 1: the file is empty"
  elseif doc == nil then   -- (the document `false` decodes to false)
    local at = tonumber(err.message:match("at byte (%d+)"))
    refused = format("line %d: %s", at and line_of(text, at) or 1, err.message)
  elseif nul then
    refused = format("line %d: a string holds \\u0000 (a NUL byte): its text would be cut short "
                     .. "there", line_of(text, nul))
  elseif find(text, "^%s*{") then
    list = doc.cases
    if not is_list(list) then
      refused = 'line 1: a JSON object of cases needs a "cases" list ({ "cases": [ ... ] })'
    end
  elseif is_list(doc) then
    list = doc
  else
    refused = 'line 1: expected a list of cases or { "cases": [ ... ] }'
  end
  local i, done = 0, false
  return checked(function()
    if done then return nil end
    if refused then
      done = true
      return nil, 0, refused
    end
    i = i + 1
    local item = list[i]
    if item == nil then
      done = true
      return nil
    end
    return type(item) == "table" and item or {}, i
  end)
end

--- The same over a Lua list of case tables (positions as lines).
function _M.each_list(list)
  if type(list) == "table" and next(list) == nil then return _M.each_json("[]") end
  return _M.each_json(core.encode(list))
end

--- An iterator over a file's cases, by extension (.csv or .json; anything
-- else is sniffed); a file that cannot be opened gives one problem, line 0.
function _M.each(path)
  local f, ferr = io.open(path, "rb")
  if not f then
    local given = false
    return function()
      if given then return nil end
      given = true
      return false, { line = 0, message = ferr }
    end
  end
  local text = f:read("a") or ""
  f:close()
  local iter
  -- each_csv and each_json take the byte order mark off themselves (once)
  if path:match("%.json$") or (not path:match("%.csv$") and strip_bom(text):match("^%s*[%[{]")) then
    iter = _M.each_json(text)
  else
    iter = _M.each_csv(text)
  end
  -- a refusal names the file
  return function()
    local ok, v = iter()
    if ok == false and v.line == 0 then v.message = path .. ": " .. v.message end
    return ok, v
  end
end

-- Collects an iterator's cases and problems (problems in line order);
-- nil, problems when the input could not be read at all.
local function collect(iter)
  local cases, problems = {}, {}
  for ok, v in iter do
    if ok then
      cases[#cases + 1] = v
    else
      if v.line == 0 then return nil, { v } end
      problems[#problems + 1] = v
    end
  end
  table.sort(problems, function(a, b) return a.line < b.line end)
  return cases, problems
end

function _M.from_csv(text) return collect(_M.each_csv(text)) end
function _M.from_json(text) return collect(_M.each_json(text)) end

--- Reads a whole file: cases, problems (see each for the formats).
function _M.read(path) return collect(_M.each(path)) end

return _M
