--- What Truv shows of an order's refreshes: its most recent refresh order,
-- and when each connection was refreshed within the last window. Read by
-- truv.refresh before every refresh, so that refreshes this client never
-- saw (another host, another tool, another run with another quota store,
-- Truv's dashboard) count as Truv counts them, and so that an order
-- refreshed a moment ago is not paid for again (`not_within`).
--
--   local h, err = history.read(client, model, now, { window = 86400 })
--   h.latest   --> { id =, created_at =, model = } | nil: the order's
--                  `refresh_order` (Truv names the most recent one there)
--   h.times    --> { [quota key] = { t1, t2, ... } }: the creation instants
--                  of the refresh orders of the window that include that
--                  connection (every refresh task counts at Truv, whatever
--                  its outcome)
--   h.reads    --> the GETs it made (0 for an order never refreshed)
--
-- Where it looks, in that order, stopping as soon as it knows:
--   1. the original's `refresh_order` (the model the caller has): none, and
--      the order was never refreshed: nothing to read;
--   2. that refresh order (one GET): created before the window, and every
--      other refresh is older still;
--   3. otherwise the original's events with the refresh orders' own
--      (`is_refresh`, `order_id` = the refresh order; the flag that asks for
--      them is undocumented, see sandbox/README.md: Truv may ignore it, and
--      then only the most recent refresh is seen), and each refresh order
--      of the window read once for its connections (at most `max_reads`).
-- A refresh order's suborders carry the same access tokens as the
-- original's, so a refresh counts against exactly the connections it
-- refreshed (keyed by truv.quota.connection_key: the original's model may
-- carry quota keys instead of tokens). A refresh order Truv answers 404 for does not exist and
-- counts for nothing; any other read that fails fails the whole history
-- (nil, err): the caller must not refresh on a count it could not read.
local core = require "truv.core"
local key_of = require("truv.quota").connection_key

local type, ipairs, pairs = type, ipairs, pairs

local _M = {}

_M.DEFAULTS = {
  window = core.lists.defaults.quota_window_s,   -- Truv's rolling 24 h (the quota's)
  max_reads = 16,     -- refresh orders of one window read at most (3 per connection a day)
}

local time_of = require("truv.time").parse

-- The model of refresh order `id` (one GET), or nil, err.
local function read_model(client, id)
  return client:get_order_model(id)
end

local function add_times(times, model)
  local t = model.created_at
  if not t then return end
  for _, c in ipairs(model.connections or {}) do
    local k = key_of(c)
    if k then
      local list = times[k]
      if not list then
        list = {}
        times[k] = list
      end
      list[#list + 1] = t
    end
  end
end

-- The refresh orders the original's events name, with the earliest instant
-- each is seen at (its order_created event): { [id] = t }.
local function refresh_orders_seen(client, original_id)
  local events, err = client:list_order_events(original_id, { include_refresh_orders = "true" },
                                               { all = true })
  if not events then return nil, err end
  local seen = {}
  for _, ev in ipairs(events.results) do
    local id, ts = ev.order_id, time_of(ev.timestamp)
    if ev.is_refresh == true and type(id) == "string" and id ~= original_id and ts then
      if not seen[id] or ts < seen[id] then seen[id] = ts end
    end
  end
  return seen
end

--- See the top. `model` is the original order's model (truv.core
-- order_model); opts.window (seconds), opts.max_reads, opts.latest_only
-- (read only the most recent refresh order: h.times stays empty).
function _M.read(client, model, now, opts)
  opts = opts or {}
  local window = opts.window or _M.DEFAULTS.window
  local from = now - window
  local h = { times = {}, reads = 0 }
  local rid = model.refresh_order
  if type(rid) ~= "string" or rid == "" then return h end
  local latest, err = read_model(client, rid)
  h.reads = h.reads + 1
  if not latest then
    if err.kind == "not_found" then return h end   -- Truv has no such order: nothing counts
    return nil, err
  end
  h.latest = { id = rid, created_at = latest.created_at, model = latest }
  if opts.latest_only or not latest.created_at or latest.created_at <= from then return h end
  add_times(h.times, latest)
  local seen
  seen, err = refresh_orders_seen(client, model.id)
  h.reads = h.reads + 1
  if not seen then return nil, err end
  local left = opts.max_reads or _M.DEFAULTS.max_reads
  for id, ts in pairs(seen) do
    -- the event's instant is the order's creation (or later): a refresh seen
    -- before the window began was created before it too
    if id ~= rid and ts > from and left > 0 then
      local m, merr = read_model(client, id)
      h.reads, left = h.reads + 1, left - 1
      if not m and merr.kind ~= "not_found" then return nil, merr end
      if m and m.created_at and m.created_at > from then add_times(h.times, m) end
    end
  end
  return h
end

--- The instants of `list` in the window at `now` (t > now - window), oldest
-- first.
function _M.in_window(list, now, window)
  local out = {}
  for _, t in ipairs(list or {}) do
    if t > now - window then out[#out + 1] = t end
  end
  table.sort(out)
  return out
end

--- Does the refresh order `latest` (a model) include every connection of
-- `conns` (by access token or the quota key a connection carries, else
-- link)?
function _M.covers(latest, conns)
  local keys, links = {}, {}
  for _, c in ipairs(latest.connections or {}) do
    local k = key_of(c)
    if k then keys[k] = true end
    if c.link_id then links[c.link_id] = true end
  end
  for _, c in ipairs(conns) do
    local k = key_of(c)
    if not ((k and keys[k]) or (c.link_id and links[c.link_id])) then
      return false
    end
  end
  return #conns > 0
end

return _M
