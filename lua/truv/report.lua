--- The report of a renewal batch: a table for the terminal, and a
-- directory with every case (cases.csv), the new verification links to
-- send (reverify.csv, for a mailer) and a page for the operator who acts
-- on them (report.html).
--
--   local report = require "truv.report"
--   print(report.summary_table(summary, { times = report.times(journal) }))
--   local paths, err = report.write("out/report", journal, summary, {
--     input = "cases.csv", started_at = t0, finished_at = t1, version = "1.0" })
--
-- The journal is read through j:each{} only, so a report can be made again
-- from a finished journal at any time without calling Truv.
--
-- cases.csv (RFC 4180: CRLF line ends, fields quoted when they hold a comma,
-- a quote or a line break): one row per case of the journal, bad input rows
-- included, in input order. Times are ISO 8601 UTC. `contact` is "none"
-- for a new verification order made without an email or phone (Truv told
-- nobody: send share_url yourself); `expiring` lists the case's connections
-- likely to expire soon ("employers/<id> 163d since connection; ..."), to
-- send a link ahead of time; first_name, last_name, email and phone are the
-- applicant's, from the case file; `next_step` says what to do (below).
--
-- reverify.csv (the same format): one row per new verification link, for
-- a mailer: case_id, the applicant's names, email and phone (from the case
-- file), link (the share_url), reason, created_at, new_order_id,
-- truv_sends ("yes" when the new order carries an email or phone, so
-- Truv sends the link there too; "no": nobody was told) and next_step.
--
-- Next steps (NEXT_STEPS, next_step()): a new link says "link created: send
-- it" ("no contact on file: send it yourself" when Truv told nobody); a
-- fix says what a person does for its reason (every reason the batch can
-- give has its own, else by the kind of error behind it); retry and defer
-- say when to run again.
--
-- Spreadsheets run a cell that starts with = + - @ (or a tab or a carriage
-- return before one) as a formula, which a crafted case id or name could
-- use: such a cell is written with a leading ' (csv_field). A phone number
-- or a number ("+1 415 555 0100", "-3": digits, spaces and ( ) . - only)
-- is left as it is: nothing in it can call a function or reach a cell.
--
-- report.html is self-contained: inline CSS, an inline SVG chart, no script
-- and no external resource (a Content-Security-Policy says so to the
-- browser); the only links are the applicants' share_url links, shown
-- whole, wrapped only after a '/', '?', '&' or '=' (never inside a token or
-- a %-escape). Every text that comes from the input or from Truv is
-- HTML-escaped.
local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local floor, max, min = math.floor, math.max, math.min
local format, rep = string.format, string.rep
local concat = table.concat
local open, rename, remove = io.open, os.rename, os.remove
local core = require "truv.core"
local route_mod = require "truv.route"
local time = require "truv.time"

-- A case's input as the journal keeps it (JSON text), as a table; nil when
-- it cannot be read (the report is made all the same).
local function decode_input(text)
  local okd, v = pcall(core.decode, text, "table")
  return okd and v or nil
end

local _M = {}

_M.ROUTES = route_mod.FINAL   -- the routes a case ends in, in the core's order

-- What a route means for a caseworker; %s is a time when one applies.
_M.MEANINGS = {
  done = "fresh data, pre-filled",
  reverify = "new verification link for the applicant",
  retry = "provider or network problem: retried after %s",
  defer = "refresh quota spent: not before %s",
  no_data = "connected, no data returned",
  fix = "needs a person",
}
-- The same when no time is known (no such case, or a script's own route).
local UNTIMED = {
  retry = "provider or network problem: retried later",
  defer = "refresh quota spent: deferred",
}

-- The files' column new_order_id is the journal's reverify_order_id (the
-- order of the new verification link), under the name the files were
-- published with.
_M.CSV_COLUMNS = { "case_id", "order_id", "route", "reason", "refresh_order_id",
                   "new_order_id", "share_url", "retry_at", "not_before", "error", "line",
                   "state", "contact", "expiring", "first_name", "last_name", "email", "phone",
                   "next_step" }

_M.REVERIFY_COLUMNS = { "case_id", "first_name", "last_name", "email", "phone", "link",
                        "reason", "created_at", "new_order_id", "truv_sends", "next_step" }

-- ---------------------------------------------------------------- next steps

-- What a person does about a case routed to fix, by its reason: every
-- reason the batch gives (the routing table's statuses, the workflow's own
-- reasons; spec/renewal/report_spec.lua checks that none is missing).
_M.FIX_STEPS = {
  config_error = "Truv reports a configuration error on this connection: contact Truv "
                 .. "support with the refresh order id",
  not_supported = "the provider does not support refreshing this data: have the applicant "
                  .. "verify again (a new order, or documents)",
  canceled = "the order was canceled in Truv: check with the caseworker whether the case "
             .. "still needs verifying, and if so create a new order",
  error = "Truv reports an error on the order (for an order: the notification could not be "
          .. "delivered): check the case's email and phone, then send the applicant a new link",
  refresh_failed_unknown = "Truv did not say why the refresh failed: open the refresh order "
                           .. "in Truv's dashboard; send a new link if the applicant must sign "
                           .. "in again, otherwise refresh it again later (each refresh is billed)",
  refresh_failed = "Truv did not say why the refresh failed: open the refresh order in Truv's "
                   .. "dashboard; send a new link if the applicant must sign in again, "
                   .. "otherwise refresh it again later (each refresh is billed)",
  no_connections = "the order has no connection to refresh (the applicant never connected): "
                   .. "send a new verification link instead",
  reverify_unconfirmed = "the new verification order may exist: look in Truv's dashboard for "
                         .. "an order with this case's order_number before sending another link",
  reverify_failed = "the new verification link could not be made (see the error): create one "
                    .. "in Truv's dashboard and send it",
  unknown_status = "Truv answered with a status this version does not know (see the error): "
                   .. "check the order in Truv's dashboard, and upgrade lua-truv",
  unknown_event = "Truv sent an event this version does not know: check the order in Truv's "
                  .. "dashboard, and upgrade lua-truv",
  unknown_error = "an error this version does not know (see the error): check the order in "
                  .. "Truv's dashboard, and upgrade lua-truv",
}

-- The same by the kind of error behind the route, for reasons that are
-- Truv's own error codes (an open set).
_M.FIX_STEPS_BY_KIND = {
  invalid = "Truv refused the request as invalid (see the error): correct the case in the "
            .. "input file (order id, product, employers) and run it again",
  not_found = "Truv does not know this order: check its order_id in the input file, and that "
              .. "the credentials are for the right environment (sandbox or production)",
  auth = "Truv refused the credentials: check TRUV_CLIENT_ID and TRUV_SECRET and their "
         .. "environment",
  api = "Truv refused the request (see the error): contact Truv support with the request id "
        .. "it gives",
  internal = "a failure on this side (see the error): handle the case in Truv's dashboard, "
             .. "and report the error",
  handler = "a handler of the run's router failed (see the error): correct the handler, then "
            .. "handle the case by hand or run it again",
}

_M.FIX_FALLBACK = "see the error, and check the order in Truv's dashboard"

--- What a person does about a fix of this reason (and error kind, if any).
function _M.fix_step(reason, kind)
  return _M.FIX_STEPS[reason] or _M.FIX_STEPS_BY_KIND[kind] or _M.FIX_STEPS_BY_KIND[reason]
         or _M.FIX_FALLBACK
end

_M.LINK_STEPS = {
  created = "link created: send it",
  no_contact = "no contact on file: send it yourself",
  bridge = "bridge token made for the reverify handler: open Bridge for the applicant",
}

-- ---------------------------------------------------------------- helpers

--- Epoch seconds -> "2026-05-01T12:00:00Z"; text is passed through: truv.time's.
_M.iso8601 = time.iso8601
local iso8601 = _M.iso8601

-- The first characters that make a spreadsheet read a cell as a formula.
local FORMULA_START = "^[=+%-@\t\r]"

--- One CSV field (RFC 4180), guarded against formula injection (see
-- above).
function _M.csv_field(v)
  if v == nil then return "" end
  local s = tostring(v)
  if s:find(FORMULA_START) and not s:find("^[+-][%d%s().-]*$") then s = "'" .. s end
  if s:find('[,"\r\n]') then return '"' .. s:gsub('"', '""') .. '"' end
  return s
end
local csv_field = _M.csv_field

local HTML_ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;",
                       ["'"] = "&#39;" }

--- Text made safe for HTML content and attribute values.
function _M.html_escape(v)
  if v == nil then return "" end
  return (tostring(v):gsub("[&<>\"']", HTML_ESCAPES))
end
local esc = _M.html_escape

local function percent(n, total)
  if total == 0 then return "0.0%" end
  return format("%.1f%%", 100 * n / total)
end

-- The figures of a summary: per route, bad input rows, unfinished cases.
local function figures(summary)
  local routes = summary.routes or {}
  local routed = 0
  for _, n in pairs(routes) do routed = routed + n end
  local failed = summary.failed or 0
  local total = summary.total or (routed + failed)
  return { routes = routes, failed = failed, total = total,
           unfinished = max(0, total - routed - failed) }
end

-- Keeps in t[route] the earliest time of the timed routes' records.
local function earliest(t, rec)
  local at = route_mod.due_at(rec)
  if type(at) == "number" then t[rec.route] = min(t[rec.route] or at, at) end
end

--- The earliest time per scheduled route, from a journal:
-- { retry = epoch | nil, defer = epoch | nil }.
function _M.times(journal)
  local t = {}
  for rec in journal:each{} do earliest(t, rec) end
  return t
end

--- The applicant of a journal record, from its case's input:
-- { first_name =, last_name =, email =, phone = } (each may be nil).
function _M.applicant(rec)
  local input = type(rec.input) == "string" and decode_input(rec.input)
  if type(input) ~= "table" then return {} end
  local a = {}
  for _, k in ipairs{ "first_name", "last_name", "email", "phone" } do
    if type(input[k]) == "string" and input[k] ~= "" then a[k] = input[k] end
  end
  return a
end

--- What to do next about a case, from its journal record ("" when
-- nothing: done cases, cases not finished).
function _M.next_step(rec)
  local r = rec.route
  if r == "reverify" then
    if rec.link_mode == "bridge" or (not rec.share_url and rec.bridge_tokens) then
      return _M.LINK_STEPS.bridge
    end
    if not rec.share_url then return "" end
    return rec.no_contact == true and _M.LINK_STEPS.no_contact or _M.LINK_STEPS.created
  elseif r == "fix" then
    return _M.fix_step(rec.reason, rec.error_kind)
  elseif r == "retry" then
    return "nothing yet: run the same command after " ..
           (iso8601(route_mod.due_at(rec)) or "its time")
  elseif r == "defer" then
    return "refresh quota spent: run the same command after " ..
           (iso8601(route_mod.due_at(rec)) or "its time")
  elseif r == "no_data" then
    return "the connection returned no data: verify this case another way (documents)"
  end
  return ""
end

--- The caseworker's meaning of a route; `times` as from report.times().
function _M.meaning(route, times)
  local m = _M.MEANINGS[route] or route
  if not m:find("%s", 1, true) then return m end
  local t = times and times[route]
  if not t then return UNTIMED[route] end
  return format(m, iso8601(t))
end

--- What the operator must act on beyond the routes, from a journal:
-- { no_contact = n (new verification orders Truv could send to nobody),
--   expiring = n (cases whose connections are likely to expire soon) }.
function _M.notices(journal)
  local n = { no_contact = 0, expiring = 0 }
  for rec in journal:each{} do
    if rec.route == "reverify" and rec.no_contact == true then n.no_contact = n.no_contact + 1 end
    if type(rec.expiring) == "string" and rec.route ~= "reverify" then
      n.expiring = n.expiring + 1
    end
  end
  return n
end

-- ------------------------------------------------------------ summary table

--- A text table per route: route, cases, share, what it means.
-- opts.times: earliest retry / defer times (report.times(journal)).
function _M.summary_table(summary, opts)
  opts = opts or {}
  local f = figures(summary)
  local rows = { { "route", "cases", "share", "what it means" } }
  for _, r in ipairs(_M.ROUTES) do
    local n = f.routes[r] or 0
    rows[#rows + 1] = { r, tostring(n), percent(n, f.total), _M.meaning(r, opts.times) }
  end
  for r, n in pairs(f.routes) do      -- a route a script's router invented
    if not _M.MEANINGS[r] then rows[#rows + 1] = { r, tostring(n), percent(n, f.total), "" } end
  end
  if f.failed > 0 then
    rows[#rows + 1] = { "bad input", tostring(f.failed), percent(f.failed, f.total),
                        "rows that could not be read: fix the input file" }
  end
  if f.unfinished > 0 then
    rows[#rows + 1] = { "unfinished", tostring(f.unfinished), percent(f.unfinished, f.total),
                        "not finished: run again with the same journal" }
  end
  rows[#rows + 1] = { "total", tostring(f.total), percent(f.total, f.total), "" }
  local w = { 0, 0, 0 }
  for _, row in ipairs(rows) do
    for i = 1, 3 do w[i] = max(w[i], #row[i]) end
  end
  local lines, widest = {}, 0
  for i, row in ipairs(rows) do
    local line = format("%-" .. w[1] .. "s  %" .. w[2] .. "s  %" .. w[3] .. "s  %s",
                        row[1], row[2], row[3], row[4])
    lines[i] = line:gsub("%s+$", "")
    widest = max(widest, #lines[i])
  end
  local rule = rep("-", widest)
  table.insert(lines, #lines, rule)
  table.insert(lines, 2, rule)
  return concat(lines, "\n") .. "\n"
end

-- ---------------------------------------------------------------- cases.csv

local function csv_line(columns, v)
  local out = {}
  for i, c in ipairs(columns) do out[i] = csv_field(v[c]) end
  return concat(out, ",") .. "\r\n"
end

local function csv_row(rec, who, step)
  return csv_line(_M.CSV_COLUMNS, {
    case_id = rec.case_id, order_id = rec.order_id, route = rec.route, reason = rec.reason,
    refresh_order_id = rec.refresh_order_id, new_order_id = rec.reverify_order_id,
    share_url = rec.share_url, retry_at = iso8601(rec.retry_at),
    not_before = iso8601(rec.not_before), error = rec.error, line = rec.line,
    state = rec.state, contact = rec.no_contact == true and "none" or nil,
    expiring = rec.expiring, first_name = who.first_name, last_name = who.last_name,
    email = who.email, phone = who.phone, next_step = step,
  })
end

-- A reverify.csv row, for a case with a new link.
local function reverify_row(rec, who, step)
  return csv_line(_M.REVERIFY_COLUMNS, {
    case_id = rec.case_id, first_name = who.first_name, last_name = who.last_name,
    email = who.email, phone = who.phone, link = rec.share_url, reason = rec.reason,
    created_at = iso8601(rec.link_created_at or rec.link_sent_at),
    new_order_id = rec.reverify_order_id, truv_sends = rec.no_contact == true and "no" or "yes",
    next_step = step,
  })
end

-- The routes whose cases the page lists, each in its section (see
-- SECTION_SPECS below); done cases are only counted (they are all in
-- cases.csv), so a page for 100 000 cases stays readable.
local SECTIONS = {}

local function page_entry(rec, who, step)
  return { case_id = rec.case_id, order_id = rec.order_id, reason = rec.reason,
           share_url = rec.share_url, reverify_order_id = rec.reverify_order_id,
           retry_at = rec.retry_at, not_before = rec.not_before, error = rec.error,
           line = rec.line, handler_error = rec.handler_error, route = rec.route,
           no_contact = rec.no_contact == true, expiring = rec.expiring, who = who,
           next_step = step }
end

-- Writes cases.csv and reverify.csv (paths.csv, paths.reverify, each as
-- a .tmp first) while collecting what the page needs.
local function write_csv(paths, journal)
  local f, err = open(paths.csv, "wb")
  if not f then return nil, err end
  local rf
  rf, err = open(paths.reverify, "wb")
  if not rf then
    f:close()
    return nil, err
  end
  local lists = { bad = {}, expiring = {} }
  for r in pairs(SECTIONS) do lists[r] = {} end
  local count = 0
  local ok, werr = f:write(concat(_M.CSV_COLUMNS, ","), "\r\n")
  if ok then ok, werr = rf:write(concat(_M.REVERIFY_COLUMNS, ","), "\r\n") end
  for rec in journal:each{} do
    if not ok then break end
    count = count + 1
    local who, step = _M.applicant(rec), _M.next_step(rec)
    ok, werr = f:write(csv_row(rec, who, step))
    if ok and rec.route == "reverify" and type(rec.share_url) == "string" then
      ok, werr = rf:write(reverify_row(rec, who, step))
    end
    if rec.state == "failed" then
      lists.bad[#lists.bad + 1] = page_entry(rec, who, step)
    elseif SECTIONS[rec.route] then
      local l = lists[rec.route]
      l[#l + 1] = page_entry(rec, who, step)
    end
    -- a connection likely to expire soon, whatever the route (done ones included)
    if type(rec.expiring) == "string" and rec.route ~= "reverify" then
      lists.expiring[#lists.expiring + 1] = page_entry(rec, who, step)
    end
  end
  local closed, cerr = f:close()
  local rclosed, rcerr = rf:close()
  if not ok or not closed or not rclosed then return nil, werr or cerr or rcerr end
  return lists, count
end

-- ---------------------------------------------------------------- report.html

local COLORS = { done = "#2e7d32", reverify = "#1565c0", retry = "#ef6c00", defer = "#6a1b9a",
                 no_data = "#607d8b", fix = "#c62828", bad = "#8d6e63", unfinished = "#9e9e9e" }

local CSS = [[
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;
max-width:1100px;margin:2em auto;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1.2em}
dl.meta dt{color:#555}dl.meta dd{margin:0}
table{border-collapse:collapse;width:100%;margin:.5em 0}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f5f5f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
td.id,td.t{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;white-space:nowrap}
td.url{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.8em}
td.url a{overflow-wrap:normal;word-break:normal}
.sub{color:#555;font-size:.85em}td.step{min-width:8em}
.note{color:#555}.err{color:#8a1c1c;font-size:.9em}svg text{font-size:13px}
@media print{a{color:inherit}h2{break-after:avoid}}
]]

local function chart(f)
  local bars = {}
  for _, r in ipairs(_M.ROUTES) do bars[#bars + 1] = { r, f.routes[r] or 0, COLORS[r] } end
  if f.failed > 0 then bars[#bars + 1] = { "bad input", f.failed, COLORS.bad } end
  if f.unfinished > 0 then bars[#bars + 1] = { "unfinished", f.unfinished, COLORS.unfinished } end
  local most = 1
  for _, b in ipairs(bars) do most = max(most, b[2]) end
  local row_h, label_w, bar_w = 30, 110, 480
  local height = #bars * row_h + 10
  local out = { format('<svg role="img" aria-labelledby="chart-title" width="%d" height="%d" '
                       .. 'viewBox="0 0 %d %d"><title id="chart-title">Cases per route</title>',
                       label_w + bar_w + 130, height, label_w + bar_w + 130, height) }
  for i, b in ipairs(bars) do
    local y = (i - 1) * row_h + 5
    local w = floor(bar_w * b[2] / most + 0.5)
    out[#out + 1] = format('<text x="%d" y="%d" text-anchor="end">%s</text>'
      .. '<rect x="%d" y="%d" width="%d" height="%d" fill="%s"><title>%s: %d</title></rect>'
      .. '<text x="%d" y="%d">%d (%s)</text>',
      label_w - 8, y + 17, esc(b[1]), label_w, y, max(w, b[2] > 0 and 2 or 0), row_h - 8, b[3],
      esc(b[1]), b[2], label_w + w + 8, y + 17, b[2], percent(b[2], f.total))
  end
  out[#out + 1] = "</svg>"
  return concat(out)
end

local function counts_table(f, times)
  local rows = { "<table><thead><tr><th>route</th><th>cases</th><th>share</th>"
                 .. "<th>what it means</th></tr></thead><tbody>" }
  local function row(name, n, meaning)
    rows[#rows + 1] = format('<tr><td>%s</td><td class="n">%d</td><td class="n">%s</td>'
                             .. "<td>%s</td></tr>", esc(name), n, percent(n, f.total), esc(meaning))
  end
  for _, r in ipairs(_M.ROUTES) do row(r, f.routes[r] or 0, _M.meaning(r, times)) end
  if f.failed > 0 then row("bad input", f.failed, "rows that could not be read") end
  if f.unfinished > 0 then row("unfinished", f.unfinished, "run again with the same journal") end
  row("total", f.total, "")
  rows[#rows + 1] = "</tbody></table>"
  return concat(rows)
end

--- A URL as HTML text that wraps only after a '/', '?', '&' or '=' (a <wbr>
-- there), never inside a token or a %-escape.
function _M.breakable_url(url)
  local scheme, rest = url:match("^(%a[%w+.-]*://)(.*)$")
  if not scheme then scheme, rest = "", url end
  return esc(scheme) .. esc(rest):gsub("([/?=]+)", "%1<wbr>"):gsub("(&amp;)", "%1<wbr>")
end

-- A link only for web addresses: a share_url from elsewhere is shown as text.
local function link(url)
  if type(url) ~= "string" or url == "" then return "" end
  if not url:match("^https?://[^%s]+$") then return esc(url) end
  return format('<a href="%s" rel="noreferrer">%s</a>', esc(url), _M.breakable_url(url))
end

-- The applicant's name and contact, one per line.
local function applicant_cell(e)
  local w, parts = e.who or {}, {}
  local name = concat({ w.first_name, w.last_name }, " ")
  if name ~= "" then parts[#parts + 1] = esc(name) end
  if w.email then parts[#parts + 1] = '<span class="sub">' .. esc(w.email) .. "</span>" end
  if w.phone then parts[#parts + 1] = '<span class="sub">' .. esc(w.phone) .. "</span>" end
  if #parts == 0 then return '<span class="sub">not in the case file</span>' end
  return concat(parts, "<br>")
end

local APPLICANT = { "applicant", applicant_cell }
local NEXT_STEP = { "next step", function(e) return esc(e.next_step) end, "step" }

local function error_text(e, handler_only)
  local parts = {}
  if e.error and not handler_only then parts[#parts + 1] = esc(e.error) end
  if e.handler_error then parts[#parts + 1] = "handler: " .. esc(e.handler_error) end
  if #parts == 0 then return "" end
  return '<div class="err">' .. concat(parts, "<br>") .. "</div>"
end

-- Each section: title, advice, columns { header, function(entry) -> html, class }.
local function id_col(key, header)
  return { header, function(e) return esc(e[key]) end, "id" }
end
local function time_col(key, header)
  return { header, function(e) return esc(iso8601(e[key])) end, "t" }
end
local REASON = { "reason", function(e) return esc(e.reason) .. error_text(e) end }
-- the reason says why the applicant is needed; only a failed handler is news
local REVERIFY_REASON = { "reason", function(e) return esc(e.reason) .. error_text(e, true) end }

local SECTION_SPECS = {
  { key = "reverify", title = "Re-verify: send each applicant their new link",
    advice = "The connection needs the applicant again (expired, changed credentials, MFA, "
             .. "locked account): a new verification order was created for each case below, "
             .. "and completing it completes the renewal. Send each applicant their link "
             .. "(reverify.csv beside this page lists them for a mailer). Truv also sends it "
             .. "to the email or phone the case file gave; for a case with neither, Truv told "
             .. "nobody.",
    cols = { { "case", function(e)   -- the new order's id is in its link (and the CSVs)
                 return esc(e.case_id) .. '<div class="sub">order ' .. esc(e.order_id)
                        .. "</div>" end, "id" },
             APPLICANT, REVERIFY_REASON,
             { "verification link", function(e) return link(e.share_url) end, "url" },
             { "next step", function(e)
                 local text = esc(e.next_step)
                 if e.no_contact then return '<span class="err">' .. text .. "</span>" end
                 if e.share_url then
                   text = text .. '<div class="sub">Truv also sends it to the email or phone '
                          .. "on file</div>"
                 end
                 return text
               end, "step" } } },
  { key = "expiring", title = "Likely to expire soon: send a link ahead of time",
    advice = "These connections were last authenticated long ago (since the connection was "
             .. "made, or since the last re-authentication seen); OAuth connections typically "
             .. "last about 180 days. They still worked or were tried: nothing was refused, "
             .. "and no link was made for them. Contacting the applicant now (a new order from "
             .. "Truv's dashboard) avoids a failed renewal later.",
    cols = { id_col("case_id", "case"), id_col("order_id", "order"), APPLICANT,
             { "route", function(e) return esc(e.route) end },
             { "connections (age)", function(e) return esc(e.expiring) end } } },
  { key = "fix", title = "Needs a person (fix)",
    advice = "Truv or the input rejected the refresh; running again will not help until "
             .. "someone acts: the next step says what to do for each reason.",
    cols = { id_col("case_id", "case"), id_col("order_id", "order"), APPLICANT, REASON,
             NEXT_STEP } },
  { key = "retry", title = "Retry later",
    advice = "A provider or network problem. Run truv-renew again with the same journal "
             .. "after the time shown.",
    cols = { id_col("case_id", "case"), id_col("order_id", "order"), REASON,
             time_col("retry_at", "retry after (UTC)") } },
  { key = "defer", title = "Deferred: refresh quota spent",
    advice = "Truv allows 3 refreshes per connection per 24 hours.",
    cols = { id_col("case_id", "case"), id_col("order_id", "order"), REASON,
             time_col("not_before", "not before (UTC)") } },
  { key = "no_data", title = "Connected, no data returned",
    advice = "The connection works but the provider returned nothing to pre-fill.",
    cols = { id_col("case_id", "case"), id_col("order_id", "order"), REASON } },
  { key = "bad", title = "Bad input rows (skipped)",
    advice = "These rows of the input file could not be read; fix them and run again.",
    cols = { { "line", function(e) return esc(e.line) end, "n" }, id_col("case_id", "case"),
             { "problem", function(e) return esc(e.error) end } } },
}

for _, spec in ipairs(SECTION_SPECS) do
  if route_mod.ROUTES[spec.key] then SECTIONS[spec.key] = true end
end

local function section(spec, entries)
  local out = { format("<h2>%s (%d)</h2>", esc(spec.title), #entries) }
  if #entries == 0 then
    out[#out + 1] = '<p class="note">None.</p>'
    return concat(out)
  end
  out[#out + 1] = '<p class="note">' .. esc(spec.advice) .. "</p><table><thead><tr>"
  for _, c in ipairs(spec.cols) do out[#out + 1] = "<th>" .. esc(c[1]) .. "</th>" end
  out[#out + 1] = "</tr></thead><tbody>"
  for _, e in ipairs(entries) do
    out[#out + 1] = "<tr>"
    for _, c in ipairs(spec.cols) do
      out[#out + 1] = (c[3] and ('<td class="' .. c[3] .. '">') or "<td>") .. c[2](e) .. "</td>"
    end
    out[#out + 1] = "</tr>"
  end
  out[#out + 1] = "</tbody></table>"
  return concat(out)
end

local function metadata(f, opts)
  local items = {
    { "Input file", opts.input }, { "Journal", opts.journal_path },
    { "Started", iso8601(opts.started_at) }, { "Finished", iso8601(opts.finished_at) },
    { "Cases", tostring(f.total) }, { "Report written", iso8601(opts.now or os.time()) },
  }
  local out = { '<dl class="meta">' }
  for _, it in ipairs(items) do
    if it[2] then out[#out + 1] = format("<dt>%s</dt><dd>%s</dd>", esc(it[1]), esc(it[2])) end
  end
  out[#out + 1] = "</dl>"
  return concat(out)
end

--- The page as a string; `lists` as collected from the journal.
function _M.html(summary, lists, opts)
  opts = opts or {}
  local f = figures(summary)
  local title = opts.title or "Renewal report"
  local out = {
    '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
      .. "style-src 'unsafe-inline'; img-src data:\">",
    "<title>", esc(title), "</title><style>", CSS, "</style></head><body>",
    "<h1>", esc(title), "</h1>", metadata(f, opts),
    "<h2>Cases per route</h2>", chart(f), counts_table(f, opts.times),
  }
  for _, spec in ipairs(SECTION_SPECS) do out[#out + 1] = section(spec, lists[spec.key] or {}) end
  out[#out + 1] = format('<h2>Done (%d)</h2><p class="note">Fresh data was handed to the '
    .. "pre-fill step. Every case, done ones included, is listed in cases.csv beside this "
    .. "page.</p>", f.routes.done or 0)
  if opts.version then
    out[#out + 1] = '<p class="note">truv-renew ' .. esc(opts.version) .. "</p>"
  end
  out[#out + 1] = "</body></html>\n"
  return concat(out)
end

-- ---------------------------------------------------------------- write

local function shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function write_file(path, data)
  local tmp = path .. ".tmp"
  local f, err = open(tmp, "wb")
  if not f then return nil, err end
  local ok, werr = f:write(data)
  local closed, cerr = f:close()
  if not ok or not closed then
    remove(tmp)
    return nil, werr or cerr
  end
  return rename(tmp, path)
end

--- Writes dir/cases.csv, dir/reverify.csv and dir/report.html (creating
-- dir). opts: input, journal_path, started_at, finished_at, times, title,
-- version, now. Returns { csv =, reverify =, html =, cases = n } or nil, err.
function _M.write(dir, journal, summary, opts)
  opts = opts or {}
  local mkdir = io.popen("mkdir -p " .. shell_quote(dir) .. " 2>&1")
  local why = mkdir:read("a")
  if not mkdir:close() then
    return nil, "cannot create the report directory " .. dir .. ": " .. why:gsub("%s+$", "")
  end
  local csv, html, rv = dir .. "/cases.csv", dir .. "/report.html", dir .. "/reverify.csv"
  local lists, count = write_csv({ csv = csv .. ".tmp", reverify = rv .. ".tmp" }, journal)
  if not lists then
    remove(csv .. ".tmp")
    remove(rv .. ".tmp")
    return nil, "cannot write " .. csv .. ": " .. tostring(count)
  end
  local ok, err = rename(csv .. ".tmp", csv)
  if ok then ok, err = rename(rv .. ".tmp", rv) end
  if not ok then return nil, err end
  local page_opts = {}
  for k, v in pairs(opts) do page_opts[k] = v end
  page_opts.times = page_opts.times or _M.times_of(lists)
  ok, err = write_file(html, _M.html(summary, lists, page_opts))
  if not ok then return nil, "cannot write " .. html .. ": " .. tostring(err) end
  return { csv = csv, html = html, reverify = rv, cases = count }
end

--- The earliest retry / defer times among collected lists.
function _M.times_of(lists)
  local t = {}
  for r in pairs(route_mod.TIMED) do
    for _, e in ipairs(lists[r] or {}) do earliest(t, e) end
  end
  return t
end

return _M
