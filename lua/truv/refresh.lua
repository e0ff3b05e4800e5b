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
-- 2. Connections past their lifetime (default 180 days) are not refreshed:
--    they need the user to reconnect ("expired", routes to reverify).
-- 3. The quota store reserves one slot on every selected connection at once
--    (all or none); a spent connection answers "not before T" locally.
-- 4. The POST is sent once (opts.before_send(info) runs just before, for a
--    caller that must record the attempt durably first). A definite refusal (4xx, or a failure before the
--    request left) releases the reservation. An ambiguous failure (timeout
--    or reset after sending, a 5xx, a garbled answer) is reconciled: the
--    original order's `refresh_order` and its `is_refresh` events are read,
--    twice, a settle interval apart; a refresh created since the send is
--    adopted; only when none appeared is the request sent again. When the
--    reads themselves fail, the outcome stays unknown: the error says so
--    (code "unreconciled") and nothing is re-sent.
local core = require "truv.core"
local errors = require "truv.errors"

local type, ipairs, pairs, tostring = type, ipairs, pairs, tostring
local format = string.format

local _M = {}

_M.DEFAULTS = {
  expiry_days = 180,          -- connection lifetime (OAuth ~180 days); false: no check
  settle_s = 1,               -- wait before reading back after an ambiguous failure
  clock_skew_s = 300,         -- tolerance between our clock and Truv's timestamps
  max_sends = 3,              -- sends of one refresh when earlier ones provably failed
}

-- What each setting accepts (checked by truv.new; see truv.options).
_M.LIMITS = {
  expiry_days = { above = 0, max = 36500, unit = "days", otherwise = "false" },
  settle_s = { min = 0, max = 3600, unit = "seconds" },
  clock_skew_s = { min = 0, max = 86400, unit = "seconds" },
  max_sends = { integer = true, min = 1, max = 10 },
}

local function opt(client, opts, key)
  local v = opts[key]
  if v == nil and client.refresh_defaults then v = client.refresh_defaults[key] end
  if v == nil then v = _M.DEFAULTS[key] end
  return v
end

--- The order's model (truv.core.order_model): id, products, refresh_order,
-- connections { kind, id, suborder_number, access_token, created_at, ... }.
function _M.model(order)
  return core.order_model(order)
end

-- The kind of connection a product refreshes: payroll products refresh
-- employers, bank products financial accounts.
local KIND_OF = { income = "employers", employment = "employers", insurance = "employers",
                  assets = "financial_accounts", transactions = "financial_accounts" }
_M.KIND_OF = KIND_OF

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
        local hit
        for _, c in ipairs(all) do
          if c.kind == kind and ((s.id ~= nil and c.id == s.id) or
             (s.suborder_number ~= nil and tostring(c.suborder_number) == tostring(s.suborder_number))) then
            hit = c
          end
        end
        if not hit then
          problems[#problems + 1] = { field = format("%s[%d]", kind, i),
                                      message = "is not a connection of this order" }
        elseif not hit.access_token then
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
      if c.kind == kind and c.access_token then chosen[#chosen + 1] = c end
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

local function is_expired(c, now, days)
  return days and c.created_at and now - c.created_at > days * 86400
end

local function keys_of(conns)
  local keys = {}
  for i, c in ipairs(conns) do keys[i] = core.quota_key(c.access_token) end
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

-- The quota store's own failure (busy, unwritable): marked, so that a
-- caller tells it from Truv's answers (err.store = "quota").
local function store_failed(err)
  if type(err) == "table" then err.store = "quota" end
  return err
end

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
    local created = type(fresh.created_at) == "string" and core.parse_time(fresh.created_at)
    if not created or created >= sent_at - skew then return fresh end
  end
  local events, eerr = client:list_order_events(original_id, nil, { all = true })
  if not events then return nil, eerr end
  for _, ev in ipairs(events.results) do
    local ts = type(ev.timestamp) == "string" and core.parse_time(ev.timestamp)
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
    client._sleep(settle)
    local found, err = _M.find_created(client, id, baseline, sent_at, skew)
    if found then return found end
    if found == nil then
      return nil, errors.new("network", "unreconciled",
        "a refresh was sent and its outcome could not be read back: " ..
        (err and err.message or "unknown") .. "; it must not be sent again before " ..
        "the order is checked", { maybe_sent = true, op = "refresh_order",
                                  retry_at = err and err.retry_at })
    end
    client:_emit("info", { event = "reconcile", op = "refresh_order", round = round,
                           found = false })
  end
  return false
end

local function quota_error(limit, not_before, spent, conns, now)
  local names = {}
  for _, c in ipairs(conns) do
    for _, k in ipairs(spent) do
      if core.quota_key(c.access_token) == k then names[#names + 1] = tostring(c.id) end
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
    local used, next_free = store:usage(core.quota_key(c.access_token), now)
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
    local sent_at = client:now()
    if opts.before_send then
      -- the caller's write-ahead (a batch journal): durable before the POST
      opts.before_send{ order_id = id, sent_at = sent_at, baseline = baseline, sends = sends,
                        quota_ticket = reservation.ticket, quota_keys = reservation.keys }
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
      if err.kind == "network" then client._sleep(client:_backoff(sends, err, client:now())) end
    else
      local found, rerr = reconcile(client, id, baseline, sent_at, opts)
      if found then return found, { status = 200, reconciled = true, sends = sends } end
      if found == nil then return nil, rerr, "unknown" end
      client:_emit("info", { event = "resend", op = "refresh_order", path = req.path,
                             sends = sends })
    end
  end
  return nil, err, "not_created"
end

local refresh_order

function _M.refresh_order(client, id, params, opts)
  local inflight = client._inflight or {}
  client._inflight = inflight
  if inflight[id] then
    return nil, errors.new("invalid", "refresh_in_progress",
      "a refresh of this order is already in progress on this client", { op = "refresh_order" })
  end
  -- marked before anything that may yield (reading the order, a quota
  -- store's lock): coroutines and nginx light threads share the client
  inflight[id] = true
  local ok, doc, meta = pcall(refresh_order, client, id, params, opts)
  inflight[id] = nil
  if not ok then error(doc, 0) end
  return doc, meta
end

function refresh_order(client, id, params, opts)
  local original = opts.order
  if original == nil then
    local err
    original, err = client:get_order(id)
    if not original then return nil, err end
  end
  local model = original
  if not require("truv.reverify").is_model(original) then
    local merr
    model, merr = core.order_model(original)
    if not model then
      merr.op = "refresh_order"
      return nil, merr
    end
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
  local days = opt(client, opts, "expiry_days")
  local live, expired = {}, {}
  for _, c in ipairs(conns) do
    if is_expired(c, now, days) then
      expired[#expired + 1] = { kind = c.kind, id = c.id, created_at = c.created_at }
    else
      live[#live + 1] = c
    end
  end
  if #expired > 0 and (not opts.partial or #live == 0) then
    return nil, errors.new("expired", "connection_expired", format(
      "%d connection(s) older than %d days must be reconnected by the user",
      #expired, days), { op = "refresh_order", expired = expired })
  end

  local reserved, keys, ticket, deferred = reserve(client, live, now, opts.partial)
  if not reserved then
    err = keys
    err.expired = #expired > 0 and expired or nil
    return nil, err
  end
  if #reserved ~= #conns then
    req, err = client:build("refresh_order", id, narrowed(params, reserved), facts)
    if not req then
      if ticket then client.quota:release(keys, ticket) end
      return nil, err
    end
  end

  local baseline = model.refresh_order
  local doc, meta, fate = send_safely(client, req, id, baseline, opts,
                                      { ticket = ticket, keys = keys })

  if not doc then
    err = meta
    if fate == "not_created" and ticket then client.quota:release(keys, ticket) end
    if err.kind == "refresh_limit" and keys and client.quota then
      -- Truv counts refreshes we do not see (other clients, the dashboard):
      -- believe it, and stop asking until the window frees.
      local t = client:now()
      for _, k in ipairs(keys) do client.quota:record_limit(k, t) end
      local _, next_free = client.quota:usage(keys[1], t)
      err.retry_at = err.retry_at or next_free
    end
    err.expired = #expired > 0 and expired or nil
    return nil, err
  end
  meta.quota_ticket, meta.quota_keys = ticket, keys
  meta.deferred = #deferred > 0 and deferred or nil
  meta.expired = #expired > 0 and expired or nil
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
