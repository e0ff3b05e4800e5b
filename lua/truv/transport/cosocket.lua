--- The transport inside nginx: HTTP/1.1 over OpenResty cosockets
-- (`ngx.socket.tcp`), never blocking a worker. `truv.new` picks it by itself
-- when the `ngx` global exists; libcurl is never called inside nginx.
--
--   local client = truv.new{ client_id = ..., secret = ...,
--                            timeout_ms = 30000, connect_timeout_ms = 10000 }
--   -- or explicitly: transport = require("truv.transport.cosocket").new{ ... }
--
-- The C core serialises each request (request:serialize()) and parses the
-- answer incrementally (core.http1_parser: Content-Length and chunked bodies,
-- keep-alive rules, bounded heads and bodies); the classifier then reads the
-- parsed answer in C, exactly as for libcurl.
--
-- Timeouts are milliseconds: connect_timeout_ms bounds the TCP connect and
-- the TLS handshake, timeout_ms the whole exchange (each send and read gets
-- what is left of it).
--
-- TLS: `https://` base URLs are verified (certificate chain and host name,
-- with SNI) against nginx's `lua_ssl_trusted_certificate` bundle, within
-- `lua_ssl_verify_depth`; without that directive every handshake fails
-- verification. `insecure = true` turns verification off (never in
-- production). Per-client `ca_file` / `ca_path` and `proxy` cannot apply to
-- cosockets: new() refuses them (kind "invalid") instead of ignoring them.
-- Host names need nginx's `resolver` directive.
--
-- Connections: after a complete answer that allows it, the connection goes
-- back to nginx's keep-alive pool for its origin (pool "truv:<scheme>://
-- <host>:<port>"; `pool_size` per worker, idle for `keepalive_timeout_ms`).
-- A request that creates something (every one but a GET: a refresh, an
-- order, a bridge token) always goes out on a fresh connection that is
-- closed afterwards, and is never re-sent: a pooled connection the server
-- has just closed could otherwise make it look unanswered, and sending it
-- again would make a second refresh or a second link. A GET that finds its
-- pooled connection dead before a single byte of answer came back is sent
-- again once on a fresh connection (what libcurl does). After a
-- read error or a timeout the socket is closed, never pooled, so that a late
-- answer cannot reach the next user.
--
-- Failures map to libcurl's (truv/http.h): kind "network" with code "dns",
-- "connect", "tls", "timeout", "reset", "truncated_body", "send" or
-- "network" (a malformed answer), and `maybe_sent` false only when the
-- request provably never left (DNS, connect, TLS handshake, a timeout
-- before sending).
--
-- Phases: cosockets work in rewrite, access and content handlers, timers
-- (ngx.timer.at), and the ssl_certificate / ssl_session_fetch /
-- ssl_client_hello handlers. Anywhere else (init, init_worker, set, log,
-- header_filter, body_filter, balancer, ...) perform returns nil, err with
-- kind "invalid", code "phase", naming the phase: run the call in
-- ngx.timer.at(0, fn) instead.
--
-- One transport may be shared by every light thread (ngx.thread.spawn) of a
-- worker: each exchange has its own socket and parser.
local core = require "truv.core"
local errors = require "truv.errors"
local options = require "truv.options"

local ngx = ngx
local setmetatable, tonumber, type, tostring, pcall = setmetatable, tonumber, type, tostring, pcall
local format, find, sub, match = string.format, string.find, string.sub, string.match
local max, floor = math.max, math.floor

local _M = {
  _VERSION = core._VERSION,
  DEFAULTS = {
    timeout_ms = 30000,
    connect_timeout_ms = 10000,
    keepalive_timeout_ms = 60000,   -- idle pooled connections close after this
    pool_size = 32,                 -- pooled connections per origin per worker
    read_size = 65536,              -- bytes asked of each receive
  },
}

-- Where cosockets work (lua-nginx-module's docs, "Context" of ngx.socket.tcp).
local COSOCKET_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}
_M.COSOCKET_PHASES = COSOCKET_PHASES

local FRESH_POOL = "truv:fresh"   -- never given a connection: connecting through it is fresh

local Transport = {}
Transport.__index = Transport
_M.Transport = Transport

local POSITIVE = { above = 0 }

local function positive(v, name, default)
  if v == nil then return default end
  return options.number("cosocket transport", name, v, POSITIVE, 3)
end

--- new(opts) -> transport | nil, err
-- opts: timeout_ms, connect_timeout_ms, insecure, keepalive_timeout_ms,
-- pool_size, max_body (bytes), read_size; ca_file, ca_path and proxy are
-- refused (see above).
function _M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  if opts.proxy ~= nil and opts.proxy ~= "" then
    return nil, errors.new("invalid", "proxy",
      "the cosocket transport cannot use a proxy: nginx connects to Truv directly")
  end
  if opts.ca_file ~= nil or opts.ca_path ~= nil then
    return nil, errors.new("invalid", "ca_file",
      "inside nginx the trusted CAs are nginx's lua_ssl_trusted_certificate, not ca_file/ca_path")
  end
  -- only a boolean: a string "false" or a 0 would turn verification off
  options.boolean("cosocket transport", "insecure", opts.insecure, 2)
  local d = _M.DEFAULTS
  return setmetatable({
    timeout_ms = positive(opts.timeout_ms, "timeout_ms", d.timeout_ms),
    connect_timeout_ms = positive(opts.connect_timeout_ms, "connect_timeout_ms",
                                  d.connect_timeout_ms),
    keepalive_timeout_ms = positive(opts.keepalive_timeout_ms, "keepalive_timeout_ms",
                                    d.keepalive_timeout_ms),
    pool_size = positive(opts.pool_size, "pool_size", d.pool_size),
    read_size = positive(opts.read_size, "read_size", d.read_size),
    max_body = opts.max_body and positive(opts.max_body, "max_body"),
    verify = not opts.insecure,
    parsers = {},     -- idle parsers, reused
  }, Transport)
end

--- Where an origin is: scheme, host (no brackets), port, pool name.
local function origin(self, url)
  local scheme, authority = match(url, "^(https?)://([^/?#]+)")
  if not scheme then return nil end
  local host, port = match(authority, "^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = match(authority, "^([^:]+):?(%d*)$") end
  if not host then return nil end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  local pool = format("truv:%s://%s:%d%s", scheme, host, port,
                      (scheme == "https" and not self.verify) and "#insecure" or "")
  return scheme, host, port, pool
end

local function net_error(code, message, maybe_sent)
  return errors.new("network", code, message, { maybe_sent = maybe_sent })
end

--- The phase error, or nil where cosockets work.
function _M.check_phase()
  local phase = ngx.get_phase()
  if COSOCKET_PHASES[phase] then return nil end
  return errors.new("invalid", "phase", format(
    "nginx's %s phase cannot use cosockets, so Truv cannot be called here: " ..
    "run the call in a timer (ngx.timer.at(0, fn)) or from a rewrite, access or content handler",
    tostring(phase)), { phase = phase })
end

local function now_ms()
  return ngx.now() * 1000
end

local function remaining(deadline)
  return max(1, floor(deadline - now_ms()))
end

local function connect_error(err, host)
  if err == "timeout" then
    return net_error("timeout", "connecting to " .. host .. " timed out", false)
  end
  if find(err, "resolv", 1, true) or find(err, "host name", 1, true) then
    return net_error("dns", "cannot resolve " .. host .. ": " .. err ..
                     " (inside nginx, host names need a `resolver` directive)", false)
  end
  return net_error("connect", "cannot connect to " .. host .. ": " .. err, false)
end

local function get_parser(self)
  local list = self.parsers
  local p = list[#list]
  if p then
    list[#list] = nil
    return p
  end
  return core.http1_parser{ max_body = self.max_body }
end

local function put_parser(self, p)
  p:reset()
  local list = self.parsers
  if #list < 16 then list[#list + 1] = p else p:close() end
end

--- Opens (or takes from the pool) a connection; returns sock, reused or
-- nil, err.
function Transport:_connect(scheme, host, port, pool, fresh, deadline)
  local sock = ngx.socket.tcp()
  local connect_deadline = now_ms() + self.connect_timeout_ms
  if connect_deadline > deadline then connect_deadline = deadline end
  sock:settimeouts(remaining(connect_deadline), remaining(deadline), remaining(deadline))
  local ok, err
  if fresh then
    ok, err = sock:connect(host, port, { pool = FRESH_POOL })
  else
    ok, err = sock:connect(host, port, { pool = pool, pool_size = self.pool_size })
  end
  if not ok then return nil, connect_error(err, host) end
  local reused = (sock:getreusedtimes() or 0) > 0
  if fresh and reused then   -- defensive: FRESH_POOL never holds connections
    sock:close()
    return nil, net_error("connect", "a fresh connection was expected", false)
  end
  if scheme == "https" and not reused then
    sock:settimeout(remaining(connect_deadline))
    -- lua-resty-core 0.1.25 with lua-nginx-module 0.10.23 raises ("assertion
    -- failed!") instead of returning nil, err when the handshake or the
    -- verification fails at once; both are a failed handshake
    local fine, done, herr = pcall(sock.sslhandshake, sock, nil, host, self.verify)
    if not fine then done, herr = nil, "handshake or certificate verification failed" end
    if not done then
      sock:close()
      if herr == "timeout" then
        return nil, net_error("timeout", "the TLS handshake with " .. host .. " timed out", false)
      end
      return nil, net_error("tls", "TLS with " .. host .. " failed: " .. tostring(herr) ..
                            (self.verify and " (trusted CAs: lua_ssl_trusted_certificate)" or ""),
                            false)
    end
  end
  return sock, reused
end

--- One exchange on one connection. Returns doc, meta | nil, err, retry
-- (retry: a reused connection was found dead before any answer).
function Transport:_exchange(req, now, mode, bytes, fresh, deadline)
  local scheme, host, port, pool = origin(self, req.url)
  if not scheme then
    return nil, errors.new("invalid", "base_url", "cannot send to this URL")
  end
  local sock, reused = self:_connect(scheme, host, port, pool, fresh, deadline)
  if not sock then return nil, reused end

  sock:settimeout(remaining(deadline))
  local sent, serr = sock:send(bytes)
  if not sent then
    sock:close()
    if reused and req.safe then return nil, nil, true end
    if serr == "timeout" then
      return nil, net_error("timeout", "sending the request timed out", true)
    end
    return nil, net_error("send", "sending the request failed: " .. tostring(serr), true)
  end

  local p = get_parser(self)
  local read_size = self.read_size
  while true do
    sock:settimeout(remaining(deadline))
    local data, rerr = sock:receiveany(read_size)
    local done, perr
    if data then
      done, perr = p:feed(data)
    elseif rerr == "timeout" then
      sock:close()
      put_parser(self, p)
      return nil, net_error("timeout", format("no complete answer within %d ms", self.timeout_ms),
                            true)
    else
      if reused and p:received() == 0 and req.safe then
        sock:close()
        put_parser(self, p)
        return nil, nil, true
      end
      done, perr = p:eof()
      if done and rerr ~= "closed" then   -- a reset does not frame a body
        done, perr = nil, net_error("reset", "the connection was reset: " .. tostring(rerr), true)
      end
      if done then done = p:done() end
    end
    if perr then
      sock:close()
      put_parser(self, p)
      perr.maybe_sent = true
      return nil, perr
    end
    if done then break end
  end

  if req.safe and p:keepalive() then
    local ok = sock:setkeepalive(self.keepalive_timeout_ms, self.pool_size)
    if not ok then sock:close() end
  else
    sock:close()
  end
  local doc, meta = p:classify(req, now, mode)
  put_parser(self, p)
  return doc, meta
end

--- perform(request, now [, mode]) -> doc, meta | nil, err (see truv.client).
function Transport:perform(req, now, mode)
  local perr = _M.check_phase()
  if perr then return nil, perr end
  local deadline = now_ms() + self.timeout_ms
  local bytes = req:serialize()
  local fresh = not req.safe
  if fresh then
    -- the server closes it too: nothing can ever be sent after it
    local eol = find(bytes, "\r\n", 1, true)
    bytes = sub(bytes, 1, eol + 1) .. "Connection: close\r\n" .. sub(bytes, eol + 2)
  end
  local doc, meta, retry = self:_exchange(req, now, mode, bytes, fresh, deadline)
  if retry then
    doc, meta = self:_exchange(req, now, mode, bytes, true, deadline)
  end
  return doc, meta
end

--- Nothing to free: the pooled connections belong to nginx.
function Transport.close()
  return true
end

function Transport:__tostring()
  return format("truv.transport.cosocket (timeout %d ms%s)", self.timeout_ms,
                self.verify and "" or ", TLS verification off")
end

return _M
