-- truv.report: the summary table, cases.csv, reverify.csv and report.html,
-- made from a real journal: what the operator acts on, with the applicant
-- beside each new link, a next step for every case to act on, and nothing
-- a spreadsheet would run.
local core = require "truv.core"
local report = require "truv.report"
local cases = require "truv.cases"
local files = require "spec.support.files"

local read = files.slurp
local function tmpdir() return files.tmpdir("truv-report") end

local T = 1800000000          -- 2027-01-15T08:00:00Z

-- A journal holding every route, a bad row, and text that needs escaping.
local function fill(j)
  j:put("c-done", { state = "routed", route = "done", reason = "completed", order_id = "o1",
                    refresh_order_id = "r1", line = 2,
                    expiring = "employers/e1 163d since connection" })
  j:put("c-<b>&\"'", { state = "routed", route = "reverify", reason = "login_error",
                       order_id = "o2", line = 3, reverify_order_id = "n2", link_mode = "order",
                       link_created_at = T - 60,
                       share_url = "https://cdn.truv.com/employment.html?bridge_token=t&x=<y>",
                       input = core.encode{ case_id = "c-<b>&\"'", first_name = "Zoë",
                                            last_name = "<O'Brien>", email = "zoe@example.com",
                                            phone = "+1 (415) 555-0100" } })
  j:put("c-js", { state = "routed", route = "reverify", reason = "mfa_error", order_id = "o3",
                  line = 4, share_url = "javascript:alert(1)", no_contact = true,
                  link_mode = "order", link_sent_at = T - 30,
                  input = core.encode{ case_id = "c-js", first_name = "=HYPERLINK(\"x\")",
                                       last_name = "@SUM(A1)" } })
  j:put("c-bridge", { state = "routed", route = "reverify", reason = "login_error",
                      order_id = "o11", line = 11, link_mode = "bridge", bridge_tokens = 2 })
  j:put("c-retry", { state = "scheduled", route = "retry", reason = "unavailable",
                     order_id = "o4", line = 5, retry_at = T + 3600 })
  j:put("c-defer", { state = "scheduled", route = "defer", reason = "refresh_limit",
                     order_id = "o5", line = 6, not_before = T + 86400 })
  j:put("c-nodata", { state = "routed", route = "no_data", reason = "no_data", order_id = "o6",
                      line = 7 })
  j:put("c-fix", { state = "routed", route = "fix", reason = "not_supported", order_id = "o7",
                   line = 8, error = 'truv: invalid, "quoted", with a comma\nand a line break',
                   handler_error = "ticket queue <down>",
                   input = core.encode{ first_name = "Ann", last_name = "Lee", email = "ann@x.org" } })
  j:put("c-404", { state = "routed", route = "fix", reason = "order_not_found", order_id = "o12",
                   line = 12, error_kind = "not_found",
                   error = "truv: not_found in get_order (HTTP 404, order_not_found)" })
  j:put("-2+3", { state = "routed", route = "done", reason = "completed", order_id = "o13",
                  line = 13, input = core.encode{ phone = "-42", email = "+cmd|' /C calc'!A0" } })
  j:put("line-9", { state = "failed", line = 9, error = "missing order_id, product" })
  j:put("line-10:c<script>", { state = "failed", line = 10,
                               error = "unknown product '<img src=x onerror=alert(1)>'" })
end

local function journal(dir)
  local j = assert(core.journal_open(dir .. "/journal"))
  fill(j)
  return j
end

local function summary_of(j)
  return require("truv.renewal").summary(j)
end

describe("report.summary_table", function()
  it("has a row per route with its count, share and meaning, then the total", function()
    local t = report.summary_table({ total = 200, failed = 4, routes = { done = 150,
      reverify = 20, retry = 10, defer = 6, no_data = 6, fix = 4 } },
      { times = { retry = T, defer = T + 86400 } })
    local ls = {}
    for l in t:gmatch("[^\n]+") do ls[#ls + 1] = l end
    assert.matches("^route +cases +share +what it means$", ls[1])
    assert.matches("^%-+$", ls[2])
    assert.matches("^done +150 +75%.0%% +fresh data, pre%-filled$", ls[3])
    assert.matches("^reverify +20 +10%.0%% +new verification link for the applicant$", ls[4])
    assert.matches("^retry +10 +5%.0%% +provider or network problem: retried after "
                   .. "2027%-01%-15T08:00:00Z$", ls[5])
    assert.matches("^defer +6 +3%.0%% +refresh quota spent: not before 2027%-01%-16T08:00:00Z$",
                   ls[6])
    assert.matches("^no_data +6 +3%.0%% +connected, no data returned$", ls[7])
    assert.matches("^fix +4 +2%.0%% +needs a person$", ls[8])
    assert.matches("^bad input +4 +2%.0%% ", ls[9])
    assert.matches("^%-+$", ls[10])
    assert.matches("^total +200 +100%.0%%$", ls[11])
    assert.are.equal(11, #ls)
  end)

  it("counts unfinished cases and handles an empty run", function()
    local t = report.summary_table{ total = 5, failed = 0, routes = { done = 2 } }
    assert.matches("unfinished +3 +60%.0%% +not finished: run again with the same journal", t)
    assert.matches("retry +0 +0%.0%% +provider or network problem: retried later", t)
    local empty = report.summary_table{ total = 0, failed = 0, routes = {} }
    assert.matches("total +0 +0%.0%%", empty)
  end)
end)

describe("report.csv_field", function()
  it("quotes only what RFC 4180 needs quoted", function()
    assert.are.equal("plain", report.csv_field("plain"))
    assert.are.equal('"a,b"', report.csv_field("a,b"))
    assert.are.equal('"say ""hi"""', report.csv_field('say "hi"'))
    assert.are.equal('"two\nlines"', report.csv_field("two\nlines"))
    assert.are.equal('"cr\rhere"', report.csv_field("cr\rhere"))
    assert.are.equal("", report.csv_field(nil))
    assert.are.equal("42", report.csv_field(42))
  end)
end)

describe("report.write", function()
  local dir, j, paths, summary

  setup(function()
    dir = tmpdir()
    j = journal(dir)
    summary = summary_of(j)
    paths = assert(report.write(dir .. "/out", j, summary, {
      input = "cases <nightly>.csv", journal_path = dir .. "/journal",
      started_at = T, finished_at = T + 125, version = "test" }))
  end)

  teardown(function()
    j:close()
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("writes cases.csv with one row per case of the journal, in RFC 4180", function()
    local text = read(paths.csv)
    assert.matches("^case_id,order_id,route,reason,refresh_order_id,new_order_id,share_url,"
                   .. "retry_at,not_before,error,line,state,contact,expiring,first_name,"
                   .. "last_name,email,phone,next_step\r\n", text)
    assert.are.equal("\r\n", text:sub(-2))
    local rows = assert(cases.parse_csv(text))
    local n = 0
    for _ in j:each{} do n = n + 1 end
    assert.are.equal(n + 1, #rows)
    assert.are.equal(n, paths.cases)
    local by_id = {}
    for i = 2, #rows do
      assert.are.equal(#rows[1], #rows[i])
      by_id[rows[i][1]] = rows[i]
    end
    local fix = by_id["c-fix"]
    assert.are.equal('truv: invalid, "quoted", with a comma\nand a line break', fix[10])
    assert.are.equal("8", fix[11])
    assert.are.equal("2027-01-15T09:00:00Z", by_id["c-retry"][8])
    assert.are.equal("2027-01-16T08:00:00Z", by_id["c-defer"][9])
    local rv = by_id["c-<b>&\"'"]
    assert.are.equal("reverify", rv[3])
    assert.are.equal("n2", rv[6])
    assert.are.equal("https://cdn.truv.com/employment.html?bridge_token=t&x=<y>", rv[7])
    assert.are.equal("failed", by_id["line-9"][12])
    assert.are.equal("missing order_id, product", by_id["line-9"][10])
    -- a new order Truv could send to nobody, and connections to renew ahead of time
    assert.are.equal("none", by_id["c-js"][13])
    assert.are.equal("", rv[13])
    assert.are.equal("employers/e1 163d since connection", by_id["c-done"][14])
    assert.are.equal("", by_id["c-fix"][14])
    -- the applicant, from the case file, and the next step
    assert.same({ "Zoë", "<O'Brien>", "zoe@example.com", "+1 (415) 555-0100",
                  "link created: send it" }, { table.unpack(rv, 15, 19) })
    assert.same({ "Ann", "Lee", "ann@x.org", "", report.FIX_STEPS.not_supported },
                { table.unpack(fix, 15, 19) })
    assert.are.equal("no contact on file: send it yourself", by_id["c-js"][19])
    assert.matches("^bridge token made", by_id["c-bridge"][19])
    assert.matches("^nothing yet: run the same command after 2027%-01%-15T09:00:00Z",
                   by_id["c-retry"][19])
    assert.are.equal("", by_id["c-done"][19])
  end)

  it("writes reverify.csv for a mailer: one row per new link, with the applicant", function()
    assert.are.equal(dir .. "/out/reverify.csv", paths.reverify)
    local text = read(paths.reverify)
    assert.matches("^case_id,first_name,last_name,email,phone,link,reason,created_at,"
                   .. "new_order_id,truv_sends,next_step\r\n", text)
    local rows = assert(cases.parse_csv(text))
    for _, row in ipairs(rows) do row.line = nil end
    assert.are.equal(3, #rows)              -- the two links; a bridge token is no link
    assert.same({ "c-<b>&\"'", "Zoë", "<O'Brien>", "zoe@example.com", "+1 (415) 555-0100",
                  "https://cdn.truv.com/employment.html?bridge_token=t&x=<y>", "login_error",
                  "2027-01-15T07:59:00Z", "n2", "yes", "link created: send it" }, rows[2])
    assert.same({ "c-js", "'=HYPERLINK(\"x\")", "'@SUM(A1)", "", "", "javascript:alert(1)",
                  "mfa_error", "2027-01-15T07:59:30Z", "", "no",
                  "no contact on file: send it yourself" }, rows[3])
  end)

  it("writes no cell a spreadsheet would run as a formula", function()
    for _, path in ipairs{ paths.csv, paths.reverify } do
      for i, row in ipairs(assert(cases.parse_csv(read(path)))) do
        for _, cell in ipairs(row) do
          if cell:find("^[=+%-@\t\r]") then
            assert.matches("^[+-][%d%s().-]*$", cell, nil, path .. " row " .. i)
          end
        end
      end
    end
    local rows = assert(cases.parse_csv(read(paths.csv)))
    local by_id = {}
    for i = 2, #rows do by_id[rows[i][1]] = rows[i] end
    local num = by_id["'-2+3"]                -- a formula: guarded, even as a case id
    assert.is_truthy(num)
    assert.are.equal("-42", num[18])         -- a number is left as it is
    assert.are.equal("'+cmd|' /C calc'!A0", num[17])
    assert.are.equal("'=1+1", report.csv_field("=1+1"))
    assert.are.equal("'@A1", report.csv_field("@A1"))
    assert.are.equal("'\t=1", report.csv_field("\t=1"))
    assert.are.equal("\"'\r=1\"", report.csv_field("\r=1"))
    assert.are.equal("'-cmd", report.csv_field("-cmd"))
    assert.are.equal("+1 (415) 555-0100", report.csv_field("+1 (415) 555-0100"))
    assert.are.equal("-3.5", report.csv_field(-3.5))
    assert.are.equal("a=b", report.csv_field("a=b"))
  end)

  it("says which new links reached nobody, and which connections to renew ahead of time",
     function()
    local html = read(paths.html)
    assert.truthy(html:find('<span class="err">no contact on file: send it yourself</span>', 1,
                            true))
    assert.truthy(html:find("link created: send it<div", 1, true))
    assert.matches("Likely to expire soon: send a link ahead of time %(1%)", html)
    assert.truthy(html:find("employers/e1 163d since connection", 1, true))
    assert.same({ no_contact = 1, expiring = 1 }, report.notices(j))
  end)

  it("puts the applicant beside each new link and each case to act on", function()
    local html = read(paths.html)
    local section = html:match("Re%-verify: send each applicant their new link.-</table>")
    assert.truthy(section:find("Zoë &lt;O&#39;Brien&gt;", 1, true))
    assert.truthy(section:find("zoe@example.com", 1, true))
    assert.truthy(section:find("+1 (415) 555-0100", 1, true))
    assert.truthy(section:find("=HYPERLINK(&quot;x&quot;) @SUM(A1)", 1, true))
    local fix = html:match("Needs a person %(fix%).-</table>")
    assert.truthy(fix:find("Ann Lee", 1, true))
    assert.truthy(fix:find(report.html_escape(report.FIX_STEPS.not_supported), 1, true))
    assert.truthy(fix:find(report.html_escape(report.FIX_STEPS_BY_KIND.not_found), 1, true))
    local expiring = html:match("Likely to expire soon.-</table>")
    assert.truthy(expiring:find("not in the case file", 1, true))
  end)

  it("wraps links only after a '/', '?', '&' or '='", function()
    local url = "https://cdn.truv.com/employment.html?bridge_token=9f2c%2F41&order_group_id=ab12"
    local shown = report.breakable_url(url)
    assert.are.equal(report.html_escape(url), (shown:gsub("<wbr>", "")))
    for before in shown:gmatch("(.-)<wbr>") do
      assert.matches("[/?=]$", before:gsub("&amp;$", "="))
    end
    assert.truthy(shown:find("9f2c%2F41&amp;<wbr>", 1, true))   -- no break inside
    local html = read(paths.html)
    assert.is_nil(html:find("break-all", 1, true))
    assert.truthy(html:find("employment.html?<wbr>bridge_token=<wbr>t&amp;<wbr>x=<wbr>&lt;y&gt;",
                            1, true))
  end)

  it("has a next step for every reason the batch can route to fix", function()
    -- the routing table's statuses and error kinds that go to fix
    local reasons = {}
    for outcome, entries in pairs(core.route_table()) do
      for name, e in pairs(entries) do
        if e.route == "fix" then reasons[#reasons + 1] = { name, outcome == "error" and name } end
      end
    end
    -- and every reason the Lua workflow gives a fix of its own
    local src = os.getenv("TRUV_SOURCE_DIR") or "."
    local p = assert(io.popen("ls " .. src .. "/lua/truv/*.lua"))
    for path in p:lines() do
      local text = read(path)
      for r in text:gmatch('route = "fix", reason = "([%w_]+)"') do reasons[#reasons + 1] = { r } end
      for call in text:gmatch('decision%("fix",([^\n]-)%)') do
        for r in call:gmatch('"([%w_]+)"') do
          if r ~= "event" and r ~= "suborder" and r ~= "error" then
            reasons[#reasons + 1] = { r }
          end
        end
      end
      for r in text:gmatch('reason = "(refresh_failed[%w_]*)"') do reasons[#reasons + 1] = { r } end
    end
    p:close()
    assert.is_true(#reasons >= 15, #reasons .. " reasons found")
    for _, r in ipairs(reasons) do
      local step = report.fix_step(r[1], r[2])
      assert.are_not.equal(report.FIX_FALLBACK, step, r[1])
      assert.is_true(#step > 20, r[1])
    end
    assert.are.equal(report.FIX_FALLBACK, report.fix_step("something_new"))
  end)

  it("escapes every text in report.html", function()
    local html = read(paths.html)
    assert.is_nil(html:find("<b>", 1, true))
    assert.is_nil(html:find("<script", 1, true))
    assert.is_nil(html:find("<img", 1, true))
    assert.is_nil(html:find("<y>", 1, true))
    assert.is_nil(html:find("<down>", 1, true))
    assert.truthy(html:find("c-&lt;b&gt;&amp;&quot;&#39;", 1, true))
    assert.truthy(html:find("line-10:c&lt;script&gt;", 1, true))
    assert.truthy(html:find("&lt;img src=x onerror=alert(1)&gt;", 1, true))
    assert.truthy(html:find("cases &lt;nightly&gt;.csv", 1, true))
    assert.truthy(html:find("ticket queue &lt;down&gt;", 1, true))
  end)

  it("links the re-verification links, and only web addresses", function()
    local html = read(paths.html)
    assert.truthy(html:find('<a href="https://cdn.truv.com/employment.html?bridge_token=t&amp;'
                            .. 'x=&lt;y&gt;" rel="noreferrer">', 1, true))
    assert.is_nil(html:find('href="javascript', 1, true))
    assert.truthy(html:find("javascript:alert(1)", 1, true))   -- shown as text
  end)

  it("is self-contained: no script, no external resource", function()
    local html = read(paths.html)
    for _, bad in ipairs{ "<script", "<link", "<img", "<iframe", "<object", "<embed", "@import",
                          "url(" } do
      assert.is_nil(html:lower():find(bad, 1, true), bad)
    end
    assert.is_nil(html:lower():find("<[^>]-%ssrc%s*="))        -- no tag loads anything
    -- every web address left is a share_url link (its href and its text)
    local rest = html:gsub('<a href="https?://[^"]*" rel="noreferrer">https?://.-</a>', "")
    assert.is_nil(rest:find("https?://"))
    assert.truthy(html:find("Content-Security-Policy", 1, true))
    assert.truthy(html:find("<svg", 1, true))
    assert.truthy(html:find("<style>", 1, true))
  end)

  it("counts and explains every route a case can end in, as the core lists them", function()
    assert.same(require("truv.route").FINAL, report.ROUTES)
    for _, r in ipairs(require("truv.core").lists.routes) do
      if r ~= "wait" then assert.is_string(report.MEANINGS[r], r) end
    end
  end)

  it("shows the counts of the journal, in the chart and in the table", function()
    local html = read(paths.html)
    local counts = j:route_counts()
    for _, r in ipairs(report.ROUTES) do
      local n = counts[r] or 0
      assert.truthy(html:find(string.format("<title>%s: %d</title>", r, n), 1, true), r)
      assert.truthy(html:find(string.format('<tr><td>%s</td><td class="n">%d</td>', r, n), 1, true),
                    r)
    end
    assert.truthy(html:find("<title>bad input: 2</title>", 1, true))
    assert.truthy(html:find('<tr><td>total</td><td class="n">12</td>', 1, true))
    assert.are.equal(12, summary.total)
  end)

  it("lists the cases to act on, with reasons, times and input lines", function()
    local html = read(paths.html)
    assert.matches("Re%-verify: send each applicant their new link %(3%)", html)
    assert.matches("Needs a person %(fix%) %(2%)", html)
    assert.matches("Retry later %(1%)", html)
    assert.matches("Deferred: refresh quota spent %(1%)", html)
    assert.matches("Bad input rows %(skipped%) %(2%)", html)
    assert.truthy(html:find("2027-01-15T09:00:00Z", 1, true))
    assert.truthy(html:find("2027-01-16T08:00:00Z", 1, true))
    assert.truthy(html:find('<td class="n">10</td><td class="id">line-10:c&lt;script&gt;</td>',
                            1, true))
    assert.truthy(html:find("not_supported", 1, true))
    assert.truthy(html:find("2027-01-15T08:02:05Z", 1, true))   -- finished
  end)

  it("reports a directory it cannot create", function()
    local ok, err = report.write("/proc/nope/report", j, summary, {})
    assert.is_nil(ok)
    assert.matches("cannot", err)
  end)
end)

describe("report.html in a browser", function()
  it("renders in headless Chromium with the chart and the lists", function()
    -- a tool the suite needs (scripts/deps installs it): missing, the check fails
    local chromium
    for _, name in ipairs{ "chromium", "chromium-browser" } do
      if os.execute("command -v " .. name .. " >/dev/null 2>&1") then chromium = name break end
    end
    assert(chromium, "chromium is not installed (scripts/deps installs it)")
    local dir = tmpdir()
    local j = journal(dir)
    local paths = assert(report.write(dir .. "/out", j, summary_of(j), { input = "x.csv" }))
    j:close()
    -- not under the sanitizer runtime the suite may preload for truv.core
    local cmd = string.format("env -u LD_PRELOAD timeout 120 %s --headless --no-sandbox "
                              .. "--disable-gpu --disable-quic --no-first-run "
                              .. "--disable-background-networking --disable-component-update "
                              .. "--disable-sync --user-data-dir='%s/chromium' "
                              .. "--dump-dom 'file://%s' 2>/dev/null",
                              chromium, dir, paths.html)
    local p = assert(io.popen(cmd))
    local dom = p:read("a")
    p:close()
    os.execute("rm -rf '" .. dir .. "'")
    assert.truthy(dom:find("<svg", 1, true))
    assert.truthy(dom:find("Re-verify: send each applicant their new link (3)", 1, true))
    assert.truthy(dom:find("c-&lt;b&gt;&amp;\"'", 1, true))   -- still text after parsing
    assert.is_nil(dom:find("<b>", 1, true))
  end)
end)
