--- Bulk renewals: re-verify every case due for recertification in one run,
-- durably, concurrently, resumably.
--
--   local summary, err = require("truv.renewal").run{
--     cases = "cases.csv",            -- a CSV or JSON file, or a list of case tables
--     client = { client_id =, secret =, base_url =, ... },  -- options for truv.new
--     journal = "renewal.journal",    -- SQLite file: the run's durable record
--     router = truv.router{ done = prefill, ... },           -- handlers per route
--     concurrency = 32,               -- requests in flight (one connection pool)
--     rate_per_minute = 300,          -- Truv's limit; the sandbox can allow more
--     poll = { interval_s = 2, max_interval_s = 30, timeout_s = 1200 },
--     reverify = { mode = "order" },  -- or "bridge"
--     quota = store or path,          -- default: the stable store of the machine's user
--                                     -- (truv.quota.default_path), so that a new journal
--                                     -- is not a new quota; a journal begun by a version
--                                     -- that kept JOURNAL.quota keeps using that file; it
--                                     -- keeps the connection facts too (truv.facts)
--     not_within = 72000,             -- seconds (or false): an order refreshed by anyone
--                                     -- less than this ago is not refreshed again: the
--                                     -- case adopts that refresh (done: recently_refreshed)
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
-- Either way the route is the same (the run's router, truv.route.combine)
-- and the `done` handler gets the fresh order (one GET at the end).
--
-- The journal makes the run resumable: a run killed at any instant and
-- started again with the same journal skips routed cases, reconciles
-- refreshes that were in flight (adopting the one Truv created, or sending
-- again only when provably none was), and sends nothing twice. A case
-- scheduled for a retry resumes the same way (see "Resume points" below).
-- The journal is opened exclusively (one run at a time); a journal that
-- cannot be written, and errors about the run rather than a case, stop the
-- run (see "Errors about the run").
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
local core = require "truv.core"
local truv_client = require "truv.client"
local errors = require "truv.errors"
local route_mod = require "truv.route"
local refresh = require "truv.refresh"
local cases_mod = require "truv.cases"
local scheduler = require "truv.scheduler"
local inbox_mod = require "truv.inbox"
local wait_mod = require "truv.wait"
local quota_mod = require "truv.quota"
local options = require "truv.options"

local type, ipairs, pairs, tostring, error = type, ipairs, pairs, tostring, error
local setmetatable, getmetatable, pcall = setmetatable, getmetatable, pcall
local concat = table.concat
local format = string.format

local _M = {}

local open_quota   -- the run's quota store (below)

_M.DEFAULTS = {
  concurrency = scheduler.DEFAULTS.concurrency,          -- requests in flight
  rate_per_minute = scheduler.DEFAULTS.rate_per_minute,  -- Truv's limit
  active_per_request = 1.25,   -- cases in progress per request slot (a few wait in a poll)
  commit_interval_s = 0.05,    -- group commit of the journal, unless a refresh waits on it
  skew_s = refresh.DEFAULTS.clock_skew_s,   -- our clock against Truv's timestamps
  drain_interval_s = 0.02,     -- webhook mode: the longest a delivery waits to be seen
  probation_cases = 10,        -- failures before any success that stop the run (see below)
  store_busy_retry_s = 60,     -- a busy quota store: the case is tried again after this
  not_within = 20 * 3600,      -- an order refreshed less than this ago is not paid for again
  interrupt_grace_s = 10,      -- interrupted: the longest the requests in flight are awaited
  load_interval_s = 0.2,       -- on_load: at most this often
}

-- What the numbers of run's options accept (truv-renew's flags use the same);
-- poll.* and webhook.* are in the tables of those names.
_M.LIMITS = {
  concurrency = { integer = true, min = 1, max = 1024 },
  rate_per_minute = { min = 0, max = 60000, unit = "requests per minute, 0: no limit" },
  active_per_request = { min = 1, max = 100 },
  commit_interval_s = { min = 0, max = 60, unit = "seconds" },
  skew_s = { min = 0, max = 86400, unit = "seconds" },
  probation_cases = { integer = true, min = 1, max = 1e6 },
  store_busy_retry_s = { min = 0, max = 86400, unit = "seconds" },
  interrupt_grace_s = { min = 0, max = 3600, unit = "seconds" },
  load_interval_s = { above = 0, max = 60, unit = "seconds" },
  expiry_days = refresh.LIMITS.expiry_days,
  expiring_days = refresh.LIMITS.expiring_days,
  not_within = refresh.LIMITS.not_within,
  max_billed = { integer = true, min = 0, max = 1e9, unit = "billed refreshes" },
  poll = {
    interval_s = { above = 0, max = 3600, unit = "seconds" },
    max_interval_s = { above = 0, max = 86400, unit = "seconds" },
    timeout_s = { min = 0, max = 604800, unit = "seconds" },
  },
  webhook = {
    fallback_s = { min = 0, max = 604800, unit = "seconds" },
    drain_interval_s = { above = 0, max = 60, unit = "seconds" },
    ttl = { min = 0, max = 31536000, unit = "seconds" },
  },
}

-- Journal states (truv/journal.h): new, planned, sending, sent, waiting,
-- linking, routed, scheduled (retry/defer with a time), failed (a bad
-- input row).
--
-- Resume points. A case keeps, in its record, what it already did at Truv,
-- and every run continues from there; nothing billed or sent to the
-- applicant is ever redone from scratch while it may exist:
--   sending    the refresh POST may have left: reconcile (adopt the refresh
--              Truv created, or prove none was) before any new POST
--   sent, waiting   the refresh exists (refresh_order_id): wait for it
--   linking    the request for the new verification link may have left
--              (link_mode, link_sent_at): see make_link
--   scheduled  with `resume` = "reconcile" (as sending: baseline_refresh_order
--              and sent_at are kept), "wait" (as sent) or "link" (the refresh
--              is done and routed to reverify: make the link, refresh
--              nothing; link_connections and link_reason say which and why);
--              no `resume`: nothing exists at Truv, start again.
--
-- Errors about the run, not the case: every other case would fail the same
-- way, so the run stops, nothing more is sent, and each case keeps its state
-- for the corrected run (a wrong secret must not turn a batch into "fix"):
--   - the journal cannot be read or written (disk full, read-only, busy):
--     the run stops before any further billed call, with that error;
--   - authentication (401/403): every call would fail;
--   - the quota store fails (other than busy): no refresh can be reserved;
--   - the configuration looks wrong: before any call of the run has
--     succeeded, the cases that fail in a configuration-like way (not found,
--     an answer that is not Truv's, a 405/415, or a server that was never
--     reached: DNS, connection refused, TLS, a connect timeout) are held
--     instead of routed, with nothing written; probation_cases of them (or
--     every case of a smaller run) with no success stop the run. The first
--     success releases them: they are tried again and routed as usual (a
--     case whose order really is unknown then goes to fix).
-- Transient: a quota store that is busy retries the case later (scheduled
-- retry, reason "store_busy"), never fix.

local function now_of(ctx) return ctx.clock() end

local function emit(ctx, event)
  if ctx.on_event then ctx.on_event(event) end
end

-- Stops the run with `err`: nothing is resumed after the caller, and the
-- caller unwinds (worker() recognises the raise).
local function stop(ctx, err)
  ctx.run_error = ctx.run_error or err
  if ctx.sched then ctx.sched:stop() end
  error({ run_error = ctx.run_error }, 0)
end

-- Called where a case would begin new work at Truv (reserve and send a
-- refresh, create a link): once the run is interrupted, the case stops
-- here, at its last resume point, and worker() moves on to nothing.
local function check_interrupted(ctx)
  if ctx.interrupted then error({ interrupted = true }, 0) end
end

local function journal_failure(err)
  local e = errors.new("internal", err and err.code or "journal", format(
    "the journal cannot be written (%s): the run stopped before anything more was sent to "
    .. "Truv; make it writable (free the space, fix the file) and run the same command again",
    tostring(err and err.message or err)), { journal = true })
  return e
end

local function put(ctx, case_id, fields)
  if ctx.run_error then stop(ctx, ctx.run_error) end
  fields.updated_at = now_of(ctx)
  local ok, err = ctx.journal:put(case_id, fields)
  if not ok then stop(ctx, journal_failure(err)) end
end

-- The journal's record of a case; a failed read stops the run (an unread
-- record is not a new case: its refresh may exist).
local function get(ctx, case_id)
  local rec, err = ctx.journal:get(case_id)
  if rec == nil and err ~= nil then stop(ctx, journal_failure(err)) end
  return rec
end

local function case_input(case)
  return core.encode{
    case_id = case.case_id, order_id = case.order_id, product = case.product,
    employers = setmetatable(case.employers or {}, { __jsontype = "array" }),
    financial_accounts = setmetatable(case.financial_accounts or {}, { __jsontype = "array" }),
    first_name = case.first_name, last_name = case.last_name, email = case.email,
    phone = case.phone, order_number = case.order_number,
  }
end

local function decode_input(rec)
  local c = core.decode(rec.input, "table")
  c.line = rec.line
  return c
end

-- The refresh of a case: its product, and the connections it names of the
-- kind that product refreshes (an export may list a case's bank accounts
-- beside its employers; an income refresh names only the employers).
local function refresh_params(case)
  local p = { products = { case.product } }
  local kind = refresh.KIND_OF[case.product]
  local ids = kind and case[kind] or {}
  if #ids > 0 then
    p[kind] = {}
    for i, id in ipairs(ids) do p[kind][i] = { id = id } end
  end
  return p
end

-- A call of this run got an answer from Truv: the configuration works, and
-- the cases held meanwhile are tried again.
local function proven(ctx)
  if ctx.proven then return end
  ctx.proven = true
  for _, id in ipairs(ctx.held) do ctx.todo[#ctx.todo + 1] = id end
  ctx.held = {}
end

-- Would every case fail this way if the configuration were wrong?
local function config_like(err)
  local k = err.kind
  if k == "not_found" or k == "protocol" or k == "api" then return true end
  return k == "network" and not err.maybe_sent   -- the server was never reached
end

local function run_wide_error(ctx)
  local first = ctx.held_errors[1]
  return errors.new(first.kind, "run_wide", format(
    "the first %d case(s) tried all failed and no call succeeded (the first: %s): the "
    .. "configuration looks wrong (the base URL %s, the network, the environment of the "
    .. "credentials) or these orders do not exist; nothing was routed, and the same command "
    .. "resumes every case once it is corrected", #ctx.held_errors, tostring(first),
    tostring(ctx.base_url)), { errors = ctx.held_errors })
end

-- Raises for an error about the run (see above); holds a case that failed
-- in a configuration-like way before any success.
local function check_run_error(ctx, case, err)
  if err.kind == "auth" then stop(ctx, err) end
  if err.kind == "invalid" and err.code == "base_url" then stop(ctx, err) end
  if err.store == "quota" and err.code ~= "store_busy" then
    stop(ctx, errors.new("internal", err.code or "store", "the quota store failed: " ..
                         tostring(err.message) .. "; the run stopped before refreshing more"))
  end
  if not ctx.proven and config_like(err) then
    ctx.held[#ctx.held + 1] = case.case_id
    ctx.held_errors[#ctx.held_errors + 1] = err
    emit(ctx, { event = "held", case_id = case.case_id, message = tostring(err) })
    if #ctx.held_errors >= ctx.probation then stop(ctx, run_wide_error(ctx)) end
    error({ held = true }, 0)
  end
end

local SCHEDULED = route_mod.TIMED

-- Connections likely to expire soon (truv.refresh's meta.expiring), as the
-- journal keeps them: "<kind>/<id> <age>d since <created|auth>; ...".
local function expiring_text(list)
  if not list or #list == 0 then return nil end
  local parts = {}
  for i, e in ipairs(list) do
    parts[i] = format("%s/%s %dd since %s", tostring(e.kind), tostring(e.id), e.age_days or 0,
                      e.basis == "auth" and "re-authentication" or "connection")
  end
  return concat(parts, "; ")
end

-- Records the final route of a case and calls its handler. extra.resume
-- (for a retry or a defer) is where the next run continues.
local function finish(ctx, case, decision, outcome, extra)
  local null = core.null   -- clears what an earlier run of the case recorded
  local scheduled = SCHEDULED[decision.route] ~= nil
  local fields = {
    state = scheduled and "scheduled" or "routed",
    route = decision.route, reason = decision.reason or null,
    retry_at = decision.retry_at or null, not_before = decision.not_before or null,
    error = null, share_url = null, handler_error = null,
    -- the kind of error behind the route, if one was (a fix's next step)
    error_kind = outcome and errors.is(outcome.error) and outcome.error.kind or null,
  }
  for k, v in pairs(extra or {}) do fields[k] = v end
  fields.resume = scheduled and extra and extra.resume or null
  -- The handler may run again for this outcome (a run killed after it
  -- returned and before the record below was committed): the key is the
  -- same every time, and the next outcome of the case gets the next one.
  local rec = get(ctx, case.case_id) or {}
  local n = (rec.routings or 0) + 1
  fields.routings = n
  outcome = outcome or {}
  outcome.key = case.case_id .. "#" .. n
  outcome.case_id = case.case_id
  outcome.refresh_order_id = fields.refresh_order_id   -- the refresh this outcome is of, if any
  local ok, res = ctx.router:act(decision, case, outcome)
  -- the fresh order was lent to the handler for the call: its memory goes
  -- back now rather than whenever the collector finds it
  if core.isdocument(outcome.order) then core.release(outcome.order) end
  if not ok then
    fields.handler_error = res.message
    emit(ctx, { event = "handler_error", case_id = case.case_id, route = decision.route,
                message = res.message })
  end
  put(ctx, case.case_id, fields)
  emit(ctx, { event = "routed", case_id = case.case_id, route = decision.route,
              reason = decision.reason, retry_at = decision.retry_at,
              not_before = decision.not_before, link = type(fields.share_url) == "string" or nil,
              refresh_order_id = outcome.refresh_order_id, key = outcome.key,
              no_contact = (fields.no_contact == true or rec.no_contact == true) or nil,
              expiring = fields.expiring or rec.expiring })
  return decision
end

-- The connections that need the user again, for the re-verification link:
-- the original order's (a refresh order's suborders have ids of their own,
-- over the same links). nil: every connection.
local function failing_connections(result, original)
  local links = {}
  for _, c in ipairs(result and result.connections or {}) do
    if c.decision.route == "reverify" and c.link_id then links[c.link_id] = true end
  end
  local ids = {}
  for _, c in ipairs(original and original.connections or {}) do
    if c.link_id and links[c.link_id] then ids[#ids + 1] = c.id end
  end
  return #ids > 0 and ids or nil
end

local function split(list)
  if type(list) ~= "string" or list == "" then return nil end
  local ids = {}
  for id in list:gmatch("[^,]+") do ids[#ids + 1] = id end
  return ids
end

-- The new verification link, journaled ahead like a refresh. A new order
-- can be read back by nothing Truv documents (no lookup by order_number or
-- external_user_id; the order list's filters are undocumented), so an order
-- whose creation may have reached Truv is never created again by the
-- batch: the case goes to fix ("reverify_unconfirmed": a person checks the
-- dashboard for the order carrying the case's order_number, created after
-- link_sent_at, before sending another link). A second order would be a
-- second link (Truv may notify the applicant itself) and a second order to
-- complete. Bridge tokens are made again instead: a token whose answer was
-- lost was never handed to anyone, is not billed, contacts nobody and
-- expires in 6 h, while without a token the user cannot reconnect.
local function make_link(ctx, case, original, decision, outcome, extra, conn_ids)
  local null = core.null
  local mode = ctx.reverify.mode or "order"
  extra = extra or {}
  check_interrupted(ctx)
  put(ctx, case.case_id, {
    state = "linking", link_mode = mode, link_sent_at = now_of(ctx),
    link_connections = conn_ids and concat(conn_ids, ",") or null,
    link_reason = decision.reason or null,
    refresh_order_id = extra.refresh_order_id or null,
    reverify_order_id = null, share_url = null, no_contact = null,
  })
  ctx.sched:barrier()          -- durable before the create leaves
  if ctx.interrupted then
    -- interrupted while the write-ahead was made durable: nothing was asked
    -- of Truv, so the case resumes by making the link (not as a creation
    -- that may have reached Truv, which a person would have to check)
    put(ctx, case.case_id, { state = "scheduled", route = "retry", reason = "interrupted",
                             retry_at = now_of(ctx), resume = "link" })
    error({ interrupted = true }, 0)
  end
  -- Truv's Order has no contact to copy: the case's, from the input
  local link, err = ctx.client:reverify(original, { mode = mode, connections = conn_ids,
                                                    order = ctx.reverify.order,
                                                    contact = { email = case.email,
                                                                phone = case.phone } })
  outcome = outcome or {}
  if link then
    extra.share_url = link.share_url
    extra.link_created_at = now_of(ctx)
    -- a new order without an email or phone: Truv told nobody
    if mode == "order" then extra.no_contact = link.contact == false or null end
    extra.reverify_order_id = link.order_id
    if link.tokens then extra.bridge_tokens = #link.tokens end
    if mode == "order" then
      -- the order exists: a run killed from here on hands it out again
      put(ctx, case.case_id, { reverify_order_id = link.order_id, share_url = link.share_url,
                               no_contact = extra.no_contact,
                               link_created_at = extra.link_created_at })
      ctx.sched:barrier()
    end
    outcome.link = link
    return finish(ctx, case, decision, outcome, extra)
  end
  check_run_error(ctx, case, err)
  extra.error = tostring(err)
  outcome.error = err
  local d
  if mode == "order" and not refresh.definitely_not_created(err) then
    d = { route = "fix", reason = "reverify_unconfirmed", final = true }
    extra.error = "the new verification order may or may not have been created (" ..
                  tostring(err) .. "): check for an order with this case's order_number " ..
                  "before sending another link"
  else
    -- the link could not be made: the case still needs the user, and a person
    d = ctx.router:route(err, now_of(ctx))
    if d.route == "retry" then
      extra.resume = "link"
    else
      d = { route = "fix", reason = "reverify_failed", final = true }
    end
  end
  return finish(ctx, case, d, outcome, extra)
end

-- A case whose link step was begun by an earlier run.
local function resume_link(ctx, case, rec, attempted)
  if attempted and (rec.link_mode or "order") == "order" then
    if rec.reverify_order_id then
      return finish(ctx, case, { route = "reverify", reason = rec.link_reason, final = true },
                    { link = { mode = "order", order_id = rec.reverify_order_id,
                               share_url = rec.share_url } },
                    { share_url = rec.share_url, reverify_order_id = rec.reverify_order_id,
                      refresh_order_id = rec.refresh_order_id,
                      link_created_at = rec.link_created_at or rec.link_sent_at })
    end
    return finish(ctx, case, { route = "fix", reason = "reverify_unconfirmed", final = true }, {},
      { error = "a run stopped while creating the new verification order: it may or may not " ..
                "exist; check for an order with this case's order_number before sending " ..
                "another link", refresh_order_id = rec.refresh_order_id })
  end
  local original, err = ctx.client:get_order_model(case.order_id)
  if not original then
    check_run_error(ctx, case, err)
    local d = ctx.router:route(err, now_of(ctx))
    local extra = { error = tostring(err), refresh_order_id = rec.refresh_order_id,
                    resume = SCHEDULED[d.route] and "link" or nil }
    return finish(ctx, case, d, { error = err }, extra)
  end
  proven(ctx)
  return make_link(ctx, case, original, { route = "reverify", reason = rec.link_reason,
                                          final = true },
                   {}, { refresh_order_id = rec.refresh_order_id }, split(rec.link_connections))
end

local function route_error(ctx, case, original, err, extra)
  check_run_error(ctx, case, err)
  local d
  if err.store == "quota" then   -- busy: nothing was sent, try again soon
    d = { route = "retry", reason = "store_busy", final = true,
          retry_at = now_of(ctx) + ctx.store_busy_retry_s }
  else
    d = ctx.router:route(err, now_of(ctx))
  end
  extra = extra or {}
  extra.error = tostring(err)
  extra.expiring = extra.expiring or expiring_text(err.expiring)
  if d.route == "reverify" and original then
    local ids
    if err.expired then
      ids = {}
      for _, e in ipairs(err.expired) do ids[#ids + 1] = e.id end
    end
    return make_link(ctx, case, original, d, { error = err }, extra, ids)
  end
  return finish(ctx, case, d, { error = err }, extra)
end

-- The wait's options with refresh_order's warning (meta.expiring), so that
-- the decision the handlers get carries it.
local function with_expiring(opts, expiring)
  if not expiring then return opts end
  local o = { expiring = expiring }
  for k, v in pairs(opts) do o[k] = v end
  return o
end

-- Waits for a sent refresh and routes what it produced. `recent`: the
-- refresh is one the case adopted rather than sent (refreshed less than
-- not_within ago): its data is fresh, and a `done` says so.
local function await(ctx, case, original, refresh_order, expiring, recent)
  local id = type(refresh_order) == "string" and refresh_order or refresh_order.id
  local result, err, via
  if ctx.inbox then
    result, err, via = ctx.inbox:wait_for_refresh(ctx.client, refresh_order,
                                                  with_expiring(ctx.webhook_wait, expiring))
    if via == "fallback" then
      emit(ctx, { event = "webhook_fallback", case_id = case.case_id, refresh_order_id = id })
    end
  else
    result, err = ctx.client:wait_for_refresh(refresh_order,
                                              with_expiring(ctx.poll_opts, expiring))
  end
  -- the refresh exists: a retry waits on it again rather than refreshing
  if not result then
    return route_error(ctx, case, original, err, { resume = "wait", refresh_order_id = id })
  end
  proven(ctx)
  local extra = { refresh_order_id = result.order.id }
  if not result.finished then
    local d = { route = "retry", reason = "refresh_unfinished", final = true,
                retry_at = now_of(ctx) + (ctx.poll_opts.timeout_s or wait_mod.DEFAULTS.timeout_s) }
    extra.resume = "wait"
    return finish(ctx, case, d, result, extra)
  end
  local d = result.decision
  if recent and d.route == "done" then d.reason = "recently_refreshed" end
  if d.route == "reverify" then
    original = original or ctx.client:get_order_model(case.order_id)
    if original then
      return make_link(ctx, case, original, d, result, extra,
                       failing_connections(result, original))
    end
    -- the original cannot be read now: the link is made by a later run (for
    -- every connection, since which of the original's failed is not known)
    extra.link_reason = d.reason
    extra.resume = "link"
    return finish(ctx, case, { route = "retry", reason = "reverify_pending", final = true,
                               retry_at = now_of(ctx) + 60 }, result, extra)
  end
  return finish(ctx, case, d, result, extra)
end

-- A refresh that may have been sent by an earlier run: adopt it or prove
-- it absent. Returns the refresh order, false (provably none: the case
-- starts again), or nil after routing the case for a later attempt.
local function reconcile(ctx, case, rec)
  local found, err = refresh.find_created(ctx.client, case.order_id,
                                          rec.baseline_refresh_order, rec.sent_at or 0,
                                          ctx.skew_s)
  if found then
    proven(ctx)
    put(ctx, case.case_id, { state = "sent", refresh_order_id = found.id })
    emit(ctx, { event = "adopted", case_id = case.case_id, refresh_order_id = found.id })
    return found
  end
  if found == nil then
    check_run_error(ctx, case, err)
    finish(ctx, case, { route = "retry", reason = "unreconciled", final = true,
                        retry_at = now_of(ctx) + 300 }, { error = err },
           { error = tostring(err), resume = "reconcile" })
    return nil
  end
  proven(ctx)
  -- provably never created: the reservation it held goes back
  if rec.quota_ticket and rec.quota_keys and ctx.quota then
    ctx.quota:release(split(tostring(rec.quota_keys)), rec.quota_ticket)
  end
  put(ctx, case.case_id, { state = "planned", resume = core.null })
  return false
end

-- The run's cap on billed refreshes (max_billed): one per connection a
-- refresh would bill, counted before the store is asked; the refresh that
-- would pass the cap is not sent. Every refresh of the run is counted.
local function admit(ctx, info)
  local n = info.connections or 1
  if ctx.max_billed and ctx.billed + n > ctx.max_billed then return false end
  ctx.billed = ctx.billed + n
  return true
end

local function process(ctx, case)
  local rec = get(ctx, case.case_id) or {}
  emit(ctx, { event = "started", case_id = case.case_id })

  local at = rec.state
  if at == "scheduled" then at = rec.resume end
  if at == "sending" or at == "reconcile" then
    local found = reconcile(ctx, case, rec)
    if found == nil then return end
    if found then return await(ctx, case, nil, found) end
  elseif (at == "sent" or at == "waiting" or at == "wait") and rec.refresh_order_id then
    return await(ctx, case, nil, rec.refresh_order_id, nil, rec.recent == true)
  elseif at == "linking" then
    return resume_link(ctx, case, rec, true)
  elseif at == "link" then
    return resume_link(ctx, case, rec, false)
  end

  -- models, not documents: a case in progress holds a few hundred bytes
  local original, err = ctx.client:get_order_model(case.order_id)
  if not original then return route_error(ctx, case, nil, err) end
  proven(ctx)

  check_interrupted(ctx)   -- nothing reserved, nothing sent: the case starts again
  local doc, meta = ctx.client:refresh_order(case.order_id, refresh_params(case), {
    order = original,
    answer = "model",
    -- refreshed a moment ago by anyone (another run, host or tool), but not
    -- this case's own earlier refresh (a retry it scheduled): adopted
    not_within = ctx.not_within,
    own_refresh = rec.refresh_order_id,
    admit = function(info) return admit(ctx, info) end,
    before_send = function(info)
      -- Until the write-ahead is durable the POST has not left: a run that
      -- stops meanwhile (its commit failed) gives the reservation back.
      if info.quota_ticket then
        ctx.unsent[case.case_id] = { keys = info.quota_keys, ticket = info.quota_ticket }
      end
      put(ctx, case.case_id, {
        state = "sending", sent_at = info.sent_at,
        baseline_refresh_order = info.baseline or core.null,
        quota_ticket = info.quota_ticket,
        quota_keys = info.quota_keys and concat(info.quota_keys, ",") or nil,
        attempts = (rec.attempts or 0) + info.sends,
      })
      ctx.sched:barrier()        -- durable before the POST leaves
      if ctx.interrupted then
        -- interrupted while the write-ahead was made durable: the POST is
        -- not sent (the run takes no new work), its reservation goes back
        -- with the run's other unsent ones, and the case resumes as after
        -- a crash at this point (the refresh is looked for, then made)
        error({ interrupted = true }, 0)
      end
      ctx.unsent[case.case_id] = nil
      emit(ctx, { event = "sending", case_id = case.case_id })
    end,
  })
  if not doc then
    if meta.max_billed then
      -- the run's cap on billed refreshes: the case is left as it was, due
      -- for the next run
      ctx.capped = ctx.capped + 1
      emit(ctx, { event = "capped", case_id = case.case_id })
      return
    end
    -- sent, and its outcome could not be read back: reconcile next time
    local extra = meta.code == "unreconciled" and { resume = "reconcile" } or nil
    return route_error(ctx, case, original, meta, extra)
  end
  if meta.recent then
    put(ctx, case.case_id, { state = "sent", refresh_order_id = doc.id, recent = true,
                             expiring = expiring_text(meta.expiring) or core.null })
    emit(ctx, { event = "recent", case_id = case.case_id, refresh_order_id = doc.id,
                age_s = math.floor(meta.recent.age_s) })
    return await(ctx, case, nil, doc, meta.expiring, true)
  end
  put(ctx, case.case_id, { state = "sent", refresh_order_id = doc.id, recent = core.null,
                           expiring = expiring_text(meta.expiring) or core.null })
  emit(ctx, { event = "sent", case_id = case.case_id, refresh_order_id = doc.id,
              reconciled = meta.reconciled, expiring = expiring_text(meta.expiring) })
  -- A tail call with the refresh order's model: no document is held while
  -- the case waits (the original's model is read again only if the case
  -- needs a new link), which costs less than keeping every waiting case's
  -- documents in memory.
  return await(ctx, case, nil, doc, meta.expiring)
end

-- Adds the input's cases to the journal (existing ones are left alone) and
-- records bad rows as failed. Returns n, problems, or nil, err when the
-- journal cannot be written, or nil, nil, { problem } when the input cannot
-- be read at all.
local function load(ctx, input)
  local iter = type(input) == "string" and cases_mod.each(input) or cases_mod.each_list(input)
  local j = ctx.journal
  local function write(ok, err)
    if not ok then error({ run_error = journal_failure(err) }, 0) end
  end
  local ok, n, problems = pcall(function()
    -- one transaction: an input that cannot be read to its end adds nothing
    write(j:begin())
    -- bad rows describe this reading of the input: the previous reading's go
    local stale = {}
    for rec in j:each{ state = "failed" } do stale[#stale + 1] = rec.case_id end
    for _, id in ipairs(stale) do write(j:delete(id)) end
    local count, list = 0, {}
    for fine, v in iter do
      if fine then
        count = count + 1
        if not get(ctx, v.case_id) then
          put(ctx, v.case_id, { state = "new", input = case_input(v), line = v.line,
                                order_id = v.order_id })
        end
      elseif v.line == 0 then
        j:rollback()
        return nil, { v }
      else
        list[#list + 1] = v
        local id = v.case_id and ("line-" .. v.line .. ":" .. v.case_id) or ("line-" .. v.line)
        put(ctx, id, { state = "failed", line = v.line, error = v.message })
        emit(ctx, { event = "bad_row", line = v.line, case_id = v.case_id, message = v.message })
      end
    end
    write(j:commit())
    return count, list
  end)
  if ok then
    if n == nil then return nil, nil, problems end
    return n, problems
  end
  j:rollback()   -- nothing of this reading stays (a no-op outside a group)
  if type(n) == "table" and n.run_error then return nil, n.run_error end
  if type(n) == "string" and n:find("journal", 1, true) then
    return nil, journal_failure({ message = n })
  end
  error(n, 0)
end

-- The ids of the cases this run works on: not final, and scheduled ones
-- only once due. Ids only: a record is read again when its turn comes, so a
-- 100 000-case run does not keep every case's input in memory (where every
-- collection would walk it). nil, err when the journal cannot be read.
local function runnable(ctx)
  local list = {}
  local now = now_of(ctx)
  local ok, err = pcall(function()
    for rec in ctx.journal:each{ not_state = { "routed", "failed" } } do
      local due = rec.state ~= "scheduled" or (route_mod.due_at(rec) or 0) <= now
      if due then list[#list + 1] = rec.case_id end
    end
  end)
  if not ok then return nil, journal_failure({ message = tostring(err) }) end
  return list
end

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
function open_quota(opts)
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
    return q, { kind = q.kind or "custom", path = q.path, own = false }
  end
  local path, dir, err
  if legacy then
    path = legacy
  elseif q then
    local loc
    loc, err = quota_mod.location(q)
    if not loc then return nil, nil, err end
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
  local last_load = -math.huge
  local sched, serr = scheduler.new{
    concurrency = concurrency,
    rate_per_minute = opts.rate_per_minute or _M.DEFAULTS.rate_per_minute,
    http = opts.http,
    documents = "view",
    -- Group commit: at once when a refresh waits on its write-ahead, else
    -- every commit_interval_s (a state lost with the process is redone).
    -- A commit that fails stops the run here: no workflow waiting on the
    -- write-ahead passes its barrier, so nothing is sent without a record.
    on_tick = function(urgent)
      local t = core.monotonic()
      if urgent or t - last_commit >= commit_interval then
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
        on_load{ requests = busy.requests, queued = busy.queued, cases = busy.workflows }
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
  local max_active = math.ceil(concurrency *
                               (opts.active_per_request or _M.DEFAULTS.active_per_request))
  ctx.todo, ctx.held, ctx.held_errors = todo, {}, {}
  ctx.probation = math.min(opts.probation_cases or _M.DEFAULTS.probation_cases, #todo)
  local next_case = 1
  local function worker()
    while next_case <= #todo and not ctx.run_error and not ctx.interrupted do
      local id = todo[next_case]
      next_case = next_case + 1
      local ok, err = pcall(function() return process(ctx, decode_input(get(ctx, id))) end)
      if not ok and type(err) == "table" and (err.run_error or err.held or err.interrupted) then
        -- stopped (the scheduler returns), interrupted (the case stays at
        -- its resume point), or held until the run proves itself
        if err.run_error or err.interrupted then return end
      elseif not ok then
        -- a fault of ours: the case keeps its state (its resume point) for
        -- the next run
        emit(ctx, { event = "error", case_id = id, message = tostring(err) })
        local pok = pcall(put, ctx, id, { error = tostring(err) })
        if not pok then return end
      end
    end
  end
  local begun, berr = journal:begin()
  if not begun then
    client:close()
    return journal_failure(berr)
  end
  for _ = 1, math.min(max_active, #todo) do sched:spawn(worker) end
  local ok, err = pcall(sched.run, sched)
  if on_load then   -- what is left: nothing in flight, the cases an interruption left open
    local busy = sched:load()
    on_load{ requests = busy.requests, queued = busy.queued, cases = busy.workflows }
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
    ctx.run_error = run_wide_error(ctx)
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
    max_billed = opts.max_billed, billed = 0, capped = 0,
    router = opts.router or route_mod.router{},
    on_event = opts.on_event,
    poll_opts = {},
    reverify = opts.reverify or {},
    skew_s = opts.skew_s or _M.DEFAULTS.skew_s,
    clock = spec.clock or core.now,
    store_busy_retry_s = opts.store_busy_retry_s or _M.DEFAULTS.store_busy_retry_s,
    base_url = spec.base_url or core.lists.defaults.base_url,
    held = {}, held_errors = {},
    unsent = {},   -- case_id -> { keys, ticket }: reserved, write-ahead not yet durable
  }
  for k, v in pairs(opts.poll or {}) do ctx.poll_opts[k] = v end
  ctx.poll_opts.router = ctx.router
  ctx.webhook = webhook
  if webhook then ctx.webhook_wait = { fallback_s = webhook.fallback_s, poll = ctx.poll_opts } end

  local function close()
    if own_journal then journal:close() end
    if own_quota then quota:close() end
  end

  if opts.cases then
    local n, lerr, problems = load(ctx, opts.cases)
    if not n then
      close()
      if lerr then return nil, lerr end
      return nil, errors.new("invalid", "cases", problems[1].message)
    end
  end

  local todo, terr = runnable(ctx)
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
  summary.billed, summary.capped, summary.max_billed = ctx.billed, ctx.capped, ctx.max_billed
  summary.quota = where and { kind = where.kind, path = where.path, legacy = where.legacy,
                              default = where.default }
  summary.not_within = ctx.not_within
  emit(ctx, { event = "run_finished", summary = summary })
  close()
  return summary
end

-- ---------------------------------------------------------- the dry run

-- What the run would do for one case, from its journal record (if any)
-- and what Truv shows; nothing is written, reserved, billed or created.
local function plan_case(ctx, case, rec)
  local e = { case_id = case.case_id, line = case.line }
  rec = rec or {}
  local state = rec.state
  if state == "routed" or state == "failed" then
    e.action, e.route, e.reason = "routed", rec.route, rec.reason
    return e
  end
  if state == "scheduled" then
    local due = route_mod.due_at(rec) or 0
    if due > now_of(ctx) then
      e.action, e.route, e.reason, e.not_before = "scheduled", rec.route, rec.reason, due
      return e
    end
  end
  local at = state == "scheduled" and rec.resume or state
  if at == "sending" or at == "reconcile" then
    e.action, e.detail = "reconcile", "a refresh may exist: read back first, sent again only " ..
                        "if Truv shows none"
    return e
  elseif (at == "sent" or at == "waiting" or at == "wait") and rec.refresh_order_id then
    e.action, e.refresh_order_id = "wait", rec.refresh_order_id
    return e
  elseif at == "linking" or at == "link" then
    e.action, e.route = "link", "reverify"
    e.detail = at == "linking" and (rec.link_mode or "order") == "order"
               and "a new verification order may exist: a person checks (fix)"
               or "a new verification link, no refresh"
    return e
  end
  local original, err = ctx.client:get_order_model(case.order_id)
  local p
  if original then
    p, err = refresh.plan(ctx.client, case.order_id, refresh_params(case), {
      order = original, not_within = ctx.not_within, own_refresh = rec.refresh_order_id })
  end
  if not p then
    local d = ctx.router:route(err, now_of(ctx))
    e.action, e.route, e.reason, e.error = "error", d.route, d.reason, tostring(err)
    return e
  end
  if p.action == "refuse" then
    e.action, e.route, e.reason = "reverify", "reverify", p.error.reason or p.error.code
    e.detail = "no refresh: " .. tostring(p.error.message)
    return e
  end
  if p.action == "recent" then
    e.action, e.route, e.reason = "fresh", "done", "recently_refreshed"
    e.refresh_order_id, e.age_s = p.recent.id, p.recent.age_s
    return e
  end
  -- refresh: each connection's count, the store's and Truv's; the larger
  -- one is what the refresh would be refused on
  local limit = ctx.quota and ctx.quota.limit or quota_mod.DEFAULT_LIMIT
  local window = ctx.quota and ctx.quota.window or quota_mod.DEFAULT_WINDOW
  local quota_list, not_before = {}, nil
  for _, c in ipairs(p.connections) do
    local u = p.usage[c.id] or { used = 0 }
    local truv_n = p.counts[c.id] or 0
    local used = math.max(u.used, truv_n)
    quota_list[#quota_list + 1] = { id = c.id, used = used, here = u.used, truv = truv_n,
                                    limit = limit }
    if used >= limit then
      local key = core.quota_key(c.access_token)
      local times = p.history and require("truv.history").in_window(
        p.history.times[key], p.now, window) or {}
      local t = u.next_free
      if #times >= limit then
        local tt = times[#times - limit + 1] + window
        t = t and math.max(t, tt) or tt
      end
      if t and (not not_before or t > not_before) then not_before = t end
    end
  end
  e.quota = quota_list
  if not_before or #quota_list == 0 then
    e.action, e.route, e.reason, e.not_before = "defer", "defer", "refresh_quota", not_before
    return e
  end
  local n = #p.connections
  if ctx.max_billed and ctx.billed + n > ctx.max_billed then
    e.action, e.connections = "capped", n
    return e
  end
  ctx.billed = ctx.billed + n
  e.action, e.connections, e.billed = "refresh", n, n
  return e
end

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
--   error = } }, totals = { [action] = n }, billed = n, reads = n,
--   quota = where } or nil, err.
function _M.plan(opts)
  if type(opts) ~= "table" then error("renewal.plan: a table of options expected", 2) end
  check_numbers(opts)
  local spec = opts.client
  if type(spec) ~= "table" then
    error("renewal.plan: 'client' (options for truv.new, or a client) is required", 2)
  end
  spec = client_options(spec)
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
    http = opts.http, documents = "view",
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
      results[i] = plan_case(ctx, c, rec)
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
-- left due by max_billed), max_billed, quota ({ path =, kind =, legacy =,
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
