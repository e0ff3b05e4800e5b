-- truv.scheduler: many workflows over one libcurl multi handle; the rate
-- and concurrency it promises are checked against a server that counts the
-- requests open at once, the rest (park, wake, barrier, stop) without one.
local core = require "truv.core"
local truv = require "truv"
local scheduler = require "truv.scheduler"
local files = require "spec.support.files"
local sandbox = require "spec.support.sandbox"
local hogs = require "spec.support.hogs"

-- A server in a child process that holds each request until `want` of them
-- are open at once, or for `hold_s` at most, then answers it (and closes the
-- connection); GET /_most answers the most requests it saw open at once.
-- Nothing touches the disk in its loop: a file written there (a rename over
-- the last count) stalled it for 5 to 9 s on a loaded machine, long enough
-- for the held requests to time out before the others were accepted.
local SERVER = [=[
local socket = require "socket"
local dir, want, hold_s = arg[1], tonumber(arg[2]), tonumber(arg[3])
local srv = assert(socket.bind("127.0.0.1", 0))
srv:settimeout(0)
local _, port = srv:getsockname()
local f = assert(io.open(dir .. "/port.tmp", "w")); f:write(port, "\n"); f:close()
os.rename(dir .. "/port.tmp", dir .. "/port")
local function answer(body)
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
         .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
end
local order = answer('{"id":"o1","status":"completed"}')
local open, most, started = {}, 0, socket.gettime()
while socket.gettime() - started < 60 do
  local c = srv:accept()
  if c then
    c:settimeout(0)
    open[#open + 1] = { sock = c, buf = "" }
  end
  local asked = 0
  for i = #open, 1, -1 do
    local o = open[i]
    if not o.at then
      local data, err, part = o.sock:receive(4096)
      o.buf = o.buf .. (data or part or "")
      if o.buf:find("\r\n\r\n", 1, true) then
        o.at = socket.gettime()
        o.count = o.buf:find("^GET /_most ") ~= nil
      end
      if err == "closed" then o.sock:close(); table.remove(open, i); o.at = nil end
    end
    if o.count and o.at then
      o.sock:send(answer(tostring(most)))
      o.sock:close()
      table.remove(open, i)
    elseif o.at then
      asked = asked + 1
    end
  end
  if asked > most then most = asked end
  for i = #open, 1, -1 do
    local o = open[i]
    if o.at and (asked >= want or socket.gettime() - o.at >= hold_s) then
      o.sock:send(order)
      o.sock:close()
      table.remove(open, i)
    end
  end
  socket.sleep(0.002)
end
]=]

local function start_server(want, hold_s)
  local dir = files.tmpdir("truv-sched")
  files.write(dir .. "/server.lua", SERVER)
  local h = assert(io.popen(string.format("lua5.4 %s %s %d %g >/dev/null 2>&1 & echo $!",
                                          files.quote(dir .. "/server.lua"), files.quote(dir),
                                          want, hold_s)))
  local pid = tonumber(h:read("l"))
  h:close()
  local port
  for _ = 1, 500 do
    port = tonumber(files.read(dir .. "/port") or "")
    if port then break end
    os.execute("sleep 0.01")
  end
  assert(port, "the counting server did not start")
  finally(function()
    os.execute("kill " .. pid .. " 2>/dev/null")
    os.execute("rm -rf " .. files.quote(dir))
  end)
  return {
    base_url = "http://127.0.0.1:" .. port .. "/v1/",
    most = function()
      local all = sandbox.raw(port, "GET /_most HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
      return tonumber(all:match("\r\n\r\n(%d+)$"))
    end,
  }
end

-- A scheduler closed when the test ends, and a client over it.
local function scheduled(opts, base_url)
  local sched = assert(scheduler.new(opts))
  local client = assert(truv.new{ client_id = "id", secret = "secret-value", quota = false,
                                  base_url = base_url or "http://127.0.0.1:9/v1/",
                                  transport = sched:transport(), sleep = sched.sleep })
  finally(function() client:close() end)
  return sched, client
end

-- Spawns n workflows that each read one order; returns their answers.
local function reads(sched, client, n)
  local answers = {}
  for i = 1, n do
    sched:spawn(function()
      local doc, err = client:get_order("o" .. i)
      answers[i] = doc and doc.status or tostring(err)
    end)
  end
  return answers
end

describe("truv.scheduler", function()
  it("starts requests no faster than rate_per_minute", function()
    local srv = start_server(1, 5)
    local sched, client = scheduled({ rate_per_minute = 600, concurrency = 4 }, srv.base_url)
    local answers = reads(sched, client, 4)
    local t0 = core.monotonic()
    sched:run()
    -- four starts at 600 a minute: three intervals of 0.1 s at the least
    assert.is_true(core.monotonic() - t0 >= 0.3 - 1e-3)
    assert.same({ "completed", "completed", "completed", "completed" }, answers)
  end)

  it("makes up at most `burst` unused slots, and never exceeds per_window in window_s",
     function()
    local srv = start_server(1, 5)
    -- one slot every 0.1 s, 4 kept, at most 5 starts in any 1.5 s
    local sched, client = scheduled({ rate_per_minute = 600, concurrency = 4, burst = 4,
                                      window_s = 1.5, per_window = 5 }, srv.base_url)
    -- the instants the limit let each request start at (an answer's arrival
    -- says less: under valgrind the first one comes long after its start)
    local starts, take = {}, sched._take_slot
    sched._take_slot = function(self, now)
      starts[#starts + 1] = now
      return take(self, now)
    end
    sched:spawn(function()
      assert(client:get_order("first"))
      sched.sleep(0.8)   -- 8 slots unused: 4 are kept
      for i = 2, 8 do
        sched:spawn(function() assert(client:get_order("o" .. i)) end)
      end
    end)
    sched:run()
    assert.equal(8, #starts)
    assert.is_true(starts[2] - starts[1] >= 0.8)
    -- after the pause the 4 kept slots start at once (well under one interval)
    assert.is_true(starts[5] - starts[2] < 0.05,
                   "kept slots spread over " .. (starts[5] - starts[2]) .. " s")
    -- the 6th start is the window's 6th: it waits until the first is 1.5 s old,
    -- and no 1.5 s window holds more than 5 starts
    for i = 6, 8 do
      assert.is_true(starts[i] - starts[i - 5] >= 1.5 - 1e-6,
                     "start " .. i .. " " .. (starts[i] - starts[i - 5]) .. " s after " .. i - 5)
    end
  end)

  it("applies its documented rate of 300 a minute when rate_per_minute is left out", function()
    local srv = start_server(1, 5)
    local sched, client = scheduled({ concurrency = 3 }, srv.base_url)
    assert.equal(300, scheduler.DEFAULTS.rate_per_minute)
    local answers = reads(sched, client, 3)
    local t0 = core.monotonic()
    sched:run()
    assert.is_true(core.monotonic() - t0 >= 2 * 60 / 300 - 1e-3)
    assert.same({ "completed", "completed", "completed" }, answers)
  end)

  it("keeps at most `concurrency` requests in flight, holding back the others", function()
    -- the server answers at once only when 3 requests are open together:
    -- with 2 in flight at most, each waits out hold_s
    local srv = start_server(3, 0.2)
    local sched, client = scheduled({ rate_per_minute = 0, concurrency = 2 }, srv.base_url)
    local queued = 0
    sched.on_tick = function()
      queued = math.max(queued, sched:load().queued)
    end
    local answers = reads(sched, client, 6)
    sched:run()
    assert.equal(2, srv.most())
    assert.is_true(queued >= 4)
    for i = 1, 6 do assert.equal("completed", answers[i]) end
  end)

  -- Five reads with no rate limit and 5 in flight, against a server whose
  -- every request waits until 5 are open together (5 s otherwise): the
  -- server saw all 5 open at once, and each was answered.
  local function five_at_once(msg)
    local srv = start_server(5, 5)
    local sched, client = scheduled({ rate_per_minute = 0, concurrency = 5 }, srv.base_url)
    local answers = reads(sched, client, 5)
    sched:run()
    assert.equal(5, srv.most(), msg)
    for i = 1, 5 do assert.equal("completed", answers[i]) end
  end

  it("with no rate limit, starts as many at once as concurrency allows", function()
    five_at_once()
  end)

  -- The reproduction of a failure (once in about 8 runs on a loaded
  -- machine): the counting server renamed a file in its loop, which stalled
  -- for seconds under writeback pressure, and the requests it held timed out
  -- before it accepted the others. Bounded: rounds for TRUV_STRESS_SECONDS
  -- (default 5), TRUV_STRESS_ROUNDS at most (100), beside a disk writer and
  -- TRUV_STRESS_HOGS busy loops (default 0).
  it("starts as many at once as concurrency allows, again, while the disk is busy", function()
    local rounds = tonumber(os.getenv("TRUV_STRESS_ROUNDS") or "") or 100
    local seconds = tonumber(os.getenv("TRUV_STRESS_SECONDS") or "") or 5
    local dir = files.tmpdir("truv-sched-disk")
    local pids = hogs.start(tonumber(os.getenv("TRUV_STRESS_HOGS") or "") or 0, 120)
    pids[#pids + 1] = hogs.start_disk(dir, 120, 256)
    finally(function()
      hogs.stop(pids)
      os.execute("rm -rf " .. files.quote(dir))
    end)
    local t0 = core.monotonic()
    for round = 1, rounds do
      if round > 1 and core.monotonic() - t0 > seconds then break end
      five_at_once("round " .. round)
    end
  end)

  it("starts a prioritized workflow's held-back requests before the others'", function()
    local srv = start_server(1, 5)
    -- one request in flight at a time and no kept slots, so that the
    -- answers come in the order the requests started (several started in
    -- one turn may be answered in any order)
    local sched, client = scheduled({ rate_per_minute = 1200, concurrency = 1, burst = 1 },
                                    srv.base_url)
    local order = {}
    local function read(name, first)
      sched:spawn(function()
        if first then sched:prioritize() end
        assert(client:get_order(name))
        order[#order + 1] = name
      end)
    end
    -- asked in this order, all in the loop's first turn; the rate limit
    -- lets one out every 50 ms
    read("n1"); read("n2"); read("p1", true); read("n3"); read("p2", true)
    sched:run()
    -- the prioritized ones first, then the rest, each in the order asked
    assert.same({ "p1", "p2", "n1", "n2", "n3" }, order)
    assert.equal(5, sched:load().started)
    assert.equal(0, sched:load().queued_new)
  end)

  it("while draining, lets out the writes held from before and nothing asked for after",
     function()
    local srv = start_server(1, 5)
    -- no kept slots: a slow turn (valgrind) must not let two out at once
    local sched = assert(scheduler.new{ rate_per_minute = 600, concurrency = 4, burst = 1 })
    local t = sched:transport()
    local cfg = { client_id = "id", secret = "secret-value", base_url = srv.base_url }
    local got = {}
    local function ask(name, op, params)   -- answered (whatever the answer): noted
      t:perform(assert(core.build(cfg, op, "abc", params)))
      got[#got + 1] = name
    end
    -- a prioritized read goes first; a write and a read are held by the rate
    -- (one request every 100 ms); once the first is answered the loop drains,
    -- and the prioritized workflow asks for another read
    sched:spawn(function()
      sched:prioritize()
      ask("first read", "get_order")
      sched:drain(5)
      ask("read asked while draining", "get_order")
    end)
    sched:spawn(function() ask("held write", "create_bridge_token", { product_type = "income" }) end)
    sched:spawn(function() ask("held read", "get_order") end)
    sched:run()
    assert.same({ "first read", "held write" }, got)
  end)

  it("parks a workflow until it is woken, or until its timeout", function()
    local sched = assert(scheduler.new{})
    finally(function() sched:close() end)
    local woken, timed_out, sleeper
    sleeper = sched:spawn(function() woken = sched:park(30) end)
    sched:spawn(function()
      timed_out = sched:park(0.01)
      assert.is_true(sched:wake(sleeper))
      assert.is_false(sched:wake(sleeper))     -- no longer parked
    end)
    local t0 = core.monotonic()
    sched:run()
    assert.is_true(woken)
    assert.is_false(timed_out)
    assert.is_true(core.monotonic() - t0 < 30)
  end)

  it("passes a barrier only once on_tick has run after it, told a workflow waits", function()
    local ticks, urgent_ticks, seen = 0, 0, nil
    local sched = assert(scheduler.new{ on_tick = function(urgent)
      ticks = ticks + 1
      if urgent then urgent_ticks = urgent_ticks + 1 end
    end })
    finally(function() sched:close() end)
    sched:spawn(function()
      local before = ticks
      sched:barrier()
      seen = ticks - before
    end)
    sched:run()
    assert.is_true(seen >= 1)
    assert.is_true(urgent_ticks >= 1)
  end)

  it("stops: run() returns without resuming anything else", function()
    local sched = assert(scheduler.new{})
    finally(function() sched:close() end)
    local after_stop, sleeper_woke = false, false
    sched:spawn(function()
      sched.sleep(0.01)
      sleeper_woke = true
    end)
    sched:spawn(function()
      sched:stop()
      sched:barrier()            -- never passed: the loop has stopped
      after_stop = true
    end)
    sched:run()
    assert.is_false(after_stop)
    assert.is_false(sleeper_woke)
    assert.equal(2, sched:active())   -- both abandoned where they were
  end)

  it("re-raises a workflow's error with its traceback, or hands it to on_error", function()
    local sched = assert(scheduler.new{})
    finally(function() sched:close() end)
    sched:spawn(function() error("boom") end)
    assert.has_error(function() sched:run() end)
    local got
    local s2 = assert(scheduler.new{ on_error = function(msg) got = msg end })
    finally(function() s2:close() end)
    s2:spawn(function() error("bang") end)
    s2:run()
    assert.matches("bang", got)
    assert.matches("traceback", got)
  end)
end)
