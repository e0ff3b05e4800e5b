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
--     quota = store,                  -- default: a SQLite store beside the journal
--     on_event = function(event) end, -- progress: one call per case event
--     wait = "poll",                  -- or "webhook": see below
--     webhook = { listener = core.listener{...} or { host =, port =, path =, ... },
--                 secrets = { ... },  -- default: the client's secret
--                 dedupe = store,     -- default: in memory
--                 fallback_s = 600 }, -- then poll, so a missing webhook loses nothing
--   }
--
-- For each case: plan (read the original order; expired connections go
-- straight to reverify without spending a refresh), reserve quota, refresh
-- (write-ahead in the journal first), wait for the result, route,
-- and act through the router's handlers: done hands the fresh order to the
-- `done` handler (pre-fill; the document is lent for the call: keep
-- truv.totable(order) if the handler stores it), reverify creates the new
-- verification link,
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
-- again only when provably none was), and sends nothing twice.
local core = require "truv.core"
local truv_client = require "truv.client"
local errors = require "truv.errors"
local route_mod = require "truv.route"
local refresh = require "truv.refresh"
local cases_mod = require "truv.cases"
local scheduler = require "truv.scheduler"
local inbox_mod = require "truv.inbox"

local type, ipairs, pairs, tostring, error = type, ipairs, pairs, tostring, error
local setmetatable, getmetatable, pcall = setmetatable, getmetatable, pcall
local concat = table.concat

local _M = {}

_M.DEFAULTS = {
  concurrency = 32,
  rate_per_minute = 300,
  active_per_request = 1.25,   -- cases in progress per request slot (a few wait in a poll)
  commit_interval_s = 0.05,    -- group commit of the journal, unless a refresh waits on it
  skew_s = 300,
  drain_interval_s = 0.02,     -- webhook mode: the longest a delivery waits to be seen
}

-- Journal states (truv/journal.h): new, planned, sending, sent, waiting,
-- routed, scheduled (retry/defer with a time), failed (a bad input row).

local function now_of(ctx) return ctx.clock() end

local function emit(ctx, event)
  if ctx.on_event then ctx.on_event(event) end
end

local function put(ctx, case_id, fields)
  fields.updated_at = now_of(ctx)
  local ok, err = ctx.journal:put(case_id, fields)
  if not ok and err then error("journal: " .. tostring(err), 0) end
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

-- Errors that are about the run, not the case: every other case would fail
-- the same way, so the run stops and the case keeps its state for the next
-- run (a wrong secret must not turn the whole batch into "fix").
local RUN_ERRORS = { auth = true }

local function check_run_error(err)
  if err and RUN_ERRORS[err.kind] then error({ run_error = err }, 0) end
end

-- Records the final route of a case and calls its handler.
local function finish(ctx, case, decision, outcome, extra)
  local null = core.null   -- clears what an earlier run of the case recorded
  local fields = {
    state = (decision.route == "retry" or decision.route == "defer") and "scheduled" or "routed",
    route = decision.route, reason = decision.reason or null,
    retry_at = decision.retry_at or null, not_before = decision.not_before or null,
    error = null, share_url = null, handler_error = null,
  }
  for k, v in pairs(extra or {}) do fields[k] = v end
  local ok, res = ctx.router:act(decision, case, outcome)
  -- the fresh order was lent to the handler for the call: its memory goes
  -- back now rather than whenever the collector finds it
  if outcome and core.isdocument(outcome.order) then core.release(outcome.order) end
  if not ok then
    fields.handler_error = res.message
    emit(ctx, { event = "handler_error", case_id = case.case_id, route = decision.route,
                message = res.message })
  end
  put(ctx, case.case_id, fields)
  emit(ctx, { event = "routed", case_id = case.case_id, route = decision.route,
              reason = decision.reason, retry_at = decision.retry_at,
              not_before = decision.not_before, share_url = fields.share_url,
              refresh_order_id = fields.refresh_order_id })
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

local function reverify(ctx, case, original, decision, outcome, extra, conn_ids)
  extra = extra or {}
  local link, err = ctx.client:reverify(original, { mode = ctx.reverify.mode,
                                                    connections = conn_ids,
                                                    order = ctx.reverify.order })
  if link then
    extra.share_url = link.share_url
    extra.reverify_order_id = link.order_id
    if link.tokens then extra.bridge_tokens = #link.tokens end
  else
    -- the link could not be made: the case still needs the user, and a person
    extra.error = tostring(err)
    decision = route_mod.route(err, now_of(ctx))
    if decision.route ~= "retry" then decision = { route = "fix", reason = "reverify_failed",
                                                   final = true } end
  end
  outcome = outcome or {}
  outcome.link = link
  return finish(ctx, case, decision, outcome, extra)
end

local function route_error(ctx, case, original, err, extra)
  check_run_error(err)
  local d = ctx.router:route(err, now_of(ctx))
  extra = extra or {}
  extra.error = tostring(err)
  if d.route == "reverify" and original then
    local ids
    if err.expired then
      ids = {}
      for _, e in ipairs(err.expired) do ids[#ids + 1] = e.id end
    end
    return reverify(ctx, case, original, d, { error = err }, extra, ids)
  end
  return finish(ctx, case, d, { error = err }, extra)
end

-- Waits for a sent refresh and routes what it produced.
local function await(ctx, case, original, refresh_order)
  local result, err, via
  if ctx.inbox then
    result, err, via = ctx.inbox:wait_for_refresh(ctx.client, refresh_order, ctx.webhook_wait)
    if via == "fallback" then
      emit(ctx, { event = "webhook_fallback", case_id = case.case_id,
                  refresh_order_id = type(refresh_order) == "string" and refresh_order
                                     or refresh_order.id })
    end
  else
    result, err = ctx.client:wait_for_refresh(refresh_order, ctx.poll_opts)
  end
  if not result then return route_error(ctx, case, original, err) end
  local extra = { refresh_order_id = result.order.id }
  if not result.finished then
    local d = { route = "retry", reason = "refresh_unfinished", final = true,
                retry_at = now_of(ctx) + (ctx.poll_opts.timeout_s or 1200) }
    return finish(ctx, case, d, result, extra)
  end
  local d = result.decision
  if d.route == "reverify" then
    original = original or ctx.client:get_order_model(case.order_id)
    if original then
      return reverify(ctx, case, original, d, result, extra,
                      failing_connections(result, original))
    end
  end
  return finish(ctx, case, d, result, extra)
end

-- A refresh that a killed run left in flight: adopt it or prove it absent.
local function reconcile(ctx, case, rec)
  local found, err = refresh.find_created(ctx.client, case.order_id,
                                          rec.baseline_refresh_order, rec.sent_at or 0,
                                          ctx.skew_s)
  if found then
    put(ctx, case.case_id, { state = "sent", refresh_order_id = found.id })
    emit(ctx, { event = "adopted", case_id = case.case_id, refresh_order_id = found.id })
    return found
  end
  if found == nil then return nil, err end
  -- provably never created: the reservation it held goes back
  if rec.quota_ticket and rec.quota_keys and ctx.quota then
    local keys = {}
    for k in tostring(rec.quota_keys):gmatch("[^,]+") do keys[#keys + 1] = k end
    ctx.quota:release(keys, rec.quota_ticket)
  end
  put(ctx, case.case_id, { state = "planned" })
  return false
end

local function process(ctx, case)
  local rec = ctx.journal:get(case.case_id) or {}
  emit(ctx, { event = "started", case_id = case.case_id })

  if rec.state == "sending" then
    local found, err = reconcile(ctx, case, rec)
    if found == nil then
      return finish(ctx, case, { route = "retry", reason = "unreconciled", final = true,
                                 retry_at = now_of(ctx) + 300 }, { error = err },
                    { error = tostring(err) })
    end
    if found then return await(ctx, case, nil, found) end
  elseif rec.state == "sent" or rec.state == "waiting" then
    return await(ctx, case, nil, rec.refresh_order_id)
  end

  -- models, not documents: a case in progress holds a few hundred bytes
  local original, err = ctx.client:get_order_model(case.order_id)
  if not original then return route_error(ctx, case, nil, err) end

  local doc, meta = ctx.client:refresh_order(case.order_id, refresh_params(case), {
    order = original,
    answer = "model",
    before_send = function(info)
      put(ctx, case.case_id, {
        state = "sending", sent_at = info.sent_at, baseline_refresh_order = info.baseline,
        quota_ticket = info.quota_ticket,
        quota_keys = info.quota_keys and concat(info.quota_keys, ",") or nil,
        attempts = (rec.attempts or 0) + info.sends,
      })
      ctx.sched:barrier()        -- durable before the POST leaves
      emit(ctx, { event = "sending", case_id = case.case_id })
    end,
  })
  if not doc then return route_error(ctx, case, original, meta) end
  put(ctx, case.case_id, { state = "sent", refresh_order_id = doc.id })
  emit(ctx, { event = "sent", case_id = case.case_id, refresh_order_id = doc.id,
              reconciled = meta.reconciled })
  -- A tail call with the refresh order's model: no document is held while
  -- the case waits (the original's model is read again only if the case
  -- needs a new link), which costs less than keeping every waiting case's
  -- documents in memory.
  return await(ctx, case, nil, doc)
end

-- Adds the input's cases to the journal (existing ones are left alone) and
-- records bad rows as failed.
local function load(ctx, input)
  local iter = type(input) == "string" and cases_mod.each(input)
               or cases_mod.each_json(core.encode(input))
  local j = ctx.journal
  -- one transaction: an input that cannot be read to its end adds nothing
  j:begin()
  -- bad rows describe this reading of the input: the previous reading's go
  local stale = {}
  for rec in j:each{ state = "failed" } do stale[#stale + 1] = rec.case_id end
  for _, id in ipairs(stale) do j:delete(id) end
  local n, problems = 0, {}
  for ok, v in iter do
    if ok then
      n = n + 1
      if not j:get(v.case_id) then
        put(ctx, v.case_id, { state = "new", input = case_input(v), line = v.line,
                              order_id = v.order_id })
      end
    elseif v.line == 0 then
      j:rollback()
      return nil, { v }
    else
      problems[#problems + 1] = v
      local id = v.case_id and ("line-" .. v.line .. ":" .. v.case_id) or ("line-" .. v.line)
      put(ctx, id, { state = "failed", line = v.line, error = v.message })
      emit(ctx, { event = "bad_row", line = v.line, case_id = v.case_id, message = v.message })
    end
  end
  j:commit()
  return n, problems
end

-- The ids of the cases this run works on: not final, and scheduled ones
-- only once due. Ids only: a record is read again when its turn comes, so a
-- 100 000-case run does not keep every case's input in memory (where every
-- collection would walk it).
local function runnable(ctx)
  local list = {}
  local now = now_of(ctx)
  for rec in ctx.journal:each{ not_state = { "routed", "failed" } } do
    local due = rec.state ~= "scheduled" or (rec.retry_at or rec.not_before or 0) <= now
    if due then list[#list + 1] = rec.case_id end
  end
  return list
end

local function make_client(opts, sched, quota)
  local spec = opts.client
  if getmetatable(spec) == truv_client.Client then spec = spec._options end
  local o = {}
  for k, v in pairs(spec) do o[k] = v end
  o.transport = sched:transport()
  o.sleep = sched.sleep
  o.quota = quota or false
  if opts.expiry_days ~= nil then o.expiry_days = opts.expiry_days end
  return truv_client.new(o)
end

-- The webhook inbox of a run: cases park on the scheduler until their
-- refresh's webhooks settle them.
local function open_inbox(ctx, sched)
  local w = ctx.webhook
  return inbox_mod.new{
    listener = w.listener, secrets = w.secrets, dedupe = w.dedupe, ttl = w.ttl,
    router = ctx.router, clock = ctx.clock,
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
  local sched, serr = scheduler.new{
    concurrency = concurrency,
    rate_per_minute = opts.rate_per_minute or _M.DEFAULTS.rate_per_minute,
    http = opts.http,
    documents = "view",
    -- Group commit: at once when a refresh waits on its write-ahead, else
    -- every commit_interval_s (a state lost with the process is redone).
    on_tick = function(urgent)
      local t = core.monotonic()
      if urgent or t - last_commit >= commit_interval then
        journal:commit()
        journal:begin()
        last_commit = t
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
  local next_case, run_error = 1, nil
  local function worker()
    while next_case <= #todo and not run_error do
      local id = todo[next_case]
      next_case = next_case + 1
      local case = decode_input(ctx.journal:get(id))
      local ok, err = pcall(process, ctx, case)
      if not ok and type(err) == "table" and err.run_error then
        run_error = run_error or err.run_error
      elseif not ok then
        put(ctx, case.case_id, { state = "scheduled", route = "retry", reason = "internal_error",
                                 error = tostring(err), retry_at = now_of(ctx) + 60 })
        emit(ctx, { event = "error", case_id = case.case_id, message = tostring(err) })
      end
    end
  end
  journal:begin()
  for _ = 1, math.min(max_active, #todo) do sched:spawn(worker) end
  local ok, err = pcall(sched.run, sched)
  journal:commit()
  if inbox then
    ctx.webhook_stats = inbox:stats()
    inbox:close()
  end
  client:close()
  if not ok then return errors.new("internal", "renewal", tostring(err)) end
  return run_error
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
  w.secrets = w.secrets or spec.secret or (spec._options and spec._options.secret)
  if w.secrets == nil then
    error("renewal.run: webhook.secrets (or the client's secret) is required", 3)
  end
  w.fallback_s = w.fallback_s or inbox_mod.DEFAULTS.fallback_s
  if type(w.fallback_s) ~= "number" or w.fallback_s < 0 then
    error("renewal.run: webhook.fallback_s must be a number of seconds >= 0", 3)
  end
  return w
end

--- Runs the batch; returns the summary (see summary()) or nil, err: the
-- input or the journal cannot be read, or an error about the run itself
-- (credentials) stopped it. Misuse (missing options) raises.
function _M.run(opts)
  if type(opts) ~= "table" then error("renewal.run: a table of options expected", 2) end
  if not opts.journal then error("renewal.run: 'journal' (a file path or journal) is required", 2) end
  local spec = opts.client
  if type(spec) ~= "table" then
    error("renewal.run: 'client' (options for truv.new, or a client) is required", 2)
  end
  local webhook = webhook_options(opts, spec)   -- checked before anything is opened
  local own_journal, own_quota = type(opts.journal) == "string", false
  local journal, quota = opts.journal, opts.quota
  if own_journal then
    local jerr
    journal, jerr = core.journal_open(opts.journal)
    if not journal then return nil, jerr end
  end
  if quota == nil and own_journal then
    local qerr
    quota, qerr = require("truv.quota").sqlite(opts.journal .. ".quota")
    if not quota then
      journal:close()
      return nil, qerr
    end
    own_quota = true
  end
  local ctx = {
    journal = journal, quota = quota,
    router = opts.router or route_mod.router{},
    on_event = opts.on_event,
    poll_opts = {},
    reverify = opts.reverify or {},
    skew_s = opts.skew_s or _M.DEFAULTS.skew_s,
    clock = spec.clock or (spec._options and spec._options.clock) or core.now,
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
    local n, problems = load(ctx, opts.cases)
    if not n then
      close()
      return nil, errors.new("invalid", "cases", problems[1].message)
    end
  end

  local todo = runnable(ctx)
  emit(ctx, { event = "run_started", total = #todo, counts = journal:counts() })
  if #todo > 0 then
    -- Documents keep their parse in C memory the collector cannot see; the
    -- generational mode promotes them before they die and then seldom looks
    -- at them again (RSS tripled in measurements). Incremental for the run.
    local gc_mode = collectgarbage("incremental")
    local err = work(ctx, opts, todo)
    collectgarbage(gc_mode)
    if err then
      emit(ctx, { event = "run_stopped", message = tostring(err) })
      close()
      return nil, err
    end
  end
  local summary = _M.summary(journal)
  summary.webhooks = ctx.webhook_stats   -- a webhook run's counters (truv.inbox)
  emit(ctx, { event = "run_finished", summary = summary })
  close()
  return summary
end

--- The run's figures from a journal: { total =, routes = { [route] = n },
-- states = { [state] = n }, failed = n }.
function _M.summary(journal)
  local routes = journal:route_counts()
  local states = journal:counts()
  local total = 0
  for _, n in pairs(states) do total = total + n end
  return { total = total, routes = routes, states = states, failed = states.failed or 0 }
end

return _M
