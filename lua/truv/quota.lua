--- Refresh quota stores: the client's own sliding log of refreshes per
-- connection, so that it never sends a refresh Truv would refuse (3 per
-- access_token per rolling 24 h) and answers "not before T" instead.
--
--   local quota = require "truv.quota"
--   local store = quota.memory{ limit = 3, window = 86400 }   -- the defaults
--   local store = assert(quota.sqlite("/var/lib/app/quota.db"))  -- durable, shared
--   local key = quota.key(access_token)                        -- never the token
--
-- THE STORE CONTRACT. The client calls exactly these; any store (the C ones
-- here, an nginx shared dict, Redis) implements them with these semantics,
-- and spec/support/store_conformance.lua checks them.
--
-- Keys are the strings quota.key() makes (32 hex characters). Times are
-- seconds since the epoch (numbers, fractions allowed), kept to the
-- millisecond. An entry recorded at t is in the window at `now` iff
-- t > now - window: at exactly t + window it has left.
--
--   store:reserve(keys, now)
--     --> ticket                      (a string) on success
--     --> false, not_before, spent    when a key is full
--     --> nil, err                    when the store fails (err.kind "internal")
--     Atomic across all the keys: every key gets an entry at `now` tagged
--     with one fresh ticket, or none does, and nothing else that touches the
--     store (other workers, other processes) interleaves. A key is full when
--     it has `limit` entries in the window. When any key is full, nothing
--     changes; `spent` lists the full keys (each once) and not_before is when
--     all of them have room: for a full key with in-window entries
--     t1 <= ... <= tc, the (c - limit + 1)-th oldest leaves at that entry's
--     t + window; not_before is the latest over the full keys. A reserve at
--     exactly not_before succeeds. A key listed twice counts once.
--   store:release(keys, ticket)  --> true | nil, err
--     Removes that ticket's entries from those keys and nothing else. Only
--     for a request that provably never reached Truv. Releasing twice, or a
--     ticket the store never issued, is a no-op returning true.
--   store:record_limit(key, now)  --> true | nil, err
--     Truv said "Refresh limit for the access_token exceeded": its count
--     supersedes ours. The key's entries before `now` go and entries at `now`
--     without a ticket are added until it holds `limit`, so reserve refuses it
--     until exactly now + window.
--   store:record_count(key, times, now)  --> true | nil, err
--     Truv lists refreshes of the key at `times` (a list of instants: the
--     refresh orders of the connection it shows, another host's, tool's or
--     run's, and this store's own): its count supersedes ours when larger.
--     Of the times in the window, the newest `limit` count; when the key
--     holds fewer entries in the window than those, entries without a
--     ticket are added at the oldest of those times until it holds as many.
--     Nothing is removed, and a refresh the store already counts is not
--     counted again (the larger count is kept, not the sum): the same call
--     twice changes nothing. truv.refresh calls it, when a store has it,
--     with what Truv shows before every refresh (a store without it: the
--     refresh is still refused when Truv's own count is full).
--   store:usage(key, now)  --> used, next_free | nil, err
--     Entries in the window; when the key is full, the instant a slot frees
--     (what reserve would answer for it alone), else nil.
--   store.limit, store.window     numbers: the policy the store applies
--   store.kind, store.path        what it is ("memory", "sqlite", "shdict"), and
--                                 where (a SQLite file, a dictionary's name)
--   store:close()                 frees it (C stores also close when collected)
--
-- CONNECTION FACTS, an optional part of the contract (every store shipped
-- here has it; quota.has_facts(store) tells): what the client knows for
-- sure about a connection, per key, each fact as the latest instant it was
-- seen. truv.refresh reads them to refuse a connection known dead without
-- spending a refresh; truv.wait, truv.inbox and truv.receiver write them.
--   "dead"   it failed in a way only the user can fix (a login_error,
--            mfa_error, account_locked or unable_to_reset task, a
--            link-disconnected event); `reason` says which
--   "alive"  a refresh of it completed
--   "auth"   the user authenticated it again (a task of its link finished
--            done after a failure, a link-connected event)
--   store:note(key, fact, at [, reason])  --> true | nil, err
--     Keeps the latest instant per fact: an `at` older than the one kept
--     changes nothing. A reason (1 to 31 characters of a-z, 0-9, _ and -) is
--     only for "dead", and goes with the instant it came with.
--   store:facts(key)  --> { dead_at =, dead_reason =, alive_at =, auth_at = } | nil, err
--     Only what was noted (an empty table when nothing was); times in
--     seconds since the epoch, to the millisecond.
--   A key's facts are kept at least 400 days after their latest instant
--   (then pruned lazily), apart from its refresh log: reserve, release and
--   record_limit never touch them, nor they the log.
--
-- Misuse raises (keys not a non-empty array of key strings, a time that is not
-- a finite number). Every handle on one shared backing store (a SQLite file,
-- a Redis database) must use the same limit and window.
--
-- Threads and coroutines: a C store handle is used by one OS thread at a time;
-- its calls never yield, so coroutines (and the light threads of one nginx
-- worker) may share it freely.
--
-- Processes: a memory store is private to its process, so the workers of an
-- nginx each keep their own (and together admit `limit` per worker): inside
-- nginx use truv.store.shdict, or SQLite. A SQLite file is shared by every
-- process that opens it: writes take the file's write lock (a process
-- killed holding it leaves nothing of its transaction and blocks nobody),
-- waiting up to 10 s for another process before failing with "store_busy".
-- A SQLite handle works only in the process that opened it: a forked child
-- (an nginx worker, for a store made in init_by_lua) gets a "store_forked"
-- error; open it after the fork (init_worker_by_lua).
local core = require "truv.core"
local options = require "truv.options"

local type, error, pairs, tostring, pcall = type, error, pairs, tostring, pcall
local floor, huge = math.floor, math.huge
local format = string.format

-- The policy the stores apply when given none (the core's, truv/quota.h):
-- Truv's 3 refreshes per connection in a rolling 24 h (truv-api.md §8).
local _M = {
  _VERSION = core._VERSION,
  DEFAULT_LIMIT = core.lists.defaults.quota_limit,      -- refreshes per connection per window
  DEFAULT_WINDOW = core.lists.defaults.quota_window_s,  -- seconds
  MAX_LIMIT = core.lists.limits.quota_limit,            -- a larger limit is refused
}

local function argerror(fname, n, msg)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

-- Checks an options table against the names it may hold; returns it (or {}).
local function check_opts(fname, n, opts, allowed)
  if opts == nil then return {} end
  if type(opts) ~= "table" then argerror(fname, n, "table expected, got " .. type(opts)) end
  for k in pairs(opts) do
    if not allowed[k] then argerror(fname, n, "unknown option '" .. tostring(k) .. "'") end
  end
  local limit, window, expected = opts.limit, opts.window, opts.expected
  if limit ~= nil and (type(limit) ~= "number" or limit ~= floor(limit) or limit < 1
                       or limit > _M.MAX_LIMIT) then
    argerror(fname, n, "'limit' must be an integer from 1 to " .. _M.MAX_LIMIT)
  end
  if window ~= nil and (type(window) ~= "number" or window < 0.001 or window == huge) then
    argerror(fname, n, "'window' must be a number of seconds >= 0.001")
  end
  if expected ~= nil and (type(expected) ~= "number" or expected < 0 or expected > 1e9) then
    argerror(fname, n, "'expected' must be a number of connections >= 0")
  end
  return opts
end

--- The connection key of an access token: a hash, safe to store and log.
function _M.key(access_token)
  if type(access_token) ~= "string" or access_token == "" then
    argerror("key", 1, "non-empty access token string expected, got " .. type(access_token))
  end
  return core.quota_key(access_token)
end

--- The key of a connection of an order's model: its access token's, or the
-- key it carries instead (`quota_key`: a model kept where no token may be,
-- such as a renewal's journal); nil for a connection never connected (no
-- token). A connection with a key is as good as one with its token
-- everywhere the quota, the facts and Truv's history are concerned.
function _M.connection_key(c)
  local t = c.access_token
  if type(t) == "string" and t ~= "" then return core.quota_key(t) end
  local k = c.quota_key
  if type(k) == "string" and #k == 32 and not k:find("[^0-9a-f]") then return k end
  return nil
end

--- An in-process store: fast (millions of reserves a second), lost with the
-- process, private to it. opts: limit, window (seconds), expected (how many
-- connections to size for; it grows anyway).
function _M.memory(opts)
  opts = check_opts("memory", 1, opts, { limit = true, window = true, expected = true })
  return core.quota_memory{ limit = opts.limit, window = opts.window, expected = opts.expected }
end

--- A durable store in a SQLite file, shared safely by every process on the
-- machine that opens it. Returns the store, or nil, err. opts: limit, window.
function _M.sqlite(path, opts)
  if type(path) ~= "string" or path == "" then
    argerror("sqlite", 1, "file path expected, got " .. type(path))
  end
  opts = check_opts("sqlite", 2, opts, { limit = true, window = true })
  return core.quota_sqlite(path, { limit = opts.limit, window = opts.window })
end

--- A store in Redis shared by a whole fleet (every host, every process):
-- opts url (redis://, rediss://, unix://) or host/port/..., namespace
-- ("truv:<client id>"), limit, window, timeouts; see truv.store.redis.
-- Returns the store, or nil, err (unreachable, eviction allowed, another
-- policy on the namespace).
function _M.redis(opts)
  return require("truv.store.redis").quota(opts)
end

-- ------------------------------------------------------------ locations

--- Where a durable quota store lives when nothing says otherwise, so that
-- every run of a machine's user shares one (a quota that lived beside each
-- batch's journal was a new quota for every new journal):
--   $XDG_STATE_HOME/truv/quota.db   when XDG_STATE_HOME is set (absolute)
--   /var/lib/truv/quota.db          as root
--   $HOME/.local/state/truv/quota.db
-- Returns the path and its directory, or nil, err when neither
-- XDG_STATE_HOME nor HOME says where. opts.getenv (default os.getenv) and
-- opts.euid (default the process's) are for tests.
function _M.default_path(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local euid = opts.euid or core.euid()
  local dir
  local xdg = getenv("XDG_STATE_HOME")
  if xdg and xdg:sub(1, 1) == "/" then
    dir = xdg:gsub("/+$", "") .. "/truv"
  elseif euid == 0 then
    dir = "/var/lib/truv"
  else
    local home = getenv("HOME")
    if not (home and home:sub(1, 1) == "/") then
      return nil, require("truv.errors").new("invalid", "quota_location",
        "no place for the quota store: set XDG_STATE_HOME or HOME, or give a path")
    end
    dir = home:gsub("/+$", "") .. "/.local/state/truv"
  end
  return dir .. "/quota.db", dir
end

--- A quota location as a person writes it (a command's --quota): a file
-- path, or a URL whose scheme says which store. Returns { kind = "sqlite",
-- path = }, { kind = "redis", url = } (redis://, rediss://, unix://), or
-- nil, err (kind "invalid"): a URL scheme no store here serves is refused
-- by name, rather than taken for a file called "redis:".
function _M.location(text)
  local errors = require "truv.errors"
  if type(text) ~= "string" or text == "" then
    return nil, errors.new("invalid", "quota_location", "a quota store path or URL expected")
  end
  local scheme, rest = text:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return { kind = "sqlite", path = text } end
  scheme = scheme:lower()
  if scheme == "file" and rest:sub(1, 1) == "/" then return { kind = "sqlite", path = rest } end
  if scheme == "redis" or scheme == "rediss" or scheme == "unix" or scheme == "redis+unix" then
    local ok, perr = require("truv.store.redis").parse_url(text)
    if not ok then return nil, errors.new("invalid", "quota_location", perr.message) end
    return { kind = "redis", url = text }
  end
  return nil, errors.new("invalid", "quota_location", "unknown scheme '" .. scheme ..
    "' in the quota location '" .. text .. "': a file path expected")
end

--- Opens the SQLite store at `path`, making its directory first (private:
-- mode 0700) when it is the default location; the file itself is made
-- with mode 0600. Returns the store or nil, err.
function _M.open_file(path, opts)
  opts = opts or {}
  if opts.make_dir then
    local ok, err = core.private_dir(opts.make_dir)
    if not ok then return nil, err end
  end
  return _M.sqlite(path, opts.policy)
end

--- A client's `quota` option, made into the store it names. A store that
-- cannot be opened fails here, loudly, instead of leaving an absent value
-- that a caller could not tell from "use the default":
--   nil             the in-memory default (where.default = true: the client
--                   says so in its log, see truv.new)
--   false           no quota store at all
--   "memory"        an in-memory store, chosen
--   "PATH" or URL   a SQLite file (truv.quota.location), opened here; a
--                   redis:// URL a Redis store, under the namespace
--                   "truv:<ctx.client_id>" unless the URL names one
--                   (?namespace=)
--   a store         itself
-- Returns store (nil for none), where = { kind =, path =, default = }, or
-- nil, nil, err.
function _M.from_option(v, ctx)
  if v == nil then return _M.memory(), { kind = "memory", default = true } end
  if v == false then return nil, { kind = "none" } end
  if v == "memory" then return _M.memory(), { kind = "memory" } end
  if type(v) == "string" then
    local loc, err = _M.location(v)
    if not loc then return nil, nil, err end
    if loc.kind == "redis" then
      local client_id = type(ctx) == "table" and ctx.client_id
      local rstore, rerr = _M.redis{ url = loc.url, namespace = not loc.url:find("namespace=", 1,
        true) and type(client_id) == "string" and client_id ~= "" and ("truv:" .. client_id)
        or nil }
      if not rstore then return nil, nil, rerr end
      return rstore, { kind = "redis", path = rstore.path }
    end
    local store, serr = _M.sqlite(loc.path)
    if not store then
      serr.message = format("cannot open the quota store %s: %s", loc.path, tostring(serr.message))
      return nil, nil, serr
    end
    return store, { kind = "sqlite", path = loc.path }
  end
  return v, options.store_where(v)
end

--- Does `v` look like a quota store (has every method of the contract)?
function _M.is_store(v)
  local ok, res = pcall(function()
    return type(v.reserve) == "function" and type(v.release) == "function"
       and type(v.record_limit) == "function" and type(v.usage) == "function"
       and type(v.limit) == "number" and type(v.window) == "number"
  end)
  return ok and res or false
end

--- Does `v` keep connection facts (store:note and store:facts)?
function _M.has_facts(v)
  local ok, res = pcall(function()
    return type(v.note) == "function" and type(v.facts) == "function"
  end)
  return ok and res or false
end

return _M
