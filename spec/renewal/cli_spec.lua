-- bin/truv-renew end to end against the sandbox: a run, its summary and
-- report, bad input rows, a re-run on the finished journal without Truv,
-- and the ways it refuses to run.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local cjson = require("cjson").new()
local core = require "truv.core"
local cases = require "truv.cases"

local CLIENT_ID, SECRET = "sandbox-client-id", "sandbox-secret"

local quote, read, write = files.quote, files.read, files.write
local function tmpdir() return files.tmpdir("truv-renew-spec") end

local renew = require("spec.support.renew").run

local function json_lines(text)
  local out = {}
  for l in text:gmatch("[^\n]+") do
    local ok, v = pcall(cjson.decode, l)
    assert(ok, "not a JSON line: " .. l)
    out[#out + 1] = v
  end
  return out
end

local function csv_rows(path)
  return assert(cases.parse_csv(assert(read(path))))
end

describe("truv-renew", function()
  local sb, dir, input, input_rows

  setup(function()
    dir = tmpdir()
    sb = sandbox.start{ args = { "--seed-cases", "60", "--rate-limit", "0", "--realtime",
                                 "--time-scale", "50", "--cases-out", dir .. "/seeded.csv" } }
    -- the seeded cases plus three bad rows, at known lines
    local text = assert(read(dir .. "/seeded.csv"))
    local header = text:match("^([^\n]*)\n")
    local ncols = select(2, header:gsub(",", ",")) + 1
    local function row(fields)
      local cols = {}
      for i = 1, ncols do cols[i] = "" end
      local names = {}
      for name in header:gmatch("[^,]+") do names[#names + 1] = name end
      for i, name in ipairs(names) do cols[i] = fields[name] or "" end
      return table.concat(cols, ",") .. "\n"
    end
    input = dir .. "/cases.csv"
    write(input, text .. row{ case_id = "bad-1", order_id = "", product = "income" }
                 .. row{ case_id = "bad-2", order_id = "abc", product = "payslips" }
                 .. "bad-3,too,few\n")
    input_rows = #csv_rows(input) - 1
  end)

  teardown(function()
    if sb then sb:shutdown() end
    os.execute("rm -rf " .. quote(dir))
  end)

  local function run_args(extra, base_url)
    local a = { "--journal", dir .. "/renewal.journal", "--report", dir .. "/report",
                "--base-url", base_url or sb.base_url, "--rate", "0", "--concurrency", "16",
                "--poll-interval", "0.2" }
    for _, x in ipairs(extra or {}) do a[#a + 1] = x end
    a[#a + 1] = input
    return a
  end

  local first = {}

  it("renews every case, prints the summary and writes the report", function()
    local code, out, err = renew(dir, run_args{ "--log", dir .. "/progress.log" })
    assert.are.equal(0, code, err)
    first.out = out:gsub("log: +[^\n]*\n", "")   -- the runs below have no --log
    first.csv = read(dir .. "/report/cases.csv")
    -- the summary table: every route, the bad rows, the total
    for _, r in ipairs{ "done", "reverify", "retry", "defer", "no_data", "fix" } do
      assert.matches("\n" .. r .. " +%d+ +%d+%.%d%% ", out)
    end
    assert.matches("\nbad input +3 ", out)
    assert.matches("\ntotal +" .. input_rows .. " +100%.0%%", out)
    assert.matches("report: +" .. dir:gsub("%p", "%%%0") .. "/report/report.html", out)
    assert.matches("reverify: +" .. dir:gsub("%p", "%%%0") .. "/report/reverify.csv", out)
    assert.matches("log: +" .. dir:gsub("%p", "%%%0") .. "/progress.log", out)
    -- the journal agrees with the table
    local j = assert(core.journal_open(dir .. "/renewal.journal"))
    for r, n in pairs(j:route_counts()) do
      assert.matches("\n" .. r .. " +" .. n .. " ", out)
    end
    -- no case was refreshed twice
    local refreshed = 0
    for rec in j:each{} do
      if rec.refresh_order_id then refreshed = refreshed + 1 end
    end
    j:close()
    local stats = sb:stats()
    assert.are.equal(refreshed, stats.refresh.order_refreshes)
    for oid, o in pairs(stats.refresh.by_order or {}) do
      assert.is_true(o.refresh_orders <= 1, oid)
    end
    -- progress on stderr (not a terminal): the bad rows, then a status line
    -- at the start and at the end (and one every 10 s between): not a line
    -- per case
    local ls = {}
    for l in err:gmatch("[^\n]+") do ls[#ls + 1] = l end
    assert.is_true(#ls <= 3 + 2 + 2, err)
    for i = 1, 3 do assert.matches("^bad input row at line %d+", ls[i]) end
    assert.matches("^0:00 0/" .. (input_rows - 3) .. " cases, ", ls[4])
    assert.matches("^%d+:%d%d " .. (input_rows - 3) .. "/" .. (input_rows - 3) .. " cases, "
                   .. "[%d.]+/s | done %d+", ls[#ls])
    -- every event as a JSON line in the --log file, and no link, no secret
    local log = read(dir .. "/progress.log")
    local evs = json_lines(log)
    assert.are.equal("run_finished", evs[#evs].event)
    local routed = 0
    for _, ev in ipairs(evs) do
      if ev.event == "routed" then routed = routed + 1 end
    end
    assert.are.equal(input_rows - 3, routed)
    for _, text in ipairs{ log, err, out } do
      assert.is_nil(text:find(SECRET, 1, true))
      assert.is_nil(text:find("bridge_token", 1, true))
    end
    -- a second run appends to the log
    renew(dir, run_args{ "--log", dir .. "/progress.log" })
    local again = json_lines(read(dir .. "/progress.log"))
    assert.are.equal(#evs + 5, #again)   -- its bad rows, run_started, run_finished
  end)

  it("writes one cases.csv row per input row, and a report page", function()
    local rows = csv_rows(dir .. "/report/cases.csv")
    assert.are.equal(input_rows, #rows - 1)
    local html = assert(read(dir .. "/report/report.html"))
    assert.matches("^<!DOCTYPE html>", html)
    assert.truthy(html:find("<svg", 1, true))
    -- what to do about each case to act on
    local col = {}
    for i, name in ipairs(rows[1]) do col[name] = i end
    local report = require "truv.report"
    local links, fixes = {}, 0
    for i = 2, #rows do
      local r = rows[i]
      if r[col.route] == "reverify" then
        links[r[col.case_id]] = r
        assert.are.equal("link created: send it", r[col.next_step])
      elseif r[col.route] == "fix" then
        fixes = fixes + 1
        assert.is_true(#r[col.next_step] > 20, r[col.reason])
        assert.are_not.equal(report.FIX_FALLBACK, r[col.next_step], r[col.reason])
      end
    end
    assert.is_true(fixes > 0)
    -- the new links, for a mailer: each with the applicant and when it was made
    local mail = csv_rows(dir .. "/report/reverify.csv")
    local n = 0
    for i = 2, #mail do
      local m = mail[i]
      local r = assert(links[m[1]], m[1])
      n = n + 1
      assert.are.equal(r[col.share_url], m[6])
      assert.are.same({ r[col.first_name], r[col.last_name], r[col.email], r[col.phone] },
                      { m[2], m[3], m[4], m[5] })
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", m[8])
      assert.are.equal("yes", m[10])
    end
    local expected = 0
    for _ in pairs(links) do expected = expected + 1 end
    assert.are.equal(expected, n)
    assert.is_true(n > 0)
  end)

  it("reports bad input rows with their line, and skips them", function()
    local _, _, err = renew(dir, run_args({ "--json" }, "http://127.0.0.1:1/v1/"))
    local lines = {}
    for _, ev in ipairs(json_lines(err)) do
      if ev.event == "bad_row" then lines[#lines + 1] = ev.line end
    end
    local n = input_rows + 1         -- the header is line 1
    assert.are.same({ n - 2, n - 1, n }, lines)
    local by_line = {}
    for _, row in ipairs(csv_rows(dir .. "/report/cases.csv")) do by_line[row[11]] = row end
    assert.are.equal("failed", by_line[tostring(n - 2)][12])
    assert.matches("missing order_id", by_line[tostring(n - 2)][10])
    assert.matches("unknown product 'payslips'", by_line[tostring(n - 1)][10])
    assert.matches("expected %d+ columns", by_line[tostring(n)][10])
    local html = read(dir .. "/report/report.html")
    assert.matches("Bad input rows %(skipped%) %(3%)", html)
    assert.truthy(html:find('<td class="n">' .. n .. "</td>", 1, true))
  end)

  it("prints the same summary and report again without calling Truv", function()
    local before = sb:stats().requests.total
    local code, out, err = renew(dir, run_args(nil, "http://127.0.0.1:1/v1/"))
    assert.are.equal(0, code, err)
    assert.are.equal(first.out, out)
    assert.are.equal(first.csv, read(dir .. "/report/cases.csv"))
    code, out = renew(dir, run_args())
    assert.are.equal(0, code)
    assert.are.equal(first.out, out)
    assert.are.equal(before, sb:stats().requests.total)
  end)

  it("prints nothing but errors when quiet", function()
    local code, out, err = renew(dir, run_args({ "--quiet" }))
    assert.are.equal(0, code)
    assert.are.equal("", out)
    for l in err:gmatch("[^\n]+") do assert.matches("^bad input row at line %d+", l) end
  end)

  it("writes every event as a JSON line on stderr with --json", function()
    local code, _, err = renew(dir, run_args({ "--json" }))
    assert.are.equal(0, code)
    local evs = json_lines(err)
    assert.are.equal("run_started", evs[4].event)
    assert.are.equal("run_finished", evs[#evs].event)
  end)

  it("refuses to run without credentials, and says which", function()
    local d = tmpdir()
    for _, env in ipairs{ { TRUV_SECRET = false }, { TRUV_CLIENT_ID = false }, { TRUV_SECRET = "" } } do
      local code, out, err = renew(d, { "--journal", d .. "/j", input }, env)
      assert.are.equal(1, code)
      assert.are.equal("", out)
      assert.matches("no credentials: set TRUV_CLIENT_ID %(or %-%-client%-id%) and TRUV_SECRET", err)
    end
    assert.is_nil(read(d .. "/j"))          -- nothing created
    -- --client-id stands in for the variable; a wrong secret stops the run
    -- (exit 1) without routing any case, so the same journal works once the
    -- secret is right
    local code, _, err = renew(d, { "--journal", d .. "/j", "--client-id", CLIENT_ID,
                                      "--base-url", sb.base_url, "--rate", "0", input },
                                 { TRUV_CLIENT_ID = false, TRUV_SECRET = "sandbox-wrong" })
    assert.are.equal(1, code)
    assert.matches("auth", err)
    assert.is_nil(err:find("sandbox-wrong", 1, true))
    local out
    code, out = renew(d, { "--journal", d .. "/j", "--client-id", CLIENT_ID, "--base-url",
                           sb.base_url, "--rate", "0", input }, { TRUV_CLIENT_ID = false })
    assert.are.equal(0, code)
    assert.is_nil(out:match("\nfix +" .. (input_rows - 3) .. " "))
    os.execute("rm -rf " .. quote(d))
  end)

  it("never takes the secret on the command line", function()
    local code, _, err = renew(dir, { "--journal", dir .. "/x", "--secret", SECRET, input })
    assert.are.equal(2, code)
    assert.matches("set TRUV_SECRET in the environment", err)
    local _, help = renew(dir, { "--help" })
    assert.matches("TRUV_SECRET", help)
    assert.matches("visible to every user of the machine", help)
  end)

  it("puts each refresh on a fresh connection with --billed-reuse-idle 0", function()
    -- a run of 12 new cases, 4 in flight; returns the refreshes it sent and
    -- the connections it opened (the stats call's own left out)
    local function run_idle(name, extra)
      local seeded = sb:seed{ cases = 12, mix = "active=1" }
      local lines = { "case_id,order_id,product" }
      for _, c in ipairs(seeded) do
        lines[#lines + 1] = table.concat({ c.case_id, c.order_id, c.product }, ",")
      end
      local csv = dir .. "/" .. name .. ".csv"
      write(csv, table.concat(lines, "\n") .. "\n")
      local args = { "--journal", dir .. "/" .. name .. ".journal", "--base-url", sb.base_url,
                     "--rate", "0", "--concurrency", "4", "--poll-interval", "0.2", "--quiet" }
      for _, x in ipairs(extra) do args[#args + 1] = x end
      args[#args + 1] = csv
      sb:reset_stats()
      local code, _, err = renew(dir, args)
      assert.are.equal(0, code, err)
      local stats = sb:stats()
      assert.are.equal(12, stats.refresh.order_refreshes)
      local posts = 0
      for _, n in pairs(stats.requests.by_endpoint["POST /v1/orders/{id}/"]) do posts = posts + n end
      return posts, stats.connections.accepted - 1
    end
    local posts, opened = run_idle("fresh", { "--billed-reuse-idle", "0" })
    assert.is_true(opened >= posts, string.format("%d connections for %d refreshes", opened, posts))
    -- the default (4 s): refreshes ride the run's kept-alive connections
    posts, opened = run_idle("reuse", {})
    assert.is_true(opened < posts, string.format("%d connections for %d refreshes", opened, posts))
  end)

  it("exits 2 on bad usage and 1 when it cannot run", function()
    local cases_ = {
      { 2, {} }, { 2, { input } }, { 2, { "--journal", dir .. "/x" } },
      { 2, { "--journal", dir .. "/x", "--concurrency", "0", input } },
      { 2, { "--journal", dir .. "/x", "--rate", "fast", input } },
      { 2, { "--journal", dir .. "/x", "--reverify", "email", input } },
      { 2, { "--journal", dir .. "/x", "--expiry-days", "never", input } },
      { 2, { "--journal", dir .. "/x", "--billed-reuse-idle", "1.5", input },
        "%-%-billed%-reuse%-idle: an integer from 0 to 3600" },
      { 2, { "--journal", dir .. "/x", "--billed-reuse-idle", "3601", input } },
      { 2, { "--journal", dir .. "/x", "--billed-reuse-idle", "-1", input } },
      { 2, { "--journal", dir .. "/x", "--base-url", "prod.truv.com", input } },
      { 2, { "--journal", dir .. "/x", "--frobnicate", input } },
      { 2, { "--journal", dir .. "/x", "--quiet", "--verbose", input } },
      { 2, { "--journal", dir .. "/x", input, input } },
      { 2, { "--journal", dir .. "/x", "--log", "", input } },
      { 1, { "--journal", dir .. "/x", "--log", dir .. "/no/such/dir/log", input },
        "cannot open the log " },
      { 1, { "--journal", dir .. "/x", dir .. "/no-such-cases.csv" } },
      { 1, { "--journal", dir .. "/no/such/dir/journal", input } },
      { 1, { "--journal", dir .. "/broken.journal", dir .. "/broken.csv" },
        "cannot read the cases: .*broken.csv: line 2: a quoted field is never closed" },
    }
    write(dir .. "/broken.csv", 'case_id,order_id,product\n"c1,abc,income\n')
    for _, c in ipairs(cases_) do
      local code, _, err = renew(dir, c[2])
      assert.are.equal(c[1], code, table.concat(c[2], " ") .. ": " .. err)
      assert.matches("^truv%-renew: ", err)
      if c[3] then assert.matches(c[3], err) end
    end
    local code, out = renew(dir, { "--version" })
    assert.are.equal(0, code)
    assert.matches("^truv%-renew %d+%.%d+", out)
  end)
end)
