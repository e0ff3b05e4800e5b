--- A scheduler of coroutines over one libcurl multi handle: many workflows
-- at once, each written as straight-line code.
--
--   local sched = scheduler.new{ concurrency = 32, rate_per_minute = 300, http = {...},
--                                on_tick = function() journal:commit() end }
--   local client = truv.new{ ..., transport = sched:transport(), sleep = sched.sleep,
--                            clock = sched.clock }
--   sched:spawn(function() ... client:refresh_order(...) ... end)
--   sched:run()
--
-- Inside a spawned function, the client's HTTP calls and sleeps yield to the
-- scheduler instead of blocking: up to `concurrency` requests are in flight
-- over one connection pool, requests start no faster than the rate limit
-- allows, and a sleeping workflow costs nothing but its coroutine.
-- The rate limit: requests start one interval (60 / rate_per_minute s)
-- apart, and a slot nobody used is not lost at once: up to `burst` (5)
-- of them are kept, so a loop that was busy, or a moment with nothing to
-- send, is made up in the next second; and whatever the burst, at most
-- rate_per_minute requests start in any `window_s` (60.5 s: Truv counts
-- requests per minute, in Django REST framework's sliding window it seems,
-- and the half second absorbs the network's jitter). Strict pacing lost
-- every slot that found nothing to send, which held a batch of long
-- refreshes to 89 % of the budget.
-- `sched:barrier()` (from inside a workflow) returns once on_tick has run
-- after the call: the batch's journal uses it to make a write durable
-- before a refresh is sent, with one commit for every workflow of a tick.
-- on_tick(urgent) is told whether a workflow waits on such a barrier; it
-- may return a number of seconds: the loop then waits no longer than that
-- before calling it again (something outside the scheduler, such as a
-- webhook listener, is being watched from on_tick).
-- `sched:park(timeout_s)` (from inside a workflow) waits until something
-- calls `sched:wake(co)` (true) or the timeout passes (false).
-- `sched:stop()` (from a workflow or on_tick) makes run() return as soon as
-- the caller yields or returns, without resuming anything else: no workflow
-- waiting on a barrier passes it, no held-back request starts. The other
-- workflows are abandoned where they are (their transfers end with
-- sched:close()); a batch stops this way when its journal cannot be
-- written.
-- `sched:drain(grace_s)` winds the loop down gently instead (a batch does
-- when it is interrupted): nothing new starts (no request asked for from
-- now on, no sleeper or parked workflow is resumed); the requests already
-- asked for go out (those the rate limit or the pool held back too, but
-- for GETs: a held-back write may have been written ahead by its workflow,
-- a read has nothing to finish, and waiting for the rate limit to let
-- reads out would hold an interrupted run for seconds) and finish, and their workflows
-- run on until they next wait for something (a barrier still passes, so
-- what they write is made durable); run() returns once nothing is in
-- flight, held back from before or ready, or after grace_s (default 10) as
-- after stop(). The workflows left waiting are abandoned.
-- `sched:load()` says how busy the loop is: { requests = sent and not yet
-- answered, queued = held back by the rate limit or the pool (of which
-- queued_new are a workflow's at the default priority), workflows =
-- spawned and not finished, started = requests started since new() }.
-- `sched:prioritize()` (from inside a workflow) puts the workflow's
-- requests from then on ahead of those of the workflows that did not call
-- it, when the rate limit or the pool holds requests back: a batch calls
-- it once a case has work at Truv to finish (polls, the reads that route
-- it), so that new work takes only what finishing work leaves of the
-- budget. Within a priority, requests start in the order they were asked.
local core = require "truv.core"

local error, ipairs, pairs, tostring, setmetatable, type =
  error, ipairs, pairs, tostring, setmetatable, type
local co_create, co_resume, co_yield, co_status, co_running =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.status, coroutine.running
local traceback = debug.traceback
local max, min, huge = math.max, math.min, math.huge
local tinsert, tremove = table.insert, table.remove

local _M = {}

-- What new() takes when an option is left out.
_M.DEFAULTS = {
  concurrency = 32,        -- requests in flight over the one connection pool
  rate_per_minute = 300,   -- requests started per minute, all together: Truv's general limit
                           -- per access secret (truv-api.md §7); 0: no limit
  drain_grace_s = 10,      -- drain(): the longest the requests in flight are awaited
  burst = 5,               -- unused request slots kept (one second of Truv's rate)
  window_s = 60.5,         -- at most rate_per_minute request starts in any such window
}

local Scheduler = {}
Scheduler.__index = Scheduler

-- A binary heap of { at =, co = } ordered by `at`.
local function heap_push(h, item)
  h[#h + 1] = item
  local i = #h
  while i > 1 do
    local p = i // 2
    if h[p].at <= h[i].at then break end
    h[p], h[i] = h[i], h[p]
    i = p
  end
end

local function heap_pop(h)
  local top = h[1]
  local last = tremove(h)
  if #h > 0 then
    h[1] = last
    local i, n = 1, #h
    while true do
      local l, r, s = 2 * i, 2 * i + 1, i
      if l <= n and h[l].at < h[s].at then s = l end
      if r <= n and h[r].at < h[s].at then s = r end
      if s == i then break end
      h[s], h[i] = h[i], h[s]
      i = s
    end
  end
  return top
end

--- opts: concurrency (requests in flight, default 32), rate_per_minute
-- (default 300; 0 = unlimited: see DEFAULTS), burst and window_s (DEFAULTS),
-- per_window (the starts a window_s allows: rate_per_minute), http (options for core.multi: timeout_ms,
-- connect_timeout_ms, ca_file, ...), documents ("view"|"table"), on_tick
-- (called once per loop before waiting), on_error (function(err, co)
-- for a workflow that raised; default: re-raise).
function _M.new(opts)
  opts = opts or {}
  local concurrency = opts.concurrency or _M.DEFAULTS.concurrency
  local rate = opts.rate_per_minute or _M.DEFAULTS.rate_per_minute
  local http = {}
  for k, v in pairs(opts.http or {}) do http[k] = v end
  http.max_in_flight = concurrency
  http.max_host_connections = http.max_host_connections or concurrency
  local multi, err = core.multi(http)
  if not multi then return nil, err end
  local self = setmetatable({
    multi = multi,
    concurrency = concurrency,
    interval = rate > 0 and 60 / rate or 0,   -- seconds between two request starts
    tokens = 1, refilled = nil,   -- request slots kept (at most `burst`), as of when
    burst = opts.burst or _M.DEFAULTS.burst,
    window_s = opts.window_s or _M.DEFAULTS.window_s,
    starts = {}, first_start = 1,   -- the last `cap` starts (a ring), oldest first
    cap = opts.per_window or (rate > 0 and math.floor(rate) or 0),
    ready = {},                -- { co, args... } to resume
    timers = {},               -- heap of sleeping workflows
    waiting_http = {},         -- requests held back by the rate limit or the pool:
                               -- the prioritized workflows' first, then the others'
    first = setmetatable({}, { __mode = "k" }),   -- co -> true: prioritized workflows
    queued_new = 0,            -- entries of waiting_http not prioritized
    started = 0,               -- requests started
    sent_by = setmetatable({}, { __mode = "k" }),   -- co -> requests it started
    barrier_waiters = {},
    parked = {},               -- co -> its timer entry, while parked
    void = 0,                  -- timers of woken parks still in the heap
    live = 0,
    on_tick = opts.on_tick,
    on_error = opts.on_error,
    mode = opts.documents,
  }, Scheduler)
  self.clock = opts.clock or core.now
  -- sleep and transport are plain functions/objects so a client can hold them
  self.sleep = function(s) return self:_sleep(s) end
  return self
end

--- From inside a workflow: its requests go ahead of the others' (see
-- above). Idempotent.
function Scheduler:prioritize()
  local co = co_running()
  if co then self.first[co] = true end
end

--- How many requests the workflow `co` (default: the running one) started.
function Scheduler:requests_of(co)
  return self.sent_by[co or co_running()] or 0
end

--- The object a client uses as its transport.
function Scheduler:transport()
  local sched = self
  return {
    perform = function(_, req, _, mode)
      return co_yield("http", req, mode)
    end,
    close = function() sched.multi:close() end,
  }
end

function Scheduler:_sleep(seconds)
  if not co_running() or not self._inside then return core.sleep(seconds) end
  if seconds <= 0 then return end
  co_yield("sleep", seconds)
end

--- From inside a workflow: wait until on_tick has run once more.
function Scheduler.barrier(_)
  co_yield("barrier")
end

--- From inside a workflow: wait until sched:wake(co) (returns true) or
-- until timeout_s has passed (returns false).
function Scheduler.park(_, timeout_s)
  return co_yield("park", timeout_s)
end

--- Resumes a parked workflow (its park returns true); false if `co` is not
-- parked.
function Scheduler:wake(co)
  local entry = self.parked[co]
  if not entry then return false end
  self.parked[co] = nil
  entry.co = nil               -- its timer is void now
  tinsert(self.ready, { co, true })
  -- void timers would otherwise stay until their time (a park's timeout
  -- can be many minutes): rebuild the heap once they are half of it
  self.void = self.void + 1
  if self.void > 64 and self.void * 2 > #self.timers then
    local live = {}
    for _, t in ipairs(self.timers) do
      if t.co then heap_push(live, t) end
    end
    self.timers, self.void = live, 0
  end
  return true
end

--- Stops the loop (see above); run() then returns. Idempotent.
function Scheduler:stop()
  self.stopped = true
end

--- Winds the loop down (see above). Idempotent: the first grace holds.
-- Returns how many held-back requests still go out and how many held-back
-- reads were dropped (0, 0 when already draining).
function Scheduler:drain(grace_s)
  if self.draining then return 0, 0 end
  self.draining = true
  self.drain_until = core.monotonic() + (grace_s or _M.DEFAULTS.drain_grace_s)
  -- the held-back reads are dropped (their workflows are abandoned); the
  -- others, asked for before, go out first
  local kept = {}
  for _, w in ipairs(self.waiting_http) do
    if w.req.method ~= "GET" then kept[#kept + 1] = w end
  end
  local dropped = #self.waiting_http - #kept
  self.waiting_http = kept
  self.queued_new = 0
  for _, w in ipairs(kept) do
    if not w.first then self.queued_new = self.queued_new + 1 end
  end
  self.drain_held = #kept
  return #kept, dropped
end

--- How busy the loop is (see above).
function Scheduler:load()
  return { requests = self.multi:pending(), queued = #self.waiting_http,
           queued_new = self.queued_new, workflows = self.live, started = self.started }
end

function Scheduler:spawn(fn, ...)
  local co = co_create(fn)
  self.live = self.live + 1
  tinsert(self.ready, { co, ... })
  return co
end

function Scheduler:active()
  return self.live
end

-- What a workflow asked for when it yielded.
function Scheduler:_handle(co, what, a, b)
  if what == "http" then
    local w = { co = co, req = a, mode = b or self.mode, first = self.first[co] }
    if w.first and not self.draining then
      -- behind the prioritized requests already waiting, ahead of the others
      -- (not while draining: what is asked for then stays behind the requests
      -- held from before, the only ones that still go out)
      tinsert(self.waiting_http, #self.waiting_http - self.queued_new + 1, w)
    else
      tinsert(self.waiting_http, w)
      self.queued_new = self.queued_new + 1
    end
  elseif what == "sleep" then
    heap_push(self.timers, { at = core.monotonic() + a, co = co })
  elseif what == "barrier" then
    tinsert(self.barrier_waiters, co)
  elseif what == "park" then
    local entry = { at = core.monotonic() + a, co = co, parked = true }
    self.parked[co] = entry
    heap_push(self.timers, entry)
  else
    error("scheduler: a workflow yielded '" .. tostring(what) .. "' (use the client, "
          .. "sched.sleep, sched:barrier or sched:park)")
  end
end

function Scheduler:_resume(co, ...)
  self._inside = true
  local ok, what, a, b = co_resume(co, ...)
  self._inside = false
  if not ok then
    self.live = self.live - 1
    local msg = traceback(co, what)
    if self.on_error then return self.on_error(msg, co) end
    error(msg, 0)
  end
  if co_status(co) == "dead" then
    self.live = self.live - 1
    return
  end
  self:_handle(co, what, a, b)
end

-- Starts the held-back requests the rate limit and the pool allow (at
-- most `limit` of them).
function Scheduler:_start_requests(limit)
  local now = core.monotonic()
  limit = limit or huge
  while limit > 0 and #self.waiting_http > 0 and self.multi:pending() < self.concurrency do
    if self.interval > 0 then
      local wait = self:_slot_wait(now)
      if wait then return wait end
    end
    limit = limit - 1
    local w = tremove(self.waiting_http, 1)
    if not w.first then self.queued_new = self.queued_new - 1 end
    self.started = self.started + 1
    self.sent_by[w.co] = (self.sent_by[w.co] or 0) + 1
    local ok, err = self.multi:add(w.req, w, w.mode)
    if not ok then
      tinsert(self.ready, { w.co, nil, err })
    end
    if self.interval > 0 then self:_take_slot(now) end
  end
  return nil
end

-- nil when a request may start at `now`, else the seconds until one may:
-- a slot kept (tokens), and fewer than cap starts in the last window_s.
function Scheduler:_slot_wait(now)
  self.tokens = min(self.burst, self.tokens + (now - (self.refilled or now)) / self.interval)
  self.refilled = now
  if self.tokens < 1 then return (1 - self.tokens) * self.interval end
  local starts = self.starts
  if #starts >= self.cap and self.cap > 0 then
    local oldest = starts[self.first_start]
    if now - oldest < self.window_s then return oldest + self.window_s - now end
  end
  return nil
end

function Scheduler:_take_slot(now)
  self.tokens = self.tokens - 1
  local starts, cap = self.starts, self.cap
  if #starts < cap then
    starts[#starts + 1] = now
  else   -- the ring is full: the oldest start gives its place
    starts[self.first_start] = now
    self.first_start = self.first_start % cap + 1
  end
end

--- Runs until every spawned workflow has finished.
function Scheduler:run()
  while self.live > 0 and not self.stopped do
    -- resume whatever is ready (including workflows spawned meanwhile)
    while #self.ready > 0 and not self.stopped do
      local r = tremove(self.ready, 1)
      self:_resume(r[1], r[2], r[3])
    end
    if self.stopped then break end
    local bound = self.on_tick and self.on_tick(#self.barrier_waiters > 0)
    -- a barrier is passed only once on_tick has done its work
    if self.stopped then break end
    if type(bound) ~= "number" then bound = nil end
    if #self.barrier_waiters > 0 then
      local waiters = self.barrier_waiters
      self.barrier_waiters = {}
      for _, co in ipairs(waiters) do tinsert(self.ready, { co }) end
    end
    local now = core.monotonic()
    if self.draining then
      -- only what is in flight, held back from before or ready goes on;
      -- then run() returns
      if now >= self.drain_until then break end
      local before = #self.waiting_http
      local rate_wait = self:_start_requests(self.drain_held)
      self.drain_held = self.drain_held - (before - #self.waiting_http)
      if #self.ready == 0 and #self.barrier_waiters == 0 then
        if self.multi:pending() == 0 and self.drain_held == 0 then break end
        local wait = min(self.drain_until - now, 1, rate_wait or 1)
        if self.multi:pending() > 0 then
          local done, err = self.multi:run(max(0, wait), self.clock(), self.mode)
          if not done then error("scheduler: the transfer engine failed: " .. tostring(err), 0) end
          self:_completed(done)
        else
          core.sleep(max(0, wait))
        end
      end
      goto continue
    end
    while #self.timers > 0 and self.timers[1].at <= now do
      local t = heap_pop(self.timers)
      if not t.co then
        self.void = self.void - 1
      elseif t.parked then
        self.parked[t.co] = nil
        tinsert(self.ready, { t.co, false })
      else
        tinsert(self.ready, { t.co })
      end
    end
    local rate_wait = self:_start_requests()
    if #self.ready == 0 and self.live > 0 then
      local wait = huge
      if #self.timers > 0 then wait = self.timers[1].at - now end
      if rate_wait then wait = min(wait, rate_wait) end
      if bound then wait = min(wait, bound) end
      if wait == huge then wait = 1 end
      if self.multi:pending() > 0 then
        local done, err = self.multi:run(max(0, min(wait, 1)), self.clock(), self.mode)
        if not done then error("scheduler: the transfer engine failed: " .. tostring(err), 0) end
        self:_completed(done)
      elseif wait > 0 then
        core.sleep(min(wait, 1))
      end
    end
    ::continue::
  end
end

-- The workflows whose requests finished become ready, with the answers.
function Scheduler:_completed(done)
  for _, c in ipairs(done) do
    local w = c.tag
    if c.doc ~= nil then
      tinsert(self.ready, { w.co, c.doc, c.meta })
    else
      tinsert(self.ready, { w.co, nil, c.err })
    end
  end
end

function Scheduler:close()
  self.multi:close()
end

return _M
