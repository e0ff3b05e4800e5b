-- A scripted HTTP server in a child process, for answers the sandbox never
-- gives (a 200 with broken JSON, a 405, a 410, a hang-up mid-header).
--
--   local raw = require "spec.support.rawserver"
--   local srv = raw.start{ "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{oops", ... }
--   srv.base_url  -- "http://127.0.0.1:PORT/v1/"
--   srv:stop()
-- Each connection gets the next scripted answer (the last one repeats) and
-- is closed after it.
local files = require "spec.support.files"

local _M = {}

local SERVER = [=[
local socket = require "socket"
local dir = arg[1]
local answers = dofile(dir .. "/answers.lua")
local srv = assert(socket.bind("127.0.0.1", 0))
local _, port = srv:getsockname()
local f = assert(io.open(dir .. "/port.tmp", "w")); f:write(port, "\n"); f:close()
os.rename(dir .. "/port.tmp", dir .. "/port")
srv:settimeout(30)
local n = 0
while true do
  local c = srv:accept()
  if not c then break end
  c:settimeout(5)
  local len = 0
  while true do
    local line = c:receive("*l")
    if not line or line == "" then break end
    local v = line:lower():match("^content%-length:%s*(%d+)")
    if v then len = tonumber(v) end
  end
  if len > 0 then c:receive(len) end
  n = n + 1
  c:send(answers[math.min(n, #answers)])
  c:close()
end
]=]

local Server = {}
Server.__index = Server

local q = files.quote

function _M.start(answers)
  local dir = files.tmpdir("truv-raw")
  local list = {}
  for i, a in ipairs(answers) do list[i] = string.format("%q,\n", a) end
  files.write(dir .. "/answers.lua", "return {\n" .. table.concat(list) .. "}\n")
  files.write(dir .. "/server.lua", SERVER)
  local pid, port = files.start_lua_server(dir .. "/server.lua", dir)
  assert(port, "the scripted server did not start")
  return setmetatable({ pid = pid, port = port, dir = dir,
                        base_url = "http://127.0.0.1:" .. port .. "/v1/" }, Server)
end

function Server:stop()
  os.execute("kill " .. self.pid .. " 2>/dev/null")
  os.execute("rm -rf " .. q(self.dir))
end

return _M
