--- Bulk renewals: re-verify every case due for recertification in one run,
-- durably, concurrently, resumably.
--
--   local summary, err = require("truv.renewal").run{
--     cases = "cases.csv",            -- a CSV or JSON file, or a list of case tables
--     client = { client_id =, secret =, base_url =, ... },  -- options for truv.new
--     journal = "renewal.journal",    -- SQLite file: the run's durable record
--     router = truv.router{ done = prefill, ... },           -- handlers per route
--     concurrency = 32,               -- requests in flight (one connection pool)
--     http = { ... },                 -- that pool's options (core.multi's) over the ones it
--                                     -- takes from the client's: its CAs, proxy, timeouts,
--                                     -- billed_reuse_idle_s (truv.client.transport_options)
--     rate_per_minute = 300,          -- Truv's limit; the sandbox can allow more
--     rate_reserve = 0,               -- share of that rate left to the secret's other
--                                     -- users (a gateway, another tool): the run sends
--                                     -- at most rate_per_minute * (1 - rate_reserve);
--                                     -- a fleet limiter (the client's ratelimit) shares
--                                     -- the rate itself, and this is then not applied
--     memory_mb = 256,                -- the cases in progress are bounded by this much
--                                     -- memory (see "Work in progress")
--     poll = { interval_s = 2, max_interval_s = 30, timeout_s = 1200,
--              learn = true,          -- poll when the run's refreshes finish (see below)
--              finished_share = 0.75 },  -- of the refreshes a poll reaches, finished
--     reverify = { mode = "order" },  -- or "bridge"
--     quota = store or path,          -- default: the stable store of the machine's user
--                                     -- (truv.quota.default_path), so that a new journal
--                                     -- is not a new quota; a journal begun by a version
--                                     -- that kept JOURNAL.quota keeps using that file; it
--                                     -- keeps the connection facts too (truv.facts)
--     not_within = 72000,             -- seconds (or false): an order refreshed by anyone
--                                     -- less than this ago is not refreshed again: the
--                                     -- case adopts that refresh (done: recently_refreshed)
--     reuse_model_s = 86400,          -- seconds (default false): a case the run sees
--                                     -- again (a retry, a defer, a resume) takes the
--                                     -- original's model from the journal, when younger,
--                                     -- instead of reading the order (see "The original's
--                                     -- model" below: what a stale model cannot see)
--     max_billed = n,                 -- at most n billed refreshes (one per connection)
--                                     -- this run; the cases past it stay due
--     expiry_days =, expiring_days =, oauth_providers =, refuse_dead =,  -- truv.refresh
--     on_event = function(event) end, -- progress: one call per case event
--     on_load = function(load) end,   -- how busy the run is, about 5 times a second:
--                                     -- { requests =, queued =, cases = } (see below)
--     interrupted = function() end,   -- polled from the run's loop: see "Interruption"
--     wait = "poll",                  -- or "webhook": see below
--     webhook = { listener = core.listener{...} or { host =, port =, path =, ... },
--                 secrets = { ... },  -- default: the client's secret
--                 dedupe = store,     -- default: in memory
--                 fallback_s = 600 }, -- then poll, so a missing webhook loses nothing
--   }
--
-- For each case: plan (read the original order; a connection known to
-- need the user, from the connection facts the quota store keeps, goes
-- straight to reverify without spending a refresh; see truv.refresh),
-- reserve quota, refresh (write-ahead in the journal first), wait for the
-- result (which notes what it learns as facts), route,
-- and act through the router's handlers: done hands the fresh order to the
-- `done` handler (pre-fill; the document is lent for the call: keep
-- truv.totable(order) if the handler stores it), reverify creates the new
-- verification link (a new order carrying the case's email and phone, where
-- Truv sends it; a case without either gets `no_contact`: the link exists
-- and nobody was told),
-- retry and defer are scheduled for their time (a later run with the same
-- journal picks them up once due), no_data and fix are reported.
--
-- Waiting: by polling (truv.wait), or with wait = "webhook" by Truv's
-- webhooks (truv.inbox): a case that sent its refresh registers the
-- refresh order and sleeps until the webhooks have announced a final
-- outcome for each of its connections, or until fallback_s, after which
-- it polls. The listener is drained from the scheduler's loop, which then
-- wakes at least every webhook.drain_interval_s (0.02) while cases wait.
-- Polling learns when to poll (truv.pollplan): the first poll of a refresh
-- comes when poll.finished_share (0.75) of the run's refreshes have
-- finished, each next one when that share of those still unfinished have
-- (1 / 0.75 = 1.33 polls a refresh: a batch under Truv's rate limit is
-- bound by its requests, not by one case's wait), then pauses growing by
-- half up to max_interval_s; interval_s and max_interval_s are
-- the schedule until something is observed. What it learned is kept in the
-- journal (meta "poll.plan"): a resumed or later run with the same journal
-- starts from it. poll.learn = false keeps the fixed schedule.
-- Either way the route is the same (the run's router, truv.route.combine)
-- and the `done` handler gets the fresh order (one GET at the end).
--
-- The original's model: every case reads its original order before
-- refreshing it, and the journal keeps the model it read (with quota keys,
-- never an access token). With reuse_model_s, a case seen again takes that
-- model instead of reading the order (one request of the rate budget less
-- per retried case) when it is younger than reuse_model_s and the quota
-- store counts no refresh of its connections in the last 24 h but the
-- case's own; Truv's history of the order is then not read again either.
-- Off by default, because a journaled model cannot show what happened
-- since it was read outside this client and the runs sharing its quota
-- store: an order refreshed since by another tool or host is refreshed
-- (and paid for) again instead of adopted (not_within), a refresh over
-- Truv's limit is refused by Truv, unbilled, and a connection replaced
-- meanwhile is not refreshed. A refusal that says the model is wrong (400,
-- 404, Truv's refresh limit) reads the order again, once. Details: "The
-- original's model" in truv.renewal.case.
--
-- The journal makes the run resumable: a run killed at any instant and
-- started again with the same journal skips routed cases, reconciles
-- refreshes that were in flight (adopting the one Truv created, or sending
-- again only when provably none was), and sends nothing twice. A case
-- scheduled for a retry resumes the same way (see "Resume points" in
-- truv.renewal.case).
-- The journal is opened exclusively (one run at a time); a journal that
-- cannot be written, and errors about the run rather than a case, stop the
-- run (see "Errors about the run" in truv.renewal.case).
--
-- Interruption: `interrupted` is called at every turn of the run's loop
-- (cheap: truv-renew reads the flag its signal handler set). Once it
-- returns a true value (a reason, such as "INT"), the run takes no new
-- work: no case starts, no refresh is reserved or sent, no new
-- verification link is begun; the requests already in flight finish
-- (for at most interrupt_grace_s, 10), and so do the writes the rate limit
-- held back (journaled ahead), while held-back reads are dropped at once;
-- what they answered is journaled, the journal is committed, an
-- `interrupted` event says so (with `requests` in flight then, `held`
-- writes still to go out, `dropped` reads), and run returns nil, err (kind
-- "internal", code "interrupted", err.reason the reason). Every case keeps
-- its resume point: the same run again continues with nothing lost and
-- nothing refreshed twice (a refresh journaled as being sent but held back
-- when the run stopped is reconciled, as after a crash).
--
-- Work in progress: the cases in progress are as many as the rate budget
-- serves: rate x the time a case stays in progress / its requests, both
-- observed in the run (truv.renewal.budget), bounded by memory_mb; not by
-- the request slots (`concurrency` is the connection pool). The requests
-- of cases that have work at Truv to finish (polls, the reads that route
-- them, their links) go before those of new cases when the budget holds
-- requests back, and a new case starts only when none of the new cases'
-- requests waits for the budget.
--
-- Load: on_load gets { requests = requests sent and not answered yet,
-- queued = requests held back by the rate limit or the pool, cases = cases
-- in progress (waiting for an answer, a poll, a webhook or their turn) }.
--
-- Handlers run at least once per outcome: a run killed after a handler
-- returned and before the case's route was committed calls it again on
-- resume, with the same outcome. outcome.key ("<case_id>#<n>") is the same
-- string every time for one outcome of a case, and the case's next outcome
-- (its retry) gets the next n: a handler that records outcome.key (a unique
-- key in its own store) does its work once. outcome.case_id and
-- outcome.refresh_order_id (the refresh the outcome is of, if any) come
-- with it.
--
-- The parts: this module runs (its options, its stores, its workers, its
-- summary, the dry run's setting up); truv.renewal.case is one case's
-- state machine (and the dry run's reading of it); truv.renewal.load puts
-- the cases into the journal and reads them back.
local core = require "truv.core"
local truv_client = require "truv.client"
local errors = require "truv.errors"
local route_mod = require "truv.route"
local refresh = require "truv.refresh"
local cases_mod = require "truv.cases"
local scheduler = require "truv.scheduler"
local inbox_mod = require "truv.inbox"
local quota_mod = require "truv.quota"
local options = require "truv.options"
local case_mod = require "truv.renewal.case"
local load_mod = require "truv.renewal.load"
local budget_mod = require "truv.renewal.budget"
local pollplan = require "truv.pollplan"
local wait_mod = require "truv.wait"

local type, ipairs, pairs, tostring, error = type, ipairs, pairs, tostring, error
local getmetatable, pcall = getmetatable, pcall
local format = string.format

local _M = {}

local get, put, emit, journal_failure = case_mod.get, case_mod.put, case_mod.emit,
                                        case_mod.journal_failure

_M.DEFAULTS = {
  concurrency = scheduler.DEFAULTS.concurrency,          -- requests in flight
  rate_per_minute = scheduler.DEFAULTS.rate_per_minute,  -- Truv's limit
  rate_reserve = budget_mod.DEFAULTS.reserve,   -- share of the rate left to others
  memory_mb = budget_mod.DEFAULTS.memory_mb,     -- bounds the cases in progress
  commit_interval_s = 0.05,    -- group commit of the journal, unless a refresh waits on it
  skew_s = refresh.DEFAULTS.clock_skew_s,   -- our clock against Truv's timestamps
  drain_interval_s = 0.02,     -- webhook mode: the longest a delivery waits to be seen
  probation_cases = 10,        -- failures before any success that stop the run
                               -- (truv.renewal.case: "Errors about the run")
  -- a case tried again later: when it comes due (a later run picks it up then)
  store_busy_retry_s = 60,     -- the quota store was busy: nothing was sent
  unreconciled_retry_s = 300,  -- a refresh that may have been sent could not be read back
                               -- (Truv unreachable): the next try reconciles again
  reverify_pending_retry_s = 60,   -- a refresh routed to reverify, but the original
                                   -- order could not be read to make its link
  not_within = 20 * 3600,      -- an order refreshed less than this ago is not paid for again
  reuse_model_s = false,       -- seconds: a case seen again takes the original's model from
                               -- the journal when younger (opt-in: see the top)
  interrupt_grace_s = 10,      -- interrupted: the longest the requests in flight are awaited
  load_interval_s = 0.2,       -- on_load: at most this often
}

-- What the numbers of run's options accept (truv-renew's flags use the same);
-- poll.* and webhook.* are in the tables of those names.
_M.LIMITS = {
  concurrency = { integer = true, min = 1, max = 1024 },
  rate_per_minute = { min = 0, max = 60000, unit = "requests per minute, 0: no limit" },
  rate_reserve = budget_mod.LIMITS.reserve,
  memory_mb = budget_mod.LIMITS.memory_mb,
  commit_interval_s = { min = 0, max = 60, unit = "seconds" },
  skew_s = { min = 0, max = 86400, unit = "seconds" },
  probation_cases = { integer = true, min = 1, max = 1e6 },
  store_busy_retry_s = { min = 0, max = 86400, unit = "seconds" },
  unreconciled_retry_s = { min = 0, max = 86400, unit = "seconds" },
  reverify_pending_retry_s = { min = 0, max = 86400, unit = "seconds" },
  interrupt_grace_s = { min = 0, max = 3600, unit = "seconds" },
  load_interval_s = { above = 0, max = 60, unit = "seconds" },
  expiry_days = refresh.LIMITS.expiry_days,
  expiring_days = refresh.LIMITS.expiring_days,
  not_within = refresh.LIMITS.not_within,
  reuse_model_s = { above = 0, max = 366 * 86400, unit = "seconds", otherwise = "false" },
  max_billed = { integer = true, min = 0, max = 1e9, unit = "billed refreshes" },
  poll = {
    interval_s = { above = 0, max = 3600, unit = "seconds" },
    max_interval_s = { above = 0, max = 86400, unit = "seconds" },
    timeout_s = { min = 0, max = 604800, unit = "seconds" },
    finished_share = pollplan.LIMITS.finished_share,
  },
  webhook = {
    fallback_s = { min = 0, max = 604800, unit = "seconds" },
    drain_interval_s = { above = 0, max = 60, unit = "seconds" },
    ttl = { min = 0, max = 31536000, unit = "seconds" },
  },
}

-- The reservations of refreshes whose write-ahead never passed its barrier:
-- the run stopped there, so their POST never left and Truv made nothing;
-- kept, each would count a refresh against its connections for 24 h. (A
-- write-ahead that the last commit made durable after all is reconciled by
-- the next run, which finds no refresh and releases again: a no-op.) Two
-- cases cannot give it back, and the slot stays counted until it leaves the
-- 24 h window (refreshing less, never more): a process killed in that window
-- (a few milliseconds per refresh), and a store that cannot be written
-- either (on the same full disk as the journal), which is reported
-- ("quota_unreleased").
local function release_unsent(ctx)
  for case_id, r in pairs(ctx.unsent) do
    local ok, err = true, nil
    if ctx.quota then ok, err = ctx.quota:release(r.keys, r.ticket) end
    if not ok then
      emit(ctx, { event = "quota_unreleased", case_id = case_id, message = format(
        "the refresh quota reserved for this case's refresh, which was never sent, could not "
        .. "be given back (%s): it counts against the case's connections for 24 h",
        tostring(err and err.message or err)) })
    end
  end
  ctx.unsent = {}
end

-- The quota store of a run, and where it is: opts.quota (a store, a path
-- or URL, or false for none); by default the journal's own JOURNAL.quota
-- when the journal was begun by a version that kept the quota there (its
-- reservations are honoured: the journal's refreshes in flight were
-- reserved in it), else the stable default location (truv.quota
-- default_path), shared by every run of the machine's user. Returns store,
-- where ({ path =, kind =, legacy =, default =, own = }), or nil, nil for
-- none, or nil, nil, err.
local function open_quota(opts)
  local q = opts.quota
  local legacy = _M.journal_quota(opts.journal)
  if legacy and q ~= nil then
    return nil, nil, errors.new("invalid", "quota_legacy", format(
      "the journal %s was begun with a quota store of its own, %s, which holds its " ..
      "refreshes' reservations: resume it without another quota store (or move that file " ..
      "away to drop them)", opts.journal, legacy))
  end
  if q == false then return nil, nil end
  if q ~= nil and type(q) ~= "string" then
    local where = options.store_where(q)
    where.own = false
    return q, where
  end
  local path, dir, err
  if legacy then
    path = legacy
  elseif q then
    local loc
    loc, err = quota_mod.location(q)
    if not loc then return nil, nil, err end
    if loc.kind == "redis" then
      -- one fleet-wide store: the keys of one Truv client share a hash tag
      local client_id = opts.client_id or (type(opts.client) == "table" and opts.client.client_id)
      local store
      store, err = quota_mod.redis{ url = loc.url, namespace = client_id and
                                    ("truv:" .. client_id) or nil }
      if not store then return nil, nil, err end
      return store, { kind = "redis", path = store.path, own = true }
    end
    path = loc.path
  else
    path, dir = quota_mod.default_path()
    if not path then return nil, nil, dir end
  end
  local store
  store, err = quota_mod.open_file(path, { make_dir = dir })
  if not store then
    err.message = format("cannot open the quota store %s: %s", path, tostring(err.message))
    return nil, nil, err
  end
  return store, { kind = "sqlite", path = path, legacy = legacy and true or nil,
                  default = (q == nil) or nil, own = true }
end

_M.open_quota = open_quota

--- The quota store a journal begun by an earlier version kept beside itself
-- (JOURNAL.quota, a journal's path): its path when that file exists (the
-- journal keeps using it until it is done), else nil.
function _M.journal_quota(journal)
  if type(journal) ~= "string" then return nil end
  local path = journal .. ".quota"
  local f = io.open(path, "rb")
  if not f then return nil end
  f:close()
  return path
end

-- The options for truv.new a run's `client` option stands for: the table
-- itself, or what a client was made with (client:options()).
local function client_options(spec)
  if getmetatable(spec) == truv_client.Client then return spec:options() end
  return spec
end

-- The options of the run's connection pool (the scheduler's core.multi):
-- the client's connection options, so the run connects as the client
-- would (its CAs, its proxy, how long a refresh may ride a kept-alive
-- connection), and the run's `http` over them.
local function http_options(opts)
  local http = truv_client.transport_options(client_options(opts.client))
  for k, v in pairs(opts.http or {}) do http[k] = v end
  return http
end

local function make_client(opts, sched, quota, logger)
  local o = {}
  for k, v in pairs(client_options(opts.client)) do o[k] = v end
  if logger then o.logger = logger end
  o.transport = sched:transport()
  o.sleep = sched.sleep
  o.quota = quota or false
  if opts.expiry_days ~= nil then o.expiry_days = opts.expiry_days end
  -- the run's refresh settings (truv.refresh) over the client's own
  local r = {}
  for k, v in pairs(o.refresh or {}) do r[k] = v end
  for _, k in ipairs{ "expiring_days", "oauth_providers", "refuse_dead" } do
    if opts[k] ~= nil then r[k] = opts[k] end
  end
  o.refresh = r
  return truv_client.new(o)
end

-- The webhook inbox of a run: cases park on the scheduler until their
-- refresh's webhooks settle them.
local function open_inbox(ctx, sched)
  local w = ctx.webhook
  return inbox_mod.new{
    listener = w.listener, secrets = w.secrets, dedupe = w.dedupe, ttl = w.ttl,
    router = ctx.router, clock = ctx.clock, facts = ctx.quota,
    park = function(timeout_s) return sched:park(timeout_s) end,
    on_settled = function(watch) sched:wake(watch.owner) end,
    on_dropped = function(info)
      emit(ctx, { event = "webhook_dropped", status = info.status, reason = info.reason })
    end,
  }
end

-- The poll times a journal keeps (truv.pollplan's state, as JSON text).
local PLAN_KEY, PLAN_SAVE_S = "poll.plan", 2

local function save_plan(journal, plan)
  journal:meta_set(PLAN_KEY, core.encode(plan:state()))
end

local function load_plan(journal, poll_opts, finished_share)
  local text = journal:meta_get(PLAN_KEY)
  local ok, state = pcall(core.decode, type(text) == "string" and text or "null", "table")
  return pollplan.new{
    interval_s = poll_opts.interval_s or wait_mod.DEFAULTS.interval_s,
    max_interval_s = poll_opts.max_interval_s or wait_mod.DEFAULTS.max_interval_s,
    timeout_s = poll_opts.timeout_s or wait_mod.DEFAULTS.timeout_s,
    finished_share = finished_share, state = ok and state or nil }
end

-- Works through `todo` with the scheduler; returns nil or the run error
-- that stopped it.
local function work(ctx, opts, todo)
  local concurrency = opts.concurrency or _M.DEFAULTS.concurrency
  local journal = ctx.journal
  local last_commit, commit_interval = 0, opts.commit_interval_s or _M.DEFAULTS.commit_interval_s
  local inbox    -- webhook mode: drained at every turn of the loop
  local drain_interval = ctx.webhook and ctx.webhook.drain_interval_s
                         or _M.DEFAULTS.drain_interval_s
  local interrupted, on_load = opts.interrupted, opts.on_load
  local load_interval = opts.load_interval_s or _M.DEFAULTS.load_interval_s
  local grace = opts.interrupt_grace_s or _M.DEFAULTS.interrupt_grace_s
  local last_load, last_plan = -math.huge, core.monotonic()
  -- a fleet-wide rate budget (the client's ratelimit) shares the secret's
  -- rate among its users itself: no share is then set aside here
  local fleet = client_options(opts.client).ratelimit ~= nil
  ctx.budget = budget_mod.new{
    rate_per_minute = opts.rate_per_minute or _M.DEFAULTS.rate_per_minute,
    reserve = not fleet and opts.rate_reserve or 0,
    memory_mb = opts.memory_mb, concurrency = concurrency,
  }
  local sched, serr = scheduler.new{
    concurrency = concurrency,
    rate_per_minute = ctx.budget.rate_per_minute,
    http = http_options(opts),
    documents = "view",
    -- Group commit: at once when a refresh waits on its write-ahead, else
    -- every commit_interval_s (a state lost with the process is redone).
    -- A commit that fails stops the run here: no workflow waiting on the
    -- write-ahead passes its barrier, so nothing is sent without a record.
    on_tick = function(urgent)
      local t = core.monotonic()
      if urgent or t - last_commit >= commit_interval then
        local plan = ctx.poll_opts.plan
        if plan and plan.changed and t - last_plan >= PLAN_SAVE_S then
          -- the poll times learned so far, for a resumed or later run
          plan.changed, last_plan = false, t
          save_plan(journal, plan)
        end
        local ok, err = journal:commit()
        if ok then ok, err = journal:begin() end
        if not ok then
          ctx.run_error = ctx.run_error or journal_failure(err)
          ctx.sched:stop()
          return
        end
        last_commit = t
      end
      if interrupted and not ctx.interrupted then
        local why = interrupted()
        if why then
          ctx.interrupted = why
          local busy = ctx.sched:load()
          local held, dropped = ctx.sched:drain(grace)
          emit(ctx, { event = "interrupted", reason = tostring(why), requests = busy.requests,
                      held = held, dropped = dropped })
        end
      end
      if on_load and t - last_load >= load_interval then
        last_load = t
        local busy = ctx.sched:load()
        on_load{ requests = busy.requests, queued = busy.queued, cases = ctx.active() }
      end
      -- cases asleep on webhooks: come back soon to look for deliveries
      if inbox and inbox:tick() > 0 then return drain_interval end
    end,
  }
  if not sched then return serr end
  ctx.sched = sched
  local client, cerr = make_client(opts, sched, ctx.quota)
  if not client then
    sched:close()
    return cerr
  end
  ctx.client = client
  if ctx.webhook then
    local ierr
    inbox, ierr = open_inbox(ctx, sched)
    if not inbox then
      client:close()
      return ierr
    end
    ctx.inbox = inbox
  end
  ctx.todo, ctx.held, ctx.held_errors = todo, {}, {}
  ctx.probation = math.min(opts.probation_cases or _M.DEFAULTS.probation_cases, #todo)
  -- Cases in progress: as many as the rate budget serves (truv.renewal.budget),
  -- each a workflow of its own, started by a feeder that a case's end wakes.
  local budget = ctx.budget
  local next_case, active, feeder = 1, 0, nil
  local function one_case(id)
    local t0, co = core.monotonic(), coroutine.running()
    local ok, err = pcall(function() return case_mod.process(ctx, load_mod.case(get(ctx, id))) end)
    active = active - 1
    budget:finished(core.monotonic() - t0, sched:requests_of(co))
    if feeder then sched:wake(feeder) end
    if not ok and type(err) == "table" and (err.run_error or err.held or err.interrupted) then
      -- stopped (the scheduler returns), interrupted (the case stays at
      -- its resume point), or held until the run proves itself
      return
    elseif not ok then
      -- a fault of ours: the case keeps its state (its resume point) for
      -- the next run
      emit(ctx, { event = "error", case_id = id, message = tostring(err) })
      pcall(put, ctx, id, { error = tostring(err) })
    end
  end
  -- a pause of the feeder: a request slot of the budget, or a short turn
  local turn = budget.rate_per_minute > 0 and math.min(1, 60 / budget.rate_per_minute) or 0.01
  local function feed()
    while not ctx.run_error and not ctx.interrupted do
      if next_case > #ctx.todo and active == 0 then return end   -- (held cases come back)
      local n = next_case <= #ctx.todo and budget:admit(active, sched:load()) or 0
      for _ = 1, n do
        if next_case > #ctx.todo then break end
        local id = ctx.todo[next_case]
        next_case = next_case + 1
        active = active + 1
        budget:started(active)
        sched:spawn(one_case, id)
      end
      sched:park(turn)
    end
  end
  ctx.active = function() return active end
  local begun, berr = journal:begin()
  if not begun then
    client:close()
    return journal_failure(berr)
  end
  feeder = sched:spawn(feed)
  local ok, err = pcall(sched.run, sched)
  if on_load then   -- what is left: nothing in flight, the cases an interruption left open
    local busy = sched:load()
    on_load{ requests = busy.requests, queued = busy.queued, cases = active }
  end
  if ctx.poll_opts.plan and ctx.poll_opts.plan.changed and not ctx.run_error then
    pcall(save_plan, journal, ctx.poll_opts.plan)
  end
  local committed, cerr2 = journal:commit()
  if not committed then ctx.run_error = ctx.run_error or journal_failure(cerr2) end
  release_unsent(ctx)
  if inbox then
    ctx.webhook_stats = inbox:stats()
    inbox:close()
  end
  client:close()
  if not ok then
    if type(err) == "table" and err.run_error then return err.run_error end
    return errors.new("internal", "renewal", tostring(err))
  end
  -- every case of the run was held: none could be done
  if not ctx.run_error and not ctx.interrupted and #ctx.held > 0 and not ctx.proven then
    ctx.run_error = case_mod.run_wide_error(ctx)
  end
  return ctx.run_error
end

local function interrupted_error(why)
  return errors.new("internal", "interrupted", format(
    "interrupted (%s): the run took no new work, let the requests in flight finish and "
    .. "committed the journal; the same command resumes every case", tostring(why)),
    { reason = why })
end

-- The webhook options of a webhook run (nil for a polling one); misuse
-- raises.
local function webhook_options(opts, spec)
  local wait = opts.wait or "poll"
  if wait ~= "poll" and wait ~= "webhook" then
    error("renewal.run: 'wait' must be \"poll\" or \"webhook\", got " .. tostring(wait), 3)
  end
  if wait == "poll" then return nil end
  local w = {}
  for k, v in pairs(opts.webhook or {}) do w[k] = v end
  w.secrets = w.secrets or spec.secret
  if w.secrets == nil then
    error("renewal.run: webhook.secrets (or the client's secret) is required", 3)
  end
  w.fallback_s = w.fallback_s or inbox_mod.DEFAULTS.fallback_s
  if type(w.fallback_s) ~= "number" or w.fallback_s < 0 then
    error("renewal.run: webhook.fallback_s must be a number of seconds >= 0", 3)
  end
  return w
end

-- Misuse raises at run's caller: a number out of its range (LIMITS).
local function check_numbers(opts)
  for k, r in pairs(_M.LIMITS) do
    local v = opts[k]
    if k == "poll" or k == "webhook" then
      if v ~= nil and type(v) ~= "table" then
        error(format("bad option '%s' to 'renewal.run' (a table expected, got %s)", k, type(v)), 3)
      end
      options.numbers("renewal.run", v or {}, r, 3, k .. ".")
    elseif not (v == false and r.otherwise == "false") then
      options.number("renewal.run", k, v, r, 3)
    end
  end
  refresh.check_settings("renewal.run", opts, 3)
end

-- The client's billed_reuse_idle_s goes to the run's connection pool
-- (http_options), which would refuse a bad one in its own name: checked
-- here first, before anything is opened, as truv.new checks it.
local function check_connection(spec, fname)
  options.number(fname, "client.billed_reuse_idle_s", spec.billed_reuse_idle_s,
                 truv_client.BILLED_REUSE, 3)
end

--- Runs the batch; returns the summary (see summary()) or nil, err: the
-- input or the journal cannot be read, or an error about the run itself
-- (credentials) stopped it. Misuse (missing options) raises.
function _M.run(opts)
  if type(opts) ~= "table" then error("renewal.run: a table of options expected", 2) end
  check_numbers(opts)
  if not opts.journal then error("renewal.run: 'journal' (a file path or journal) is required", 2) end
  local spec = opts.client
  if type(spec) ~= "table" then
    error("renewal.run: 'client' (options for truv.new, or a client) is required", 2)
  end
  for _, k in ipairs{ "on_event", "on_load", "interrupted" } do
    local f = opts[k]
    local callable = type(f) == "function" or (getmetatable(f) or {}).__call ~= nil
    if f ~= nil and not callable then
      error(format("bad option '%s' to 'renewal.run' (a function expected, got %s)", k,
                   type(opts[k])), 2)
    end
  end
  spec = client_options(spec)
  check_connection(spec, "renewal.run")
  local webhook = webhook_options(opts, spec)   -- checked before anything is opened
  local mode = opts.reverify and opts.reverify.mode
  if mode ~= nil and mode ~= "order" and mode ~= "bridge" then
    error("renewal.run: reverify.mode must be \"order\" or \"bridge\", got " .. tostring(mode), 2)
  end
  local own_journal = type(opts.journal) == "string"
  local journal = opts.journal
  local quota, where, qerr = open_quota(opts)
  if not quota and qerr then return nil, qerr end
  if own_journal then
    local jerr
    -- one run per journal: a second one at once would refresh cases twice
    journal, jerr = core.journal_open(opts.journal, { exclusive = true })
    if not journal then
      if where and where.own then quota:close() end
      return nil, jerr
    end
  end
  local own_quota = where and where.own
  local ctx = {
    journal = journal, quota = quota, quota_where = where,
    not_within = opts.not_within == nil and _M.DEFAULTS.not_within or opts.not_within,
    reuse_model_s = opts.reuse_model_s or _M.DEFAULTS.reuse_model_s,
    max_billed = opts.max_billed, billed = 0, capped = 0,
    router = opts.router or route_mod.router{},
    on_event = opts.on_event,
    poll_opts = {},
    reverify = opts.reverify or {},
    skew_s = opts.skew_s or _M.DEFAULTS.skew_s,
    clock = spec.clock or core.now,
    store_busy_retry_s = opts.store_busy_retry_s or _M.DEFAULTS.store_busy_retry_s,
    unreconciled_retry_s = opts.unreconciled_retry_s or _M.DEFAULTS.unreconciled_retry_s,
    reverify_pending_retry_s = opts.reverify_pending_retry_s
                               or _M.DEFAULTS.reverify_pending_retry_s,
    base_url = spec.base_url or core.lists.defaults.base_url,
    held = {}, held_errors = {},
    unsent = {},   -- case_id -> { keys, ticket }: reserved, write-ahead not yet durable
  }
  for k, v in pairs(opts.poll or {}) do ctx.poll_opts[k] = v end
  ctx.poll_opts.router = ctx.router
  ctx.poll_opts.learn, ctx.poll_opts.finished_share = nil, nil
  -- polling learns when to poll from the run's waits (truv.pollplan), kept
  -- in the journal; a webhook run's polls come after a fallback instead
  if not webhook and (opts.poll or {}).learn ~= false then
    ctx.poll_opts.plan = load_plan(journal, ctx.poll_opts, (opts.poll or {}).finished_share)
  end
  ctx.webhook = webhook
  if webhook then ctx.webhook_wait = { fallback_s = webhook.fallback_s, poll = ctx.poll_opts } end

  local function close()
    if own_journal then journal:close() end
    if own_quota then quota:close() end
  end

  if opts.cases then
    local n, lerr, problems = load_mod.cases(ctx, opts.cases)
    if not n then
      close()
      if lerr then return nil, lerr end
      return nil, errors.new("invalid", "cases", problems[1].message)
    end
  end

  local todo, terr = load_mod.due(ctx)
  if not todo then
    close()
    return nil, terr
  end
  local why = opts.interrupted and opts.interrupted()
  if why then   -- before anything was sent: the cases read are journaled
    emit(ctx, { event = "interrupted", reason = tostring(why), requests = 0 })
    close()
    return nil, interrupted_error(why)
  end
  emit(ctx, { event = "run_started", total = #todo, counts = journal:counts() })
  if #todo > 0 then
    -- Documents keep their parse in C memory the collector cannot see; the
    -- generational mode promotes them before they die and then seldom looks
    -- at them again (RSS tripled in measurements). Incremental for the run.
    local gc_mode = collectgarbage("incremental")
    local err = work(ctx, opts, todo)
    collectgarbage(gc_mode)
    if not err and ctx.interrupted then err = interrupted_error(ctx.interrupted) end
    if err then
      emit(ctx, { event = "run_stopped", message = tostring(err),
                  reason = err.code == "interrupted" and tostring(err.reason) or nil })
      close()
      return nil, err
    end
  end
  local summary = _M.summary(journal)
  summary.webhooks = ctx.webhook_stats   -- a webhook run's counters (truv.inbox)
  summary.in_progress = ctx.budget and ctx.budget:figures()   -- truv.renewal.budget
  summary.billed, summary.capped, summary.max_billed = ctx.billed, ctx.capped, ctx.max_billed
  summary.quota = where and { kind = where.kind, path = where.path, legacy = where.legacy,
                              default = where.default }
  summary.not_within = ctx.not_within
  emit(ctx, { event = "run_finished", summary = summary })
  close()
  return summary
end

-- ---------------------------------------------------------- the dry run

--- The plan of a run, with nothing done: what each case would get
-- (refreshed, already fresh, reverified without a refresh, deferred, left
-- past max_billed, waited on, already routed...), the quota each refresh
-- would use (the store's count and Truv's), and the billed refreshes in
-- all. Orders are read from Truv (GET: the original, its latest refresh
-- order, events, tasks); nothing is billed, nothing is created, the journal
-- is not written (it is read when it exists, never created), and the quota
-- store is only read (an in-memory empty one when its file does not exist
-- yet; a connection's re-authentication that Truv's task list shows may be
-- noted in its facts, as a refresh would). Takes run()'s options; returns
-- { cases = { { case_id =, line =, action =, route =, reason =,
--   connections =, billed =, quota = { { id =, used =, here =, truv =,
--   limit = } }, not_before =, refresh_order_id =, age_s =, detail =,
--   error =, model_age_s = } }, totals = { [action] = n }, billed = n,
--   reads = n, quota = where } or nil, err. truv (Truv's own count) is nil
--   when the original's model came from the journal (model_age_s: its age;
--   reuse_model_s): Truv's count is then not read.
function _M.plan(opts)
  if type(opts) ~= "table" then error("renewal.plan: a table of options expected", 2) end
  check_numbers(opts)
  local spec = opts.client
  if type(spec) ~= "table" then
    error("renewal.plan: 'client' (options for truv.new, or a client) is required", 2)
  end
  spec = client_options(spec)
  check_connection(spec, "renewal.plan")
  local journal, own_journal = opts.journal, false
  if type(journal) == "string" then
    local f = io.open(journal, "rb")
    if f then
      f:close()
      local jerr
      journal, jerr = core.journal_open(opts.journal)
      if not journal then return nil, jerr end
      own_journal = true
    else
      journal = nil
    end
  end
  local quota, where, qerr
  local qopts, intended = {}, nil
  for k, v in pairs(opts) do qopts[k] = v end
  local function exists(path)
    local f = path and io.open(path, "rb")
    if f then f:close() end
    return f ~= nil
  end
  if qopts.quota == nil or type(qopts.quota) == "string" then
    -- read, never created: an empty store answers the same as a missing file
    local legacy = _M.journal_quota(opts.journal)
    if legacy then
      intended = legacy
    elseif type(qopts.quota) == "string" then
      local loc, lerr = quota_mod.location(qopts.quota)
      if not loc then
        if own_journal then journal:close() end
        return nil, lerr
      end
      intended = loc.path
    else
      intended = quota_mod.default_path()
    end
    if not exists(intended) then
      qopts.quota = quota_mod.memory()
    end
  end
  quota, where, qerr = open_quota(qopts)
  if not quota and qerr then
    if own_journal then journal:close() end
    return nil, qerr
  end
  where = where or {}
  if intended then
    where = { kind = "sqlite", path = intended, own = where.own, exists = exists(intended),
              legacy = intended == _M.journal_quota(opts.journal) or nil }
  end
  local ctx = {
    journal = journal, quota = quota, billed = 0, max_billed = opts.max_billed,
    not_within = opts.not_within == nil and _M.DEFAULTS.not_within or opts.not_within,
    reuse_model_s = opts.reuse_model_s or _M.DEFAULTS.reuse_model_s,
    router = opts.router or route_mod.router{},
    clock = spec.clock or core.now,
  }
  local cases, bad = {}, {}
  local iter = type(opts.cases) == "string" and cases_mod.each(opts.cases)
               or cases_mod.each_list(opts.cases or {})
  for fine, v in iter do
    if fine then
      cases[#cases + 1] = v
    elseif v.line == 0 then
      if own_journal then journal:close() end
      if where.own then quota:close() end
      return nil, errors.new("invalid", "cases", v.message)
    else
      bad[#bad + 1] = { case_id = v.case_id, line = v.line, action = "bad_input",
                        error = v.message }
    end
  end
  local reads = 0
  local sched, serr = scheduler.new{
    concurrency = opts.concurrency or _M.DEFAULTS.concurrency,
    rate_per_minute = opts.rate_per_minute or _M.DEFAULTS.rate_per_minute,
    http = http_options(opts), documents = "view",
  }
  local client, cerr
  if sched then
    local logger = spec.logger
    client, cerr = make_client(opts, sched, quota, function(level, ev)
      if ev.event == "response" or ev.event == "error" then reads = reads + 1 end
      if logger then logger(level, ev) end
    end)
  end
  local function close()
    if client then client:close() elseif sched then sched:close() end
    if own_journal then journal:close() end
    if where.own then quota:close() end
  end
  if not client then
    close()
    return nil, serr or cerr
  end
  ctx.client = client
  local results, next_case = {}, 1
  local function worker()
    while next_case <= #cases do
      local i = next_case
      next_case = next_case + 1
      local c = cases[i]
      local rec = journal and journal:get(c.case_id)
      results[i] = case_mod.plan(ctx, c, rec)
    end
  end
  for _ = 1, math.min(opts.concurrency or _M.DEFAULTS.concurrency, #cases) do sched:spawn(worker) end
  local ok, err = pcall(sched.run, sched)
  close()
  if not ok then return nil, errors.new("internal", "plan", tostring(err)) end
  local totals = {}
  for _, e in ipairs(bad) do results[#results + 1] = e end
  for _, e in ipairs(results) do totals[e.action] = (totals[e.action] or 0) + 1 end
  return { cases = results, totals = totals, billed = ctx.billed, reads = reads,
           quota = where.path and where or nil, max_billed = ctx.max_billed,
           not_within = ctx.not_within }
end

--- The run's figures from a journal: { total =, routes = { [route] = n },
-- states = { [state] = n }, failed = n, recent = n (done with a refresh
-- made less than not_within before, not paid for again) }. run() adds the
-- run's own: billed (refreshes it sent, one per connection), capped (cases
-- left due by max_billed), in_progress (the cases in progress: { most =,
-- target =, cap =, cases =, requests_per_case =, wait_s = }, see
-- truv.renewal.budget), max_billed, quota ({ path =, kind =, legacy =,
-- default = }: the store it used) and not_within.
function _M.summary(journal)
  local routes = journal:route_counts()
  local states = journal:counts()
  local total, recent = 0, 0
  for _, n in pairs(states) do total = total + n end
  if (routes.done or 0) > 0 then
    for rec in journal:each{ route = "done" } do
      if rec.reason == "recently_refreshed" then recent = recent + 1 end
    end
  end
  return { total = total, routes = routes, states = states, failed = states.failed or 0,
           recent = recent }
end

return _M
