-- A small HTTP proxy in a child process, on a free loopback port, for the
-- specs of the transports' proxy support: CONNECT tunnels (https) and
-- absolute-form requests (http), as a corporate proxy handles them.
--
--   local proxy = require "spec.support.connect_proxy"
--   local p = proxy.start{ auth = "user:secret", refuse = { [443] = true } }
--   p.url          -- "http://127.0.0.1:PORT"
--   p:requests()   -- { { method =, target =, auth = "yes"|"no"|"bad" }, ... } so far
--   p:stop()
--
-- Only loopback destinations are reached. With `auth`, a request without
-- the right Proxy-Authorization (Basic) gets 407; a CONNECT to a port in
-- `refuse` gets 403; a destination that cannot be reached gets 502. An
-- absolute-form request is sent on in origin form with Connection: close
-- (one request per connection), Proxy-* headers dropped.
local files = require "spec.support.files"

local _M = {}

local SERVER = [=[
local socket = require "socket"
local dir = arg[1]
local cfg = dofile(dir .. "/config.lua")
local srv = assert(socket.bind("127.0.0.1", 0))
srv:settimeout(0)
local _, port = srv:getsockname()
local log = assert(io.open(dir .. "/log", "a"))
log:setvbuf("line")
local f = assert(io.open(dir .. "/port.tmp", "w")); f:write(port, "\n"); f:close()
os.rename(dir .. "/port.tmp", dir .. "/port")

local want = cfg.auth and ("Basic " .. (require("mime").b64(cfg.auth)))

local conns = {}          -- socket -> { buf =, peer = }

local function close(s)
  local c = conns[s]
  conns[s] = nil
  s:close()
  if c and c.peer and conns[c.peer] then
    conns[c.peer].peer = nil
    close(c.peer)
  end
end

local function send_all(s, data)
  s:settimeout(5)
  local ok = s:send(data)
  s:settimeout(0)
  return ok
end

local function answer(s, status, text)
  send_all(s, "HTTP/1.1 " .. status .. " " .. text .. "\r\nContent-Length: 0\r\n" ..
              (status == 407 and "Proxy-Authenticate: Basic realm=\"spec\"\r\n" or "") ..
              "Connection: close\r\n\r\n")
  close(s)
end

local function upstream(host, port)
  if host ~= "127.0.0.1" and host ~= "localhost" then return nil end
  local u = socket.tcp()
  u:settimeout(5)
  if not u:connect("127.0.0.1", port) then u:close(); return nil end
  u:settimeout(0)
  return u
end

local function head(s, c)
  local i = c.buf:find("\r\n\r\n", 1, true)
  if not i then return end
  local text, rest = c.buf:sub(1, i + 1), c.buf:sub(i + 4)
  c.buf = nil
  local method, target = text:match("^(%u+) (%S+) HTTP/1%.%d\r\n")
  local auth = text:match("\r\n[Pp]roxy%-[Aa]uthorization:%s*([^\r\n]*)")
  local verdict = not auth and "no" or (auth == want and "yes" or "bad")
  log:write(string.format("%s %s auth=%s\n", tostring(method), tostring(target), verdict))
  if not method then return answer(s, 400, "Bad Request") end
  if want and verdict ~= "yes" then return answer(s, 407, "Proxy Authentication Required") end
  local u
  if method == "CONNECT" then
    local host, p = target:match("^%[?([^%]]+)%]?:(%d+)$")
    if not host then return answer(s, 400, "Bad Request") end
    if cfg.refuse[tonumber(p)] then return answer(s, 403, "Forbidden") end
    u = upstream(host, tonumber(p))
    if not u then return answer(s, 502, "Bad Gateway") end
    send_all(s, "HTTP/1.1 200 Connection established\r\n\r\n")
  else
    local host, p, path = target:match("^http://([^:/]+):?(%d*)(/.*)$")
    if not host then return answer(s, 400, "Bad Request") end
    u = upstream(host, tonumber(p) or 80)
    if not u then return answer(s, 502, "Bad Gateway") end
    local lines = { method .. " " .. path .. " HTTP/1.1" }
    for line in text:gmatch("\r\n([^\r\n]+)") do
      local name = line:match("^([^:]+):"):lower()
      if name ~= "proxy-authorization" and name ~= "proxy-connection" and name ~= "connection" then
        lines[#lines + 1] = line
      end
    end
    lines[#lines + 1] = "Connection: close"
    send_all(u, table.concat(lines, "\r\n") .. "\r\n\r\n")
  end
  conns[u] = { peer = s }
  c.peer = u
  if rest ~= "" then send_all(u, rest) end
end

local deadline = os.time() + 600      -- a bound on the proxy's life
while os.time() < deadline do
  local readers = { srv }
  for s in pairs(conns) do readers[#readers + 1] = s end
  local ready = socket.select(readers, nil, 0.5)
  for _, s in ipairs(ready) do
    if s == srv then
      local c = srv:accept()
      if c then
        c:settimeout(0)
        conns[c] = { buf = "" }
      end
    elseif conns[s] then
      local data, err, partial = s:receive(65536)
      data = data or partial
      local c = conns[s]
      if data and data ~= "" then
        if c.buf then
          c.buf = c.buf .. data
          head(s, c)
        elseif c.peer then
          send_all(c.peer, data)
        end
      end
      if err == "closed" and conns[s] then close(s) end
    end
  end
end
]=]

local Proxy = {}
Proxy.__index = Proxy

local q = files.quote

function _M.start(opts)
  opts = opts or {}
  local dir = files.tmpdir("truv-proxy")
  local refuse = {}
  for p in pairs(opts.refuse or {}) do refuse[#refuse + 1] = string.format("[%d] = true", p) end
  files.write(dir .. "/config.lua", string.format("return { auth = %s, refuse = { %s } }\n",
              opts.auth and string.format("%q", opts.auth) or "nil", table.concat(refuse, ", ")))
  files.write(dir .. "/proxy.lua", SERVER)
  files.write(dir .. "/log", "")
  local pid, port = files.start_lua_server(dir .. "/proxy.lua", dir,
                                           { log = dir .. "/stderr", no_preload = true })
  if not port then
    os.execute("kill " .. pid .. " 2>/dev/null")
    error("the spec proxy did not start: " .. (files.read(dir .. "/stderr") or ""))
  end
  return setmetatable({ dir = dir, pid = pid, port = port,
                        url = "http://127.0.0.1:" .. port }, Proxy)
end

--- What the proxy was asked so far, in order.
function Proxy:requests()
  local out = {}
  for line in (files.read(self.dir .. "/log") or ""):gmatch("[^\n]+") do
    local method, target, auth = line:match("^(%S+) (%S+) auth=(%a+)$")
    out[#out + 1] = { method = method, target = target, auth = auth }
  end
  return out
end

function Proxy:stop()
  if self.pid then os.execute("kill " .. self.pid .. " 2>/dev/null") end
  self.pid = nil
  os.execute("rm -rf " .. q(self.dir))
end

return _M
