--- Redis stores: one refresh quota, one webhook de-duplication and one rate
-- budget for a whole fleet (several gateway hosts, batches on other hosts)
-- sharing one Truv secret.
--
--   local quota = require("truv.quota").redis{ url = "redis://10.0.0.5:6379/0",
--                                               namespace = "truv:" .. client_id }
--   local hooks = require("truv.dedupe").redis{ url = ..., namespace = ... }
--
-- Both implement the store contracts of truv.quota and truv.dedupe exactly
-- (spec/support/store_conformance.lua runs against them, in Lua 5.4 and in
-- nginx). Each operation is ONE server-side script (core/redis/*.lua,
-- embedded in truv.core, sent as EVALSHA with EVAL when the server lacks it:
-- restarted, flushed, failed over), never a read then a write from here.
--
-- Where the bytes go: outside nginx, the C core's blocking connection with
-- millisecond deadlines (truv/redis.h); inside nginx, cosockets
-- (truv.store.redis_cosocket: a keep-alive pool, never a blocking call).
-- Both use the core's RESP codec (hiredis).
--
-- URL: redis://[[user]:password@]host[:port][/db], rediss:// (TLS; verified
-- against the system's CAs, or opts.ca_file; in nginx against
-- lua_ssl_trusted_certificate), unix:///path/to/redis.sock[?db=N] (also
-- redis+unix://). A password may be percent-encoded. Options:
--   url, or host/port/unix_path/user/password/db/tls
--   namespace   the hash tag's content: every key is "{<namespace>}:..."
--               (default "truv"; use "truv:<client id>" per Truv client)
--   connect_timeout_ms, timeout_ms   (default 1000 and 1000)
--   ca_file, server_name, insecure    TLS (outside nginx)
--   assume_noeviction   true when CONFIG is not allowed (managed Redis) and
--               the operator vouches for maxmemory-policy noeviction
--   pool_size   nginx: connections kept per worker (default 32)
--   replicas    quota only: a reservation counts once this many replicas
--               acknowledged it (WAIT, within replica_timeout_ms: 500);
--               otherwise the refresh is not sent (code store_unreplicated)
--               and the entry stays counted. Default 0: the master's word.
--
-- Redis Cluster: name any node; a handle follows MOVED to the node that
-- owns its namespace's slot (and ASK during a migration, once). Every key
-- of a handle is in that one slot. Cluster nodes have database 0 only.
--
-- KEY SCHEMA (T = "{<namespace>}", one hash slot: Redis Cluster runs every
-- multi-key script on one node; <key> = truv.quota.key, 32 hex):
--   T:q:<key>   sorted set   a connection's refresh log (score: ms, member: ticket)
--                            TTL 2 x window + 60 s after its last write
--   T:f:<key>   hash         its facts (dead/alive/auth ms, reason), TTL 400 days
--   T:qp        string       the policy "<limit>/<window_ms>" all handles share
--   T:s:<id>    string       a webhook id's expiry (ms), TTL ttl + 60 s
--   T:o:<obj>   string       an object's updated_at (ms), TTL 30 days
--   T:rl, T:cd               the rate budget's log and its 429 cooldown
--                            (truv.ratelimit)
--
-- FAILURE IS CLOSED AND LOUD. Any failure (Redis unreachable, a deadline
-- passed, an error reply such as READONLY, LOADING, OOM, MASTERDOWN) makes
-- the operation return nil, err with err.kind "internal" and err.code
-- "store_unavailable" (or "store_timeout": the command may have run;
-- "store_readonly", "store_loading", "store_full" for those replies): a
-- refresh is then not sent, a webhook is answered 500 (Truv retries it).
-- A reserve that timed out may have been made: its entry then stays
-- counted (fewer refreshes, never more). A connection that failed is
-- closed, never reused. Redis must evict nothing: opening checks that
-- maxmemory-policy is noeviction and refuses otherwise (an evicted log
-- would admit refreshes past the limit).
local core = require "truv.core"
local errors = require "truv.errors"

local type, error, tostring, tonumber, pairs, ipairs, setmetatable, pcall =
  type, error, tostring, tonumber, pairs, ipairs, setmetatable, pcall
local floor, huge, ceil = math.floor, math.huge, math.ceil
local format, match = string.format, string.match
local unpack = table.unpack or unpack   -- luacheck: ignore

local _M = {}

local FACT_RETENTION_S = 400 * 86400
local ORDER_TTL_S = 30 * 86400

-- ------------------------------------------------------------------ URLs

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function invalid(msg)
  return nil, errors.new("invalid", "redis_url", msg)
end

--- Parses a Redis URL into endpoint fields. Returns the table or nil, err.
function _M.parse_url(url)
  if type(url) ~= "string" or url == "" then return invalid("a Redis URL expected") end
  local scheme, rest = match(url, "^(%a[%w+.-]*)://(.*)$")
  scheme = scheme and scheme:lower()
  local ep = {}
  local query
  rest, query = match(rest or "", "^([^?]*)%??(.*)$")
  if scheme == "unix" or scheme == "redis+unix" then
    local userinfo, path = match(rest, "^(.*)@(/.*)$")
    if not userinfo then path = rest end
    if not path or path:sub(1, 1) ~= "/" then
      return invalid("a unix:// Redis URL names an absolute socket path")
    end
    ep.unix_path = unescape(path)
    if userinfo then
      local u, p = match(userinfo, "^([^:]*):(.*)$")
      if u then ep.user, ep.password = u ~= "" and unescape(u) or nil, unescape(p)
      else ep.password = unescape(userinfo) end
    end
  elseif scheme == "redis" or scheme == "rediss" then
    ep.tls = scheme == "rediss"
    local auth, hostport, path = match(rest, "^(.*)@([^@/]*)(.*)$")
    if not auth then hostport, path = match(rest, "^([^/]*)(.*)$") end
    if auth then
      local u, p = match(auth, "^([^:]*):(.*)$")
      if u then ep.user, ep.password = u ~= "" and unescape(u) or nil, unescape(p)
      else ep.password = unescape(auth) end
    end
    local host, port = match(hostport, "^%[([%x:.]+)%]:?(%d*)$")
    if not host then host, port = match(hostport, "^([^:]+):?(%d*)$") end
    if not host or host == "" then return invalid("no host in the Redis URL") end
    ep.host, ep.port = host, tonumber(port ~= "" and port or "6379")
    if ep.port < 1 or ep.port > 65535 then return invalid("a Redis port is 1 to 65535") end
    local db = match(path, "^/(%d*)/?$")
    if path ~= "" and not db then return invalid("the Redis URL's path is the database number") end
    if db and db ~= "" then ep.db = tonumber(db) end
  else
    return invalid("a Redis URL is redis://, rediss:// or unix://, not '" ..
                   tostring(scheme or url) .. "'")
  end
  for k, v in query:gmatch("([^&=]+)=([^&]*)") do
    if k == "db" then ep.db = tonumber(v)
    elseif k == "timeout_ms" or k == "connect_timeout_ms" then ep[k] = tonumber(v)
    elseif k == "namespace" then ep.namespace = unescape(v)
    else return invalid("unknown Redis URL parameter '" .. k .. "'") end
  end
  if ep.db and (ep.db ~= floor(ep.db) or ep.db < 0) then
    return invalid("the Redis database is a number >= 0")
  end
  return ep
end

--- The URL without its password, for messages and logs.
function _M.redact_url(url)
  return (tostring(url):gsub("^(%a[%w+.-]*://)([^@/]*)@", function(s, auth)
    local u = match(auth, "^([^:]*):")
    return s .. (u and u ~= "" and (u .. ":***") or "***") .. "@"
  end))
end

-- ------------------------------------------------------------ transports

local ENDPOINT_FIELDS = { "host", "port", "unix_path", "user", "password", "db", "tls",
  "ca_file", "server_name", "insecure", "connect_timeout_ms", "timeout_ms" }

--- The endpoint an options table names (opts.url and/or the fields).
local function endpoint(opts)
  local ep = {}
  if opts.url ~= nil then
    local parsed, err = _M.parse_url(opts.url)
    if not parsed then return nil, err end
    ep = parsed
  end
  for _, k in ipairs(ENDPOINT_FIELDS) do
    if opts[k] ~= nil then ep[k] = opts[k] end
  end
  if not ep.host and not ep.unix_path then
    return nil, errors.new("invalid", "redis_url", "a Redis url (or host, or unix_path) expected")
  end
  ep.port = ep.port or 6379
  ep.name = ep.unix_path or format("%s:%d", ep.host, ep.port)
  return ep
end

--- A transport to the endpoint: the core's connection outside nginx,
-- cosockets inside. t:call(...) -> true, v | false, text | nil, err, maybe_sent.
function _M.transport(opts)
  local ep, err = endpoint(opts)
  if not ep then return nil, err end
  if ngx then   -- luacheck: ignore
    return require("truv.store.redis_cosocket").new(ep, opts), ep
  end
  local fields = {}
  for _, k in ipairs(ENDPOINT_FIELDS) do fields[k] = ep[k] end
  local ok, conn = pcall(core.redis_connect, fields)
  if not ok then return nil, errors.new("invalid", "redis_options", tostring(conn)) end
  return conn, ep
end

-- ---------------------------------------------------------------- errors

local REPLY_CODES = {
  READONLY = "store_readonly", LOADING = "store_loading", OOM = "store_full",
  MASTERDOWN = "store_unavailable", BUSY = "store_unavailable",
  TRYAGAIN = "store_unavailable", CLUSTERDOWN = "store_unavailable",
  MOVED = "store_moved", ASK = "store_moved", CROSSSLOT = "store_moved",
  NOAUTH = "store_auth", WRONGPASS = "store_auth",
}

local function store_error(self, err, redis_text)
  local e
  if redis_text then
    local word = match(redis_text, "^(%u+)") or "ERR"
    e = errors.new("internal", REPLY_CODES[word] or "store_unavailable",
                   format("the %s store (Redis at %s) is unavailable: %s", self.what,
                          self.endpoint_name, redis_text))
  else
    local code = type(err) == "table" and err.code or "store_unavailable"
    local msg = type(err) == "table" and err.message or tostring(err)
    e = errors.new("internal", code == "store_timeout" and code or
                   (code == "store_auth" and code or "store_unavailable"),
                   format("the %s store is unavailable: %s", self.what, tostring(msg)))
  end
  return e
end

-- ---------------------------------------------------------------- scripts

local scripts = {}   -- name -> { text =, sha = }
local function script(name)
  local s = scripts[name]
  if not s then
    local text, sha = core.redis_script(name)
    assert(text, "no Redis script " .. name)
    s = { text = text, sha = sha }
    scripts[name] = s
  end
  return s
end
_M.script = script

local Base = {}
Base.__index = Base

-- One command on transport t, and when `wait` is given ({ "WAIT", n, ms })
-- that WAIT right behind it on the same connection (pipelined where
-- connections are pooled): ok, v, maybe_sent, and the replicas that
-- acknowledged (nil unless the command succeeded and WAIT answered).
local function exchange(t, cmd, wait)
  if not wait then return t:call(unpack(cmd, 1, cmd.n or #cmd)) end
  if t.call_many then
    local r, err, maybe = t:call_many({ cmd, wait })
    if not r then return nil, err, maybe end
    return r[1][1], r[1][2], nil, (r[1][1] and r[2][1]) and r[2][2] or nil
  end
  -- one connection per handle: the next call goes over the same one unless
  -- this one failed (then no WAIT is sent)
  local ok, v, maybe = t:call(unpack(cmd, 1, cmd.n or #cmd))
  if not ok then return ok, v, maybe end
  local wok, acks = t:call(unpack(wait))
  return ok, v, nil, wok and acks or nil
end

--- One call, following a Redis Cluster redirection: MOVED (the slot lives
-- on another node, which becomes this handle's) or ASK (a slot being
-- migrated: asked there once, after ASKING). The command did not run where
-- it was redirected from, so sending it again is safe. At most 3 hops.
-- cmd is an array (cmd.n its length when set); wait as for exchange().
function Base:_call(cmd, wait)
  local ok, v, maybe, acks = exchange(self.conn, cmd, wait)
  for _ = 1, 3 do
    if ok ~= false or not self.ep then break end
    local kind, host, port = match(v, "^(%u+) %d+ (%S+):(%d+)$")
    if kind ~= "MOVED" and kind ~= "ASK" then break end
    local o = {}
    for k, val in pairs(self.ep) do o[k] = val end
    o.url, o.unix_path, o.name = nil, nil, nil
    o.host, o.port = host:gsub("^%[(.*)%]$", "%1"), tonumber(port)
    local t, terr = _M.transport(o)
    if not t then return nil, terr, false end
    if kind == "MOVED" then
      if self.own_conn and self.conn.close then self.conn:close() end
      self.conn, self.own_conn = t, true
      self.endpoint_name = format("%s:%d", o.host, o.port)
      ok, v, maybe, acks = exchange(t, cmd, wait)
    else
      ok, v, maybe = t:call("ASKING")
      if ok then ok, v, maybe, acks = exchange(t, cmd, wait) end
      if t.close then t:close() end
    end
  end
  return ok, v, maybe, acks
end

--- One command: the value, or nil, err (a failed call or an error reply).
-- Also returns the Redis error text and maybe_sent.
function Base:_cmd(...)
  local ok, v, maybe = self:_call({ n = select("#", ...), ... })
  if ok then return v end
  if ok == false then return nil, store_error(self, nil, v), v end
  return nil, store_error(self, v), nil, maybe
end

--- Runs a script: EVALSHA, and EVAL when the server lacks it (NOSCRIPT).
-- With `wait` ({ "WAIT", n, ms }), a fifth result: the replicas that
-- acknowledged the script's writes.
function Base:_run(name, keys, args, wait)
  local s = script(name)
  local n = #keys
  local cmd = { "EVALSHA", s.sha, n }
  for i = 1, n do cmd[3 + i] = keys[i] end
  for i = 1, #args do cmd[3 + n + i] = args[i] end
  cmd.n = 3 + n + #args
  local ok, v, maybe, acks = self:_call(cmd, wait)
  if ok == false and match(v, "^NOSCRIPT") then
    cmd[1], cmd[2] = "EVAL", s.text
    ok, v, maybe, acks = self:_call(cmd, wait)
  end
  if ok then return v, nil, nil, nil, acks end
  if ok == false then return nil, store_error(self, nil, v), v end
  return nil, store_error(self, v), nil, maybe
end

-- Checks once per handle (lazily in nginx, where cosockets do not exist
-- while a worker starts): no eviction, and the namespace's quota policy.
function Base:_prepare()
  if self.prepared then return true end
  if not self.assume_noeviction then
    local v, err, text = self:_cmd("CONFIG", "GET", "maxmemory-policy")
    if not v then
      if text then
        return nil, errors.new("invalid", "store_eviction", format(
          "cannot check Redis's maxmemory-policy at %s (%s): it must be noeviction; if " ..
          "CONFIG is not allowed, make sure of it and pass assume_noeviction = true",
          self.endpoint_name, text))
      end
      return nil, err
    end
    if v[2] ~= "noeviction" then
      return nil, errors.new("invalid", "store_eviction", format(
        "Redis at %s evicts keys (maxmemory-policy %s): an evicted refresh log would let " ..
        "refreshes past Truv's limit; set maxmemory-policy noeviction", self.endpoint_name,
        tostring(v[2])))
    end
  end
  if self.policy then
    local held, err = self:_cmd("SET", self.tag .. ":qp", self.policy, "NX", "GET")
    if held == nil then return nil, err end
    if held and held ~= self.policy then
      return nil, errors.new("invalid", "store_policy", format(
        "the namespace %s holds a quota kept with limit/window_ms %s, not %s: every handle " ..
        "on one namespace must use the same limit and window", self.tag, held, self.policy))
    end
  end
  self.prepared = true
  return true
end

-- A store's script: the handle checked once (_prepare), then _run.
function Base:_script(name, keys, args, wait)
  local ok, err = self:_prepare()
  if not ok then return nil, err end
  return self:_run(name, keys, args, wait)
end

function Base:close()
  if self.conn and self.own_conn and self.conn.close then self.conn:close() end
  self.conn = nil
  return true
end

local function argerror(fname, n, msg)
  error(format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

local function finite(v)
  return type(v) == "number" and v == v and v ~= huge and v ~= -huge
end

local function ms(t) return floor(t * 1000 + 0.5) end
local function msf(t) return format("%.0f", ms(t)) end

local function check_key(fname, n, k)
  if type(k) ~= "string" or #k ~= 32 or not match(k, "^%x+$") then
    argerror(fname, n, "quota key expected (32 hex characters)")
  end
end

local function check_keys(fname, keys)
  if type(keys) ~= "table" or #keys == 0 then
    argerror(fname, 1, "non-empty array of quota keys expected")
  end
  for i = 1, #keys do check_key(fname, 1, keys[i]) end
end

local function check_time(fname, n, t)
  if not finite(t) or t > 1e11 or t < -1e11 then argerror(fname, n, "finite time expected") end
end

local function check_namespace(ns)
  if type(ns) ~= "string" or ns == "" or #ns > 200 or match(ns, "[{}%s]") then
    error("bad option 'namespace' (1 to 200 characters, no braces or spaces)", 4)
  end
end

local function open(class, opts, what, extra)
  if type(opts) == "string" then opts = { url = opts } end
  if type(opts) ~= "table" then
    error("bad argument #1 (an options table or a Redis URL expected)", 3)
  end
  local conn, ep = opts.conn
  if conn then
    ep = { name = tostring(opts.endpoint_name or "redis"), namespace = nil }
  else
    conn, ep = _M.transport(opts)
    if not conn then return nil, ep end
  end
  local ns = opts.namespace or ep.namespace or "truv"
  check_namespace(ns)
  local self = setmetatable({ conn = conn, own_conn = not opts.conn, tag = "{" .. ns .. "}",
                              namespace = ns, what = what, endpoint_name = ep.name,
                              assume_noeviction = opts.assume_noeviction == true,
                              kind = "redis", path = ep.name .. " " .. "{" .. ns .. "}" }, class)
  for k, v in pairs(extra or {}) do self[k] = v end
  if not opts.conn then
    -- what a Redis Cluster redirection reconnects with (another host and port)
    self.ep = {}
    for _, k in ipairs(ENDPOINT_FIELDS) do self.ep[k] = ep[k] end
    self.ep.pool_size, self.ep.backlog = opts.pool_size, opts.backlog
  end
  if not ngx then   -- luacheck: ignore  (in nginx: at the first call, in a cosocket phase)
    local ok, err = self:_prepare()
    if not ok then
      self:close()
      return nil, err
    end
  end
  return self
end

-- ------------------------------------------------------------------ quota

local Quota = setmetatable({}, { __index = Base })
Quota.__index = Quota

function Quota:_q(k) return self.tag .. ":q:" .. k end

function Quota:reserve(keys, now)
  check_keys("reserve", keys)
  check_time("reserve", 2, now)
  local ks = {}
  for i, k in ipairs(keys) do ks[i] = self:_q(k) end
  for _ = 1, 3 do
    local ticket = core.redis_ticket()
    local r, err, _, _, acks = self:_script("quota_reserve", ks,
      { msf(now), self.limit, self.window_ms, self.expire_s, ticket }, self.wait)
    if not r then return nil, err end
    if r[1] == 1 and self.wait and not (acks and acks >= self.replicas) then
      -- made on the master only: a failover now could forget it, so the
      -- refresh is not sent; the entry stays counted (fewer, never more)
      return nil, errors.new("internal", "store_unreplicated", format(
        "the quota store (Redis at %s) is unavailable: the reservation reached %s of %d " ..
        "replicas within %d ms; it stays counted, the refresh is not sent", self.endpoint_name,
        tostring(acks or "none"), self.replicas, self.wait[3]))
    end
    if r[1] == 1 then return ticket end
    if r[1] == 0 then
      local spent = {}
      for i, pos in ipairs(r[3]) do spent[i] = keys[pos] end
      return false, r[2] / 1000, spent
    end
  end
  return nil, errors.new("internal", "store_unavailable",
                         "three random tickets were all taken: the random source is broken")
end

function Quota:release(keys, ticket)
  check_keys("release", keys)
  if type(ticket) ~= "string" then argerror("release", 2, "ticket string expected") end
  local ks = {}
  for i, k in ipairs(keys) do ks[i] = self:_q(k) end
  local r, err = self:_script("quota_release", ks, { ticket })
  if not r then return nil, err end
  return true
end

function Quota:record_limit(key, now)
  check_key("record_limit", 1, key)
  check_time("record_limit", 2, now)
  local r, err = self:_script("quota_record_limit", { self:_q(key) },
                           { msf(now), self.limit, self.expire_s })
  if not r then return nil, err end
  return true
end

function Quota:record_count(key, times, now)
  check_key("record_count", 1, key)
  if type(times) ~= "table" then argerror("record_count", 2, "array of times expected") end
  check_time("record_count", 3, now)
  -- only the times in the window count, and of those the newest `limit`
  -- (as the C stores' dispatcher does): the command stays small however
  -- many refreshes Truv lists
  local from, kept = ms(now) - self.window_ms, {}
  for i = 1, #times do
    if not finite(times[i]) or times[i] > 1e11 or times[i] < -1e11 then
      argerror("record_count", 2, "array of finite times expected")
    end
    if ms(times[i]) > from then kept[#kept + 1] = ms(times[i]) end
  end
  if #kept == 0 then return true end
  table.sort(kept)
  local args = { msf(now), self.limit, self.window_ms, self.expire_s }
  for i = math.max(1, #kept - self.limit + 1), #kept do
    args[#args + 1] = format("%.0f", kept[i])
  end
  local r, err = self:_script("quota_record_count", { self:_q(key) }, args)
  if not r then return nil, err end
  return true
end

function Quota:usage(key, now)
  check_key("usage", 1, key)
  check_time("usage", 2, now)
  local r, err = self:_script("quota_usage", { self:_q(key) }, { msf(now), self.limit, self.window_ms })
  if not r then return nil, err end
  return r[1], r[2] and r[2] / 1000 or nil
end

local FACTS = { dead = "d", alive = "a", auth = "u" }

function Quota:note(key, fact, at, reason)
  check_key("note", 1, key)
  local f = FACTS[fact]
  if not f then argerror("note", 2, "\"dead\", \"alive\" or \"auth\" expected") end
  check_time("note", 3, at)
  if reason ~= nil then
    if fact ~= "dead" then argerror("note", 4, "only a dead fact has a reason") end
    if type(reason) ~= "string" or #reason == 0 or #reason > 31
       or match(reason, "[^a-z0-9_%-]") then
      argerror("note", 4, "a reason is 1 to 31 characters of a-z, 0-9, '_' and '-'")
    end
  end
  local r, err = self:_script("quota_note", { self.tag .. ":f:" .. key },
                           { f, msf(at), reason or "", FACT_RETENTION_S })
  if not r then return nil, err end
  return true
end

function Quota:facts(key)
  check_key("facts", 1, key)
  local r, err = self:_script("quota_facts", { self.tag .. ":f:" .. key }, {})
  if not r then return nil, err end
  local out = {}
  if r[1] then
    out.dead_at = tonumber(r[1]) / 1000
    if r[2] and r[2] ~= "" then out.dead_reason = r[2] end
  end
  if r[3] then out.alive_at = tonumber(r[3]) / 1000 end
  if r[4] then out.auth_at = tonumber(r[4]) / 1000 end
  return out
end

--- Drops a connection's log and facts (tests, an operator's reset).
function Quota:forget(key)
  check_key("forget", 1, key)
  local r, err = self:_cmd("DEL", self:_q(key), self.tag .. ":f:" .. key)
  if not r then return nil, err end
  return true
end

--- The quota store. opts: see the top of this file, and limit, window.
function _M.quota(opts)
  if type(opts) == "string" then opts = { url = opts } end
  if type(opts) ~= "table" then error("bad argument #1 to 'redis' (options expected)", 2) end
  local limit, window = opts.limit or 3, opts.window or 86400
  if type(limit) ~= "number" or limit ~= floor(limit) or limit < 1 or limit > 1000 then
    error("bad argument #1 to 'redis' ('limit' must be an integer from 1 to 1000)", 2)
  end
  if not finite(window) or window < 0.001 or window > 10 * 366 * 86400 then
    error("bad argument #1 to 'redis' ('window' must be a number of seconds >= 0.001)", 2)
  end
  local replicas = opts.replicas or 0
  if type(replicas) ~= "number" or replicas ~= floor(replicas) or replicas < 0 or replicas > 16 then
    error("bad argument #1 to 'redis' ('replicas' must be an integer from 0 to 16)", 2)
  end
  return open(Quota, opts, "quota", {
    replicas = replicas,
    wait = replicas > 0 and { "WAIT", replicas, opts.replica_timeout_ms or 500 } or nil,
    limit = limit, window = window, window_ms = ms(window),
    expire_s = format("%.0f", ceil(2 * window + 60)),
    policy = format("%d/%d", limit, ms(window)),
  })
end

-- ----------------------------------------------------------------- dedupe

local Dedupe = setmetatable({}, { __index = Base })
Dedupe.__index = Dedupe

local function check_id(fname, id)
  if type(id) ~= "string" then argerror(fname, 1, "string expected, got " .. type(id)) end
end

function Dedupe:seen(id, now, ttl)
  check_id("seen", id)
  if not finite(now) then argerror("seen", 2, "finite time expected") end
  if not finite(ttl) then argerror("seen", 3, "finite ttl in seconds expected") end
  if ttl < 0 then argerror("seen", 3, "ttl must be >= 0") end
  local k = self.tag .. ":s:" .. id
  local r, err, _, maybe = self:_script("dedupe_seen", { k },
    { msf(now), msf(now + ttl), format("%.0f", ceil(ttl * 1000) + 60000) })
  if not r then
    -- the id may have been recorded: forget it (a fresh connection), so
    -- that Truv's retry of the delivery answered 500 is handled, not lost
    if maybe then self:_cmd("DEL", k) end
    return nil, err
  end
  return r == 1
end

function Dedupe:last_update(object_key, updated_at)
  check_id("last_update", object_key)
  if not finite(updated_at) then argerror("last_update", 2, "finite time expected") end
  local r, err = self:_script("dedupe_last_update", { self.tag .. ":o:" .. object_key },
                           { msf(updated_at), ORDER_TTL_S })
  if not r then return nil, err end
  return r == 1
end

function Dedupe:forget(id)
  check_id("forget", id)
  local r, err = self:_cmd("DEL", self.tag .. ":s:" .. id)   -- one command: atomic
  if not r then return nil, err end
  return true
end

--- The de-duplication store. opts: see the top of this file.
function _M.dedupe(opts)
  return open(Dedupe, opts, "de-duplication")
end

_M.Base = Base
_M.open = open
_M.store_error = store_error
return _M
