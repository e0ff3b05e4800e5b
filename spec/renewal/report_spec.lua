-- truv.report: the summary table, cases.csv and report.html, made from a
-- real journal.
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
                       order_id = "o2", line = 3, reverify_order_id = "n2",
                       share_url = "https://cdn.truv.com/employment.html?bridge_token=t&x=<y>" })
  j:put("c-js", { state = "routed", route = "reverify", reason = "mfa_error", order_id = "o3",
                  line = 4, share_url = "javascript:alert(1)", no_contact = true })
  j:put("c-retry", { state = "scheduled", route = "retry", reason = "unavailable",
                     order_id = "o4", line = 5, retry_at = T + 3600 })
  j:put("c-defer", { state = "scheduled", route = "defer", reason = "refresh_limit",
                     order_id = "o5", line = 6, not_before = T + 86400 })
  j:put("c-nodata", { state = "routed", route = "no_data", reason = "no_data", order_id = "o6",
                      line = 7 })
  j:put("c-fix", { state = "routed", route = "fix", reason = "not_supported", order_id = "o7",
                   line = 8, error = 'truv: invalid, "quoted", with a comma\nand a line break',
                   handler_error = "ticket queue <down>" })
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
                   .. "retry_at,not_before,error,line,state,contact,expiring\r\n", text)
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
  end)

  it("says which new links reached nobody, and which connections to renew ahead of time",
     function()
    local html = read(paths.html)
    assert.truthy(html:find("no contact: send it yourself", 1, true))
    assert.matches("Likely to expire soon: send a link ahead of time %(1%)", html)
    assert.truthy(html:find("employers/e1 163d since connection", 1, true))
    assert.same({ no_contact = 1, expiring = 1 }, report.notices(j))
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
    local rest = html:gsub('<a href="https?://[^"]*" rel="noreferrer">https?://[^<]*</a>', "")
    assert.is_nil(rest:find("https?://"))
    assert.truthy(html:find("Content-Security-Policy", 1, true))
    assert.truthy(html:find("<svg", 1, true))
    assert.truthy(html:find("<style>", 1, true))
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
    assert.truthy(html:find('<tr><td>total</td><td class="n">9</td>', 1, true))
    assert.are.equal(9, summary.total)
  end)

  it("lists the cases to act on, with reasons, times and input lines", function()
    local html = read(paths.html)
    assert.matches("Re%-verify: send each applicant their new link %(2%)", html)
    assert.matches("Needs a person %(fix%) %(1%)", html)
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
    assert.truthy(dom:find("Re-verify: send each applicant their new link (2)", 1, true))
    assert.truthy(dom:find("c-&lt;b&gt;&amp;\"'", 1, true))   -- still text after parsing
    assert.is_nil(dom:find("<b>", 1, true))
  end)
end)
