--- A webhook receiver: verify, de-duplicate, order, correlate, route, hand
-- to the script's handler.
--
--   local receiver = truv.receiver{
--     secrets = { current_secret, previous_secret },  -- Truv signs with the access secret
--     router = truv.router{ done = ..., reverify = ..., ... },
--     dedupe = "/var/lib/app/hooks.db", -- a store, "memory", or a SQLite file path opened here
--                                       -- (absent: memory, with a warning through `logger`)
--     ttl = 7 * 86400,                  -- how long a webhook_id is remembered (the default)
--     originals = function(order_id) return original_id_or_nil end,  -- optional correlation
--     client = client,                  -- optional: reads initial_order when originals can't tell
--     facts = quota_store,              -- optional: keep what events say about links (truv.facts)
--     tracker = ngx.shared.truv_webhooks, -- optional: follow refreshes (receiver:track) to
--                                       -- one decision per case and refresh (truv.tracker)
--     clock = os.time,
--   }
--   local status, result = receiver:handle(raw_body, headers)
--
-- truv.receiver returns the receiver, or nil, err when its dedupe store
-- cannot be opened; misuse raises.
--
-- `status` is the HTTP status to answer Truv with: 200 for a handled,
-- duplicate or stale event; 401 for a bad signature; 400 for a body that is
-- not a Truv event; 500 when the handler failed (the event is forgotten so
-- that Truv's retry is handled again). `result` = { event =, decision =,
-- duplicate =, stale =, original_order_id =, handler_result =, error = }.
--
-- With `facts` (a quota store that keeps connection facts, such as the
-- client's), every new event about a link is noted before it is routed:
-- link-disconnected and a refresh that failed in a way only the user can
-- fix (login_error, mfa_error, ...) as dead, link-connected as the user
-- authenticating again, a completed refresh as alive; so that the next
-- refresh of a dead link is refused without being billed (truv.refresh).
--
-- With `tracker`, a refresh order handed to receiver:track(refresh, case)
-- reaches the handlers once: each connection's outcome is kept as its
-- events come, and when every connection has one the handler of their
-- combined route (truv.route.combine) is called with decision.connections
-- (each one's route, reason, status, link_id) and decision.by_route
-- (connection ids per route); the refresh's other events go to the `wait`
-- handler (decision.connection: the event's own route). One new link per
-- case and refresh, and a retry never for a refresh a connection of which
-- only the user can fix (reverify wins over retry).
--
-- Replays: Truv's signature has no timestamp, so a replayed delivery is
-- caught by de-duplication (webhook_id, for `ttl`) and by ordering (an event
-- older than the last one seen for the same object is ignored; one of the
-- same instant is not, so that Truv's retry after a failed handler counts).
local core = require "truv.core"
local webhook = require "truv.webhook"
local route_mod = require "truv.route"
local facts_mod = require "truv.facts"
local tracker_mod = require "truv.tracker"
local dedupe = require "truv.dedupe"

local type, tostring, setmetatable, getmetatable = type, tostring, setmetatable, getmetatable
local core_verify, core_parse = core.webhook_verify, core.webhook_parse

local _M = {}

local Receiver = {}
Receiver.__index = Receiver

_M.DEFAULT_TTL = dedupe.DEFAULT_TTL   -- how long a webhook_id is remembered (truv.dedupe)

--- What an event reports on, for ordering by updated_at: its type and its
-- object (a task, a suborder, an order or a link). Events of different
-- types about one object are separate streams: an order-status-updated and
-- an order-refresh-failed for one suborder may carry the same instant.
local function object_key(ev)
  local id = ev.task_id or ev.employer_id or ev.order_id or ev.link_id
  if not id then return nil end
  return tostring(ev.event_type) .. ":" .. id
end
_M.object_key = object_key

function _M.new(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'receiver' (table expected, got " .. type(opts) .. ")", 2)
  end
  local secrets = opts.secrets or opts.secret
  if type(secrets) ~= "string" and type(secrets) ~= "table" then
    error("receiver: 'secrets' (the access secret, or a list for rotation) is required", 2)
  end
  local keys, kerr = webhook.keys(secrets)   -- keyed HMAC state made once
  if not keys then error("receiver: " .. tostring(kerr), 2) end
  -- a store that cannot be opened fails the receiver, never replaced
  local store, where, derr = dedupe.from_option(opts.dedupe)
  if derr then return nil, derr end
  local self = setmetatable({
    secrets = keys,
    router = opts.router or route_mod.default,
    dedupe = store,
    dedupe_where = where,
    ttl = opts.ttl or _M.DEFAULT_TTL,
    originals = opts.originals,
    client = opts.client,
    clock = opts.clock or (ngx and ngx.now) or core.now,
    log = opts.logger,
    facts = facts_mod.store(opts.facts),
    tracker = opts.tracker and (getmetatable(opts.tracker) == tracker_mod.Tracker and opts.tracker
                                or tracker_mod.new(opts.tracker)),
  }, Receiver)
  if where.default and self.log then
    -- an absent option cannot be told from a store that failed to open and
    -- came back nil: said, so that a lost durable store does not go unseen
    self.log("warn", { event = "dedupe_default", message = "webhook ids are remembered in " ..
      "this process's memory (no dedupe option): other processes and a restart do not see " ..
      "them; pass dedupe = \"memory\" to choose it, or a store or a file path" })
  end
  return self
end

--- What this receiver works with: { dedupe = { kind =, path =, default = },
-- facts = true when it keeps what events say about links }.
function Receiver:describe()
  local d = self.dedupe_where
  return { dedupe = { kind = d.kind, path = d.path, default = d.default or false },
           facts = self.facts ~= nil }
end

function Receiver:_original(ev)
  local id = ev.order_id
  if not id then return nil end
  if self.originals then
    local o = self.originals(id)
    if o then return o end
  end
  if self.client then
    local order = self.client:get_order(id)
    if order and type(order.initial_order) == "string" then return order.initial_order end
  end
  return nil
end

function Receiver:handle(body, headers)
  if type(body) ~= "string" then
    error("bad argument #1 to 'handle' (string expected, got " .. type(body) .. ")", 2)
  end
  -- the core's calls directly: arguments are checked above, and the event is
  -- routed once, below, by this receiver's router (not by the default one)
  local ok, verr = core_verify(body, headers, self.secrets)
  if not ok then return 401, { error = verr } end
  local ev, perr = core_parse(body)
  if not ev then return 400, { error = perr } end

  local now = self.clock()
  local first, derr = self.dedupe:seen(ev.webhook_id, now, self.ttl)
  if first == nil then return 500, { event = ev, error = derr } end
  if not first then return 200, { event = ev, duplicate = true } end

  local key = object_key(ev)
  if key and ev.updated_at and ev.updated_at > 0 then
    local newer, oerr = self.dedupe:last_update(key, ev.updated_at)
    if newer == nil then
      self.dedupe:forget(ev.webhook_id)
      return 500, { event = ev, error = oerr }
    end
    if not newer then return 200, { event = ev, stale = true } end
  end

  if self.facts then
    facts_mod.note_event(self.facts, ev, self.log and function(e) self.log("warn", e) end)
  end
  local tracked = self.tracker and self.tracker:find(ev)
  if tracked then return self:_tracked(ev, tracked, now) end
  local original = self:_original(ev)
  local case = { order_id = ev.order_id, original_order_id = original or ev.order_id,
                 webhook_id = ev.webhook_id, user_id = ev.user_id, employer_id = ev.employer_id,
                 task_id = ev.task_id, link_id = ev.link_id }
  local decision, res = self.router:dispatch(ev, case, now)
  if not decision then
    -- let Truv's retry of this delivery be handled again
    self.dedupe:forget(ev.webhook_id)
    return 500, { event = ev, error = res, original_order_id = original }
  end
  return 200, { event = ev, decision = decision, handler_result = res,
                original_order_id = original }
end

--- Follows refresh order `refresh` (document or model) for `case` =
-- { case_id =, original_order_id = }: its events then reach the handlers as
-- one decision (see truv.tracker). Needs the `tracker` option. Returns true
-- or nil, err.
function Receiver:track(refresh, case)
  if not self.tracker then
    error("receiver:track needs the receiver's 'tracker' option (a shared dict or " ..
          "truv.tracker.memory())", 2)
  end
  return self.tracker:track(refresh, case)
end

--- The tracked refresh (case_id, original_order_id, refresh_order_id,
-- connections) that a refresh order or connection id belongs to, or nil.
function Receiver:tracked(id)
  if not self.tracker or type(id) ~= "string" then return nil end
  return self.tracker:find{ order_id = id, employer_id = id }
end

-- An event about a tracked refresh: a connection's outcome is recorded, and
-- the handler of the combined route is called once every connection has
-- one; anything else is an intermediate step for the `wait` handler (the
-- event's own decision in decision.connection).
function Receiver:_tracked(ev, rec, now)
  local case = { order_id = ev.order_id or rec.refresh_order_id,
                 original_order_id = rec.original_order_id or ev.order_id,
                 case_id = rec.case_id, refresh_order_id = rec.refresh_order_id,
                 webhook_id = ev.webhook_id, user_id = ev.user_id, employer_id = ev.employer_id,
                 task_id = ev.task_id, link_id = ev.link_id }
  local own = self.router:route(ev, now)
  local decision
  local id, outcome = tracker_mod.outcome(self.router, rec, ev, now)
  if id then
    local combined, err = self.tracker:settle(rec, id, outcome)
    if combined == nil then
      self.dedupe:forget(ev.webhook_id)
      return 500, { event = ev, error = err, original_order_id = case.original_order_id }
    end
    decision = combined or nil
  end
  decision = decision or { route = "wait", reason = own.reason, final = false, connection = own,
                           refresh_order_id = rec.refresh_order_id }
  local d, res = self.router:act(decision, case, ev)
  if not d then
    if decision.route ~= "wait" then self.tracker:unsettle(rec) end
    self.dedupe:forget(ev.webhook_id)
    return 500, { event = ev, error = res, original_order_id = case.original_order_id }
  end
  return 200, { event = ev, decision = decision, handler_result = res,
                original_order_id = case.original_order_id, tracked = rec }
end

_M.Receiver = Receiver

setmetatable(_M, { __call = function(_, opts) return _M.new(opts) end })

return _M
