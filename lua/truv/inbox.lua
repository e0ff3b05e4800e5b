--- The webhooks a renewal run waits on: refresh orders register here and
-- are told when Truv has announced a final outcome for every one of their
-- connections, so that a case waits for a webhook instead of polling.
--
--   local inbox = require "truv.inbox"
--   local box = assert(inbox.new{
--     listener = core.listener{ ... } or { host =, port =, path =, max_queue =, max_body = },
--     secrets = { secret, previous_secret },   -- Truv signs with the access secret
--     router = router,          -- events are routed by its table (its handlers are not called)
--     dedupe = store,           -- default: in memory
--     facts = store,            -- a quota store keeping connection facts (truv.facts)
--     on_settled = function(watch) end,        -- every connection of watch.order_id is final
--     on_dropped = function(info) end,         -- a delivery that was not used, and why
--   })
--   -- the whole wait, with the answer client:wait_for_refresh gives:
--   local result, err, via = box:wait_for_refresh(client, refresh_order, {
--     fallback_s = 600,  -- no final outcome by then: one read; a finished order is
--                        -- routed from it, an unfinished one waited for again,
--                        -- twice as long each time, up to poll.timeout_s
--     poll = { interval_s =, timeout_s =, router = },   -- options for the polling
--     expiring = meta.expiring,  -- refresh_order's warning, handed on to the result
--   })                   -- via: "webhook", "fallback" (polled after the wait) or "poll"
--   box:tick()        -- from the caller's loop: drain the listener, handle, settle;
--                     -- returns how many refresh orders are being watched
--   box:close()       -- closes the listener if the inbox made it
--
-- The waiting itself is the caller's: `park(timeout_s)` suspends the
-- waiting case until `on_settled(watch)` wakes it (watch.owner is what
-- the case registered with: its coroutine, for truv.scheduler's park and
-- wake). Without them the inbox waits by sleeping in short steps and
-- ticking itself. The lower level: box:watch(model, owner) -> watch,
-- watch:settled(), watch.connections[suborder id] = { suborder =,
-- task_status =, task_id =, failed = }, box:unwatch(watch).
--
-- The answer is the one polling gives, decided by the same code
-- (truv.outcome): a connection whose suborder completed is `done`,
-- `no_data` is `no_data`, a failed one is routed by its task's final
-- status (here from the webhooks rather than from Truv's task list), and
-- the case's route is truv.route.combine of its connections'. The order
-- itself is read once at the end (the `done` handler gets the fresh
-- document); if that document does not show every connection final yet,
-- or a failed connection's task status never came, the wait goes on by
-- polling.
--
-- Which events count, and when a connection is settled: truv.outcome
-- (note, apply). Everything else (order-created, data events, non-final
-- steps) is ignored.
--
-- With `facts`, what the webhooks say is kept as connection facts
-- (truv.facts): a refresh that completed (alive), one that failed in a way
-- only the user can fix (dead), and, for any link, link-disconnected (dead)
-- and link-connected (the user authenticated again).
--
-- Deliveries go through a truv.receiver: verified (again: the listener
-- already refused bad signatures), parsed, de-duplicated by webhook_id and
-- ordered by updated_at, so a duplicate or a late older event changes
-- nothing. A delivery for a suborder nobody watches is kept a short while
-- (early_ttl_s, at most early_max of them): a refresh's first events can
-- arrive before its case has read Truv's answer to the refresh and
-- registered. Deliveries for other orders are otherwise ignored; they were
-- answered 200 anyway, since they are someone else's.
local core = require "truv.core"
local receiver_mod = require "truv.receiver"
local route_mod = require "truv.route"
local facts_mod = require "truv.facts"
local outcome = require "truv.outcome"
local wait_mod = require "truv.wait"
local refresh = require "truv.refresh"
local dedupe = require "truv.dedupe"

local type, pairs, ipairs, setmetatable, getmetatable, tostring, error =
  type, pairs, ipairs, setmetatable, getmetatable, tostring, error
local monotonic = core.monotonic
local min, max = math.min, math.max
local co_running = coroutine.running

local _M = {}

_M.DEFAULTS = {
  ttl = dedupe.DEFAULT_TTL,   -- how long a webhook_id is remembered: a receiver's 7 days
                              -- (truv.dedupe says why; in memory, a few dozen bytes an id)
  fallback_s = 600,     -- how long a refresh waits for its webhooks before polling
  step_s = 0.02,        -- without a park function: the pause between ticks
  early_ttl_s = 120,    -- how long an event for an unwatched suborder is kept
  early_max = 10000,    -- and how many such events at most
}

local Inbox = {}
Inbox.__index = Inbox

local Watch = {}
Watch.__index = Watch

--- True once every connection has a final outcome.
function Watch:settled()
  return self.open == 0
end

-- The run's router, routing only: the receiver must not call the run's
-- handlers (done, reverify...) for each event; the case does that once,
-- with the whole refresh's outcome.
local function routing_only(router)
  local r = {}
  for k, v in pairs(router) do r[k] = v end
  r.handlers = {}
  return setmetatable(r, getmetatable(router))
end

function _M.new(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'inbox' (table expected, got " .. type(opts) .. ")", 2)
  end
  local secrets = opts.secrets
  if type(secrets) ~= "string" and type(secrets) ~= "table" then
    error("inbox: 'secrets' (the access secret, or a list for rotation) is required", 2)
  end
  local router = opts.router or route_mod.default
  local listener, own = opts.listener, false
  if type(listener) ~= "userdata" then
    local lo = {}
    for k, v in pairs(listener or {}) do lo[k] = v end
    lo.secrets = secrets
    local err
    listener, err = core.listener(lo)
    if not listener then return nil, err end
    own = true
  end
  -- a run's webhooks matter to that run only: in memory unless the caller
  -- names a store (which must open)
  local receiver, rerr = receiver_mod.new{ secrets = secrets, router = routing_only(router),
                                           dedupe = opts.dedupe or "memory",
                                           ttl = opts.ttl or _M.DEFAULTS.ttl,
                                           clock = opts.clock, facts = opts.facts }
  if not receiver then
    if own then listener:close() end
    return nil, rerr
  end
  return setmetatable({
    listener = listener, own_listener = own,
    router = router,
    receiver = receiver,
    facts = facts_mod.store(opts.facts),
    on_settled = opts.on_settled, on_dropped = opts.on_dropped, park = opts.park,
    early_ttl_s = opts.early_ttl_s or _M.DEFAULTS.early_ttl_s,
    early_max = opts.early_max or _M.DEFAULTS.early_max,
    by_connection = {},        -- suborder id -> watch
    early = {},                -- suborder id -> { note, ... } (nobody watching yet)
    early_queue = {}, early_head = 1, early_tail = 0, early_count = 0,
    watching = 0,
    counts = { received = 0, applied = 0, duplicates = 0, stale = 0, dropped = 0,
               ignored = 0, early = 0, settled = 0, fallbacks = 0 },
  }, Inbox)
end

local function note_into(self, w, id, note)
  if note.order_id and note.order_id ~= w.order_id then return false end
  if outcome.apply(w.connections[id], note) then
    w.open = w.open - 1
    if w.open == 0 and self.on_settled then self.on_settled(w) end
  end
  return true
end

-- Early notes wait in a FIFO (head..tail) as well as under their suborder;
-- a note a watch took is marked so, and skipped when its turn comes.
local function prune_early(self, now)
  local q = self.early_queue
  while self.early_head <= self.early_tail do
    local note = q[self.early_head]
    if not note.taken and note.at > now - self.early_ttl_s
       and self.early_count <= self.early_max then
      break
    end
    q[self.early_head] = nil
    self.early_head = self.early_head + 1
    if not note.taken then
      note.taken = true
      local list = self.early[note.id]
      for i = 1, #list do
        if list[i] == note then
          table.remove(list, i)
          break
        end
      end
      if #list == 0 then self.early[note.id] = nil end
      self.early_count = self.early_count - 1
    end
  end
end

local function keep_early(self, note)
  local list = self.early[note.id]
  if not list then
    list = {}
    self.early[note.id] = list
  end
  note.at = monotonic()
  list[#list + 1] = note
  self.early_count = self.early_count + 1
  self.counts.early = self.counts.early + 1
  self.early_tail = self.early_tail + 1
  self.early_queue[self.early_tail] = note
end

function Inbox:_dropped(status, res)
  self.counts.dropped = self.counts.dropped + 1
  if self.on_dropped then
    local err = res and res.error
    self.on_dropped{ status = status, reason = err and (err.code or err.kind) or "unknown",
                     message = err and tostring(err.message or err) or nil }
  end
end

-- One delivery: verify, parse, de-duplicate, order, then note it.
function Inbox:_handle(d)
  self.counts.received = self.counts.received + 1
  local status, res = self.receiver:handle(d.body, d.headers)
  if status ~= 200 then return self:_dropped(status, res) end
  if res.duplicate then
    self.counts.duplicates = self.counts.duplicates + 1
    return
  end
  if res.stale then
    self.counts.stale = self.counts.stale + 1
    return
  end
  local note = outcome.note(self.router, res.event)
  if not note then
    self.counts.ignored = self.counts.ignored + 1
    return
  end
  local w = self.by_connection[note.id]
  if w then
    if note_into(self, w, note.id, note) then self.counts.applied = self.counts.applied + 1
    else self.counts.ignored = self.counts.ignored + 1 end
  else
    keep_early(self, note)
  end
end

--- Drains the listener and handles what it held. Returns how many refresh
-- orders are being watched.
function Inbox:tick()
  local deliveries = self.listener:drain()
  for i = 1, #deliveries do self:_handle(deliveries[i]) end
  if self.early_count > 0 then
    prune_early(self, monotonic())
  elseif self.early_tail > 0 then
    self.early_queue, self.early_head, self.early_tail = {}, 1, 0   -- only taken notes left
  end
  return self.watching
end

--- Starts watching a refresh order: `model` is its order model (truv.core
-- order_model: id and connections, with whatever statuses it already
-- shows). Events that came before are applied at once.
function Inbox:watch(model, owner)
  local w = setmetatable({ order_id = model.id, owner = owner, connections = {}, open = 0 },
                         Watch)
  for _, c in ipairs(model.connections) do
    local rec = { kind = c.kind }
    w.connections[c.id] = rec
    w.open = w.open + 1
    self.by_connection[c.id] = w
    if outcome.finished(self.router, c.status) then
      outcome.apply(rec, { type = "order-status-updated", status = c.status })
      w.open = w.open - 1
    end
  end
  self.watching = self.watching + 1
  for id in pairs(w.connections) do
    local list = self.early[id]
    if list then
      self.early[id] = nil
      self.early_count = self.early_count - #list
      for _, note in ipairs(list) do
        note.taken = true
        if note_into(self, w, id, note) then self.counts.applied = self.counts.applied + 1 end
      end
    end
  end
  return w
end

--- Stops watching (the case has its outcome, or gave up waiting).
function Inbox:unwatch(w)
  if w.unwatched then return end
  w.unwatched = true
  for id in pairs(w.connections) do
    if self.by_connection[id] == w then self.by_connection[id] = nil end
  end
  self.watching = self.watching - 1
end

-- ------------------------------------------------------------ the wait

local function release(doc)
  if core.isdocument(doc) then core.release(doc) end
end

-- Polls, as truv.wait does; the result, the error and how it was had.
local function poll_for(client, order, poll, via)
  local result, err = client:wait_for_refresh(order, poll)
  return result, err, via
end

-- The result of a settled watch, as truv.wait gives it: one GET of the
-- order; the failed connections' routes from their tasks' final statuses
-- as the webhooks told them (truv.outcome.decide).
function Inbox:_result(client, w, poll)
  local doc, err = client:get_order(w.order_id)
  if not doc then return nil, err end
  local model, merr = core.order_model(doc)
  if not model then
    release(doc)
    return nil, merr
  end
  local router = poll.router or self.router
  if #model.connections == 0 or not outcome.all_finished(router, model) then
    -- the document is behind the webhooks: polling takes it from here
    release(doc)
    return poll_for(client, model, poll, "poll")
  end
  local now = client:now()
  local connections, decision, taught = outcome.decide(router, model, now, function(c, r)
    local rec = w.connections[c.id]
    if not (rec and rec.task_status) then return false end
    r.task_id, r.task_status = rec.task_id, rec.task_status
    return rec.task_at
  end)
  if not connections then
    -- a failure whose task status never came: polling reads it (the document is finished)
    return poll_for(client, doc, poll, "poll")
  end
  outcome.remember(self.facts or facts_mod.store(client.quota), taught, now,
                   function(ev) client:emit("warn", ev) end)
  decision.expiring = poll.expiring
  return { order = doc, finished = true, connections = connections, decision = decision,
           expiring = poll.expiring }, nil, "webhook"
end

function Inbox:_park(timeout_s)
  if self.park then return self.park(timeout_s) end
  core.sleep(min(timeout_s, _M.DEFAULTS.step_s))
  self:tick()
  return false
end

--- Waits for a refresh order (its id, document or model) by webhook; see
-- the top of this file. Returns result, nil, via or nil, err.
function Inbox:wait_for_refresh(client, order, opts)
  opts = opts or {}
  local poll = opts.poll or {}
  if opts.expiring then   -- refresh_order's warning, handed on to the result
    local p = { expiring = opts.expiring }
    for k, v in pairs(poll) do p[k] = v end
    poll = p
  end
  local model, err
  if type(order) == "string" then        -- a refresh sent by an earlier run
    model, err = client:get_order_model(order)
  else
    model, err = refresh.model(order)
  end
  if not model then return nil, err end
  if #model.connections == 0 then return poll_for(client, model, poll, "poll") end
  local w = self:watch(model, co_running())
  model = nil   -- luacheck: ignore (nothing but the watch is held while waiting)
  local started = monotonic()
  local wait_s = opts.fallback_s or _M.DEFAULTS.fallback_s
  local timeout_s = poll.timeout_s or wait_mod.DEFAULTS.timeout_s
  local deadline = started + wait_s
  while true do
    while not w:settled() do
      local left = deadline - monotonic()
      if left <= 0 then break end
      self:_park(left)
    end
    if w:settled() then break end
    -- No final outcome by the deadline: one read tells a lost webhook (the
    -- order is finished: it is routed from that read) from a refresh that
    -- is only slow, whose webhooks may still come: it waits for them again,
    -- twice as long each time, up to the poll timeout (then routed as an
    -- unfinished poll would be). Polling it to the end instead would cost
    -- a slow provider's refresh a poll every max_interval_s.
    local doc, rerr = client:get_order(w.order_id)
    if not doc then
      self:unwatch(w)
      return nil, rerr
    end
    local m, merr = core.order_model(doc)
    if not m then
      self:unwatch(w)
      release(doc)
      return nil, merr
    end
    local elapsed = monotonic() - started
    if #m.connections == 0 or outcome.all_finished(poll.router or self.router, m)
       or elapsed >= timeout_s then
      self:unwatch(w)
      self.counts.fallbacks = self.counts.fallbacks + 1
      local p = poll
      if elapsed >= timeout_s then   -- the wait's whole time is spent: no more polls
        p = { timeout_s = 0 }
        for k, v in pairs(poll) do if k ~= "timeout_s" then p[k] = v end end
      end
      return poll_for(client, doc, p, "fallback")
    end
    release(doc)
    doc, m = nil, nil   -- luacheck: ignore
    wait_s = max(wait_s * 2, poll.interval_s or wait_mod.DEFAULTS.interval_s)
    deadline = monotonic() + min(wait_s, timeout_s - elapsed)
  end
  self:unwatch(w)
  self.counts.settled = self.counts.settled + 1
  return self:_result(client, w, poll)
end

--- Counters: deliveries received, applied (to a watched refresh),
-- duplicates, stale, dropped (not verified or not an event), ignored
-- (nothing final, or not about a connection), early (kept for a case not
-- registered yet); refreshes settled by webhook and fallbacks (polled
-- after fallback_s); watching; and the listener's own (listener =
-- { accepted, unauthorized, ... }).
function Inbox:stats()
  local s = {}
  for k, v in pairs(self.counts) do s[k] = v end
  s.watching = self.watching
  s.listener = self.listener:stats()
  return s
end

function Inbox:close()
  if self.own_listener then self.listener:close() end
end

_M.Inbox = Inbox

return _M
