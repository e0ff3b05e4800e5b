-- truv-renew interrupted as a user interrupts it: Ctrl-C typed at its
-- terminal (a pseudo-terminal), SIGTERM sent to the process (twice: the
-- second one ends it at once). It says so in one line, lets the requests in
-- flight finish, commits the journal, and ends as killed by the signal
-- (130, 143); the live line follows the terminal's width, resized or not.
-- Then the same command resumes with nothing lost and nothing refreshed or
-- linked twice, by the sandbox's own accounting (/_sandbox/stats). The same
-- through renewal.run's `interrupted` option.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local pty = require "spec.support.pty"
local core = require "truv.core"
local renewal = require "truv.renewal"
local socket = require "socket"

local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
local BIN = SRC .. "/bin/truv-renew"
local CASES = 160

local q = files.quote

local function states(journal_path)
  local j = assert(core.journal_open(journal_path))
  local by_state, refreshed, linked, n = {}, 0, 0, 0
  for rec in j:each{} do
    n = n + 1
    by_state[rec.state] = (by_state[rec.state] or 0) + 1
    if rec.refresh_order_id then refreshed = refreshed + 1 end
    if rec.reverify_order_id then linked = linked + 1 end
  end
  j:close()
  return { n = n, by_state = by_state, refreshed = refreshed, linked = linked }
end

local function sb_args(dir)
  -- refreshes that take a while (a task lasts 0.75 s), answers that take a
  -- little: there is always something in flight
  return { "--seed-cases", tostring(CASES), "--rng-seed", "11", "--rate-limit", "0",
           "--realtime", "--time-scale", "40", "--task-duration", "30",
           "--latency-ms", "15", "--latency-jitter-ms", "20",
           "--cases-out", dir .. "/cases.csv" }
end

local function argv(sb, dir, journal)
  return { "lua5.4", BIN, "--journal", journal, "--base-url", sb.base_url, "--rate", "0",
           "--concurrency", "16", "--memory-mb", "2", "--poll-interval", "0.2",
           dir .. "/cases.csv" }
end

local function env(sb)
  return { TRUV_CLIENT_ID = sb.client_id, TRUV_SECRET = sb.secret,
           LUA_PATH = os.getenv("LUA_PATH"), LUA_CPATH = os.getenv("LUA_CPATH") }
end

-- Waits (bounded) until the sandbox has made at least n refreshes.
local function refreshes_reach(sb, n)
  return sandbox.wait_until(function()
    return sb:stats().refresh.order_refreshes >= n
  end, 30, 0.05)
end

-- Runs the same command to its end; checks what resume promises.
local function resume_and_check(sb, dir, journal)
  local cmd = string.format("TRUV_CLIENT_ID=%s TRUV_SECRET=%s timeout 120 lua5.4 %s --json "
                            .. "--journal %s --base-url %s --rate 0 --concurrency 16 --memory-mb 2 "
                            .. "--poll-interval 0.2 %s >%s 2>%s </dev/null",
                            q(sb.client_id), q(sb.secret), q(BIN), q(journal), q(sb.base_url),
                            q(dir .. "/cases.csv"), q(dir .. "/resume.out"), q(dir .. "/resume.err"))
  local _, _, code = os.execute(cmd)
  assert.equal(0, code, files.read(dir .. "/resume.err"))
  local s = states(journal)
  assert.equal(CASES, s.n)                                   -- nothing lost
  for state, count in pairs(s.by_state) do
    assert(state == "routed" or state == "scheduled", count .. " cases left " .. state)
  end
  local stats = sb:stats()
  for order_id, o in pairs(stats.refresh.by_order) do     -- nothing refreshed twice
    assert.equal(1, o.refresh_orders, "order " .. order_id .. " was refreshed "
                 .. o.refresh_orders .. " times")
  end
  assert.equal(s.refreshed, stats.refresh.order_refreshes)
  for number, made in pairs(stats.orders.by_order_number) do   -- nor linked twice
    assert.equal(1, made, "order_number " .. number .. " got " .. made .. " new orders")
  end
  return s
end

describe("truv-renew at a terminal, interrupted with Ctrl-C", function()
  local sb, dir, t, status, journal

  lazy_setup(function()
    dir = files.tmpdir("truv-interrupt")
    sb = sandbox.start{ args = sb_args(dir) }
    journal = dir .. "/run.journal"
    -- a terminal of 150 columns, and a stale $COLUMNS the terminal must win over
    local e = env(sb)
    e.COLUMNS = "40"
    t = pty.start{ dir = dir, cols = 150, rows = 30, env = e, argv = argv(sb, dir, journal) }
    assert(refreshes_reach(sb, 10), "the run did not get going")
    socket.sleep(0.6)                        -- a few redraws at 150 columns
    t.wide = #t:screen()
    -- the window made narrower while it runs
    assert(t:resize(72, 30))
    socket.sleep(0.4)
    t.narrow = #t:screen()
    assert(refreshes_reach(sb, 40), "the run stalled")
    t:key("\3")                              -- Ctrl-C, typed
    status = t:wait(40)
  end)

  lazy_teardown(function()
    if t and t:alive() then t:kill("KILL") end
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("ends as interrupted (status 130) and says so in one line", function()
    assert.equal(130, status, t:screen())
    local said = {}
    for _, l in ipairs(pty.drawn_lines(t:screen())) do
      if l:find("truv-renew:", 1, true) then said[#said + 1] = l end
    end
    assert.equal(1, #said, table.concat(said, "\n"))
    assert.matches("^truv%-renew: interrupted %(Ctrl%-C%): nothing new starts; ", said[1])
    assert.matches("the same command resumes", said[1])
    assert.is_nil(t:screen():find("traceback", 1, true))
    assert.is_nil(t:screen():find("bridge_token", 1, true))
  end)

  it("leaves the journal consistent: every refresh and link made is recorded", function()
    local s = states(journal)
    assert.equal(CASES, s.n)
    assert.is_truthy(s.by_state.new, "the run had finished before Ctrl-C: nothing was tested")
    assert.is_nil(s.by_state.linking)
    local stats = sb:stats()
    -- the requests in flight finished: no refresh the sandbox made is
    -- unknown to the journal (a case journaled as sending was held back
    -- before its request left: resume proves that)
    assert.equal(stats.refresh.order_refreshes, s.refreshed)
    assert.equal(stats.orders.created, s.linked)
  end)

  it("draws its live line as wide as the terminal is, resized or not", function()
    local function bars(text)
      local out = {}
      for _, l in ipairs(pty.drawn_lines(text)) do
        if l:find("/s ETA ", 1, true) then out[#out + 1] = l end
      end
      return out
    end
    local screen = t:screen()
    local before, after = bars(screen:sub(1, t.wide)), bars(screen:sub(t.narrow + 1))
    assert.is_true(#before > 0 and #after > 0)
    local widest = 0
    for _, l in ipairs(before) do
      assert.is_true(#l < 150, l)
      widest = math.max(widest, #l)
    end
    assert.is_true(widest > 72, "never wider than 72 columns at 150: " .. before[#before])
    for _, l in ipairs(after) do assert.is_true(#l < 72, #l .. ": " .. l) end
    -- what is under way says what it counts
    local said = table.concat(before, "\n")
    assert.matches("%d+ requests? in flight, %d+ cases? open", said)
  end)

  it("resumes with nothing lost and nothing refreshed twice", function()
    resume_and_check(sb, dir, journal)
  end)
end)

describe("truv-renew stopped with SIGTERM", function()
  local sb, dir

  lazy_setup(function()
    dir = files.tmpdir("truv-sigterm")
    sb = sandbox.start{ args = sb_args(dir) }
  end)

  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("ends as terminated (143), once or twice signalled, and resumes", function()
    local journal = dir .. "/run.journal"
    local base = 0
    for round, signals in ipairs{ 1, 2 } do
      local t = pty.start{ dir = dir, cols = 100, env = env(sb), argv = argv(sb, dir, journal) }
      assert(refreshes_reach(sb, base + 15), "round " .. round .. " did not get going")
      for _ = 1, signals do t:kill("TERM") end   -- the second: at once, the default
      local status = t:wait(40)
      if t:alive() then t:kill("KILL") end
      assert.equal(143, status, t:screen())
      if signals == 1 then
        assert.matches("truv%-renew: stopping on SIGTERM: nothing new starts;", t:screen())
      end
      base = sb:stats().refresh.order_refreshes
      assert.is_truthy(states(journal).by_state.new, "round " .. round .. " had finished")
    end
    resume_and_check(sb, dir, journal)
  end)
end)

describe("renewal.run interrupted", function()
  local sb, dir

  lazy_setup(function()
    dir = files.tmpdir("truv-interrupted-run")
    sb = sandbox.start{ args = sb_args(dir) }
  end)

  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("takes no new work once `interrupted` says so, and resumes", function()
    local journal = dir .. "/run.journal"
    local sent, events, loads = 0, {}, 0
    local function run(interrupted)
      return renewal.run{
        cases = dir .. "/cases.csv", journal = journal, concurrency = 16, rate_per_minute = 0,
        poll = { interval_s = 0.2 },
        client = { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url },
        interrupted = interrupted,
        on_load = function(l)
          loads = loads + 1
          assert.is_number(l.requests)
          assert.is_number(l.cases)
        end,
        on_event = function(ev)
          events[#events + 1] = ev
          if ev.event == "sent" then sent = sent + 1 end
        end,
      }
    end
    local summary, err = run(function() return sent >= 30 and "test" end)
    assert.is_nil(summary)
    assert.equal("interrupted", err.code)
    assert.equal("test", err.reason)
    assert.is_true(loads > 0)
    local seen, after = nil, 0
    for _, ev in ipairs(events) do
      if ev.event == "interrupted" then seen = ev
      elseif seen and (ev.event == "started" or ev.event == "sending") then after = after + 1 end
    end
    assert.is_truthy(seen)
    assert.equal("test", seen.reason)
    assert.is_number(seen.requests)
    assert.equal(0, after, "work started after the interruption")
    local s = states(journal)
    assert.equal(sb:stats().refresh.order_refreshes, s.refreshed)
    assert.is_truthy(s.by_state.new)
    -- the same run again, to the end
    summary = assert(run(nil))
    assert.equal(CASES, summary.total)
    for order_id, o in pairs(sb:stats().refresh.by_order) do
      assert.equal(1, o.refresh_orders, order_id)
    end
  end)

  it("stops without sending the reads its rate limit held back", function()
    -- a rate of 120 a minute holds most of the first reads back; interrupted
    -- once a few went out, the run must not let the others out one by one
    -- (they change nothing and would hold it for the whole grace)
    local journal = dir .. "/rated.journal"
    local at_interrupt, seen
    local function reads()   -- the GETs of Truv's API the sandbox has answered
      local n = 0
      for key, outcomes in pairs(sb:stats().requests.by_endpoint) do
        if key:sub(1, 8) == "GET /v1/" then
          for _, c in pairs(outcomes) do n = n + c end
        end
      end
      return n
    end
    local started = core.monotonic()
    local summary, err = renewal.run{
      cases = dir .. "/cases.csv", journal = journal, concurrency = 16, rate_per_minute = 120,
      poll = { interval_s = 0.2 },
      client = { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url },
      interrupted = function()
        if core.monotonic() - started < 1.2 then return nil end
        at_interrupt = at_interrupt or reads()
        return "test"
      end,
      on_event = function(ev)
        if ev.event == "interrupted" then seen = ev end
      end,
    }
    assert.is_nil(summary)
    assert.equal("interrupted", err.code)
    assert.is_number(at_interrupt)
    assert.is_truthy(seen)
    -- reads were held back by the rate limit, and dropped
    assert.is_true(seen.dropped > 0, "no read was held back")
    -- what was in flight finished (and the held-back writes, journaled
    -- ahead, went out); no held-back read did
    local after = reads() - at_interrupt
    assert.is_true(after <= seen.requests,
                   after .. " reads answered after the interruption, " .. seen.requests
                   .. " requests in flight then")
    local s = states(journal)
    assert.equal(CASES, s.n)
  end)

  it("refuses an `interrupted` that is not a function", function()
    assert.has_error(function()
      renewal.run{ journal = dir .. "/x", client = { client_id = "c", secret = "s" },
                   interrupted = true }
    end, "bad option 'interrupted' to 'renewal.run' (a function expected, got boolean)")
  end)
end)

describe("renewal.run interrupted as a new link is written ahead", function()
  local sb, dir

  lazy_setup(function()
    dir = files.tmpdir("truv-interrupted-link")
    sb = sandbox.start{ args = { "--seed-cases", "40", "--rng-seed", "3", "--rate-limit", "0",
                                 "--mix", "credentials=1", "--realtime", "--time-scale", "40",
                                 "--task-duration", "20", "--latency-ms", "10",
                                 "--cases-out", dir .. "/cases.csv" } }
  end)

  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("leaves no case whose new order may or may not exist", function()
    -- interrupted at the very turn of the loop where a case has journaled
    -- its new order as about to be created: the order is not asked for
    local j = assert(core.journal_open(dir .. "/run.journal"))
    local function run(interrupted)
      return renewal.run{
        cases = dir .. "/cases.csv", journal = j, concurrency = 8, rate_per_minute = 0,
        poll = { interval_s = 0.2 }, interrupted = interrupted,
        client = { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url },
      }
    end
    local caught
    local summary, err = run(function()
      if (j:counts().linking or 0) == 0 then return nil end
      for rec in j:each{ state = "linking" } do caught = caught or rec.case_id end
      return "test"
    end)
    assert.is_nil(summary)
    assert.equal("interrupted", err.code)
    assert.is_truthy(caught, "no case was seen linking")
    local s = states(dir .. "/run.journal")
    assert.is_nil(s.by_state.linking)
    assert.equal(sb:stats().orders.created, s.linked)
    local rec = j:get(caught)
    assert.equal("scheduled", rec.state)
    assert.equal("link", rec.resume)
    -- the same run again makes its link, and nobody has to check for one
    summary = assert(run(nil))
    assert.equal(40, summary.routes.reverify)
    assert.is_truthy(j:get(caught).share_url)
    for number, made in pairs(sb:stats().orders.by_order_number) do
      assert.equal(1, made, "order_number " .. number .. " got " .. made .. " new orders")
    end
    j:close()
  end)
end)

describe("renewal.run interrupted as a refresh is written ahead", function()
  local sb, dir

  lazy_setup(function()
    dir = files.tmpdir("truv-interrupted-refresh")
    sb = sandbox.start{ args = { "--seed-cases", "40", "--rng-seed", "5", "--rate-limit", "0",
                                 "--mix", "active=1", "--realtime", "--time-scale", "40",
                                 "--task-duration", "20", "--latency-ms", "10",
                                 "--cases-out", dir .. "/cases.csv" } }
  end)

  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("sends no refresh whose write-ahead was being committed, and keeps no quota for it",
     function()
    -- interrupted at the very turn of the loop where cases have journaled
    -- their refresh as about to be sent (the barrier not passed yet): the
    -- POSTs are not sent, their reservations go back, and the same run
    -- again refreshes each case once
    local j = assert(core.journal_open(dir .. "/run.journal"))
    local quota_path = dir .. "/quota.db"
    local events = {}
    local function run(interrupted)
      return renewal.run{
        cases = dir .. "/cases.csv", journal = j, concurrency = 8, rate_per_minute = 0,
        poll = { interval_s = 0.2 }, interrupted = interrupted, quota = quota_path,
        client = { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url },
        on_event = function(ev) events[#events + 1] = ev end,
      }
    end
    local caught = {}
    local summary, err = run(function()
      if (j:counts().sending or 0) == 0 then return nil end
      for rec in j:each{ state = "sending" } do caught[#caught + 1] = rec.case_id end
      return "test"
    end)
    assert.is_nil(summary)
    assert.equal("interrupted", err.code)
    assert.is_true(#caught > 0, "no case was seen sending")
    local seen, sending_after = false, 0
    for _, ev in ipairs(events) do
      if ev.event == "interrupted" then seen = true
      elseif seen and ev.event == "sending" then sending_after = sending_after + 1 end
    end
    assert.is_true(seen)
    assert.equal(0, sending_after, "a refresh went out after the interruption")
    -- the quota counts exactly the refreshes the sandbox made
    local function quota_agrees()
      local quota = assert(require("truv.quota").sqlite(quota_path))
      local stats, t = sb:stats(), core.now()
      for _, c in ipairs(sb:cases()) do
        for _, conn in ipairs(sb:connections(c.order_id)) do
          local used = assert(quota:usage(core.quota_key(conn.access_token), t))
          local s = stats.refresh.by_access_token[sandbox.token_key(conn.access_token)]
          assert.equal(s and s.created or 0, used, c.case_id .. ": quota against refreshes")
        end
      end
      quota:close()
    end
    quota_agrees()
    -- the same run again refreshes every case once
    local events_before = #events
    summary = assert(run(nil))
    assert.equal(40, summary.routes.done)
    for order_id, o in pairs(sb:stats().refresh.by_order) do
      assert.equal(1, o.refresh_orders, order_id)
    end
    assert.is_true(#events > events_before)
    quota_agrees()
    j:close()
  end)
end)
