--- Progress of a renewal batch, for a person at a terminal or for a log
-- shipper.
--
--   local progress = require "truv.progress"
--   local p = progress.new{ mode = "auto", verbose = false }
--   local summary = renewal.run{ ..., on_event = function(ev) p:event(ev) end,
--                                on_load = function(l) p:load(l) end }
--   p:finish(summary)
--
-- Options:
--   stream   where to write (io.stderr)
--   mode     "auto" (a bar on a terminal, status lines otherwise), "bar",
--            "lines", "json" or "quiet" (nothing but errors)
--   tty      whether `stream` is a terminal (auto: TERM is set and not
--            "dumb", and the kernel says the stream's descriptor is one;
--            asked once, in new())
--   verbose  one line per finished case as well (bar and lines)
--   clock    function -> epoch seconds with a fraction (truv.core.now)
--   width    columns of the bar line; default: the terminal's width now
--            (asked of the kernel at each redraw, so a resized window is
--            followed), else $COLUMNS, else 80
--   min_interval  seconds between redraws of the bar (0.1)
--   every    seconds between two status lines (lines mode, 10)
--
-- Bar: one line redrawn in place (carriage return, at most 1/min_interval
-- times a second): bar, finished/total, cases/s, ETA, counts per route,
-- then the requests in flight (sent to Truv, not answered yet) and the
-- cases open (started, not finished: most of them wait for a refresh),
-- when renewal.run's on_load feeds p:load(); without it, the cases open
-- only. Errors (bad input rows, handler failures, internal errors) are
-- printed as lines above it in every mode.
--
-- Lines: for logs and screens that are not terminals (cron mail, CI, a
-- pipe): the same figures as a plain line when the run starts, every
-- `every` seconds while it runs (driven by events and by p:load()), and
-- when it ends; errors as they come. A run of an hour writes a few hundred
-- lines, not one per case.
--
-- JSON: one object per event and per line, flushed at once, keys "ts" (ISO
-- 8601 UTC) and "event" first; times (retry_at, not_before) as ISO 8601.
-- Nothing is added to an event here but the timestamp.
--
-- Lines and JSON lines go to logs, so no verification link or token is ever
-- written: renewal.run's events hold ids, routes and reasons (a routed
-- event says link = true when the case got a new verification link, whose
-- URL carries a bridge token and is in the report only), and any field of
-- an event named like a link or a token (share_url, bridge_token,
-- access_token, secret, ...) is left out, and a bridge_token=... in any
-- text is redacted, whatever emitted the event.
local type, pairs, ipairs, tostring, tonumber = type, pairs, ipairs, tostring, tonumber
local floor, max, min, huge = math.floor, math.max, math.min, math.huge
local format, rep = string.format, string.rep
local concat = table.concat
local getenv = os.getenv
local core = require "truv.core"
local route = require "truv.route"
local time = require "truv.time"

local encode = core.encode

local _M = {}

local Progress = {}
Progress.__index = Progress

_M.ROUTES = route.FINAL

-- Fields holding epoch seconds: shown as ISO 8601 in lines and JSON.
local TIME_FIELDS = { retry_at = true, not_before = true }

-- Fields never written: links that open Bridge for the applicant, tokens,
-- secrets.
local WITHHELD = { share_url = true, short_share_url = true, bridge_token = true,
                   bridge_tokens = true, access_token = true, token = true, tokens = true,
                   secret = true, secrets = true }

-- A text with the tokens a URL may carry (bridge_token=..., access_token=...)
-- redacted.
local function scrub(s)
  return (s:gsub("([%w_]*token)=[^&%s\"']+", "%1=[redacted]"))
end
_M.scrub = scrub

-- A copy of an event's value without withheld fields or tokens in texts.
local function withheld(v)
  if type(v) == "string" then return scrub(v) end
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do
    if not WITHHELD[k] then out[k] = withheld(x) end
  end
  return out
end

-- ---------------------------------------------------------------- helpers

--- Epoch seconds -> "2026-05-01T12:00:00Z" (with ".123" when `ms`): truv.time's.
_M.iso8601 = time.iso8601

-- A copy of `v` that JSON can hold: a number it cannot (NaN, infinity) and
-- a value it has no form for (a function, a userdata, JSON null) as null,
-- the keys of a table that is not a list as text.
local function json_safe(v)
  local t = type(v)
  if t == "number" then
    if v ~= v or v == huge or v == -huge then return core.null end
    return v
  end
  if t == "string" or t == "boolean" then return v end
  if t ~= "table" then return core.null end
  local out, n, list = {}, #v, true
  for k in pairs(v) do
    if type(k) ~= "number" or k < 1 or k > n or k % 1 ~= 0 then list = false end
  end
  for k, x in pairs(v) do out[list and k or tostring(k)] = json_safe(x) end
  return out
end

--- A Lua value as JSON text: objects with their keys sorted (`first`, a
-- list of keys, first of all in the outermost one), sequences as arrays,
-- anything JSON cannot hold as null. core.encode writes it.
function _M.encode(v, first)
  return encode(json_safe(v), first or true)
end


local FD = { [io.stdout] = 1, [io.stderr] = 2 }

--- Is `stream` (io.stdout or io.stderr) a terminal that can redraw a line?
-- The kernel says (truv.core.isatty); TERM unset or "dumb" says no.
function _M.isatty(stream)
  local fd = FD[stream]
  local term = getenv("TERM")
  if not fd or not term or term == "" or term == "dumb" then return false end
  return core.isatty(fd)
end

--- The columns of the terminal behind `stream` now (TIOCGWINSZ), else
-- $COLUMNS, else 80.
function _M.width(stream)
  local fd = FD[stream]
  local cols = fd and core.terminal_size(fd)
  return cols or tonumber(getenv("COLUMNS") or "") or 80
end

local function duration(s)
  if s == nil or s ~= s or s == huge then return "--:--" end
  s = floor(s + 0.5)
  if s >= 3600 then return format("%d:%02d:%02d", s // 3600, s % 3600 // 60, s % 60) end
  return format("%d:%02d", s // 60, s % 60)
end

-- --------------------------------------------------------------- the object

local MODES = { auto = true, bar = true, lines = true, json = true, quiet = true }

function _M.new(opts)
  opts = opts or {}
  local mode = opts.mode or "auto"
  if not MODES[mode] then error("progress.new: unknown mode '" .. tostring(mode) .. "'", 2) end
  local stream = opts.stream or io.stderr
  if mode == "auto" then
    local tty = opts.tty
    if tty == nil then tty = _M.isatty(stream) end
    mode = tty and "bar" or "lines"
  end
  return setmetatable({
    stream = stream, mode = mode, verbose = opts.verbose and true or false,
    clock = opts.clock or core.now,
    fixed_width = opts.width, width = opts.width or _M.width(stream),
    min_interval = opts.min_interval or 0.1,
    every = opts.every or 10, lined_at = -huge,
    total = 0, finished = 0, started = 0,
    routes = {}, errors = 0, bad_rows = 0,
    drawn_at = -huge, redraws = 0, shown = false,
  }, Progress)
end

-- Bookkeeping common to every mode.
function Progress:_count(ev)
  local e = ev.event
  if e == "run_started" then
    self.total = ev.total or 0
    self.started_at = self.clock()
  elseif e == "started" then
    self.started = self.started + 1
  elseif e == "routed" then
    self.finished = self.finished + 1
    self.routes[ev.route] = (self.routes[ev.route] or 0) + 1
  elseif e == "error" then
    self.finished = self.finished + 1
    self.errors = self.errors + 1
  elseif e == "bad_row" then
    self.bad_rows = self.bad_rows + 1
  elseif e == "model_reread" then
    return format("%s  the original order as the journal kept it was refused (%s): read again",
                  tostring(ev.case_id), tostring(ev.message))
  elseif e == "capped" then
    -- past --max-billed: done with for this run, left due
    self.finished = self.finished + 1
  end
end

function Progress:_write(s)
  self.stream:write(s)
  self.stream:flush()
end

--- Figures for the bar: rate (cases/s), eta (seconds), open (cases
-- started and not finished), requests (in flight, nil until p:load()).
function Progress:figures(now)
  now = now or self.clock()
  local elapsed = self.started_at and (now - self.started_at) or 0
  local rate = elapsed > 0 and self.finished / elapsed or 0
  local left = max(0, self.total - self.finished)
  local eta = (left == 0 and 0) or (rate > 0 and left / rate) or nil
  local l = self.busy
  return { rate = rate, eta = eta, open = l and l.cases or max(0, self.started - self.finished),
           requests = l and l.requests, left = left, elapsed = elapsed }
end

-- What is under way, long (0) or short (1).
local function under_way(f, detail)
  if detail == 1 then
    return f.requests and format("req %d, cases %d", f.requests, f.open)
           or format("%d open", f.open)
  end
  if f.requests then
    return format("%d request%s in flight, %d case%s open", f.requests,
                  f.requests == 1 and "" or "s", f.open, f.open == 1 and "" or "s")
  end
  return format("%d case%s open", f.open, f.open == 1 and "" or "s")
end

local SHORT = { done = "d", reverify = "rv", retry = "rt", defer = "df", no_data = "nd", fix = "fx",
                errors = "err" }

-- The counts per route, in one of three widths: every route by name (0),
-- the non-zero ones by name (1), the non-zero ones by short code (2).
function Progress:_counts(detail)
  local out = {}
  local function add(name, n)
    if detail == 0 then out[#out + 1] = format("%s %d", name, n)
    elseif n > 0 and detail == 1 then out[#out + 1] = format("%s %d", name, n)
    elseif n > 0 then out[#out + 1] = format("%s:%d", SHORT[name], n) end
  end
  for _, r in ipairs(_M.ROUTES) do add(r, self.routes[r] or 0) end
  if self.errors > 0 then add("errors", self.errors) end
  return #out > 0 and concat(out, " ") or "-"
end

--- The bar line (without the carriage return), at most `width` - 1
-- columns: a narrow terminal gets shorter route counts and a narrower bar,
-- then no bar, then a cut line (a line that wraps could not be redrawn in
-- place).
function Progress:render(now)
  local f = self:figures(now)
  if not self.fixed_width then self.width = _M.width(self.stream) end
  local cols = max(20, self.width) - 1
  local bar_w = max(10, min(30, cols - 69))       -- fixed per width: no jumping
  local stats
  -- the route counts and what is under way, each shortened in turn
  for detail, d in ipairs{ { 0, 0 }, { 1, 0 }, { 1, 1 }, { 2, 1 } } do
    stats = format(" %d/%d %.1f/s ETA %s | %s | %s", self.finished, self.total,
                   f.rate, duration(f.eta), self:_counts(d[1]), under_way(f, d[2]))
    if detail == 4 then bar_w = max(10, min(bar_w, cols - #stats - 2)) end
    if #stats + bar_w + 2 <= cols then
      local filled = self.total > 0 and floor(bar_w * min(1, self.finished / self.total)) or 0
      return "[" .. rep("#", filled) .. rep("-", bar_w - filled) .. "]" .. stats
    end
  end
  return stats:sub(2, cols + 1)                   -- no room for a bar
end

function Progress:_draw(now, force)
  now = now or self.clock()
  if not force and now - self.drawn_at < self.min_interval then
    self.dirty = true
    return
  end
  self.drawn_at, self.dirty, self.shown = now, false, true
  self.redraws = self.redraws + 1
  self:_write("\r" .. self:render(now) .. "\27[K")
end

--- The status line of lines mode (without its newline).
function Progress:status_line(now)
  now = now or self.clock()
  local f = self:figures(now)
  if self.finished == 0 and f.elapsed < 1 then
    return format("%s 0/%d cases, starting", duration(f.elapsed), self.total)
  end
  local line = format("%s %d/%d cases, %.1f/s", duration(f.elapsed), self.finished, self.total,
                      f.rate)
  if f.left == 0 then return line .. " | " .. self:_counts(1) end
  return format("%s, ETA %s | %s | %s", line, duration(f.eta), self:_counts(1), under_way(f, 0))
end

-- Lines mode: a status line when `every` seconds have passed (or at once
-- when forced).
function Progress:_status(now, force)
  now = now or self.clock()
  if not force and now - self.lined_at < self.every then return end
  self.lined_at = now
  self:_write(self:status_line(now) .. "\n")
end

-- A line above the bar. The bar comes back at the next redraw slot: never
-- more redraws than min_interval allows, even with a line per case.
function Progress:_line(text)
  if self.mode == "bar" and self.shown then
    self:_write("\r\27[K" .. text .. "\n")
    self.shown = false
    self:_draw()
  else
    self:_write(text .. "\n")
  end
end

local when = time.iso8601

--- One event as a plain text line, or nil when it deserves none.
function _M.describe(ev, verbose)
  local e = ev.event
  if e == "bad_row" then
    return format("bad input row at line %s%s: %s (skipped)", tostring(ev.line),
                  ev.case_id and (" (case " .. ev.case_id .. ")") or "", tostring(ev.message))
  elseif e == "error" then
    return format("case %s failed: %s (will be retried)", tostring(ev.case_id), tostring(ev.message))
  elseif e == "handler_error" then
    return format("case %s: the %s handler failed: %s", tostring(ev.case_id), tostring(ev.route),
                  tostring(ev.message))
  elseif not verbose then
    return nil
  elseif e == "routed" then
    local parts = { tostring(ev.case_id), ev.route, ev.reason and tostring(ev.reason) or nil }
    if ev.link or ev.share_url then parts[#parts + 1] = "new link (in the report)" end
    if ev.retry_at then parts[#parts + 1] = "retry after " .. when(ev.retry_at) end
    if ev.not_before then parts[#parts + 1] = "not before " .. when(ev.not_before) end
    return concat(parts, "  ")
  elseif e == "adopted" then
    return format("%s  adopted refresh %s from an earlier run", tostring(ev.case_id),
                  tostring(ev.refresh_order_id))
  elseif e == "recent" then
    return format("%s  refreshed %ds ago (refresh %s): not refreshed again", tostring(ev.case_id),
                  ev.age_s or 0, tostring(ev.refresh_order_id))
  elseif e == "capped" then
    return format("%s  past --max-billed: left due for the next run", tostring(ev.case_id))
  end
  return nil
end

local ERRORS = { bad_row = true, error = true, handler_error = true }

function Progress:_json(ev)
  local out = { ts = _M.iso8601(self.clock(), true) }
  for k, v in pairs(withheld(ev)) do
    out[k] = (TIME_FIELDS[k] and type(v) == "number") and _M.iso8601(v) or v
  end
  self:_write(_M.encode(out, { "ts", "event", "case_id" }) .. "\n")
end

--- Takes one event of renewal.run (plug it into on_event).
function Progress:event(ev)
  self:_count(ev)
  if ev.event == "run_finished" then self.run_finished = true end
  if self.mode == "json" then return self:_json(ev) end
  if self.mode == "quiet" then
    if ERRORS[ev.event] then self:_line(scrub(_M.describe(ev))) end
    return
  end
  local text = _M.describe(ev, self.verbose)
  if text then self:_line(scrub(text)) end
  if self.mode == "lines" then
    -- the first line once the run has started; the last one at finish()
    if ev.event == "run_started" then return self:_status(nil, true) end
    if self.started_at and ev.event ~= "run_finished" then self:_status() end
    return
  end
  if ev.event == "run_started" then return self:_draw(nil, true) end
  if ev.event ~= "run_finished" then self:_draw() end
end

--- Takes how busy the run is (plug it into renewal.run's on_load): the
-- requests in flight and the cases open, shown from now on; also the
-- clock that keeps the bar and the status lines going while no case
-- finishes.
function Progress:load(l)
  self.busy = { requests = l.requests or 0, cases = l.cases or 0 }
  if self.closed or not self.started_at then return end
  if self.mode == "bar" then self:_draw() elseif self.mode == "lines" then self:_status() end
end

--- A line of the program's own (an interruption, a notice) above the bar,
-- or as a line in the other modes; JSON lines are left to the events.
function Progress:message(text)
  if self.mode == "json" then return end
  self:_line(scrub(text))
end

--- Ends the display: the final bar and a newline (bar mode), the last
-- status line (lines mode), the run_finished line if no event carried it
-- (JSON). Safe to call twice.
function Progress:finish(summary)
  if self.closed then return end
  self.closed = true
  if self.mode == "bar" then
    self:_draw(nil, true)
    self:_write("\n")
  elseif self.mode == "lines" and self.started_at then
    self:_status(nil, true)
  elseif self.mode == "json" and not self.run_finished and summary then
    self:_json{ event = "run_finished", summary = summary }
  end
end

return _M
