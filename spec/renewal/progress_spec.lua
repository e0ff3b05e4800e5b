-- truv.progress: the live line on a terminal, a status line now and then
-- elsewhere, JSON lines for log shipping, nothing but errors when quiet.
local progress = require "truv.progress"
local cjson = require("cjson").new()

-- A stream that keeps what was written and counts flushes.
local function stream()
  local s = { parts = {}, flushes = 0, writes_since_flush = 0 }
  function s.write(self, ...)
    for _, p in ipairs{ ... } do self.parts[#self.parts + 1] = p end
    self.writes_since_flush = self.writes_since_flush + 1
    return self
  end
  function s.flush(self)
    self.flushes = self.flushes + 1
    self.writes_since_flush = 0
    return self
  end
  function s.text(self) return table.concat(self.parts) end
  return s
end

-- A clock the spec moves by hand.
local function clock(t0)
  local c = { now = t0 or 1800000000 }
  c.fn = function() return c.now end
  return c
end

local function lines(text)
  local out = {}
  for l in text:gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

-- One small run: 3 cases, one bad row, a handler failure.
local function feed(p, c)
  local evs = {
    { event = "bad_row", line = 7, case_id = "c-bad", message = "missing order_id" },
    { event = "run_started", total = 3, counts = { new = 3, failed = 1 } },
    { event = "started", case_id = "c1" },
    { event = "sending", case_id = "c1" },
    { event = "sent", case_id = "c1", refresh_order_id = "r1", reconciled = false },
    { event = "routed", case_id = "c1", route = "done", reason = "completed",
      refresh_order_id = "r1" },
    { event = "started", case_id = "c2" },
    { event = "handler_error", case_id = "c2", route = "reverify", message = "mailer down" },
    { event = "routed", case_id = "c2", route = "reverify", reason = "login_error",
      share_url = "https://cdn.truv.com/x?bridge_token=abc" },
    { event = "started", case_id = "c3" },
    { event = "routed", case_id = "c3", route = "retry", reason = "unavailable",
      retry_at = 1800003600 },
    { event = "run_finished", summary = { total = 4, failed = 1,
      routes = { done = 1, reverify = 1, retry = 1 }, states = { routed = 2, scheduled = 1,
      failed = 1 } } },
  }
  for _, ev in ipairs(evs) do
    p:event(ev)
    if c then c.now = c.now + 0.5 end
  end
  return evs
end

describe("progress as JSON lines (not a terminal)", function()
  it("writes one valid JSON object per event and per line, flushed each time", function()
    local s, c = stream(), clock()
    local p = progress.new{ stream = s, mode = "json", clock = c.fn }
    local evs = feed(p, c)
    p:finish(evs[#evs].summary)
    local ls = lines(s:text())
    assert.are.equal(#evs, #ls)
    for i, l in ipairs(ls) do
      local ok, obj = pcall(cjson.decode, l)
      assert.is_true(ok, l)
      assert.are.equal(evs[i].event, obj.event)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$", obj.ts)
    end
    assert.are.equal(0, s.writes_since_flush)
    assert.is_true(s.flushes >= #ls)
  end)

  it("starts each line with ts and event, and keeps the event's fields", function()
    local s, c = stream(), clock(1800000000.25)
    local p = progress.new{ stream = s, mode = "json", clock = c.fn }
    p:event{ event = "routed", case_id = "c<1>", route = "retry", reason = "unavailable",
             retry_at = 1800003600 }
    local l = lines(s:text())[1]
    assert.matches('^{"ts":"2027%-01%-15T08:00:00%.250Z","event":"routed","case_id":"c<1>",', l)
    local obj = cjson.decode(l)
    assert.are.equal("retry", obj.route)
    assert.are.equal("unavailable", obj.reason)
    assert.are.equal("2027-01-15T09:00:00Z", obj.retry_at)
  end)

  it("adds nothing to an event but the timestamp", function()
    local s = stream()
    local p = progress.new{ stream = s, mode = "json", clock = function() return 0 end }
    p:event{ event = "sent", case_id = "c1", refresh_order_id = "r1", reconciled = true }
    local obj = cjson.decode(lines(s:text())[1])
    local keys = {}
    for k in pairs(obj) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.are.same({ "case_id", "event", "reconciled", "refresh_order_id", "ts" }, keys)
  end)

  it("leaves verification links and tokens out of every line", function()
    local s = stream()
    local p = progress.new{ stream = s, mode = "json", clock = function() return 0 end }
    local evs = feed(p)
    p:event{ event = "routed", case_id = "c5", route = "reverify", link = true,
             share_url = "https://cdn.truv.com/employment.html?bridge_token=b5&order_group_id=o5",
             short_share_url = "https://truv.com/s/Xy5", bridge_token = "bt5",
             access_token = "at5", detail = { bridge_tokens = { "bt6" } } }
    p:event{ event = "error", case_id = "c6",
             message = "GET https://x/?access_token=at6 failed: bridge_token=bt7" }
    local text = s:text()
    for _, secret in ipairs{ "bridge_token=abc", "b5", "Xy5", "bt5", "at5", "bt6", "at6", "bt7" } do
      assert.falsy(text:find(secret, 1, true), secret .. " in " .. text)
    end
    local ls = lines(text)
    assert.are.equal(#evs + 2, #ls)
    local routed = cjson.decode(ls[#ls - 1])
    assert.is_nil(routed.share_url)
    assert.is_true(routed.link)
    assert.are.equal("reverify", routed.route)
    assert.matches("access_token=%[redacted%] failed: bridge_token=%[redacted%]",
                   cjson.decode(ls[#ls]).message)
  end)

  it("escapes what JSON needs escaped", function()
    local s = stream()
    local p = progress.new{ stream = s, mode = "json", clock = function() return 0 end }
    p:event{ event = "bad_row", line = 3, message = 'quote " backslash \\ newline \n tab \t \1' }
    local ls = lines(s:text())
    assert.are.equal(1, #ls)
    assert.are.equal('quote " backslash \\ newline \n tab \t \1', cjson.decode(ls[1]).message)
  end)

  it("writes run_finished at finish() when no event carried it, once", function()
    local s = stream()
    local p = progress.new{ stream = s, mode = "json", clock = function() return 0 end }
    p:finish{ total = 0, routes = {}, states = {}, failed = 0 }
    p:finish{ total = 0, routes = {}, states = {}, failed = 0 }
    local ls = lines(s:text())
    assert.are.equal(1, #ls)
    assert.are.equal("run_finished", cjson.decode(ls[1]).event)
  end)

end)

describe("progress as status lines (not a terminal)", function()
  it("is what auto mode picks when the stream is not a terminal", function()
    local s = stream()
    local p = progress.new{ stream = s, tty = false, clock = function() return 0 end }
    assert.are.equal("lines", p.mode)
    assert.is_false(progress.isatty(s))
    local f = assert(io.tmpfile())
    assert.is_false(progress.isatty(f))
    f:close()
  end)

  it("writes a line when the run starts, every 10 seconds, and at the end", function()
    local s, c = stream(), clock()
    local p = progress.new{ stream = s, mode = "lines", clock = c.fn }
    p:event{ event = "run_started", total = 1000, counts = {} }
    for i = 1, 1000 do            -- 1000 cases over 100 seconds
      p:event{ event = "started", case_id = "c" .. i }
      p:event{ event = "routed", case_id = "c" .. i, route = i % 10 == 0 and "fix" or "done",
               reason = "x" }
      if i % 10 == 0 then p:load{ requests = 7, queued = 0, cases = 12 } end
      c.now = c.now + 0.1
    end
    p:finish{ total = 1000, routes = { done = 900, fix = 100 }, failed = 0 }
    local ls = lines(s:text())
    -- one at the start, one per 10 s of the 100, one at the end
    assert.is_true(#ls >= 10 and #ls <= 13, #ls .. " lines:\n" .. s:text())
    assert.matches("^0:00 0/1000 cases, ", ls[1])
    assert.matches("^0:50 %d+/1000 cases, [%d.]+/s, ETA %d+:%d%d | done %d+ fix %d+ | "
                   .. "7 requests in flight, 12 cases open$", ls[6])
    assert.matches("^1:40 1000/1000 cases, 10.0/s | done 900 fix 100$", ls[#ls])
    assert.is_nil(s:text():find("\r", 1, true))
  end)

  it("keeps going while no case finishes: the run's load drives it", function()
    local s, c = stream(), clock()
    local p = progress.new{ stream = s, mode = "lines", clock = c.fn, every = 5 }
    p:event{ event = "run_started", total = 3, counts = {} }
    for _ = 1, 60 do               -- 30 s of waiting for refreshes, no event
      c.now = c.now + 0.5
      p:load{ requests = 1, queued = 0, cases = 3 }
    end
    assert.are.equal(1 + 6, #lines(s:text()))
  end)

  it("prints errors as they come, and a line per case with verbose", function()
    local s, c = stream(), clock()
    local p = progress.new{ stream = s, mode = "lines", clock = c.fn, verbose = true }
    feed(p, c)
    p:finish()
    local text = s:text()
    assert.matches("bad input row at line 7 (case c-bad): missing order_id", text, 1, true)
    assert.matches("c3  retry  unavailable  retry after 2027-01-15T09:00:00Z", text, 1, true)
    assert.falsy(text:find("bridge_token=abc", 1, true))
  end)
end)

describe("progress on a terminal", function()
  it("redraws one line in place, at most 10 times a second", function()
    local s, c = stream(), clock()
    local p = progress.new{ stream = s, mode = "bar", clock = c.fn, width = 120 }
    p:event{ event = "run_started", total = 1000, counts = {} }
    for i = 1, 1000 do            -- 1000 cases over 2 seconds
      p:event{ event = "started", case_id = "c" .. i }
      p:event{ event = "routed", case_id = "c" .. i, route = "done", reason = "completed" }
      c.now = c.now + 0.002
    end
    assert.is_true(p.redraws <= 2 * 10 + 2, "redraws: " .. p.redraws)
    assert.is_true(p.redraws >= 10)
    local text = s:text()
    assert.is_nil(text:find("\n"))           -- never a new line while running
    local _, crs = text:gsub("\r", "")
    assert.are.equal(p.redraws, crs)
    p:finish()
    assert.matches("\n$", s:text())
  end)

  it("shows done/total, rate, ETA, counts per route, requests in flight and cases open",
     function()
    local s, c = stream(), clock()
    local p = progress.new{ stream = s, mode = "bar", clock = c.fn, width = 160 }
    p:event{ event = "run_started", total = 10, counts = {} }
    for i = 1, 6 do p:event{ event = "started", case_id = "c" .. i } end
    c.now = c.now + 2
    for i, r in ipairs{ "done", "done", "reverify", "fix" } do
      p:event{ event = "routed", case_id = "c" .. i, route = r, reason = "x" }
    end
    local line = p:render(c.now)
    assert.matches("^%[#+%-+%]", line)
    assert.matches(" 4/10 ", line, 1, true)
    assert.matches("2.0/s", line, 1, true)
    assert.matches("ETA 0:03", line, 1, true)
    assert.matches("done 2 reverify 1 retry 0 defer 0 no_data 0 fix 1", line, 1, true)
    -- before the run says how busy it is: the cases started and not finished
    assert.matches("| 2 cases open$", line)
    -- then the requests in flight too (renewal.run's on_load)
    p:load{ requests = 5, queued = 2, cases = 6 }
    assert.matches("| 5 requests in flight, 6 cases open$", p:render(c.now))
    p:load{ requests = 1, queued = 0, cases = 1 }
    assert.matches("| 1 request in flight, 1 case open$", p:render(c.now))
  end)

  it("takes its width from the terminal, then $COLUMNS, then 80", function()
    -- not a terminal here (ctest's pipes): $COLUMNS or 80; the terminal's
    -- own size is spec/renewal/interrupt_spec.lua's, through a pty
    assert.is_number(progress.width(io.stderr))
    local f = assert(io.tmpfile())
    assert.are.equal(tonumber(os.getenv("COLUMNS") or "") or 80, progress.width(f))
    f:close()
  end)

  it("fits a narrow terminal on one line", function()
    local s, c = stream(), clock()
    for _, width in ipairs{ 40, 60, 80, 100 } do
      local p = progress.new{ stream = s, mode = "bar", clock = c.fn, width = width }
      p:event{ event = "run_started", total = 100000, counts = {} }
      for i, r in ipairs{ "done", "reverify", "retry", "defer", "no_data", "fix" } do
        p:event{ event = "routed", case_id = "c" .. i, route = r, reason = "x" }
      end
      p:load{ requests = 1000, queued = 24, cases = 1280 }
      c.now = c.now + 1
      local line = p:render(c.now)
      assert.is_true(#line < width, width .. ": " .. line)
      if width >= 80 then assert.matches("fx:1", line, 1, true) end
      if width >= 100 then assert.matches("^%[%-+%] ", line) end
      if width >= 100 then assert.matches("req 1000, cases 1280", line, 1, true) end
    end
  end)

  it("prints errors above the line; with --verbose a line per case too", function()
    for _, verbose in ipairs{ false, true } do
      local s, c = stream(), clock()
      local p = progress.new{ stream = s, mode = "bar", clock = c.fn, verbose = verbose }
      feed(p, c)
      p:finish()
      local text = s:text():gsub("\27%[K", ""):gsub("\r%[[^\r\n]*", "")  -- drop the bar
      assert.matches("bad input row at line 7 (case c-bad): missing order_id", text, 1, true)
      assert.matches("case c2: the reverify handler failed: mailer down", text, 1, true)
      local per_case = text:find("c3  retry  unavailable  retry after 2027-01-15T09:00:00Z",
                                 1, true)
      if verbose then
        assert.truthy(per_case)
        assert.matches("c2  reverify  login_error  new link (in the report)", text, 1, true)
      else
        assert.falsy(per_case)
      end
    end
  end)

  it("never shows a verification link or a token", function()
    local s, c = stream(), clock()
    local p = progress.new{ stream = s, mode = "bar", clock = c.fn, verbose = true }
    feed(p, c)
    p:event{ event = "handler_error", case_id = "c4", route = "reverify",
             message = "could not mail https://cdn.truv.com/x?bridge_token=tok-in-text&a=1" }
    p:finish()
    local text = s:text()
    assert.falsy(text:find("bridge_token=abc", 1, true), text)
    assert.falsy(text:find("tok-in-text", 1, true), text)
    assert.truthy(text:find("bridge_token=[redacted]&a=1", 1, true), text)
  end)

  it("is what auto mode picks on a terminal", function()
    assert.are.equal("bar", progress.new{ stream = stream(), tty = true }.mode)
  end)
end)

describe("progress when quiet", function()
  it("prints nothing but errors", function()
    local s, c = stream(), clock()
    local p = progress.new{ stream = s, mode = "quiet", clock = c.fn }
    local evs = feed(p, c)
    p:finish(evs[#evs].summary)
    local ls = lines(s:text())
    assert.are.same({
      "bad input row at line 7 (case c-bad): missing order_id (skipped)",
      "case c2: the reverify handler failed: mailer down",
    }, ls)
  end)

  it("refuses an unknown mode", function()
    assert.has_error(function() progress.new{ mode = "loud" } end,
                     "progress.new: unknown mode 'loud'")
  end)
end)

describe("progress.encode", function()
  it("writes objects with sorted keys, arrays, numbers and null", function()
    assert.are.equal('{"a":[1,2.5,"x"],"b":{"c":true},"d":null}',
                     progress.encode{ b = { c = true }, a = { 1, 2.5, "x" },
                                      d = require("truv.core").null })
    assert.are.equal("null", progress.encode(0 / 0))
    assert.are.equal("{}", progress.encode{})
  end)
end)
