-- A loopback Truv that answers with Truv's documentation examples
-- (spec/fixtures/truv-docs/), routed by method and path, in a child
-- process; it records every request it gets, in memory, and answers the
-- record at GET /_requests (a file written per request could stall the
-- answer for seconds when the disk is busy: spec/unit/scheduler_spec.lua).
--
--   local docserver = require "spec.support.docserver"
--   local srv = docserver.start{
--     { "GET", "^/v1/orders/[^/]+/$", 200, docserver.doc("order.json", patch_fn) },
--     { "POST", "^/v1/orders/$", { 201, body1 }, { 500, body2 } },  -- answers in turn, the last repeats
--   }
--   srv.base_url                 -- "http://127.0.0.1:PORT/v1/"
--   srv:requests()               -- { { method =, target =, body = }, ... } so far
--   srv:stop()
--
-- A route is { method, target pattern (a Lua pattern on the request
-- target, query included), answers... } where an answer is { status, body }
-- (or, for a single answer, the status and body inline). An unmatched
-- request gets 404 {"detail": "Not Found."}, as Truv's framework answers.
local files = require "spec.support.files"
local sandbox = require "spec.support.sandbox"
local cjson = require("cjson").new()

local _M = {}

local SERVER = [=[
local socket = require "socket"
local dir = arg[1]
local routes = dofile(dir .. "/routes.lua")
local srv = assert(socket.bind("127.0.0.1", 0))
local _, port = srv:getsockname()
local f = assert(io.open(dir .. "/port.tmp", "w")); f:write(port, "\n"); f:close()
os.rename(dir .. "/port.tmp", dir .. "/port")
srv:settimeout(300)
local served, log = {}, {}
local function send(c, status, reason, ctype, answer)
  c:send(string.format("HTTP/1.1 %d %s\r\nContent-Type: %s\r\n" ..
                       "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
                       status, reason, ctype, #answer, answer))
  c:close()
end
while true do
  local c = srv:accept()
  if not c then break end
  c:settimeout(5)
  local line = c:receive("*l")
  local method, target = (line or ""):match("^(%u+) (%S+) HTTP")
  local len = 0
  while true do
    local h = c:receive("*l")
    if not h or h == "" then break end
    local v = h:lower():match("^content%-length:%s*(%d+)")
    if v then len = tonumber(v) end
  end
  local body = len > 0 and c:receive(len) or ""
  if method == "GET" and target == "/_requests" then
    send(c, 200, "OK", "text/plain", table.concat(log))
  else
    log[#log + 1] = string.format("R(%q, %q, %q)\n", method or "", target or "", body or "")
    local status, answer = 404, '{"detail": "Not Found."}'
    for i, r in ipairs(routes) do
      if r[1] == method and target and target:match(r[2]) then
        served[i] = (served[i] or 0) + 1
        local a = r.answers[math.min(served[i], #r.answers)]
        status, answer = a[1], a[2]
        break
      end
    end
    local reasons = { [200] = "OK", [201] = "Created", [404] = "Not Found" }
    send(c, status, reasons[status] or "Status", "application/json", answer)
  end
end
]=]

-- A value that encodes as an empty JSON array (this lua-cjson has no
-- array metatable).
_M.EMPTY_ARRAY = "@empty_array@"

--- `t` as JSON, with EMPTY_ARRAY values as [].
function _M.encode(t)
  return (cjson.encode(t):gsub('"' .. _M.EMPTY_ARRAY .. '"', "[]"))
end

--- A documentation example (its text), optionally changed by patch(t),
-- which gets the decoded example and may edit it or return a new value.
function _M.doc(name, patch)
  local text = files.slurp((os.getenv("TRUV_FIXTURES") or "spec/fixtures") .. "/truv-docs/" .. name)
  if not patch then return text end
  local t = cjson.decode(text)
  t = patch(t) or t
  return _M.encode(t)
end

--- A decoded documentation example.
function _M.decoded(name)
  return cjson.decode(_M.doc(name))
end

_M.json = cjson

local Server = {}
Server.__index = Server

local q = files.quote

function _M.start(routes)
  local dir = files.tmpdir("truv-docs")
  local out = { "return {\n" }
  for _, r in ipairs(routes) do
    local answers = {}
    if type(r[3]) == "number" then
      answers[1] = { r[3], r[4] }
    else
      for i = 3, #r do answers[#answers + 1] = r[i] end
    end
    local list = {}
    for _, a in ipairs(answers) do
      list[#list + 1] = string.format("{ %d, %q }", a[1], a[2])
    end
    out[#out + 1] = string.format("{ %q, %q, answers = { %s } },\n", r[1], r[2],
                                  table.concat(list, ", "))
  end
  out[#out + 1] = "}\n"
  files.write(dir .. "/routes.lua", table.concat(out))
  files.write(dir .. "/server.lua", SERVER)
  local pid, port = files.start_lua_server(dir .. "/server.lua", dir)
  assert(port, "the documentation server did not start")
  return setmetatable({ pid = pid, port = port, dir = dir,
                        base_url = "http://127.0.0.1:" .. port .. "/v1/" }, Server)
end

--- Every request so far: { method =, target =, body = }.
function Server:requests()
  local list = {}
  local all = sandbox.raw(self.port, "GET /_requests HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
  local text = assert(all:match("^HTTP/1%.1 200 .-\r\n\r\n(.*)$"), "the server's record")
  local function R(m, t, b) list[#list + 1] = { method = m, target = t, body = b } end
  assert(load(text, "log", "t", { R = R }))()
  return list
end

--- The requests whose "METHOD target" matches `pattern`.
function Server:count(pattern)
  local n = 0
  for _, r in ipairs(self:requests()) do
    if (r.method .. " " .. r.target):match(pattern) then n = n + 1 end
  end
  return n
end

function Server:stop()
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  os.execute("rm -rf " .. q(self.dir))
end

return _M
