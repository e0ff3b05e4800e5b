--- One case of a bulk renewal (truv.renewal): its state machine, from its
-- journal record to its route, and the same reading of it for the dry run.
-- truv.renewal runs many cases at once; nothing here keeps state between
-- calls: a case's is in its journal record, the run's in its context.
--
--   case.process(ctx, case)     does what the case needs next (from its
--                               resume point) and routes it
--   case.plan(ctx, case, rec)   what process would do, doing nothing
--   case.get(ctx, id), case.put(ctx, id, fields)   its journal record (a
--                               failure stops the run: case.journal_failure)
--   case.emit(ctx, event)       a progress event (the run's on_event)
--   case.run_wide_error(ctx)    the error that stops a run none of whose
--                               cases could be done (see below)
--
-- The run's context `ctx` (made by truv.renewal.run and .plan): journal,
-- quota (nil for none), client, sched (the scheduler), router, clock,
-- on_event; not_within, reuse_model_s (see "The original's model"),
-- max_billed, billed, capped; reverify (its options),
-- skew_s, poll_opts, and in webhook mode inbox and webhook_wait; the delays
-- of a case tried again later, store_busy_retry_s, unreconciled_retry_s and
-- reverify_pending_retry_s (truv.renewal.DEFAULTS); base_url (for a
-- message); and what the run keeps while it works: todo, held, held_errors,
-- probation, proven, unsent, run_error, interrupted.
local core = require "truv.core"
local errors = require "truv.errors"
local route_mod = require "truv.route"
local refresh = require "truv.refresh"
local wait_mod = require "truv.wait"
local quota_mod = require "truv.quota"
local history = require "truv.history"

local type, ipairs, pairs, tostring, error = type, ipairs, pairs, tostring, error
local concat = table.concat
local format = string.format

local _M = {}

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
-- caller unwinds (truv.renewal's worker recognises the raise).
local function stop(ctx, err)
  ctx.run_error = ctx.run_error or err
  if ctx.sched then ctx.sched:stop() end
  error({ run_error = ctx.run_error }, 0)
end

-- Called where a case would begin new work at Truv (reserve and send a
-- refresh, create a link): once the run is interrupted, the case stops
-- here, at its last resume point, and truv.renewal's worker takes no other.
local function check_interrupted(ctx)
  if ctx.interrupted then error({ interrupted = true }, 0) end
end

-- The case has work at Truv to finish (a refresh to wait for and route, a
-- link to make): its requests go before new cases' (truv.renewal.budget).
local function finishing(ctx)
  if ctx.sched and ctx.sched.prioritize then ctx.sched:prioritize() end
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
  if err.store == "ratelimit" then   -- the fleet's budget (--redis) cannot be asked
    stop(ctx, errors.new("internal", err.code or "store", "the fleet's rate budget failed: " ..
                         tostring(err.message) .. "; the run stopped before sending more"))
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

-- The original's model. Every case reads its original order before
-- refreshing it (one request of the secret's budget). The model it was
-- read as is journaled (original_model, original_read_at) once it passed
-- every check the refresh makes of what Truv and the store show: what the
-- refresh, its checks and a new link need, each connection with its quota
-- key (truv.quota.connection_key) instead of its access token: no token or
-- secret is journaled. With reuse_model_s (truv-renew --reuse-model), a case
-- the run sees again (a retry, a defer, a resume) takes that model instead
-- of reading the order when
--   - it is younger than reuse_model_s, and
--   - the quota store counts, on each of its connections, no refresh in the
--     window (24 h) but this case's own (own_refreshes: the instants of its
--     reservations that still count): another run sharing the store, a
--     refresh Truv refused as over its limit (record_limit), or refreshes
--     Truv showed when the model was read, all mean reading again.
-- Truv's history of the order (its latest refresh for not_within, its count
-- of refreshes in 24 h) is then not read either: it was read with the model,
-- recorded into the quota store, and the store has seen nothing since but
-- this case's own refreshes. What a reused model cannot see is what neither
-- this client nor any run sharing its store did since the model was read: a
-- refresh by another tool, host or store (the dashboard, a colleague's
-- script) is not adopted (not_within), so the case pays for a refresh again,
-- and one more than Truv allows is refused by Truv, unbilled (the case is
-- deferred); a connection the user replaced meanwhile is not refreshed.
-- A refusal that says the model is wrong (Truv's 400 or 404 on the refresh,
-- a connection the model does not show, Truv's refresh limit) reads the
-- order again, once, and plans again: the refusal billed nothing. A new
-- verification link made from a journaled model copies it (order mode);
-- bridge mode needs the connections' access tokens and reads the order.
local READ_AT = setmetatable({}, { __mode = "k" })      -- model -> when it was read
local JOURNALED = setmetatable({}, { __mode = "k" })    -- models from the journal

local MODEL_FIELDS = { "id", "order_number", "user_id", "initial_order", "refresh_order",
                       "first_name", "last_name", "created_at" }
local CONNECTION_FIELDS = { "kind", "id", "status", "suborder_number", "link_id",
                            "product_type", "data_source", "provider_id", "provider_name",
                            "company_name", "created_at" }

-- The model as the journal keeps it (JSON text): no access token.
local function model_text(model)
  local m = { products = {}, connections = {} }
  for _, k in ipairs(MODEL_FIELDS) do m[k] = model[k] end
  for i, p in ipairs(model.products or {}) do m.products[i] = p end
  for i, c in ipairs(model.connections or {}) do
    local kept = { quota_key = quota_mod.connection_key(c) }
    for _, k in ipairs(CONNECTION_FIELDS) do kept[k] = c[k] end
    m.connections[i] = kept
  end
  return core.encode(m)
end

-- Reads the case's original (one GET) and notes when.
local function read_original(ctx, case)
  local t = now_of(ctx)
  local model, err = ctx.client:get_order_model(case.order_id)
  if model then READ_AT[model] = t end
  return model, err
end

-- Journals the model of a fresh read (refresh's on_checked).
local function keep_model(ctx, case, model)
  if JOURNALED[model] or not READ_AT[model] then return end
  put(ctx, case.case_id, { original_model = model_text(model),
                           original_read_at = READ_AT[model] })
end

local function window_of(ctx)
  return ctx.quota and ctx.quota.window or quota_mod.DEFAULT_WINDOW
end

-- This case's reservations that still count (own_refreshes: instants,
-- comma-separated), in the window at `now`.
local function own_in_window(ctx, rec, now)
  local list = {}
  if type(rec.own_refreshes) == "string" then
    for t in rec.own_refreshes:gmatch("[^,]+") do
      t = tonumber(t)
      if t and t > now - window_of(ctx) then list[#list + 1] = t end
    end
  end
  return list
end

-- own_refreshes with a reservation made at `at` added.
local function own_refreshes(ctx, rec, at)
  local list = own_in_window(ctx, rec, now_of(ctx))
  list[#list + 1] = at
  for i, t in ipairs(list) do list[i] = format("%.3f", t) end
  return concat(list, ",")
end

-- The journal's model of the case's original, when the run may take it
-- instead of reading the order (see above); `quota`: the store's count must
-- allow it (a refresh; a link needs only the age). Returns the model and its
-- age, or nil.
local function journaled_model(ctx, case, rec, quota)
  local max_age = ctx.reuse_model_s
  if not max_age or type(rec.original_model) ~= "string" then return nil end
  local now = now_of(ctx)
  local age = type(rec.original_read_at) == "number" and now - rec.original_read_at
  if not age or age < 0 or age >= max_age then return nil end
  local ok, m = pcall(core.decode, rec.original_model, "table")
  if not ok or type(m) ~= "table" or m.id ~= case.order_id or type(m.connections) ~= "table"
     or type(m.products) ~= "table" then
    return nil
  end
  if quota then
    if not ctx.quota then return nil end   -- no store: nothing to tell a stale model by
    local own = #own_in_window(ctx, rec, now)
    for _, c in ipairs(m.connections) do
      local key = quota_mod.connection_key(c)
      if key then
        local used = ctx.quota:usage(key, now)
        if not used or used > own then return nil end
      end
    end
  end
  JOURNALED[m] = true
  return m, age
end

-- The original for a refresh: the journal's (reused = true) or read.
-- Returns model, nil, reused or nil, err.
local function original_for_refresh(ctx, case, rec)
  local m, age = journaled_model(ctx, case, rec, true)
  if m then
    emit(ctx, { event = "model_reused", case_id = case.case_id, age_s = math.floor(age) })
    return m, nil, true
  end
  return read_original(ctx, case)
end

-- The original for a new link: the journal's (order mode), or read.
local function original_for_link(ctx, case, rec)
  if (ctx.reverify.mode or "order") == "order" then
    local m, age = journaled_model(ctx, case, rec, false)
    if m then
      emit(ctx, { event = "model_reused", case_id = case.case_id, age_s = math.floor(age) })
      return m
    end
  end
  return read_original(ctx, case)
end

-- A refusal of a refresh with a journaled model that says the model may be
-- wrong: Truv's 400 or 404 (an unknown connection, an order that changed),
-- the plan's own "not a connection of this order", or Truv's refresh limit
-- (refreshes the store never saw).
local function model_refused(err)
  local k = err.kind
  return k == "invalid" or k == "not_found" or k == "refresh_limit"
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
    failed_status = null, failed_at = null,
  }
  for k, v in pairs(extra or {}) do fields[k] = v end
  -- a refresh that failed in a way Truv's side fixes (retried on its task's
  -- or suborder's status): what and when, so that the next refresh knows
  -- the link-disconnected Truv sent for it (truv.refresh, own_failure)
  if decision.route == "retry" and fields.refresh_order_id ~= nil
     and type(decision.status) == "string"
     and (decision.outcome == "task" or decision.outcome == "suborder") then
    fields.failed_status, fields.failed_at = decision.status, now_of(ctx)
  end
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
  if mode == "bridge" and JOURNALED[original] then
    -- bridge tokens in update mode name the connections' access tokens,
    -- which the journal does not keep: the order is read for them
    local err
    original, err = read_original(ctx, case)
    if not original then
      check_run_error(ctx, case, err)
      local d = ctx.router:route(err, now_of(ctx))
      extra.error = tostring(err)
      extra.link_reason = decision.reason
      extra.resume = SCHEDULED[d.route] and "link" or nil
      return finish(ctx, case, d, { error = err }, extra)
    end
  end
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
  finishing(ctx)
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
  local original, err = original_for_link(ctx, case, rec)
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
  finishing(ctx)
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
    original = original or original_for_link(ctx, case, get(ctx, case.case_id) or {})
    if original then
      return make_link(ctx, case, original, d, result, extra,
                       failing_connections(result, original))
    end
    -- the original cannot be read now: the link is made by a later run (for
    -- every connection, since which of the original's failed is not known)
    extra.link_reason = d.reason
    extra.resume = "link"
    return finish(ctx, case, { route = "retry", reason = "reverify_pending", final = true,
                               retry_at = now_of(ctx) + ctx.reverify_pending_retry_s }, result, extra)
  end
  return finish(ctx, case, d, result, extra)
end

-- A refresh that may have been sent by an earlier run: adopt it or prove
-- it absent. Returns the refresh order, false (provably none: the case
-- starts again), or nil after routing the case for a later attempt.
local function reconcile(ctx, case, rec)
  finishing(ctx)
  local found, err = refresh.find_created(ctx.client, case.order_id,
                                          rec.baseline_refresh_order, rec.sent_at or 0,
                                          ctx.skew_s)
  if found then
    proven(ctx)
    -- the reservation was spent on it: it counts as this case's own
    put(ctx, case.case_id, { state = "sent", refresh_order_id = found.id,
                             own_refreshes = type(rec.reserved_at) == "number"
                               and own_refreshes(ctx, rec, rec.reserved_at) or nil })
    emit(ctx, { event = "adopted", case_id = case.case_id, refresh_order_id = found.id })
    return found
  end
  if found == nil then
    check_run_error(ctx, case, err)
    finish(ctx, case, { route = "retry", reason = "unreconciled", final = true,
                        retry_at = now_of(ctx) + ctx.unreconciled_retry_s }, { error = err },
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

-- How the case's own last refresh failed on Truv's side, if it did
-- (truv.refresh's own_failure: the link-disconnected that came with it says
-- nothing of the user); recorded by finish.
local function own_failure(rec)
  if not (rec.failed_status and rec.sent_at and rec.failed_at) then return nil end
  return { status = rec.failed_status, from = rec.sent_at, to = rec.failed_at }
end

-- The refresh of a case with the original's model `original` (`reused`:
-- the journal's). Returns what client:refresh_order returns, and the
-- journal fields that record the quota it reserved, if that still counts
-- (own_refreshes; nil when it reserved nothing, or gave it back).
local function send_refresh(ctx, case, original, reused)
  local rec = get(ctx, case.case_id) or {}
  local reserved_at
  local doc, meta = ctx.client:refresh_order(case.order_id, refresh_params(case), {
    order = original,
    answer = "model",
    -- refreshed a moment ago by anyone (another run, host or tool), but not
    -- this case's own earlier refresh (a retry it scheduled): adopted. A
    -- model from the journal is not read again: what Truv showed when it
    -- was read is in the quota store (see "The original's model")
    not_within = not reused and ctx.not_within or false,
    truv_count = not reused,
    own_refresh = rec.refresh_order_id,
    own_failure = own_failure(rec),
    on_checked = not reused and function(model) keep_model(ctx, case, model) end or nil,
    admit = function(info) return admit(ctx, info) end,
    before_send = function(info)
      -- Until the write-ahead is durable the POST has not left: a run that
      -- stops meanwhile (its commit failed) gives the reservation back.
      if info.quota_ticket then
        ctx.unsent[case.case_id] = { keys = info.quota_keys, ticket = info.quota_ticket }
      end
      reserved_at = info.reserved_at
      put(ctx, case.case_id, {
        state = "sending", sent_at = info.sent_at,
        baseline_refresh_order = info.baseline or core.null,
        quota_ticket = info.quota_ticket,
        quota_keys = info.quota_keys and concat(info.quota_keys, ",") or nil,
        reserved_at = info.reserved_at or core.null,
        attempts = (rec.attempts or 0) + info.sends,
      })
      ctx.sched:barrier()        -- durable before the POST leaves
      -- interrupted while the write-ahead was made durable: the POST is not
      -- sent (the run takes no new work), its reservation goes back with the
      -- run's other unsent ones, and the case resumes as after a crash at
      -- this point (the refresh is looked for, then made)
      check_interrupted(ctx)
      ctx.unsent[case.case_id] = nil
      emit(ctx, { event = "sending", case_id = case.case_id })
    end,
  })
  local own
  if reserved_at and (doc or not meta.quota_released) then
    own = { own_refreshes = own_refreshes(ctx, rec, reserved_at) }
  end
  return doc, meta, own
end

-- Where a case resumes, from its journal record (see Resume points above):
-- "reconcile" (its refresh POST may have left), "wait" (its refresh
-- exists), "linking" (its link's creation may have reached Truv), "link"
-- (the link is to be made, nothing refreshed), or nil: from the start.
local function resume_point(rec)
  local at = rec.state
  if at == "scheduled" then at = rec.resume end
  if at == "sending" or at == "reconcile" then return "reconcile" end
  if (at == "sent" or at == "waiting" or at == "wait") and rec.refresh_order_id then
    return "wait"
  end
  if at == "linking" or at == "link" then return at end
  return nil
end

local function process(ctx, case)
  local rec = get(ctx, case.case_id) or {}
  emit(ctx, { event = "started", case_id = case.case_id })

  local at = resume_point(rec)
  if at == "reconcile" then
    local found = reconcile(ctx, case, rec)
    if found == nil then return end
    if found then return await(ctx, case, nil, found) end
  elseif at == "wait" then
    return await(ctx, case, nil, rec.refresh_order_id, nil, rec.recent == true)
  elseif at == "linking" then
    return resume_link(ctx, case, rec, true)
  elseif at == "link" then
    return resume_link(ctx, case, rec, false)
  end

  -- models, not documents: a case in progress holds a few hundred bytes
  local original, err, reused = original_for_refresh(ctx, case, rec)
  if not original then return route_error(ctx, case, nil, err) end
  proven(ctx)

  local doc, meta, own = send_refresh(ctx, case, original, reused)
  if not doc and reused and model_refused(meta) then
    -- Truv (or the plan) refused what the journal's model names: the order
    -- changed since it was read. Read it again, once, and plan again; the
    -- refusal billed nothing (a definite refusal gives its reservation back)
    emit(ctx, { event = "model_reread", case_id = case.case_id, message = tostring(meta) })
    put(ctx, case.case_id, { original_model = core.null, original_read_at = core.null })
    original, err = read_original(ctx, case)
    if not original then return route_error(ctx, case, nil, err, own) end
    doc, meta, own = send_refresh(ctx, case, original, false)
  end
  if not doc then
    if meta.max_billed then
      -- the run's cap on billed refreshes: the case is left as it was, due
      -- for the next run
      ctx.capped = ctx.capped + 1
      emit(ctx, { event = "capped", case_id = case.case_id })
      return
    end
    -- sent, and its outcome could not be read back: reconcile next time
    local extra = own or {}
    if meta.code == "unreconciled" then extra.resume = "reconcile" end
    return route_error(ctx, case, original, meta, extra)
  end
  if meta.recent then
    put(ctx, case.case_id, { state = "sent", refresh_order_id = doc.id, recent = true,
                             expiring = expiring_text(meta.expiring) or core.null })
    emit(ctx, { event = "recent", case_id = case.case_id, refresh_order_id = doc.id,
                age_s = math.floor(meta.recent.age_s) })
    return await(ctx, case, nil, doc, meta.expiring, true)
  end
  local fields = own or {}
  fields.state, fields.refresh_order_id, fields.recent = "sent", doc.id, core.null
  fields.expiring = expiring_text(meta.expiring) or core.null
  put(ctx, case.case_id, fields)
  emit(ctx, { event = "sent", case_id = case.case_id, refresh_order_id = doc.id,
              reconciled = meta.reconciled, expiring = expiring_text(meta.expiring) })
  -- A tail call with the refresh order's model: no document is held while
  -- the case waits (the original's model is read again, or taken from the
  -- journal, only if the case needs a new link), which costs less than
  -- keeping every waiting case's documents in memory.
  return await(ctx, case, nil, doc, meta.expiring)
end

-- What the run would do for one case, from its journal record (if any)
-- and what Truv shows; nothing is written, reserved, billed or created.
function _M.plan(ctx, case, rec)
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
  local at = resume_point(rec)
  if at == "reconcile" then
    e.action, e.detail = "reconcile", "a refresh may exist: read back first, sent again only " ..
                        "if Truv shows none"
    return e
  elseif at == "wait" then
    e.action, e.refresh_order_id = "wait", rec.refresh_order_id
    return e
  elseif at == "linking" or at == "link" then
    e.action, e.route = "link", "reverify"
    e.detail = at == "linking" and (rec.link_mode or "order") == "order"
               and "a new verification order may exist: a person checks (fix)"
               or "a new verification link, no refresh"
    return e
  end
  -- the journal's model, as the run would take it (see "The original's model")
  local original, age = journaled_model(ctx, case, rec, true)
  local err
  if original then
    e.model_age_s = math.floor(age)
  else
    original, err = ctx.client:get_order_model(case.order_id)
  end
  local p
  if original then
    p, err = refresh.plan(ctx.client, case.order_id, refresh_params(case), {
      order = original, not_within = not age and ctx.not_within or false,
      truv_count = not age, own_refresh = rec.refresh_order_id, own_failure = own_failure(rec) })
  end
  if not p and age and model_refused(err) then
    -- as the run would: the order is read again and planned again
    e.model_age_s = nil
    original, err = ctx.client:get_order_model(case.order_id)
    if original then
      p, err = refresh.plan(ctx.client, case.order_id, refresh_params(case), {
        order = original, not_within = ctx.not_within, own_refresh = rec.refresh_order_id,
        own_failure = own_failure(rec) })
    end
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
  -- one is what the refresh would be refused on. With the journal's model
  -- Truv's count is not read (the store holds what it said): truv is nil
  local limit = ctx.quota and ctx.quota.limit or quota_mod.DEFAULT_LIMIT
  local window = ctx.quota and ctx.quota.window or quota_mod.DEFAULT_WINDOW
  local quota_list, not_before = {}, nil
  for _, c in ipairs(p.connections) do
    local u = p.usage[c.id] or { used = 0 }
    local truv_n = not e.model_age_s and (p.counts[c.id] or 0) or nil
    local used = math.max(u.used, truv_n or 0)
    quota_list[#quota_list + 1] = { id = c.id, used = used, here = u.used, truv = truv_n,
                                    limit = limit }
    if used >= limit then
      local key = quota_mod.connection_key(c)
      local times = p.history and history.in_window(
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


_M.process = process
_M.get, _M.put, _M.emit, _M.journal_failure = get, put, emit, journal_failure
_M.run_wide_error = run_wide_error

return _M
