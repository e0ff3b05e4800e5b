-- Case files: what spreadsheets export is read as it is (a byte order mark,
-- CRLF, ';' or tab delimiters), end to end through truv-renew against the
-- sandbox, the applicants' names intact into the report; a file malformed
-- as a whole (or not UTF-8) is refused up front with its line and the
-- reason, by truv.cases, by renewal.run (which then journals nothing) and
-- by truv-renew (exit 1, naming file and line): nothing is lost, no two
-- cases merge. A row whose fields are not text is reported with its line,
-- never read under an id the file does not hold.
local cases = require "truv.cases"
local renewal = require "truv.renewal"
local core = require "truv.core"
local files = require "spec.support.files"
local sandbox = require "spec.support.sandbox"

local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
local BIN = SRC .. "/bin/truv-renew"
local quote, write, read = files.quote, files.write, files.read

local HEADER = "case_id,order_id,product\n"

-- The refusal of `text` read as a file named `name`: the message, or an
-- assertion failure when it was accepted.
local function refusal(dir, name, text)
  local path = dir .. "/" .. name
  write(path, text)
  local list, problems = cases.read(path)
  assert.is_nil(list, name .. " was accepted")
  assert.equal(1, #problems)
  assert.equal(0, problems[1].line)
  return problems[1].message
end

describe("a case file", function()
  local dir
  setup(function() dir = files.tmpdir("truv-case-files") end)
  teardown(function() os.execute("rm -rf " .. quote(dir)) end)

  it("is read from a spreadsheet's export: BOM, CRLF, ';' or tab", function()
    for _, d in ipairs{ ",", ";", "\t" } do
      local text = "\239\187\191" .. table.concat({ "case_id", "order_id", "product", "employers" }, d)
                   .. "\r\n" .. table.concat({ "c1", "o1", "income", "e1;e2" }, d) .. "\r\n"
                   .. table.concat({ "c2", "o2", "employment", "" }, d) .. "\r\n"
      if d == ";" then   -- ';' also separates ids: such a field is quoted
        text = text:gsub("e1;e2", '"e1|e2"')
      end
      write(dir .. "/export.csv", text)
      local list, problems = cases.read(dir .. "/export.csv")
      assert.same({}, problems, "delimiter " .. d)
      assert.equal(2, #list)
      assert.equal("c1", list[1].case_id)
      assert.same({ "e1", "e2" }, list[1].employers)
      assert.equal("employment", list[2].product)
    end
    write(dir .. "/bom.json", '\239\187\191{"cases":[{"case_id":"c1","order_id":"o1","product":"income"}]}')
    local list = assert(cases.read(dir .. "/bom.json"))
    assert.equal("c1", list[1].case_id)
  end)

  it("is refused when empty", function()
    assert.matches("empty.csv: line 1: the file is empty", refusal(dir, "empty.csv", ""))
    assert.matches("line 1: the file is empty", refusal(dir, "blank.csv", "\239\187\191\r\n\r\n"))
    assert.matches("line 1: the file is empty", refusal(dir, "empty.json", ""))
  end)

  it("is refused when its header lacks a required column or names one twice", function()
    local msg = refusal(dir, "nocol.csv", "case_id,order,product\nc1,o1,income\n")
    assert.matches("nocol.csv: line 1: the header has no order_id column", msg)
    msg = refusal(dir, "noheader.csv", "c1,o1,income\nc2,o2,income\n")
    assert.matches("line 1: the header has no case_id, order_id, product columns", msg)
    msg = refusal(dir, "twice.csv", "case_id,order_id,product,CASE_ID\nc1,o1,income,c9\n")
    assert.matches("line 1: the header names the column 'case_id' twice", msg)
  end)

  it("is refused when JSON holds no list of cases", function()
    local msg = refusal(dir, "items.json", '{"items":[{"case_id":"c1","order_id":"o1","product":"income"}]}')
    assert.matches('items.json: line 1: a JSON object of cases needs a "cases" list', msg)
    assert.matches('"cases" list', refusal(dir, "map.json", '{"cases":{"c1":{"order_id":"o1"}}}'))
    assert.matches("expected a list of cases", refusal(dir, "string.json", '"c1"'))
    -- false decodes to a false value, not to nil and an error
    for _, scalar in ipairs{ "false\n", "true", "null", "0" } do
      assert.matches("line 1: expected a list of cases", refusal(dir, "scalar.json", scalar))
    end
    assert.matches("line 3: .*at byte", refusal(dir, "bad.json", '[\n{"case_id":"c1"},\n{,}]'))
  end)

  it("is refused when a case_id holds a NUL or another control byte", function()
    -- "c\0a" and "c\0b" would both be "c" in the journal: one case lost
    local msg = refusal(dir, "nul.csv", HEADER .. "c\0a,o1,income\nc\0b,o2,income\n")
    assert.matches('nul.csv: line 2: case_id "c\\0a" holds a control character', msg)
    msg = refusal(dir, "tab.json", '[{"case_id":"c1","order_id":"o1","product":"income"},'
                                   .. '{"case_id":"c\\u0001x","order_id":"o2","product":"income"}]')
    assert.matches("line 2: case_id .* holds a control character", msg)
  end)

  it("is refused when it is not UTF-8, naming the line", function()
    -- Excel's "Unicode text": UTF-16 with its byte order mark, or without
    local u16 = ("case_id\torder_id\tproduct\r\nc1\to1\tincome\r\n"):gsub(".", "%0\0")
    assert.matches('u16.txt: line 1: the file is UTF%-16 text .*save it from the spreadsheet as '
                   .. '"CSV UTF%-8"', refusal(dir, "u16.txt", "\255\254" .. u16))
    assert.matches("line 1: the file is UTF%-16 text", refusal(dir, "u16.csv", u16))
    -- a "CSV" saved as Windows-1252: an accented name on line 3
    local msg = refusal(dir, "cp1252.csv", "case_id;order_id;product;first_name\r\n"
                        .. "c1;o1;income;Ann\r\nc2;o2;income;Jos\233\r\n")
    assert.matches("cp1252.csv: line 3, column 17: the byte 0xE9 is not UTF%-8 text %(the file "
                   .. "may be Windows%-1252 or Latin%-1%)", msg)
    assert.matches("line 2, column", refusal(dir, "latin.json", '[\n{"case_id":"c\233"}]'))
    -- UTF-8 itself, a BOM before it, is read
    write(dir .. "/utf8.csv", "\239\187\191case_id;order_id;product;first_name\r\n"
                              .. "c1;o1;income;Jos\195\169\r\n")
    local list = assert(cases.read(dir .. "/utf8.csv"))
    assert.equal("Jos\195\169", list[1].first_name)
  end)

  it("is refused when its header uses a delimiter it does not read", function()
    local msg = refusal(dir, "pipes.csv", "case_id|order_id|product\nc1|o1|income\n")
    assert.matches("pipes.csv: line 1: the header has no case_id, order_id, product columns .*"
                   .. "its fields are not separated by ',' ';' or a tab", msg)
  end)

  it("is refused when a case_id holds a control byte under another spelling of its column", function()
    -- the column is found as " CASE_ID" too: so must the control byte be
    local msg = refusal(dir, "upper.csv", " CASE_ID,order_id,product\nc\1a,o1,income\n")
    assert.matches('line 2: case_id "c\\1a" holds a control character', msg)
    msg = refusal(dir, "upper.json", '[{"Case_ID ":"c\\u0000a","order_id":"o1","product":"income"}]')
    assert.matches("line 1: ", msg)
    msg = refusal(dir, "upper2.json", '[{"CASE_ID":"c\\u001fa","order_id":"o1","product":"income"}]')
    assert.matches('line 1: case_id "c\\31a" holds a control character', msg)
  end)

  it("is refused when JSON text holds a NUL (\\u0000): the decoded text would end there", function()
    -- "c\u0000a" would be read as "c", and a key "case_id\u0000x" as "case_id"
    local msg = refusal(dir, "nul.json", '[{"case_id":"c1","order_id":"o1","product":"income"},\n'
                                         .. '{"case_id":"c\\u0000a","order_id":"o2","product":"income"}]')
    assert.matches("nul.json: line 2: a string holds \\u0000", msg)
    msg = refusal(dir, "nulkey.json", '[{"case_id":"c1","case_id\\u0000x":"c2","order_id":"o1",'
                                      .. '"product":"income"}]')
    assert.matches("line 1: a string holds \\u0000", msg)
    -- an escaped backslash before u0000 is text, not a NUL
    write(dir .. "/slash.json", '[{"case_id":"c1","order_id":"o1","product":"income",'
                                .. '"note":"C:\\\\u0000"}]')
    local list = assert(cases.read(dir .. "/slash.json"))
    assert.equal(1, #list)
  end)

  it("reports a JSON field that is not text, and reads whole numbers as text", function()
    local list, problems = cases.from_json(table.concat({
      '[{"case_id":{},"order_id":"o1","product":"income"}',
      '{"case_id":["c2"],"order_id":"o2","product":"income"}',
      '{"case_id":true,"order_id":"o3","product":"income"}',
      '{"case_id":1.5,"order_id":"o4","product":"income"}',
      '{"case_id":"c5","order_id":"o5","product":"income","first_name":{"x":1}}',
      '{"case_id":9007199254740993,"order_id":"o6","product":"income"}',
      '{"case_id":42,"order_id":7,"product":"income"}]' }, ",\n"))
    assert.same({ "42" }, { list[1].case_id })
    assert.equal("7", list[1].order_id)
    assert.equal(6, #problems)
    for i, p in ipairs(problems) do assert.equal(i, p.line) end
    assert.equal("case_id must be text, got an object", problems[1].message)
    assert.equal("case_id must be text, got a list", problems[2].message)
    assert.equal("case_id must be text, got a boolean", problems[3].message)
    assert.equal("case_id must be text, got a number that is not whole (1.5)", problems[4].message)
    assert.equal("first_name must be text, got an object", problems[5].message)
    -- a double cannot hold ...993: the decoder gives 2^53, which is not the file's id
    assert.equal("case_id must be text, got a number too large to be read exactly (read as "
                 .. "9007199254740992): write it as text", problems[6].message)
    for _, p in ipairs(problems) do assert.not_matches("0x%x", p.message) end
  end)

  it("reports connections that are not a list of ids, never reads them as every connection", function()
    local list, problems = cases.from_json(table.concat({
      '[{"case_id":"c1","order_id":"o1","product":"income","employers":{"id":"e1"}}',
      '{"case_id":"c2","order_id":"o2","product":"income","employers":[{"name":"e2"}]}',
      '{"case_id":"c3","order_id":"o3","product":"income","financial_accounts":[true]}',
      '{"case_id":"c4","order_id":"o4","product":"income","employers":true}',
      '{"case_id":"c5","order_id":"o5","product":"income","employers":["e5",{"id":"e6"},7]}]' },
      ",\n"))
    assert.equal(1, #list)
    assert.same({ "e5", "e6", "7" }, list[1].employers)
    assert.equal("employers must be a list of ids, got an object", problems[1].message)
    assert.equal("employers: item 1 has no id", problems[2].message)
    assert.equal("financial_accounts: item 1 has no id", problems[3].message)
    assert.equal("employers must be a list of ids, got a boolean", problems[4].message)
  end)

  it("reports a JSON case that names a field twice in two spellings", function()
    -- which of the two would win depends on the order of a hash table
    local list, problems = cases.from_json('[{"case_id":"c1","CASE_ID":"c2","order_id":"o1",'
                                           .. '"product":"income"}]')
    assert.same({}, list)
    assert.equal("the field 'case_id' is given twice (as 'CASE_ID' and 'case_id')",
                 problems[1].message)
  end)

  it("is read the same from its file as from its text", function()
    -- a second byte order mark is not the first one again
    local text = "\239\187\191\239\187\191" .. HEADER .. "c1,o1,income\n"
    write(dir .. "/boms", text)
    local a, pa = cases.read(dir .. "/boms")
    local b, pb = cases.from_csv(text)
    assert.same(b, a)
    assert.equal(dir .. "/boms: " .. pb[1].message, pa[1].message)
  end)

  it("is refused when a case_id is given twice", function()
    local msg = refusal(dir, "dup.csv", HEADER .. "c1,o1,income\nc2,o2,income\nc1,o3,income\n")
    assert.matches("dup.csv: line 4: case_id 'c1' is given twice %(first on line 2%)", msg)
  end)

  it("still reports a bad row with its line and reads the rest", function()
    write(dir .. "/rows.csv", HEADER .. "c1,o1,income\nc2,,income\nc3,o3,payslips\nc4,o4,income\n")
    local list, problems = cases.read(dir .. "/rows.csv")
    assert.equal(2, #list)
    assert.same({ 3, 4 }, { problems[1].line, problems[2].line })
  end)

  it("holds a row to the rules the core applies to a refresh: product, ids, connections", function()
    local long = ("o"):rep(core.lists.limits.id_length)
    local six = "e1;e2;e3;e4;e5;e6"
    write(dir .. "/rules.csv", "case_id,order_id,product,employers\n"
          .. "c1," .. long .. ",income,\n"          -- the longest id Truv takes
          .. "c2," .. long .. "o,income,\n"         -- one longer
          .. "c3,o3,pll,\n"                         -- a product no refresh takes
          .. "c4,o4,income," .. six .. "\n"         -- six employers
          .. "c5,o5,assets,e1;e2\n")
    local list, problems = cases.read(dir .. "/rules.csv")
    assert.same({ "c1", "c5" }, { list[1].case_id, list[2].case_id })
    assert.same({ 3, 4, 5 }, { problems[1].line, problems[2].line, problems[3].line })
    assert.equal("order_id is not an id", problems[1].message)
    assert.equal("unknown product 'pll'", problems[2].message)
    assert.equal("employers: at most " .. core.lists.limits.connections .. " per order",
                 problems[3].message)
  end)

  it("refused, makes renewal.run journal nothing and return the reason", function()
    write(dir .. "/nul2.csv", HEADER .. "c\0a,o1,income\nc\0b,o2,income\n")
    local summary, err = renewal.run{
      cases = dir .. "/nul2.csv", journal = dir .. "/nul2.journal",
      client = { client_id = "cid", secret = "s", base_url = "http://127.0.0.1:1/v1/" },
    }
    assert.is_nil(summary)
    assert.equal("invalid", err.kind)
    assert.equal("cases", err.code)
    assert.matches("nul2.csv: line 2: case_id", err.message)
    local j = assert(core.journal_open(dir .. "/nul2.journal"))
    assert.same({}, j:counts())
    j:close()
  end)

  it("refused, makes truv-renew exit 1 naming the file and the line", function()
    write(dir .. "/dup2.csv", HEADER .. "c1,o1,income\nc1,o2,income\n")
    local cmd = string.format("TRUV_CLIENT_ID=cid TRUV_SECRET=s lua5.4 %s --journal %s "
                              .. "--base-url http://127.0.0.1:1/v1/ %s >%s 2>%s </dev/null",
                              quote(BIN), quote(dir .. "/dup2.journal"), quote(dir .. "/dup2.csv"),
                              quote(dir .. "/out"), quote(dir .. "/err"))
    local _, _, code = os.execute(cmd)
    local err = read(dir .. "/err")
    assert.equal(1, code, err)
    assert.matches("truv%-renew: cannot read the cases: .*dup2.csv: line 3: case_id 'c1' is "
                   .. "given twice", err)
  end)

  it("refused for its encoding, makes truv-renew exit 1 naming the file and the line",
     function()
    write(dir .. "/ansi.csv", HEADER .. "c1,o1,income\nc2,o2,income\nc\233,o3,income\n")
    local cmd = string.format("TRUV_CLIENT_ID=cid TRUV_SECRET=s lua5.4 %s --journal %s "
                              .. "--base-url http://127.0.0.1:1/v1/ %s >%s 2>%s </dev/null",
                              quote(BIN), quote(dir .. "/ansi.journal"), quote(dir .. "/ansi.csv"),
                              quote(dir .. "/out"), quote(dir .. "/err"))
    local _, _, code = os.execute(cmd)
    local err = read(dir .. "/err")
    assert.equal(1, code, err)
    assert.matches("truv%-renew: cannot read the cases: .*ansi.csv: line 4, column 2: the byte "
                   .. "0xE9 is not UTF%-8 text", err)
  end)

  it("cannot reach the journal with a NUL byte in its id", function()
    local j = assert(core.journal_open(dir .. "/keys.journal"))
    assert.has_error(function() j:put("c\0a", { state = "new" }) end)
    assert.has_error(function() j:get("c\0a") end)
    assert.has_error(function() j:delete("c\0a") end)
    assert.has_error(function() j:put("c1", { ["a\0b"] = 1 }) end)
    assert.same({}, j:counts())
    j:close()
  end)
end)

describe("truv-renew on a spreadsheet's export", function()
  local sb, dir, seeded

  lazy_setup(function()
    dir = files.tmpdir("truv-export")
    sb = sandbox.start{ args = { "--seed-cases", "30", "--rng-seed", "5", "--rate-limit", "0",
                                 "--realtime", "--time-scale", "50",
                                 "--cases-out", dir .. "/seeded.csv" } }
    seeded = assert(cases.read(dir .. "/seeded.csv"))
  end)

  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. quote(dir)) end
  end)

  -- The seeded cases as a spreadsheet saves them: a BOM, ';' between
  -- fields (quoted where a field holds one: the employers' ids), CRLF.
  local function export(rows, extra)
    local out = {}
    for _, row in ipairs(rows) do
      local fields = {}
      for i, f in ipairs(row) do
        fields[i] = f:find('[;"\r\n]') and ('"' .. f:gsub('"', '""') .. '"') or f
      end
      out[#out + 1] = table.concat(fields, ";")
    end
    return "\239\187\191" .. table.concat(out, "\r\n") .. "\r\n" .. (extra or "")
  end

  it("renews every case of it, the applicants' names intact", function()
    local rows = assert(cases.parse_csv(assert(read(dir .. "/seeded.csv"))))
    local ncols = #rows[1]
    -- one row a column short: reported with its line, the rest renewed
    write(dir .. "/export.csv", export(rows, "short-1;abc;income\r\n"))
    local cmd = string.format("TRUV_CLIENT_ID=%s TRUV_SECRET=%s lua5.4 %s --journal %s "
                              .. "--report %s --base-url %s --rate 0 --poll-interval 0.2 %s "
                              .. ">%s 2>%s </dev/null", quote(sb.client_id), quote(sb.secret),
                              quote(BIN), quote(dir .. "/export.journal"), quote(dir .. "/report"),
                              quote(sb.base_url), quote(dir .. "/export.csv"),
                              quote(dir .. "/out"), quote(dir .. "/err"))
    local _, _, code = os.execute(cmd)
    local err = read(dir .. "/err")
    assert.equal(0, code, err)
    assert.matches("bad input row at line 32: expected " .. ncols
                   .. " columns as in the header, got 3", err)
    local by_id = {}
    for _, c in ipairs(seeded) do by_id[c.case_id] = c end
    local j = assert(core.journal_open(dir .. "/export.journal"))
    local n, names = 0, {}
    for rec in j:each{} do
      if rec.state ~= "failed" then
        n = n + 1
        assert(rec.state == "routed" or rec.state == "scheduled", rec.case_id .. " " .. rec.state)
        -- the names, emails and phones went through ';' and CRLF unharmed
        local c, input = by_id[rec.case_id], core.decode(rec.input, "table")
        names[#names + 1] = input.first_name
        assert.same({ c.first_name, c.last_name, c.email, c.phone },
                    { input.first_name, input.last_name, input.email, input.phone })
        assert.same(c.employers, input.employers)
      end
    end
    j:close()
    assert.equal(#seeded, n)
    assert.equal(#seeded, sb:stats().refresh.order_refreshes)
    -- and into the new links' list, for the mailer
    local links = assert(cases.parse_csv(assert(read(dir .. "/report/reverify.csv"))))
    assert.is_true(#links > 1, "no new link was made")
    for i = 2, #links do
      local c = by_id[links[i][1]]
      assert.same({ c.first_name, c.last_name, c.email, c.phone },
                  { links[i][2], links[i][3], links[i][4], links[i][5] })
    end
    assert.equal(#seeded, #names)
  end)
end)
