--- Connection facts: what the client knows for sure about a connection,
-- kept in the quota store (the optional facts part of truv.quota's store
-- contract), so that a connection known to need the user is not refreshed
-- (and billed) for nothing, and one that came back is refreshed again.
--
--   dead   it failed in a way only the user can fix: a task ended in
--          login_error, mfa_error, account_locked or unable_to_reset, or a
--          link-disconnected webhook came (the reason says which)
--   alive  a refresh of it completed
--   auth   the user authenticated it again: a task of its link finished
--          done after the failure (Bridge update mode), or a link-connected
--          webhook came
--
-- A connection is keyed by the hash of its access token (truv.quota.key,
-- never the token). Webhooks name a link, not a token: what they say is
-- kept under the hash of "link:" .. link_id, and a connection's facts are
-- both keys' together (the latest instant of each fact).
--
-- A link-disconnected is weaker evidence than a task status: Truv sends it
-- when a refresh task fails, whatever the cause (a provider outage too), so
-- truv.refresh refuses on it alone only when Truv's task list confirms the
-- link's newest task failed in a way only the user can fix.
--
-- Writers: truv.wait and truv.inbox (what a refresh ended in), truv.receiver
-- given `facts = store` (link-connected, link-disconnected, a refresh that
-- failed or completed). Reader: truv.refresh (refuses a connection whose
-- facts say dead and nothing newer says alive or auth, after checking
-- Truv's task list for a re-authentication). Writing a fact never fails a
-- caller: a store that cannot write is reported through `warn` and the
-- fact is lost (a refresh is then simply not refused).
local core = require "truv.core"
local quota = require "truv.quota"
local time = require "truv.time"

local type, ipairs, pairs, pcall, tostring = type, ipairs, pairs, pcall, tostring
local max = math.max

local _M = {}

-- Task statuses after which only the user can make the connection work
-- (truv-api.md §5: re-authenticate through Bridge update mode): those the
-- core's routing table sends to reverify (login_error, mfa_error,
-- account_locked, unable_to_reset).
_M.DEAD = {}
for status, e in pairs(core.route_table().task) do
  if e.route == "reverify" then _M.DEAD[status] = true end
end

--- `store` when it keeps facts (has note() and facts()), else nil.
function _M.store(store)
  if store and quota.has_facts(store) then return store end
  return nil
end

--- The key of a connection's access token, and of a link.
function _M.key(access_token)
  return core.quota_key(access_token)
end

function _M.link_key(link_id)
  return core.quota_key("link:" .. link_id)
end

local function merge_into(f, g)
  if g.dead_at and (not f.dead_at or g.dead_at >= f.dead_at) then
    f.dead_at, f.dead_reason = g.dead_at, g.dead_reason
  end
  if g.alive_at then f.alive_at = max(f.alive_at or g.alive_at, g.alive_at) end
  if g.auth_at then f.auth_at = max(f.auth_at or g.auth_at, g.auth_at) end
  return f
end

--- The facts of connection `c` ({ access_token = or quota_key =, link_id = }):
-- both keys' together. Returns the table (empty when nothing is known) or
-- nil, err.
function _M.read(store, c)
  local f = {}
  local key = quota.connection_key(c)
  if key then
    local g, err = store:facts(key)
    if not g then return nil, err end
    merge_into(f, g)
  end
  if type(c.link_id) == "string" and c.link_id ~= "" then
    local g, err = store:facts(_M.link_key(c.link_id))
    if not g then return nil, err end
    merge_into(f, g)
  end
  return f
end

--- Do these facts say the connection needs the user? dead, and nothing
-- seen since says it works (a completed refresh) or came back (auth).
function _M.is_dead(f)
  if not f.dead_at then return false end
  if f.alive_at and f.alive_at > f.dead_at then return false end
  if f.auth_at and f.auth_at > f.dead_at then return false end
  return true
end

-- A reason the store accepts: the status, or nothing.
local function reason_of(status)
  if type(status) == "string" and #status <= 31 and not status:find("[^a-z0-9_%-]") then
    return status
  end
  return nil
end

--- Notes `fact` about connection `c` at `at`: under its token's key when it
-- has one (or the quota key it carries), else under its link's.
-- `warn(event)` hears a failure.
function _M.note(store, c, fact, at, reason, warn)
  if not store or type(at) ~= "number" then return false end
  local key = quota.connection_key(c)
  if not key and type(c.link_id) == "string" and c.link_id ~= "" then
    key = _M.link_key(c.link_id)
  end
  if not key then return false end
  local ok, res, err = pcall(store.note, store, key, fact,
                             at, fact == "dead" and reason_of(reason) or nil)
  if ok and res then return true end
  if warn then
    warn{ event = "facts_not_kept", fact = fact, error = tostring(ok and err or res) }
  end
  return false
end

--- Notes what a refresh of `c` ended in: a task status (done: alive; one
-- of DEAD: dead with that status), at `at`.
function _M.note_outcome(store, c, status, at, warn)
  if status == "done" or status == "completed" then
    return _M.note(store, c, "alive", at, nil, warn)
  end
  if _M.DEAD[status] then return _M.note(store, c, "dead", at, status, warn) end
  return false
end

-- How close two events must be to be about one failure (seconds).
local SAME_FAILURE_S = 60

--- What a webhook says about its link (a parsed event, truv.webhook.parse):
-- link-connected: auth; order-refresh-failed or task-status-updated with a
-- status of DEAD: dead, with that status; task-status-updated done or
-- order-status-updated completed: alive; link-disconnected: dead, reason
-- "link-disconnected", unless a cause of that failure was already noted
-- (Truv sends it for a failed refresh whatever the cause: truv.refresh
-- refuses on it alone only when Truv's tasks confirm the cause). Noted
-- under the link's key.
function _M.note_event(store, ev, warn)
  if not store or type(ev.link_id) ~= "string" then return false end
  local at = ev.updated_at
  if type(at) ~= "number" or at <= 0 then return false end
  local c, t, status = { link_id = ev.link_id }, ev.event_type, ev.status
  if t == "link-disconnected" then
    local ok, f = pcall(store.facts, store, _M.link_key(ev.link_id))
    if ok and type(f) == "table" and f.dead_at and f.dead_at >= at - SAME_FAILURE_S then
      return false
    end
    return _M.note(store, c, "dead", at, t, warn)
  end
  if t == "link-connected" then return _M.note(store, c, "auth", at, nil, warn) end
  if t == "order-refresh-failed" or t == "task-status-updated" or
     t == "order-status-updated" then
    return _M.note_outcome(store, c, status, at, warn)
  end
  return false
end

-- ------------------------------------------------------------ tasks

local time_of = time.parse
_M.time_of = time_of   -- (kept: truv.time.parse)

--- The tasks of link `link_id` among user `user_id`'s (GET tasks/?user_id=,
-- every page; the list is filtered here, by each task's link_id), newest
-- first, each { id, status, error_message, created_at, updated_at } with
-- times as epoch seconds. `cache` (a table) keeps a user's list for the
-- caller's other links. Returns the list or nil, err.
function _M.link_tasks(client, user_id, link_id, cache)
  local list = cache and cache[user_id]
  if not list then
    local doc, err = client:list_tasks({ user_id = user_id }, { all = true })
    if not doc then return nil, err end
    list = {}
    for _, t in ipairs(doc.results) do
      if type(t) == "table" and type(t.link_id) == "string" then
        list[#list + 1] = {
          id = type(t.id) == "string" and t.id or nil, link_id = t.link_id,
          status = type(t.status) == "string" and t.status or nil,
          error_message = type(t.error_message) == "string" and t.error_message or nil,
          created_at = time_of(t.created_at), updated_at = time_of(t.updated_at),
        }
      end
    end
    table.sort(list, function(a, b) return (a.created_at or 0) > (b.created_at or 0) end)
    if cache then cache[user_id] = list end
  end
  local out = {}
  for _, t in ipairs(list) do
    if t.link_id == link_id then out[#out + 1] = t end
  end
  return out
end

--- A task's instant: when it last changed, else when it was created.
function _M.task_time(t)
  return t.updated_at or t.created_at
end

return _M
