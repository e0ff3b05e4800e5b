--- The transport inside nginx: HTTP/1.1 over OpenResty cosockets
-- (`ngx.socket.tcp`), never blocking a worker. `truv.new` picks it by itself
-- when the `ngx` global exists; libcurl is never called inside nginx.
--
--   local client = truv.new{ client_id = ..., secret = ...,
--                            timeout_ms = 30000, connect_timeout_ms = 10000 }
--   -- or explicitly: transport = require("truv.transport.cosocket").new{ ... }
--
-- The C core writes every byte that goes out (request:serialize(), with
-- Connection: close on a request that needs a connection of its own, and
-- the proxy's forms; core.http1_connect for a tunnel) and parses the answer
-- incrementally (core.http1_parser: Content-Length and chunked bodies,
-- keep-alive rules, bounded heads and bodies); the classifier then reads the
-- parsed answer in C, exactly as for libcurl. This file moves bytes.
--
-- Timeouts are milliseconds: connect_timeout_ms bounds the TCP connect and
-- the TLS handshake (and a proxy's CONNECT), timeout_ms the whole exchange;
-- send_timeout_ms bounds each send and read_timeout_ms each wait for more
-- of the answer (nginx's own send and read timeouts, settimeouts()), both
-- within what is left of timeout_ms. A request's own timeouts (set by the
-- client: client:set_timeouts, per-call options) win over the transport's.
--
-- TLS: `https://` base URLs are verified (certificate chain and host name,
-- with SNI) against nginx's `lua_ssl_trusted_certificate` bundle, within
-- `lua_ssl_verify_depth`; without that directive every handshake fails
-- verification. `insecure = true` turns verification off (never in
-- production). Per-client `ca_file` / `ca_path` cannot apply to cosockets:
-- new() refuses them (kind "invalid") instead of ignoring them. Host names
-- need nginx's `resolver` directive.
--
-- Proxy: `proxy = "http://[user:password@]host:port"` sends every request
-- through an HTTP proxy, as lua-resty-http's set_proxy_options does: an
-- https:// request through a CONNECT tunnel (TLS with Truv end to end, the
-- certificate verified as without a proxy), an http:// one in absolute
-- form. User and password go in Proxy-Authorization (Basic), never in an
-- error. `no_proxy` (a comma-separated string or a list) names hosts that
-- bypass it: "prod.truv.com", ".truv.com" or "truv.com" (the domain and
-- its subdomains), "*" (every host). A tunnel the proxy refuses is kind
-- "network", code "connect", maybe_sent false: nothing reached Truv. Pooled
-- connections are kept per origin and proxy.
--
-- Connections: after a complete answer that allows it, the connection goes
-- back to nginx's keep-alive pool for its origin (pool "truv:<scheme>://
-- <host>:<port>"; `pool_size` per worker, idle for `keepalive_timeout_ms`).
-- Which connection a request takes is the core's rule (request.connection,
-- truv_request_connection in truv/request.h). A refresh_order ("once")
-- rides a kept-alive connection of its own pool ("...#once"), whose idle
-- connections close after `billed_reuse_idle_s` (default 4; 0: a fresh
-- connection each), and is never re-sent: whatever goes wrong after a byte
-- of it left is "maybe sent", which truv.refresh reads back. Every other
-- request that creates something (an order, a refresh task, a bridge
-- token) goes out on a fresh connection that is closed afterwards, and is
-- never re-sent either: a pooled connection the server has just closed
-- could otherwise make it look unanswered, and sending it again would make
-- a second link. A GET that finds its pooled connection dead before a
-- single byte of answer came back is sent
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
local setmetatable, tonumber, type, tostring, pcall, ipairs, error =
  setmetatable, tonumber, type, tostring, pcall, ipairs, error
local format, find, sub, match, lower, gsub, char =
  string.format, string.find, string.sub, string.match, string.lower, string.gsub, string.char
local max, min, floor, huge = math.max, math.min, math.floor, math.huge

local _M = {
  _VERSION = core._VERSION,
  DEFAULTS = {
    timeout_ms = core.lists.defaults.timeout_ms,                 -- every transport's
    connect_timeout_ms = core.lists.defaults.connect_timeout_ms, -- (truv/http.h)
    keepalive_timeout_ms = 60000,   -- idle pooled connections close after this
    billed_reuse_idle_s = 4,        -- a refresh_order's pooled connections: idle at most
                                    -- this long (0: a fresh connection each; truv/http.h)
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
local BILLED_REUSE = { integer = true, min = 0, max = 3600, unit = "seconds" }

local function positive(v, name, default)
  if v == nil then return default end
  return options.number("cosocket transport", name, v, POSITIVE, 3)
end

local function unescape(s)
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

-- "http://[user:password@]host:port" -> { host =, port =, name = "host:port",
-- credentials = "user:password" } | nil, err
local function parse_proxy(url)
  local scheme, rest = match(url, "^(%a[%w+.-]*)://(.+)$")
  if not scheme or lower(scheme) ~= "http" then
    return nil, errors.new("invalid", "proxy",
      "the cosocket transport speaks to its proxy in plain HTTP: http://host:port expected")
  end
  rest = match(rest, "^([^/?#]*)")
  local userinfo, hostport = match(rest, "^(.*)@([^@]*)$")
  hostport = hostport or rest
  local host, port = match(hostport, "^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = match(hostport, "^([^:]+):?(%d*)$") end
  if not host or host == "" then
    return nil, errors.new("invalid", "proxy", "the proxy URL names no host")
  end
  port = tonumber(port) or 80
  local credentials
  if userinfo and userinfo ~= "" then
    local user, pass = match(userinfo, "^([^:]*):?(.*)$")
    credentials = unescape(user) .. ":" .. unescape(pass)
  end
  return { host = host, port = port, name = host .. ":" .. port, credentials = credentials }
end

local function no_proxy_list(v)
  if v == nil then return {} end
  local list = {}
  if type(v) == "string" then
    for h in v:gmatch("[^,%s]+") do list[#list + 1] = lower(h) end
    return list
  end
  if type(v) ~= "table" then
    error("bad option 'no_proxy' to 'cosocket transport' (a comma-separated string or a list " ..
          "expected, got " .. type(v) .. ")", 3)
  end
  for i, h in ipairs(v) do
    if type(h) ~= "string" then
      error("bad option 'no_proxy' to 'cosocket transport' (host names expected)", 3)
    end
    list[i] = lower(h)
  end
  return list
end

--- new(opts) -> transport | nil, err
-- opts: timeout_ms, connect_timeout_ms, send_timeout_ms, read_timeout_ms,
-- insecure, proxy, no_proxy, keepalive_timeout_ms, billed_reuse_idle_s,
-- pool_size, max_body (bytes), read_size; ca_file and ca_path are refused (see above).
function _M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("bad argument #1 to 'new' (table expected, got " .. type(opts) .. ")", 2)
  end
  local proxy
  if opts.proxy ~= nil and opts.proxy ~= "" then
    if type(opts.proxy) ~= "string" then
      error("bad option 'proxy' to 'cosocket transport' (string expected, got " ..
            type(opts.proxy) .. ")", 2)
    end
    local perr
    proxy, perr = parse_proxy(opts.proxy)
    if not proxy then return nil, perr end
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
    send_timeout_ms = opts.send_timeout_ms and positive(opts.send_timeout_ms, "send_timeout_ms"),
    read_timeout_ms = opts.read_timeout_ms and positive(opts.read_timeout_ms, "read_timeout_ms"),
    proxy = proxy,
    no_proxy = no_proxy_list(opts.no_proxy),
    pool_size = positive(opts.pool_size, "pool_size", d.pool_size),
    read_size = positive(opts.read_size, "read_size", d.read_size),
    max_body = opts.max_body and positive(opts.max_body, "max_body"),
    billed_reuse_idle_s = opts.billed_reuse_idle_s == nil and d.billed_reuse_idle_s
                          or options.number("cosocket transport", "billed_reuse_idle_s",
                                            opts.billed_reuse_idle_s, BILLED_REUSE, 2),
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

--- The proxy a request to `host` goes through, or nil (none, or no_proxy).
local function proxy_for(self, host)
  local proxy = self.proxy
  if not proxy then return nil end
  host = lower(host)
  for _, entry in ipairs(self.no_proxy) do
    if entry == "*" then return nil end
    local domain = match(entry, "^%.?(.*)$")
    if host == domain or (#host > #domain and sub(host, -#domain - 1) == "." .. domain) then
      return nil
    end
  end
  return proxy
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

-- A send or read timeout within what is left of the exchange.
local function within(ms, deadline)
  return min(ms or huge, remaining(deadline))
end

local function connect_error(err, host, what)
  what = what or host
  if err == "timeout" then
    return net_error("timeout", "connecting to " .. what .. " timed out", false)
  end
  if find(err, "resolv", 1, true) or find(err, "host name", 1, true) then
    return net_error("dns", "cannot resolve " .. host .. ": " .. err ..
                     " (inside nginx, host names need a `resolver` directive)", false)
  end
  return net_error("connect", "cannot connect to " .. what .. ": " .. err, false)
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

-- The proxy, its Proxy-Authorization value (proxy.authorization, which the
-- core writes) made once from its credentials.
local function with_authorization(proxy)
  if proxy.credentials and not proxy.authorization then
    proxy.authorization = "Basic " .. ngx.encode_base64(proxy.credentials)
  end
  return proxy
end

--- Opens a CONNECT tunnel to host:port through the proxy sock is connected
-- to. Returns true | nil, err (nothing of the request has left).
local function tunnel(sock, proxy, host, port, t)
  local target = (find(host, ":", 1, true) and ("[" .. host .. "]") or host) .. ":" .. port
  sock:settimeouts(remaining(t.connect_deadline), within(t.send_ms, t.connect_deadline),
                   remaining(t.connect_deadline))
  local bytes, berr = core.http1_connect(host, port, with_authorization(proxy))
  if not bytes then
    sock:close()
    return nil, berr
  end
  local ok, err = sock:send(bytes)
  local status
  if ok then
    -- the proxy's answer: a status line and headers, no body for a 2xx
    for i = 1, 64 do
      local line
      line, err = sock:receive("*l")
      if not line then break end
      if i == 1 then status = tonumber(match(line, "^HTTP/%d%.%d (%d%d%d)")) end
      if line == "" then
        if status and status >= 200 and status < 300 then return true end
        break
      end
    end
  end
  sock:close()
  if err == "timeout" then
    return nil, net_error("timeout", "the proxy " .. proxy.name .. " did not open a tunnel to " ..
                          target .. " in time", false)
  end
  if status then
    return nil, net_error("connect", format("the proxy %s refused the tunnel to %s (HTTP %d)",
                                            proxy.name, target, status), false)
  end
  return nil, net_error("connect", "the proxy " .. proxy.name .. " opened no tunnel to " ..
                        target .. ": " .. tostring(err or "malformed answer"), false)
end

--- Opens (or takes from the pool) a connection; returns sock, reused or
-- nil, err. t: the exchange's timeouts and deadlines.
function Transport:_connect(scheme, host, port, pool, fresh, t, proxy)
  local sock = ngx.socket.tcp()
  local connect_deadline = now_ms() + t.connect_ms
  if connect_deadline > t.deadline then connect_deadline = t.deadline end
  t.connect_deadline = connect_deadline
  sock:settimeouts(remaining(connect_deadline), within(t.send_ms, t.deadline),
                   within(t.read_ms, t.deadline))
  local to_host, to_port = host, port
  if proxy then to_host, to_port = proxy.host, proxy.port end
  local ok, err
  if fresh then
    ok, err = sock:connect(to_host, to_port, { pool = FRESH_POOL })
  else
    ok, err = sock:connect(to_host, to_port, { pool = pool, pool_size = self.pool_size })
  end
  if not ok then
    return nil, connect_error(err, to_host, proxy and ("the proxy " .. proxy.name))
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if fresh and reused then   -- defensive: FRESH_POOL never holds connections
    sock:close()
    return nil, net_error("connect", "a fresh connection was expected", false)
  end
  if scheme == "https" and not reused then
    if proxy then
      local tok, terr = tunnel(sock, proxy, host, port, t)
      if not tok then return nil, terr end
    end
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
-- (retry: a reused connection was found dead before any answer; only ever
-- for a safe request).
function Transport:_exchange(req, now, mode, fresh, t)
  local scheme, host, port, pool = origin(self, req.url)
  if not scheme then
    return nil, errors.new("invalid", "base_url", "cannot send to this URL")
  end
  -- a refresh_order: its own pool, idle connections kept billed_reuse_idle_s
  local keepalive_ms = self.keepalive_timeout_ms
  if req.connection == "once" then
    pool = pool .. "#once"
    keepalive_ms = self.billed_reuse_idle_s * 1000
    fresh = fresh or keepalive_ms == 0
  end
  local proxy = proxy_for(self, host)
  if proxy then pool = pool .. " via " .. proxy.name end
  -- an http:// request goes to the proxy itself (absolute form, its
  -- credentials); an https:// one through a tunnel, as to Truv
  local bytes, berr = req:serialize(proxy and scheme == "http" and with_authorization(proxy) or nil)
  if not bytes then return nil, berr end
  local sock, reused = self:_connect(scheme, host, port, pool, fresh, t, proxy)
  if not sock then return nil, reused end

  local deadline = t.deadline
  sock:settimeout(within(t.send_ms, deadline))
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
    sock:settimeout(within(t.read_ms, deadline))
    local data, rerr = sock:receiveany(read_size)
    local done, perr
    if data then
      done, perr = p:feed(data)
    elseif rerr == "timeout" then
      sock:close()
      put_parser(self, p)
      if t.read_ms and now_ms() < deadline - 1 then
        return nil, net_error("timeout", format("no answer from Truv for %d ms (read timeout)",
                                                t.read_ms), true)
      end
      return nil, net_error("timeout", format("no complete answer within %d ms", t.total_ms),
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

  if not fresh and p:keepalive() then
    local ok = sock:setkeepalive(keepalive_ms, self.pool_size)
    if not ok then sock:close() end
  else
    sock:close()
  end
  local doc, meta = p:classify(req, now, mode)
  put_parser(self, p)
  return doc, meta
end

--- perform(request, now [, mode]) -> doc, meta | nil, err (see truv.client).
-- The request's own timeouts (request.timeouts) win over the transport's.
function Transport:perform(req, now, mode)
  local perr = _M.check_phase()
  if perr then return nil, perr end
  local own = req.timeouts or {}
  local t = {
    total_ms = own.total_ms or self.timeout_ms,
    connect_ms = own.connect_ms or self.connect_timeout_ms,
    send_ms = own.send_ms or self.send_timeout_ms,
    read_ms = own.read_ms or self.read_timeout_ms,
  }
  t.deadline = now_ms() + t.total_ms
  local doc, meta, retry = self:_exchange(req, now, mode, req.connection == "fresh", t)
  if retry then
    doc, meta = self:_exchange(req, now, mode, true, t)
  end
  return doc, meta
end

--- Nothing to free: the pooled connections belong to nginx.
function Transport.close()
  return true
end

function Transport:__tostring()
  return format("truv.transport.cosocket (timeout %d ms%s%s)", self.timeout_ms,
                self.proxy and (", proxy " .. self.proxy.name) or "",
                self.verify and "" or ", TLS verification off")
end

return _M
