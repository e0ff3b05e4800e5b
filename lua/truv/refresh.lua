--- The refresh of an order, done safely: validated, inside the quota, never
-- sent twice by accident.
--
-- Truv bills every refresh task and allows 3 per connection per 24 h, and
-- its refresh endpoint has no idempotency key. So:
--
-- 1. The original order is known (passed in as a document or its model, or
--    fetched), so the product rule and the selected connections are checked
--    before anything is sent. opts.answer = "model" returns the new order's
--    model instead of its document.
-- 2. A connection is refused locally only for what the client knows for
--    sure (truv.facts, kept in the quota store): it failed in a way only the
--    user can fix (login_error, mfa_error, account_locked, unable_to_reset,
--    link-disconnected) and nothing seen since says it works again. Before
--    refusing, Truv's task list for the order's user (GET tasks/?user_id=)
--    is read: a task of that link that finished done after the failure is
--    the user re-authenticating (Bridge update mode), noted as `auth`, and
--    the connection is refreshed. A link-disconnected alone refuses only
--    when that list shows the link's newest task failed that way, and the
--    list is not read when the caller's own last refresh of the order
--    explains it: `own_failure = { status =, from =, to = }` says that
--    refresh failed with task status `status` (one Truv's side fixes, such
--    as unavailable or error; not one of those above), sent at `from` and
--    seen failed at `to` (epoch seconds); a link-disconnected noted between
--    from - clock_skew_s and to + clock_skew_s is that failure's (Truv sends
--    one for every failed refresh), and the connection is refreshed. A
--    refusal is kind "expired", code "connection_dead" (err.reason: the
--    recorded cause), routes to reverify and spends nothing.
--    `refuse_dead = false` turns this off.
--    Age alone refuses nothing unless the caller opts in (`expiry_days`):
--    Truv only says OAuth connections *typically* last ~180 days, and
--    session-based ones vary; a refresh Truv would serve is never refused
--    by a guess. Age is a warning instead: connections whose last
--    authentication the client saw (auth, else the suborder's created_at)
--    is at least `expiring_days` (150) old are listed in meta.expiring
--    (err.expiring on failure), among the providers of `oauth_providers`
--    (every connection when no list is given), so that a link can be sent
--    ahead of time.
-- 3. What Truv already did counts (truv.history): unless the store already
--    finds a connection full, the order's refreshes in the last 24 h are
--    read from Truv (its refresh_order, and its refresh orders' events) and
--    recorded into the store (record_count), so that refreshes this client
--    never saw (another host, tool or run) are refused as Truv would refuse
--    them (`truv_count = false` turns it off). With `not_within` (seconds),
--    an order whose most recent refresh, by anyone, covering the connections
--    asked for, is younger than that is answered with that refresh
--    (meta.recent), nothing reserved or sent; `own_refresh` names the
--    caller's own, never taken for a recent one.
--    `on_checked(model)` then hears that every check of what Truv and the
--    store show passed with that model (a caller may keep it: truv.renewal's
--    reuse_model_s). The quota store then reserves one slot on every
--    selected connection at once (all or none); a spent connection answers
--    "not before T" locally. `admit(info)` (a caller's budget) may say no
--    first: kind "quota", code "max_billed", nothing reserved.
-- 4. The POST is sent once (opts.before_send(info) runs just before, for a
--    caller that must record the attempt durably first; info.reserved_at is
--    the instant of its quota reservation). A definite refusal (4xx, or a
--    failure before the request left) releases the reservation
--    (err.quota_released). An ambiguous failure (timeout
--    or reset after sending, a 5xx, a garbled answer) is reconciled: the
--    original order's `refresh_order` and its `is_refresh` events are read,
--    twice, a settle interval apart; a refresh created since the send is
--    adopted; only when none appeared is the request sent again. When the
--    reads themselves fail, the outcome stays unknown: the error says so
--    (code "unreconciled") and nothing is re-sent.
local core = require "truv.core"
local errors = require "truv.errors"
local facts_mod = require "truv.facts"
local history = require "truv.history"
local quota_defaults = require "truv.quota"
local key_of = quota_defaults.connection_key
local time = require "truv.time"

local type, ipairs, pairs, tostring = type, ipairs, pairs, tostring
local format = string.format
local floor = math.floor

local _M = {}

_M.DEFAULTS = {
  expiry_days = false,        -- opt-in: refuse connections older than this many days
                              -- since their last authentication (no Truv answer says so)
  refuse_dead = true,         -- refuse connections the facts say need the user
  expiring_days = 150,        -- list connections at least this old in meta.expiring
  oauth_providers = false,    -- provider ids that expire (~180 days); false: every one
  settle_s = 1,               -- wait before reading back after an ambiguous failure
  clock_skew_s = 300,         -- tolerance between our clock and Truv's timestamps
  max_sends = 3,              -- sends of one refresh when earlier ones provably failed
  truv_count = true,          -- read Truv's own count of the order's refreshes first
  not_within = false,         -- seconds: an order refreshed more recently than this is
                              -- answered with that refresh, nothing sent (opt-in)
}

-- What each setting accepts (checked by truv.new; see truv.options).
_M.LIMITS = {
  expiry_days = { above = 0, max = 36500, unit = "days", otherwise = "false" },
  expiring_days = { min = 0, max = 36500, unit = "days", otherwise = "false" },
  settle_s = { min = 0, max = 3600, unit = "seconds" },
  clock_skew_s = { min = 0, max = 86400, unit = "seconds" },
  max_sends = { integer = true, min = 1, max = 10 },
  not_within = { above = 0, max = 366 * 86400, unit = "seconds", otherwise = "false" },
}

--- Checks the settings that are not numbers (truv.new and renewal.run call
-- it): refuse_dead true or false, oauth_providers a list of provider ids or
-- false. Raises at `level` like truv.options.
function _M.check_settings(fname, t, level, prefix)
  prefix = prefix or ""
  local options = require "truv.options"
  options.boolean(fname, prefix .. "refuse_dead", t.refuse_dead, level + 1)
  options.boolean(fname, prefix .. "truv_count", t.truv_count, level + 1)
  local p = t.oauth_providers
  if p == nil or p == false then return end
  local ok = type(p) == "table" and #p > 0
  for _, id in ipairs(ok and p or {}) do ok = ok and type(id) == "string" and id ~= "" end
  if not ok then
    error(format("bad option '%soauth_providers' to '%s' (a list of provider ids, or false, " ..
                 "expected)", prefix, fname), level + 1)
  end
end

local function opt(client, opts, key)
  local v = opts[key]
  if v == nil then v = client:refresh_setting(key) end
  if v == nil then v = _M.DEFAULTS[key] end
  return v
end

-- A model (truv.core.order_model) has `connections`; an order document
-- has employers and financial accounts instead.
local function is_model(v)
  return type(v) == "table" and v.connections ~= nil and v.employers == nil
end
_M.is_model = is_model

--- The order's model (truv.core.order_model): id, products, refresh_order,
-- connections { kind, id, suborder_number, access_token, created_at, ... };
-- a model is its own, and a connection of one may carry its quota key
-- (`quota_key`, truv.quota.connection_key) instead of its access token: the
-- refresh, the quota, the facts and Truv's history need only the key.
-- Returns it, or nil, err.
function _M.model(order)
  if is_model(order) then return order end
  return core.order_model(order)
end

-- The kind of connection a product refreshes (payroll products refresh
-- employers, bank products financial accounts): the core's list.
local KIND_OF = core.lists.refreshes
_M.KIND_OF = KIND_OF

-- The connection of `kind` an entry names: by id, by suborder_number, or by
-- both (Truv's own request example gives both: they must name the same
-- connection). Returns it, or nil and what is wrong.
local function named_connection(all, kind, s)
  local by_id, by_number
  for _, c in ipairs(all) do
    if c.kind == kind then
      if s.id ~= nil and c.id == s.id then by_id = c end
      if s.suborder_number ~= nil and
         tostring(c.suborder_number) == tostring(s.suborder_number) then
        by_number = c
      end
    end
  end
  if s.id ~= nil and s.suborder_number ~= nil and by_id ~= by_number then
    if not (by_id or by_number) then return nil, "is not a connection of this order" end
    return nil, format("id %s and suborder_number %s do not name the same connection",
                       tostring(s.id), tostring(s.suborder_number))
  end
  local hit = by_id or by_number
  if not hit then return nil, "is not a connection of this order" end
  return hit
end

-- Which connections a refresh request selects: the ones it names, or every
-- connected one of the product's kind.
local function select_connections(model, params)
  local all = model.connections
  local chosen, problems = {}, {}
  local named = false
  for _, kind in ipairs{ "employers", "financial_accounts" } do
    local sel = params[kind]
    if type(sel) == "table" then
      named = true
      for i, s in ipairs(sel) do
        local hit, why = named_connection(all, kind, s)
        if not hit then
          problems[#problems + 1] = { field = format("%s[%d]", kind, i), message = why }
        elseif not key_of(hit) then
          problems[#problems + 1] = { field = format("%s[%d]", kind, i), message = format(
            "was never connected (status %s): nothing to refresh", tostring(hit.status)) }
        else
          chosen[#chosen + 1] = hit
        end
      end
    end
  end
  if not named then
    local kind = KIND_OF[params.products and params.products[1]] or "employers"
    for _, c in ipairs(all) do
      if c.kind == kind and key_of(c) then chosen[#chosen + 1] = c end
    end
    if #chosen == 0 then
      problems[1] = { field = kind, message = "the order has no connected " .. kind ..
                                              " to refresh for this product" }
    end
  end
  return chosen, problems
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

-- The request body naming exactly `conns`.
local function narrowed(params, conns)
  local p = copy(params)
  p.employers, p.financial_accounts = nil, nil
  for _, c in ipairs(conns) do
    p[c.kind] = p[c.kind] or {}
    p[c.kind][#p[c.kind] + 1] = { id = c.id }
  end
  return p
end

-- When the user last authenticated connection `c` as far as the client
-- knows: a re-authentication it saw, else the suborder's creation.
local function authenticated_at(c, f)
  if f and f.auth_at and (not c.created_at or f.auth_at > c.created_at) then
    return f.auth_at, "auth"
  end
  return c.created_at, "created"
end

-- Does `c` belong to the providers whose connections expire by age?
local function ages(c, providers)
  if not providers then return true end
  for _, id in ipairs(providers) do
    if c.provider_id == id then return true end
  end
  return false
end

-- The quota store's own failure (busy, unwritable): marked, so that a
-- caller tells it from Truv's answers (err.store = "quota").
local function store_failed(err)
  if type(err) == "table" then err.store = "quota" end
  return err
end

-- What Truv's list of the order user's tasks (GET tasks/?user_id=) says of
-- connection `c` since its recorded failure: "back" when a task of its link
-- finished done after the failure (the user re-authenticated through Bridge
-- update mode; noted as `auth`), "dead" when its newest task ended in a
-- status only the user can fix, "other" when it ended otherwise, "unknown"
-- when the list cannot be read.
local function task_verdict(client, model, c, f, store, cache)
  if type(model.user_id) ~= "string" or type(c.link_id) ~= "string" then return "unknown" end
  local tasks, err = facts_mod.link_tasks(client, model.user_id, c.link_id, cache)
  if not tasks then
    client:emit("warn", { event = "tasks_unreadable", op = "refresh_order",
                          error = tostring(err) })
    return "unknown"
  end
  for _, t in ipairs(tasks) do
    local at = facts_mod.task_time(t)
    if t.status == "done" and at and at > f.dead_at then
      facts_mod.note(store, c, "auth", at, nil, function(ev) client:emit("warn", ev) end)
      return "back"
    end
  end
  return tasks[1] and facts_mod.DEAD[tasks[1].status] and "dead" or "other"
end

-- Is `c`, whose facts say dead, to be refused? A failure only the user can
-- fix (login_error, ...) stands until Truv's tasks show the user came back.
-- A link-disconnected alone says less (Truv sends it when a refresh fails,
-- whatever the cause, a provider outage included): it is refused only when
-- the link's newest task confirms a failure only the user can fix.
local function refuse_dead(client, model, c, f, store, cache)
  local verdict = task_verdict(client, model, c, f, store, cache)
  if facts_mod.DEAD[f.dead_reason] then return verdict ~= "back" end
  return verdict == "dead"
end

-- Does the caller's own failed refresh (opts.own_failure, see 2. above)
-- explain connection facts `f`: a link-disconnected it caused?
local function own_failure_explains(client, opts, f)
  local o = opts.own_failure
  if not o or f.dead_reason ~= "link-disconnected" or facts_mod.DEAD[o.status] then
    return false
  end
  local skew = opt(client, opts, "clock_skew_s")
  return f.dead_at >= o.from - skew and f.dead_at <= o.to + skew
end

-- Sorts the selected connections into those to refresh, those refused
-- (known dead; or, when the caller opted in, too old), and the live ones
-- likely to expire soon. Returns live, refused, expiring, or nil, err
-- when the facts cannot be read.
local function screen(client, model, conns, now, opts)
  local store = facts_mod.store(client.quota)
  local days = opt(client, opts, "expiry_days")
  local warn_days = opt(client, opts, "expiring_days")
  local providers = opt(client, opts, "oauth_providers") or nil
  local refuse = opt(client, opts, "refuse_dead")
  local live, refused, expiring, cache = {}, {}, {}, {}
  for _, c in ipairs(conns) do
    local f = {}
    if store then
      local ferr
      f, ferr = facts_mod.read(store, c)
      if not f then return nil, store_failed(ferr) end
    end
    local since, basis = authenticated_at(c, f)
    local age = since and now - since
    local aging = age and ages(c, providers)
    local entry = { kind = c.kind, id = c.id, link_id = c.link_id, provider_id = c.provider_id }
    if refuse and facts_mod.is_dead(f) and not own_failure_explains(client, opts, f)
       and refuse_dead(client, model, c, f, store, cache) then
      entry.reason, entry.dead_at = f.dead_reason or "dead", f.dead_at
      refused[#refused + 1] = entry
    elseif days and aging and age > days * 86400 then
      entry.reason, entry.created_at, entry.since = "age", c.created_at, since
      refused[#refused + 1] = entry
    else
      live[#live + 1] = c
      if aging and warn_days and age >= warn_days * 86400 then
        entry.since, entry.basis, entry.age_days = since, basis, floor(age / 86400)
        expiring[#expiring + 1] = entry
      end
    end
  end
  return live, refused, expiring
end

-- The error for refused connections: known dead first, else too old.
local function refusal(refused, days)
  local causes, seen = {}, {}
  for _, r in ipairs(refused) do
    if r.reason ~= "age" and not seen[r.reason] then
      seen[r.reason] = true
      causes[#causes + 1] = r.reason
    end
  end
  if #causes > 0 then
    return errors.new("expired", "connection_dead", format(
      "%d connection(s) need the user again (seen: %s; no completed refresh or " ..
      "re-authentication since): send a new link or Bridge update mode, a refresh would fail",
      #refused, table.concat(causes, ", ")),
      { op = "refresh_order", expired = refused, reason = causes[1] })
  end
  return errors.new("expired", "connection_expired", format(
    "%d connection(s) last authenticated more than %d days ago must be reconnected by the " ..
    "user (expiry_days)", #refused, days), { op = "refresh_order", expired = refused,
                                            reason = "age" })
end

local function keys_of(conns)
  local keys = {}
  for i, c in ipairs(conns) do keys[i] = key_of(c) end
  return keys
end

-- A definite "no": Truv answered and refused, or the request never left.
-- Anything else (a timeout or a reset after sending, a 5xx, a garbled
-- answer) may have created what the request asked for.
local function definitely_not_created(err)
  local k = err.kind
  if k == "network" then return not err.maybe_sent end
  return k == "invalid" or k == "auth" or k == "not_found" or k == "throttled"
      or k == "refresh_limit" or k == "api"
end
_M.definitely_not_created = definitely_not_created

--- Reads back whether a refresh of `original_id` was created at or after
-- `sent_at`. Returns the new order's document (adopted), or false when
-- provably none, or nil, err when it cannot tell.
function _M.find_created(client, original_id, baseline, sent_at, skew)
  local order, err = client:get_order(original_id)
  if not order then return nil, err end
  local rid = order.refresh_order
  if type(rid) == "string" and rid ~= baseline then
    local fresh, ferr = client:get_order(rid)
    if not fresh then return nil, ferr end
    local created = time.parse(fresh.created_at)
    if not created or created >= sent_at - skew then return fresh end
  end
  local events, eerr = client:list_order_events(original_id, nil, { all = true })
  if not events then return nil, eerr end
  for _, ev in ipairs(events.results) do
    local ts = time.parse(ev.timestamp)
    if ev.is_refresh == true and type(ev.order_id) == "string" and ev.order_id ~= original_id
       and ev.order_id ~= baseline and ts and ts >= sent_at - skew then
      local fresh, ferr = client:get_order(ev.order_id)
      if not fresh then return nil, ferr end
      return fresh
    end
  end
  return false
end

local function reconcile(client, id, baseline, sent_at, opts)
  local settle = opt(client, opts, "settle_s")
  local skew = opt(client, opts, "clock_skew_s")
  for round = 1, 2 do
    client:sleep(settle)
    local found, err = _M.find_created(client, id, baseline, sent_at, skew)
    if found then return found end
    if found == nil then
      return nil, errors.new("network", "unreconciled",
        "a refresh was sent and its outcome could not be read back: " ..
        (err and err.message or "unknown") .. "; it must not be sent again before " ..
        "the order is checked", { maybe_sent = true, op = "refresh_order",
                                  retry_at = err and err.retry_at })
    end
    client:emit("info", { event = "reconcile", op = "refresh_order", round = round,
                          found = false })
  end
  return false
end

local function quota_error(limit, not_before, spent, conns, now)
  local names = {}
  for _, c in ipairs(conns) do
    for _, k in ipairs(spent) do
      if key_of(c) == k then names[#names + 1] = tostring(c.id) end
    end
  end
  return errors.new("quota", "refresh_quota",
    format("%d refreshes per connection per 24 h already used (%s); next slot in %ds",
           limit, table.concat(names, ", "), math.ceil(not_before - now)),
    { retry_at = not_before, op = "refresh_order", spent = names })
end

--- Reserves quota for conns; with `partial`, keeps those that have room.
-- Returns conns, keys, ticket, deferred | nil, err.
local function reserve(client, conns, now, partial)
  local store = client.quota
  if not store then return conns, nil, nil, {} end
  local keys = keys_of(conns)
  local ticket, not_before, spent = store:reserve(keys, now)
  if ticket then return conns, keys, ticket, {} end
  if ticket == nil then return nil, store_failed(not_before) end
  local limit_err = quota_error(store.limit, not_before, spent, conns, now)
  if not partial then return nil, limit_err end
  local keep, deferred = {}, {}
  for _, c in ipairs(conns) do
    local used, next_free = store:usage(key_of(c), now)
    if used and used < store.limit then
      keep[#keep + 1] = c
    else
      deferred[#deferred + 1] = { kind = c.kind, id = c.id, not_before = next_free }
    end
  end
  if #keep == 0 then return nil, limit_err end
  keys = keys_of(keep)
  ticket, not_before, spent = store:reserve(keys, now)
  if not ticket then
    return nil, ticket == nil and store_failed(not_before)
                or quota_error(store.limit, not_before, spent, keep, now)
  end
  return keep, keys, ticket, deferred
end

-- Sends req until Truv answers, a refusal is definite, or reconciliation
-- cannot tell. Returns doc, meta | nil, err, fate where fate is
-- "not_created" (nothing was created: the reservation may go) or "unknown".
local function send_safely(client, req, id, baseline, opts, reservation)
  local max_sends = opt(client, opts, "max_sends")
  local err
  for sends = 1, max_sends do
    if sends > 1 then client:count("retries") end
    local sent_at = client:now()
    if opts.before_send then
      -- the caller's write-ahead (a batch journal): durable before the POST
      opts.before_send{ order_id = id, sent_at = sent_at, baseline = baseline, sends = sends,
                        quota_ticket = reservation.ticket, quota_keys = reservation.keys,
                        reserved_at = reservation.ticket and reservation.at }
    end
    local doc, meta = client:send(req, opts.answer)
    if doc then
      meta.sends = sends
      return doc, meta
    end
    err = meta
    if definitely_not_created(err) then
      -- A throttle or a request that never left says nothing about the
      -- refresh itself: send again (after the cooldown / a backoff).
      local again = err.kind == "throttled" or (err.kind == "network" and not err.maybe_sent)
      if not again or sends == max_sends then return nil, err, "not_created" end
      if err.kind == "network" then client:sleep(client:backoff(sends, err)) end
    else
      local found, rerr = reconcile(client, id, baseline, sent_at, opts)
      if found then return found, { status = 200, reconciled = true, sends = sends } end
      if found == nil then return nil, rerr, "unknown" end
      client:emit("info", { event = "resend", op = "refresh_order", path = req.path,
                            sends = sends })
    end
  end
  return nil, err, "not_created"
end

-- Truv's count of each live connection's refreshes in the window (from
-- truv.history): recorded into the store (record_count, when it has it),
-- so that reserve counts them; the connections whose count alone is full
-- are returned with the instant they have room, for a store that cannot
-- record them (or none).
local function truv_counts(client, h, live, now)
  local store = client.quota
  local limit = store and store.limit or quota_defaults.DEFAULT_LIMIT
  local window = store and store.window or quota_defaults.DEFAULT_WINDOW
  local counts, full, not_before = {}, {}, nil
  for _, c in ipairs(live) do
    local key = key_of(c)
    local times = history.in_window(h.times[key], now, window)
    counts[c.id] = #times
    if #times > 0 and store and type(store.record_count) == "function" then
      local ok, err = store:record_count(key, times, now)
      if not ok then return nil, store_failed(err) end
    end
    if #times >= limit then
      local t = times[#times - limit + 1] + window
      full[#full + 1] = c
      if not not_before or t > not_before then not_before = t end
    end
  end
  return counts, full, not_before
end

--- What a refresh of order `id` would do, read but not done: nothing is
-- reserved, recorded or sent (connection facts may be noted from Truv's
-- task list, as a refresh would). Returns a plan:
--   { action = "refresh" | "recent" | "refuse" | "defer",
--     model =, req =, facts =, connections = { the ones to refresh },
--     counts = { [connection id] = Truv's refreshes of it in the window },
--     usage = { [connection id] = { used =, next_free = } } (the store's),
--     recent = { id =, created_at =, age_s =, model = } (action "recent"),
--     error = err (refuse, defer), expired =, expiring =, history = }
-- or nil, err when the order, the request or Truv's history cannot be read
-- or is invalid. opts as refresh_order's.
function _M.plan(client, id, params, opts)
  opts = opts or {}
  local original = opts.order
  if original == nil then
    local err
    original, err = client:get_order(id)
    if not original then return nil, err end
  end
  local model, merr = _M.model(original)
  if not model then
    merr.op = "refresh_order"
    return nil, merr
  end
  local facts = { products = model.products }

  -- validate the request itself first: nothing is reserved for a bad one
  local req, err = client:build("refresh_order", id, params, facts)
  if not req then return nil, err end

  local conns, problems = select_connections(model, params)
  if #problems > 0 then
    local e = errors.invalid(problems, "the refresh names connections it cannot refresh")
    e.op = "refresh_order"
    return nil, e
  end

  local now = client:now()
  local live, expired, expiring = screen(client, model, conns, now, opts)
  if not live then return nil, expired end
  local p = { model = model, req = req, facts = facts, connections = live, now = now,
              selected = conns,
              expired = #expired > 0 and expired or nil,
              expiring = #expiring > 0 and expiring or nil, counts = {}, usage = {} }
  if #expired > 0 and (not opts.partial or #live == 0) then
    p.action, p.error = "refuse", refusal(expired, opt(client, opts, "expiry_days"))
    p.error.expiring = p.expiring
    return p
  end

  -- the store's count first: a connection it already finds full is refused
  -- by reserve whatever Truv shows, so Truv's count is read only when it
  -- can matter
  local local_full = false
  if client.quota then
    for _, c in ipairs(live) do
      local used, next_free = client.quota:usage(key_of(c), now)
      if not used then return nil, store_failed(next_free) end
      p.usage[c.id] = { used = used, next_free = next_free }
      if used >= client.quota.limit then local_full = true end
    end
  end
  local count = opt(client, opts, "truv_count") and not (local_full and not opts.partial)

  -- what Truv shows of the order's refreshes
  local not_within = opt(client, opts, "not_within")
  if count or not_within then
    local window = client.quota and client.quota.window or quota_defaults.DEFAULT_WINDOW
    local h, herr = history.read(client, model, now, { window = window, latest_only = not count })
    if not h then
      herr.op = herr.op or "refresh_order"
      return nil, herr
    end
    local latest = h.latest
    if not_within and latest and latest.created_at and latest.id ~= opts.own_refresh
       and now - latest.created_at < not_within and history.covers(latest.model, live) then
      p.action = "recent"
      p.recent = { id = latest.id, created_at = latest.created_at,
                   age_s = now - latest.created_at, model = latest.model }
      return p
    end
    if count then
      p.history = h
      for _, c in ipairs(live) do
        p.counts[c.id] = #history.in_window(h.times[key_of(c)], now, window)
      end
    end
  end
  p.action = "refresh"
  return p
end

--- The refresh itself (client:refresh_order calls it, one per order at a
-- time; see the top).
function _M.refresh_order(client, id, params, opts)
  local p, err = _M.plan(client, id, params, opts)
  if not p then return nil, err end
  local live, expiring = p.connections, p.expiring
  local expired = p.expired or {}
  if p.action == "refuse" then return nil, p.error end
  if p.action == "recent" then
    -- refreshed a moment ago (not_within): that refresh is the answer, and
    -- nothing is reserved or sent
    local r, doc = p.recent, p.recent.model
    if opts.answer ~= "model" then
      local rerr
      doc, rerr = client:get_order(r.id)
      if not doc then return nil, rerr end
    end
    client:emit("info", { event = "recent_refresh", op = "refresh_order", order_id = id,
                          refresh_order_id = r.id, age_s = r.age_s })
    return doc, { status = 200, recent = { id = r.id, created_at = r.created_at,
                                           age_s = r.age_s },
                  sends = 0, connections = #live, expiring = expiring,
                  expired = #expired > 0 and expired or nil }
  end
  local now = p.now

  -- Truv's own count, recorded for the store's reserve; a store that cannot
  -- take it (or none) still refuses a connection Truv's count says is full
  if p.history then
    local counted, full, truv_nb = truv_counts(client, p.history, live, now)
    if not counted then
      full.expiring = expiring
      return nil, full
    end
    local recorded = client.quota and type(client.quota.record_count) == "function"
    if #full > 0 and not recorded then
      local names = {}
      for i, c in ipairs(full) do names[i] = tostring(c.id) end
      err = errors.new("quota", "refresh_quota", format(
        "Truv shows %d refreshes per connection in 24 h already (%s); next slot in %ds",
        client.quota and client.quota.limit or quota_defaults.DEFAULT_LIMIT,
        table.concat(names, ", "), math.ceil(truv_nb - now)),
        { retry_at = truv_nb, op = "refresh_order", spent = names, expiring = expiring })
      return nil, err
    end
  end

  -- every check of what Truv and the store show is passed: the caller may
  -- keep the model it was done with (truv.renewal's --reuse-model)
  if opts.on_checked then opts.on_checked(p.model) end

  -- the caller's budget (a batch's cap on billed refreshes)
  if opts.admit and not opts.admit{ order_id = id, connections = #live } then
    return nil, errors.new("quota", "max_billed", "the run's cap on billed refreshes is " ..
                           "reached: not refreshed", { op = "refresh_order", max_billed = true,
                                                       expiring = expiring })
  end

  local reserved, keys, ticket, deferred = reserve(client, live, now, opts.partial)
  if not reserved then
    err = keys
    err.expired = #expired > 0 and expired or nil
    err.expiring = expiring
    return nil, err
  end
  local req = p.req
  if #reserved ~= #p.selected then
    req, err = client:build("refresh_order", id, narrowed(params, reserved), p.facts)
    if not req then
      if ticket then client.quota:release(keys, ticket) end
      return nil, err
    end
  end

  local baseline = p.model.refresh_order
  local doc, meta, fate = send_safely(client, req, id, baseline, opts,
                                      { ticket = ticket, keys = keys, at = now })

  if not doc then
    err = meta
    if fate == "not_created" and ticket and client.quota:release(keys, ticket) then
      err.quota_released = true   -- the reservation went back: this refresh counts nowhere
    end
    if err.kind == "refresh_limit" and keys and client.quota then
      -- Truv counts refreshes we do not see (other clients, the dashboard):
      -- believe it, and stop asking until the window frees.
      local t = client:now()
      for _, k in ipairs(keys) do client.quota:record_limit(k, t) end
      local _, next_free = client.quota:usage(keys[1], t)
      err.retry_at = err.retry_at or next_free
    end
    err.expired = #expired > 0 and expired or nil
    err.expiring = expiring
    return nil, err
  end
  meta.quota_ticket, meta.quota_keys = ticket, keys
  meta.deferred = #deferred > 0 and deferred or nil
  meta.expired = #expired > 0 and expired or nil
  meta.expiring = expiring
  meta.connections = #reserved
  return doc, meta
end

--- POST refresh/tasks/ inside the quota: one slot on the token's window,
-- released when Truv provably created nothing, Truv's own refusal recorded.
-- Sent once: the task API has no way to read back an ambiguous outcome, so
-- such an error is returned (maybe_sent = true) and the slot stays taken.
function _M.refresh_task(client, params)
  local req, err = client:build("create_refresh_task", nil, params)
  if not req then return nil, err end
  local store = client.quota
  local keys, ticket
  if store then
    local now = client:now()
    keys = { core.quota_key(params.access_token) }
    local t, not_before, spent = store:reserve(keys, now)
    if t == nil then return nil, store_failed(not_before) end
    if t == false then
      return nil, quota_error(store.limit, not_before, spent,
                              { { access_token = params.access_token, id = "access_token" } }, now)
    end
    ticket = t
  end
  local doc, meta = client:send(req)
  if doc then
    meta.quota_ticket, meta.quota_keys = ticket, keys
    return doc, meta
  end
  err = meta
  if ticket and definitely_not_created(err) then store:release(keys, ticket) end
  if store and err.kind == "refresh_limit" then
    local t = client:now()
    store:record_limit(keys[1], t)
    local _, next_free = store:usage(keys[1], t)
    err.retry_at = err.retry_at or next_free
  end
  return nil, err
end

return _M
