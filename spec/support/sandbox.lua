-- spec.support.sandbox: start a truv-sandbox for a spec and talk to it.
--
--   local sandbox = require "spec.support.sandbox"
--   local sb = sandbox.start{ args = {"--seed-cases", "5", "--mix", "active=1"} }
--   local status, body, headers = sb:request("GET", "orders/" .. id .. "/")
--   sb:advance(30); sb:stop()
--
-- start() runs $TRUV_SANDBOX_BIN (else $TRUV_BUILD_DIR/sandbox/truv-sandbox, else
-- build/release/sandbox/truv-sandbox) on 127.0.0.1 port 0 with a --port-file in a
-- private temp dir, waits (bounded) for the port file and raises, with the
-- sandbox's stderr, if it does not appear. The sandbox is told our pid
-- (--parent-pid) so it exits by itself if this process dies; stop() sends SIGTERM
-- and returns the exit code; a finalizer stops a forgotten sandbox.
--
-- sb:request(method, path, body, headers) speaks HTTP/1.1 itself (so specs see
-- exactly what the server sent): path "orders/x/" is relative to sb.base_url,
-- "/v1/..." or "/_sandbox/..." to sb.origin; body a table (sent as JSON) or a
-- string; headers override the defaults (auth headers, Content-Type for a body),
-- a false value drops one. Returns status, body, headers (lower-case names), body
-- decoded when it is JSON ({raw = text} otherwise), or nil, err, partial on a
-- transport failure (partial.status/headers/raw: what arrived before it). A 4th
-- result is the body exactly as received.
--
-- start{ tls = true } runs it with --tls and --ca-out: sb.ca_file names the test CA
-- (PEM), sb.origin and sb.base_url are https://127.0.0.1:PORT[/v1/], and
-- sb:request/admin speak TLS (LuaSec, verifying against sb.ca_file).
--
-- Also: sandbox.receiver{} (a webhook receiver to pump between requests),
-- sandbox.sha256_hex / hmac_sha256_hex (pure Lua), sandbox.raw (raw bytes over
-- TCP), sandbox.wait_until (a bounded poll), sandbox.bin().
local socket = require "socket"
local cjson = require("cjson").new()
local files = require "spec.support.files"
cjson.encode_number_precision(14)

local M = { json = cjson, null = cjson.null }

local DEFAULT_CLIENT_ID = "sandbox-client-id"
local DEFAULT_SECRET = "sandbox-secret"
-- Bounds on a start: a native sandbox serves within a second; under
-- valgrind (sandbox/valgrind.sh) seeding takes seconds, and on a loaded
-- 2-core machine more than 5 of them were seen (two starts of one
-- valgrind.sandbox run said "did not come up" while still starting).
local START_TIMEOUT, START_TIMEOUT_VALGRIND = 20, 120
local STOP_TIMEOUT = 10

local running = setmetatable({}, { __mode = "k" })

------------------------------------------------------------------------------
-- small helpers

local quote, read_file, own_pid = files.quote, files.read, files.own_pid

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end


--- Polls pred() every `interval` seconds until it returns a truthy value (which
-- is returned) or `timeout` seconds passed (returns nil).
function M.wait_until(pred, timeout, interval)
  local deadline = socket.gettime() + (timeout or 5)
  interval = interval or 0.01
  repeat
    local v = pred()
    if v then return v end
    socket.sleep(interval)
  until socket.gettime() > deadline
  return pred() or nil
end

function M.bin()
  local bin = os.getenv("TRUV_SANDBOX_BIN")
  if bin and bin ~= "" then return bin end
  local build = os.getenv("TRUV_BUILD_DIR")
  if build and build ~= "" then return build .. "/sandbox/truv-sandbox" end
  return "build/release/sandbox/truv-sandbox"
end

------------------------------------------------------------------------------
-- HTTP/1.1 over luasocket

local function read_headers(c)
  local headers = {}
  while true do
    local line, err = c:receive("*l")
    if not line then return nil, err end
    if line == "" then return headers end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    if name then
      name = name:lower()
      headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
    end
  end
end

local function read_chunked(c)
  local parts = {}
  while true do
    local line, err = c:receive("*l")
    if not line then return nil, err, table.concat(parts) end
    local size = tonumber(line:match("^%x+"), 16)
    if not size then return nil, "bad chunk", table.concat(parts) end
    if size == 0 then
      read_headers(c)
      return table.concat(parts)
    end
    local data, e2, partial = c:receive(size)
    if not data then return nil, e2, table.concat(parts) .. (partial or "") end
    parts[#parts + 1] = data
    c:receive("*l")
  end
end

local function read_body(c, method, status, headers)
  if method == "HEAD" or status == 204 or status == 304 then return "" end
  local te = headers["transfer-encoding"]
  if te and te:lower():find("chunked") then return read_chunked(c) end
  local len = tonumber(headers["content-length"])
  if len == 0 then return "" end -- receive(0) on a closed peer fails
  if len then
    local data, err, partial = c:receive(len)
    if not data then return nil, err, partial end
    return data
  end
  local data, err, partial = c:receive("*a")
  return data or partial, err
end

local function decode(raw, headers)
  local ct = headers["content-type"] or ""
  if ct:find("json", 1, true) and raw ~= "" then
    local ok, v = pcall(cjson.decode, raw)
    if ok then return v end
  end
  return { raw = raw }
end

-- TLS over a connected socket, verifying the peer against ca_file (LuaSec,
-- loaded only for a TLS sandbox)
local function wrap_tls(c, ca_file, timeout)
  local ssl = require "ssl"
  local s, err = ssl.wrap(c, { mode = "client", protocol = "any", verify = "peer",
                               cafile = ca_file, options = { "all", "no_sslv3" } })
  if not s then
    c:close()
    return nil, "tls: " .. tostring(err)
  end
  s:settimeout(timeout)
  local ok, herr = s:dohandshake()
  if not ok then
    s:close()
    return nil, "tls handshake: " .. tostring(herr)
  end
  return s
end

--- One HTTP exchange on a fresh connection. Returns status, body, headers, raw
-- body or nil, err, partial. ca_file: speak TLS, verifying against it.
function M.http(host, port, method, path, headers, body, timeout, ca_file)
  local c = socket.tcp()
  c:settimeout(timeout or 30)
  local ok, err = c:connect(host, port)
  if not ok then return nil, "connect: " .. tostring(err), {} end
  if ca_file then
    c, err = wrap_tls(c, ca_file, timeout or 30)
    if not c then return nil, err, {} end
  end
  local lines = { string.format("%s %s HTTP/1.1", method, path),
                  "Host: " .. host .. ":" .. port, "Connection: close" }
  for k, v in pairs(headers or {}) do
    if v ~= false then lines[#lines + 1] = k .. ": " .. tostring(v) end
  end
  body = body or ""
  if body ~= "" or method == "POST" or method == "PUT" or method == "PATCH" then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  local sent, serr = c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body)
  local partial = {}
  if not sent then
    c:close()
    return nil, "send: " .. tostring(serr), partial
  end
  local statusline, rerr = c:receive("*l")
  if not statusline then
    c:close()
    return nil, rerr, partial
  end
  partial.status = tonumber(statusline:match("^HTTP/%d%.%d (%d%d%d)"))
  local hdrs, herr = read_headers(c)
  if not hdrs then
    c:close()
    return nil, herr, partial
  end
  partial.headers = hdrs
  local raw, berr, got = read_body(c, method, partial.status, hdrs)
  c:close()
  if not raw then
    partial.raw = got or ""
    return nil, berr, partial
  end
  return partial.status, decode(raw, hdrs), hdrs, raw
end

--- Sends raw bytes, returns everything the peer sent until it closed (or the
-- timeout), the reason reading stopped ("closed", "timeout", ...) and the
-- seconds it took.
function M.raw(port, bytes, timeout)
  local c = socket.tcp()
  c:settimeout(timeout or 10)
  local t0 = socket.gettime()
  assert(c:connect("127.0.0.1", port))
  c:send(bytes)
  local data, err, partial = c:receive("*a")
  c:close()
  return data or partial or "", err or "closed", socket.gettime() - t0
end

------------------------------------------------------------------------------
-- SHA-256 and HMAC (pure Lua 5.4), for webhook signatures and token keys

local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

local function rrot(x, n)
  return ((x >> n) | (x << (32 - n))) & 0xffffffff
end

local function sha256(msg)
  local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
              0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
  local len = #msg
  msg = msg .. "\128" .. string.rep("\0", (55 - len) % 64) .. string.pack(">I8", len * 8)
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do w[i] = string.unpack(">I4", msg, chunk + i * 4) end
    for i = 16, 63 do
      local a, b = w[i - 15], w[i - 2]
      local s0 = rrot(a, 7) ~ rrot(a, 18) ~ (a >> 3)
      local s1 = rrot(b, 17) ~ rrot(b, 19) ~ (b >> 10)
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & 0xffffffff
    end
    local a, b, c, d, e, f, g, hh = table.unpack(h)
    for i = 0, 63 do
      local S1 = rrot(e, 6) ~ rrot(e, 11) ~ rrot(e, 25)
      local ch = (e & f) ~ (~e & g)
      local t1 = (hh + S1 + ch + K[i + 1] + w[i]) & 0xffffffff
      local S0 = rrot(a, 2) ~ rrot(a, 13) ~ rrot(a, 22)
      local maj = (a & b) ~ (a & c) ~ (b & c)
      local t2 = (S0 + maj) & 0xffffffff
      hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & 0xffffffff, c, b, a, (t1 + t2) & 0xffffffff
    end
    local v = { a, b, c, d, e, f, g, hh }
    for i = 1, 8 do h[i] = (h[i] + v[i]) & 0xffffffff end
  end
  return string.pack(">I4I4I4I4I4I4I4I4", table.unpack(h))
end

local function hex(s)
  return (s:gsub(".", function(ch) return string.format("%02x", ch:byte()) end))
end

function M.sha256_hex(msg) return hex(sha256(msg)) end

function M.hmac_sha256_hex(key, msg)
  if #key > 64 then key = sha256(key) end
  key = key .. string.rep("\0", 64 - #key)
  local ipad = key:gsub(".", function(ch) return string.char(ch:byte() ~ 0x36) end)
  local opad = key:gsub(".", function(ch) return string.char(ch:byte() ~ 0x5c) end)
  return hex(sha256(opad .. sha256(ipad .. msg)))
end

--- The key GET /_sandbox/stats uses for an access token.
function M.token_key(token) return M.sha256_hex(token):sub(1, 16) end

------------------------------------------------------------------------------
-- the sandbox process

local Sandbox = {}
Sandbox.__index = Sandbox

local function kill(pid, sig)
  return os.execute(string.format("kill -%s %d 2>/dev/null", sig, pid))
end

local function finalize(self)
  if self.pid and not self.exit_code then
    kill(self.pid, "KILL")
  end
end

--- Starts a sandbox. opts.args: extra flags; opts.client_id / opts.secret;
-- opts.timeout: seconds to wait for the port file (5); opts.tls: HTTPS with a
-- test CA (sb.ca_file).
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({
    client_id = opts.client_id or DEFAULT_CLIENT_ID,
    secret = opts.secret or DEFAULT_SECRET,
    dir = files.tmpdir("truv-sandbox"),
  }, Sandbox)
  local argv = { quote(M.bin()), "--port", "0", "--port-file", quote(self.dir .. "/port"),
                 "--client-id", quote(self.client_id), "--secret", quote(self.secret) }
  if opts.tls then
    self.ca_file = self.dir .. "/ca.pem"
    argv[#argv + 1] = "--tls"
    argv[#argv + 1] = "--ca-out"
    argv[#argv + 1] = quote(self.ca_file)
  end
  local parent = own_pid()
  if parent and opts.watch_parent ~= false then
    argv[#argv + 1] = "--parent-pid"
    argv[#argv + 1] = tostring(parent)
  end
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = quote(a) end
  local d = quote(self.dir)
  -- the subshell records the sandbox's own pid ($! of a simple command is the
  -- exec'd program) and, when it ends, its exit status
  local cmd = string.format("( exec %s >%s/stdout 2>%s/stderr & echo $! >%s/pid; wait $!; " ..
                            "echo $? >%s/rc ) </dev/null >/dev/null 2>&1 &",
                            table.concat(argv, " "), d, d, d, d)
  assert(os.execute(cmd), "cannot run the shell")
  self.pid = tonumber(M.wait_until(function()
    local p = read_file(self.dir .. "/pid")
    return p and p:match("%d+")
  end, 2))
  if not self.pid then error("truv-sandbox did not start (no pid): " .. cmd) end
  local port = M.wait_until(function()
    local p = read_file(self.dir .. "/port")
    return (p and p:match("^(%d+)\n")) or (exists(self.dir .. "/rc") and "dead")
  end, opts.timeout or (M.bin():match("valgrind%.sh$") and START_TIMEOUT_VALGRIND)
         or START_TIMEOUT)
  if port == nil or port == "dead" then
    local err = read_file(self.dir .. "/stderr") or ""
    local rc = read_file(self.dir .. "/rc") or "(still running)"
    kill(self.pid, "KILL")
    error(string.format("truv-sandbox did not come up (exit %s)\nargs: %s\nstderr:\n%s",
                        rc:gsub("%s+$", ""), table.concat(argv, " "), err), 2)
  end
  self.port = tonumber(port)
  self.origin = (opts.tls and "https" or "http") .. "://127.0.0.1:" .. self.port
  self.base_url = self.origin .. "/v1/"
  running[self] = true
  setmetatable(self, { __index = Sandbox, __gc = finalize })
  return self
end

function Sandbox:stdout() return read_file(self.dir .. "/stdout") or "" end
function Sandbox:stderr() return read_file(self.dir .. "/stderr") or "" end

--- SIGTERM, then waits (bounded) for the exit; returns the exit code (-1 if it
-- had to be killed) and what the sandbox wrote on stderr.
function Sandbox:stop()
  if self.exit_code then return self.exit_code, self.final_stderr end
  -- the shell creates the rc file before it writes the status into it
  local function exit_status()
    local rc = read_file(self.dir .. "/rc")
    return rc and rc:match("^(%d+)\n")
  end
  kill(self.pid, "TERM")
  local rc = M.wait_until(exit_status, STOP_TIMEOUT)
  if not rc then
    kill(self.pid, "KILL")
    rc = M.wait_until(exit_status, 2)
  end
  self.exit_code = tonumber(rc) or -1
  self.final_stderr = self:stderr()
  running[self] = nil
  os.execute("rm -rf " .. quote(self.dir))
  return self.exit_code, self.final_stderr
end

--- stop(), raising an error (with the sandbox's stderr: sanitizer reports end
-- up there) unless it exited 0 with nothing on stderr.
function Sandbox:shutdown()
  local code, err = self:stop()
  if code ~= 0 or (err or "") ~= "" then
    error(string.format("truv-sandbox exited %s\n%s", tostring(code), err or ""), 2)
  end
end

function M.stop_all()
  for sb in pairs(running) do sb:stop() end
end

function Sandbox.url(_, path)
  if path:sub(1, 1) == "/" then return path end
  return "/v1/" .. path
end

--- HTTP with the auth headers; see the file header.
function Sandbox:request(method, path, body, headers, timeout)
  local h = { ["X-Access-Client-Id"] = self.client_id, ["X-Access-Secret"] = self.secret,
              ["Accept"] = "application/json" }
  if type(body) == "table" then body = cjson.encode(body) end
  if body then h["Content-Type"] = "application/json" end
  for k, v in pairs(headers or {}) do
    for existing in pairs(h) do
      if existing:lower() == k:lower() then h[existing] = nil end
    end
    h[k] = v
  end
  return M.http("127.0.0.1", self.port, method, self:url(path), h, body, timeout, self.ca_file)
end

--- A /_sandbox/ call: the decoded body, or an error on a non-2xx answer.
function Sandbox:admin(method, path, body)
  if path:sub(1, 1) ~= "/" then path = "/_sandbox/" .. path end
  if type(body) == "table" then body = cjson.encode(body) end
  local h = body and { ["Content-Type"] = "application/json" } or {}
  local status, res, err = M.http("127.0.0.1", self.port, method, path, h, body, nil, self.ca_file)
  if not status then error("sandbox " .. method .. " " .. path .. ": " .. tostring(res), 2) end
  if status < 200 or status > 299 then
    error(string.format("sandbox %s %s: HTTP %d %s", method, path, status,
                        res and (res.raw or cjson.encode(res)) or tostring(err)), 2)
  end
  return res
end

function Sandbox:now() return self:admin("GET", "clock").now end
function Sandbox:advance(seconds) return self:admin("POST", "clock", { advance_s = seconds }).now end
function Sandbox:set_time(epoch) return self:admin("POST", "clock", { set = epoch }).now end
function Sandbox:cases() return self:admin("GET", "cases").cases end
function Sandbox:stats() return self:admin("GET", "stats") end
function Sandbox:reset_stats() return self:admin("POST", "stats/reset", {}) end
function Sandbox:faults(t) return self:admin(t and "POST" or "GET", "faults", t) end
function Sandbox:config(t) return self:admin(t and "POST" or "GET", "config", t) end
function Sandbox:set_state(t) return self:admin("POST", "connections/state", t) end
function Sandbox:seed(t) return self:admin("POST", "seed", t).cases end
function Sandbox:webhooks() return self:admin("GET", "webhooks").deliveries end
--- True once every webhook the sandbox queued has been answered or given up
-- (none queued, none in flight: `queued` alone drops to 0 while the last
-- delivery is still being sent). Duplicates (--webhook-duplicates) are sent
-- after their original is counted and are not covered.
function Sandbox:webhooks_settled()
  local s = self:stats().webhooks
  return s.queued == 0 and s.delivered + s.failed >= s.sent, s
end
function Sandbox:complete_order(t) return self:admin("POST", "orders/complete", t) end
--- The user finishes Truv Bridge for t.bridge_token: {public_token, link_id}.
function Sandbox:complete_bridge(t) return self:admin("POST", "bridge/complete", t) end
function Sandbox:connections(order_id)
  return self:admin("GET", "connections?order_id=" .. order_id).connections
end

------------------------------------------------------------------------------
-- a webhook receiver

local Receiver = {}
Receiver.__index = Receiver

--- A receiver on 127.0.0.1:<free port>. opts.respond(n, req) returns the status
-- for the n-th request (default 200). Requests land in rx.requests as
-- {method, path, headers (lower-case), body (raw), json (decoded or nil)}.
-- Single-threaded: call rx:pump() to serve what is waiting.
function M.receiver(opts)
  opts = opts or {}
  local srv = assert(socket.bind("127.0.0.1", 0))
  srv:settimeout(0)
  local _, port = srv:getsockname()
  return setmetatable({ srv = srv, port = tonumber(port), requests = {},
                        url = "http://127.0.0.1:" .. port .. "/webhooks/truv",
                        respond = opts.respond or function() return 200 end }, Receiver)
end

function Receiver:serve(c)
  c:settimeout(5)
  local line = c:receive("*l")
  if not line then c:close() return end
  local method, path = line:match("^(%u+) (%S+)")
  local headers = read_headers(c) or {}
  local body = c:receive(tonumber(headers["content-length"]) or 0) or ""
  local req = { method = method, path = path, headers = headers, body = body }
  local ok, v = pcall(cjson.decode, body)
  req.json = ok and v or nil
  self.requests[#self.requests + 1] = req
  local status = self.respond(#self.requests, req) or 200
  c:send(string.format("HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", status))
  c:close()
end

--- Serves requests until until_fn(self) is true (returns true) or `timeout`
-- seconds pass (returns false). Without until_fn, serves for `timeout` seconds.
function Receiver:pump(timeout, until_fn)
  local deadline = socket.gettime() + (timeout or 1)
  while true do
    local c = self.srv:accept()
    if c then
      self:serve(c)
    else
      if until_fn and until_fn(self) then return true end
      if socket.gettime() > deadline then return until_fn == nil end
      socket.select({ self.srv }, nil, 0.02)
    end
  end
end

--- The decoded events received so far (duplicates included), in arrival order.
function Receiver:events()
  local out = {}
  for _, r in ipairs(self.requests) do out[#out + 1] = r.json end
  return out
end

function Receiver:close() self.srv:close() end

return M
