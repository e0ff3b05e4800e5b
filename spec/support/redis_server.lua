-- spec.support.redis_server: a throwaway redis-server for a spec.
--
--   local redis_server = require "spec.support.redis_server"
--   local srv = redis_server.start{ args = { "--maxmemory", "10mb" } }
--   srv.port, srv.unix (its Unix socket), srv:url(db), srv:call("DBSIZE")
--   srv:kill() (SIGKILL), srv:restart() (same port, empty), srv:stop()
--
-- It listens on 127.0.0.1 on a port probed free (bind port 0, read the
-- port, close: redis-server's own --port 0 means "no TCP"), and on a Unix
-- socket in a private directory; no persistence (--save '' --appendonly
-- no), maxmemory-policy noeviction, DEBUG enabled for local connections
-- (the stall tests). A watchdog shell kills it if this process dies, so a
-- crashed spec leaves no server behind. start() raises, with the server's
-- log, when it does not answer PING within 5 s (3 probes of a port).
local socket = require "socket"
local core = require "truv.core"
local files = require "spec.support.files"

local M = {}
local START_TIMEOUT = 5

local quote = files.quote

local function probe_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local Server = {}
Server.__index = Server

--- A command through a fresh connection of our own: true, value | false, text | nil, err.
function Server:call(...)
  local conn = core.redis_connect{ host = "127.0.0.1", port = self.port, password = self.password,
                                   timeout_ms = 5000 }
  local ok, v, e = conn:call(...)
  conn:close()
  return ok, v, e
end

function Server:url(db)
  return string.format("redis://%s127.0.0.1:%d/%d",
                       self.password and (":" .. self.password .. "@") or "", self.port, db or 0)
end

local function alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

function Server:_launch()
  local args = {
    "redis-server", "--port", tostring(self.port), "--bind", "127.0.0.1",
    "--unixsocket", self.unix, "--unixsocketperm", "700",
    "--save", "''", "--appendonly", "no", "--maxmemory-policy", "noeviction",
    "--enable-debug-command", "local", "--dir", quote(self.dir),
    "--logfile", quote(self.dir .. "/redis.log"), "--daemonize", "no",
  }
  if self.password then args[#args + 1] = "--requirepass " .. quote(self.password) end
  for _, a in ipairs(self.args) do args[#args + 1] = quote(a) end
  -- the watchdog: starts the server, writes its pid, kills it when we die
  local script = string.format(
    "%s >/dev/null 2>&1 & rpid=$!; echo $rpid > %s; " ..
    "while kill -0 %d 2>/dev/null && kill -0 $rpid 2>/dev/null; do sleep 1; done; " ..
    "kill -9 $rpid 2>/dev/null",
    table.concat(args, " "), quote(self.dir .. "/pid"), files.own_pid())
  os.remove(self.dir .. "/pid")
  assert(os.execute("LD_PRELOAD= sh -c " .. quote(script) .. " >/dev/null 2>&1 &"))
  local deadline = socket.gettime() + START_TIMEOUT
  while socket.gettime() < deadline do
    local pid = files.read(self.dir .. "/pid")
    if pid then self.pid = tonumber(pid:match("%d+")) end
    if self.pid then
      local ok, v = self:call("PING")
      if ok and v == "PONG" then return true end
      if ok == false and v:match("^LOADING") == nil and v:match("^NOAUTH") then return true end
      if not alive(self.pid) then return false end
    end
    socket.sleep(0.02)
  end
  return false
end

--- Starts a server. opts.args: more redis-server arguments; opts.password.
function M.start(opts)
  opts = opts or {}
  local self = setmetatable({ args = opts.args or {}, password = opts.password,
                              dir = files.tmpdir("truv-redis") }, Server)
  self.unix = self.dir .. "/redis.sock"
  for _ = 1, 3 do
    self.port = probe_port()
    if self:_launch() then return self end
    self:kill()
  end
  error("redis-server did not start on 127.0.0.1 (3 ports tried); its log:\n" ..
        tostring(files.read(self.dir .. "/redis.log")))
end

--- SIGKILL: the server dies at once, losing everything (no persistence).
function Server:kill()
  if self.pid then
    os.execute("kill -9 " .. self.pid .. " 2>/dev/null")
    local deadline = socket.gettime() + 5
    while alive(self.pid) and socket.gettime() < deadline do socket.sleep(0.01) end
    self.pid = nil
  end
end

--- Kills and starts it again on the same port (empty).
function Server:restart()
  self:kill()
  os.remove(self.unix)
  assert(self:_launch(), "redis-server did not restart on port " .. self.port)
end

function Server:stop()
  self:kill()
  os.execute("rm -rf " .. quote(self.dir))
end

return M
