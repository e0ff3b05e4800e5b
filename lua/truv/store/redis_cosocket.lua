--- The Redis transport inside nginx: cosockets (`ngx.socket.tcp`), never a
-- blocking call. truv.store.redis picks it by itself when the `ngx` global
-- exists. The bytes are the core's RESP codec (hiredis's formatter and
-- reader, truv.core.redis_format / redis_reader), as outside nginx.
--
-- Each call takes a connection from the worker's keep-alive pool (named
-- after the endpoint, database and user, never the password; at most
-- `pool_size` per worker, default 32, further callers queue up to
-- `backlog`, default 256), authenticates and selects the database when
-- the connection is new, sends the command, reads its reply, and puts the
-- connection back. A connection that failed in any way (a deadline passed,
-- reset, a reply that is not RESP) is closed, never pooled: a command that
-- timed out may still run and its late reply would answer the next one.
-- Timeouts: connect_timeout_ms for connecting (and TLS), timeout_ms for
-- each send and each wait for more of the reply.
--
-- rediss:// uses the cosocket's TLS (sslhandshake), verified against
-- nginx's lua_ssl_trusted_certificate unless insecure = true. Host names
-- need nginx's `resolver`. Cosockets exist in rewrite, access, content and
-- timer phases: elsewhere (init_worker_by_lua, log_by_lua, header filters)
-- a call fails with code "store_unavailable" saying so.
local core = require "truv.core"
local errors = require "truv.errors"

local ngx = ngx   -- luacheck: ignore
local format, tostring = string.format, tostring
local unpack = table.unpack or unpack   -- luacheck: ignore

local _M = {}
local T = {}
T.__index = T

--- ep: the endpoint (truv.store.redis), opts: pool_size, backlog, keepalive_ms.
function _M.new(ep, opts)
  opts = opts or {}
  local self = setmetatable({
    ep = ep,
    connect_ms = ep.connect_timeout_ms or 1000,
    timeout_ms = ep.timeout_ms or 1000,
    pool_size = opts.pool_size or 32,
    backlog = opts.backlog or 256,
    keepalive_ms = opts.keepalive_ms or 60000,
  }, T)
  self.pool = format("truv-redis:%s:%s:%s:%s", ep.unix_path or (ep.host .. ":" .. ep.port),
                     tostring(ep.db or 0), ep.tls and "tls" or "tcp", ep.user or "")
  if ep.password then
    -- one pool per credential without naming it: a hash of the password
    self.pool = self.pool .. ":" .. ngx.encode_base64(ngx.sha1_bin(ep.password)):sub(1, 12)
  end
  return self
end

local function fail(self, msg, maybe)
  return nil, errors.new("internal", "store_unavailable",
    format("Redis at %s: %s", self.ep.name, tostring(msg))), maybe
end

-- One exchange on sock: true, v | false, text | nil, msg, maybe_sent.
local function exchange(sock, bytes)
  local ok, err = sock:send(bytes)
  if not ok then return nil, "sending: " .. tostring(err), true end
  local reader = core.redis_reader()
  while true do
    local a, b = reader:get()
    if a ~= nil then reader:close(); return a, b end
    if b then reader:close(); return nil, b.message, true end
    local chunk, rerr = sock:receiveany(16384)
    if not chunk then
      reader:close()
      return nil, (rerr == "timeout" and "no reply in time (the command may have run)" or
                   "reading: " .. tostring(rerr)), true, rerr == "timeout"
    end
    reader:feed(chunk)
  end
end

local function handshake(self, sock)
  local ep = self.ep
  if ep.tls then
    local ok, err = sock:sslhandshake(nil, ep.server_name or ep.host, not ep.insecure)
    if not ok then return nil, "TLS handshake: " .. tostring(err) end
  end
  if ep.password then
    local a, b
    if ep.user then
      a, b = exchange(sock, core.redis_format("AUTH", ep.user, ep.password))
    else
      a, b = exchange(sock, core.redis_format("AUTH", ep.password))
    end
    if a == false then return nil, "authentication refused: " .. tostring(b), "store_auth" end
    if a == nil then return nil, b end
  end
  if ep.db and ep.db > 0 then
    local a, b = exchange(sock, core.redis_format("SELECT", ep.db))
    if not a then return nil, "SELECT " .. ep.db .. ": " .. tostring(b) end
  end
  return true
end

-- Sends `bytes` (k commands) on a pooled connection and reads k replies:
-- { {ok, v}, ... } | nil, err, maybe_sent.
function T:_exchange(bytes, k)
  local sock, serr = ngx.socket.tcp()
  if not sock then
    return fail(self, "no cosocket here (" .. tostring(serr) .. "): Redis is reachable only " ..
                "in rewrite, access, content and timer phases", false)
  end
  sock:settimeouts(self.connect_ms, self.timeout_ms, self.timeout_ms)
  local cok, cerr
  local copts = { pool = self.pool, pool_size = self.pool_size, backlog = self.backlog }
  if self.ep.unix_path then
    cok, cerr = sock:connect("unix:" .. self.ep.unix_path, copts)
  else
    cok, cerr = sock:connect(self.ep.host, self.ep.port, copts)
  end
  if not cok then return fail(self, "cannot connect: " .. tostring(cerr), false) end
  if sock:getreusedtimes() == 0 then
    local hok, herr, code = handshake(self, sock)
    if not hok then
      sock:close()
      local e = select(2, fail(self, herr, false))
      if code then e.code = code end
      return nil, e, false
    end
  end
  local ok, err = sock:send(bytes)
  if not ok then
    sock:close()
    return fail(self, "sending: " .. tostring(err), true)
  end
  local reader, out = core.redis_reader(), {}
  while #out < k do
    local a, b = reader:get()
    if a ~= nil then
      out[#out + 1] = { a, b }
    elseif b then
      reader:close()
      sock:close()
      return fail(self, b.message, true)
    else
      local chunk, rerr = sock:receiveany(16384)
      if not chunk then
        reader:close()
        sock:close()
        local _, e = fail(self, rerr == "timeout" and
          "no reply in time (the command may have run)" or "reading: " .. tostring(rerr), true)
        if rerr == "timeout" then e.code = "store_timeout" end
        return nil, e, true
      end
      reader:feed(chunk)
    end
  end
  reader:close()
  sock:setkeepalive(self.keepalive_ms, self.pool_size)
  return out
end

--- t:call(arg, ...) -> true, v | false, text | nil, err, maybe_sent
function T:call(...)
  local ok, bytes = pcall(core.redis_format, ...)
  if not ok then error(bytes, 2) end
  local out, err, maybe = self:_exchange(bytes, 1)
  if not out then return nil, err, maybe end
  return out[1][1], out[1][2]
end

--- t:call_many({ cmd, ... }) -> { {ok, v}, ... } | nil, err, maybe_sent: the
-- commands pipelined on one connection (WAIT must follow its write there).
function T:call_many(cmds)
  local parts = {}
  for i, c in ipairs(cmds) do
    local ok, bytes = pcall(core.redis_format, unpack(c, 1, c.n or #c))
    if not ok then error(bytes, 2) end
    parts[i] = bytes
  end
  return self:_exchange(table.concat(parts), #cmds)
end

function T.close() end

return _M
