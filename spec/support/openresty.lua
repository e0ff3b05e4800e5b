-- spec.support.openresty: run Debian's nginx (with libnginx-mod-http-lua)
-- for a spec, under a temporary prefix, on a free loopback port.
--
--   local openresty = require "spec.support.openresty"
--   local srv = openresty.start{ conf = openresty.config{ workers = 2, http = "...",
--                                                          server = "..." } }
--   local srv = openresty.start{ conf = openresty.example{ workers = 2, ... },
--                                env = { TRUV_SECRET = ... } }
--   local status, body, headers = srv:request("POST", "/truv/webhooks", body, headers)
--   srv:stop()           -- TERM, bounded wait, then KILL of the whole group
--
-- A config is a function of the port and the prefix (config{} and example{}
-- make one): start() renders it, writes <prefix>/conf/nginx.conf, runs
-- `nginx -p <prefix> -e <prefix>/logs/error.log` in its own process group
-- (daemon off), and waits (bounded) until the port answers. A port taken in
-- between is retried on another (5 tries), anything else raises with the
-- error log. A watchdog shell stops nginx when this process dies. Logs stay
-- under the prefix (srv:error_log()); stop() removes the prefix unless
-- TRUV_KEEP_NGINX is set.
--
-- Paths: the repository's lua/ and examples/openresty/, spec/openresty/lua/
-- (test doubles, searched first), the LuaJIT truv.core of $TRUV_BUILD_DIR,
-- and the system's 5.1 modules (luassert, say) come after.
local socket = require "socket"
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"

local M = {}

local START_TIMEOUT = 10
local STOP_TIMEOUT = 5

-- Under the sanitizer build the specs run with the ASan runtime preloaded
-- (spec/CMakeLists.txt); nginx needs it to load the instrumented truv.core,
-- but helper programs (ps, pgrep, mktemp) can deadlock with it: they run
-- without.
local NOPRELOAD = "LD_PRELOAD= "
M.NOPRELOAD = NOPRELOAD

local read_file, write_file, quote, own_pid = files.read, files.write, files.quote, files.own_pid

function M.source_dir()
  local d = os.getenv("TRUV_SOURCE_DIR")
  if d and d ~= "" then return d end
  local p = assert(io.popen("pwd"))
  d = p:read("l")
  p:close()
  return d
end

function M.build_dir()
  local d = os.getenv("TRUV_BUILD_DIR")
  if d and d ~= "" then return d end
  return M.source_dir() .. "/build/release"
end

function M.nginx_bin()
  local b = os.getenv("TRUV_NGINX_BIN")
  if b and b ~= "" then return b end
  return "/usr/sbin/nginx"
end

--- The modules Debian's packages put in /usr/share/nginx/modules.
M.MODULES = {
  "/usr/share/nginx/modules/ndk_http_module.so",
  "/usr/share/nginx/modules/ngx_http_lua_module.so",
}

--- Is everything needed here? Returns true or false, reason.
function M.available()
  if not io.open(M.nginx_bin(), "rb") then return false, "no " .. M.nginx_bin() end
  for _, m in ipairs(M.MODULES) do
    if not io.open(m, "rb") then return false, "no " .. m end
  end
  local so = M.build_dir() .. "/lua/luajit/truv/core.so"
  if not io.open(so, "rb") then return false, "no LuaJIT truv.core at " .. so end
  return true
end

function M.package_path(first)
  local src = M.source_dir()
  return table.concat({
    first and (first .. "/?.lua") or (src .. "/spec/openresty/lua/?.lua"),
    src .. "/lua/?.lua", src .. "/lua/?/init.lua",
    src .. "/examples/openresty/?.lua",
    src .. "/?.lua", src .. "/?/init.lua",
  }, ";") .. ";;"
end

function M.package_cpath()
  return M.build_dir() .. "/lua/luajit/?.so;;"
end

-- Main-level lines every test config starts with.
local function preamble(prefix)
  local lines = {}
  for _, m in ipairs(M.MODULES) do lines[#lines + 1] = "load_module " .. m .. ";" end
  lines[#lines + 1] = "daemon off;"
  lines[#lines + 1] = "master_process on;"
  lines[#lines + 1] = "pid " .. prefix .. "/logs/nginx.pid;"
  lines[#lines + 1] = "error_log " .. prefix .. "/logs/error.log notice;"
  -- as root the workers would run as nobody: keep them able to read the tree
  lines[#lines + 1] = "user root root;"
  return table.concat(lines, "\n") .. "\n"
end

-- http-level lines: temporary files and logs under the prefix.
local function http_basics(prefix)
  local lines = { "access_log off;" }
  for _, t in ipairs{ "client_body", "proxy", "fastcgi", "uwsgi", "scgi" } do
    lines[#lines + 1] = string.format("%s_temp_path %s/tmp/%s;", t, prefix, t)
  end
  return table.concat(lines, "\n    ") .. "\n"
end

local function is_root()
  local p = io.popen(NOPRELOAD .. "id -u")
  local uid = p and p:read("l")
  if p then p:close() end
  return uid == "0"
end

--- A config of our own: opts.workers (default 2), opts.main (main-level
-- text), opts.http (http-level text), opts.server (inside the server block),
-- opts.listen (extra listen parameters, e.g. "reuseport"). Each text may be
-- a function(port, prefix, extra_ports) returning it (start's
-- opts.extra_ports: more free ports, drawn again on each try).
function M.config(opts)
  opts = opts or {}
  return function(port, prefix, extra)
    local function text(v)
      if type(v) == "function" then return v(port, prefix, extra or {}) end
      return v or ""
    end
    local pre = preamble(prefix)
    if not is_root() then pre = pre:gsub("user root root;\n", "") end
    return pre .. text(opts.main) .. "\n" ..
      "worker_processes " .. (opts.workers or 2) .. ";\n" ..
      "events { worker_connections 1024; }\n" ..
      "http {\n    " .. http_basics(prefix) ..
      "    lua_package_path \"" .. M.package_path() .. "\";\n" ..
      "    lua_package_cpath \"" .. M.package_cpath() .. "\";\n" ..
      text(opts.http) .. "\n" ..
      "    server {\n        listen 127.0.0.1:" .. port .. " " .. (opts.listen or "") .. ";\n" ..
      text(opts.server) .. "\n    }\n}\n"
  end
end

-- Replaces the one occurrence of `pattern` (plain text) in s; raises when it
-- is missing or not unique, so that a changed example breaks loudly.
local function replace_once(s, plain, replacement, what)
  local i, j = s:find(plain, 1, true)
  assert(i, "examples/openresty/nginx.conf: cannot find " .. what .. ": " .. plain)
  assert(not s:find(plain, j + 1, true), "examples/openresty/nginx.conf: " .. what ..
         " is not unique")
  return s:sub(1, i - 1) .. replacement .. s:sub(j + 1)
end

--- The example gateway's nginx.conf (examples/openresty/nginx.conf) as the
-- README tells a user to adapt it: its listen port, package paths and
-- worker count changed, the modules loaded, logs and temporary files under
-- the prefix. opts.workers, opts.http (added to the http block),
-- opts.server (added to the server block), opts.listen, opts.lua_dir (a
-- directory searched first instead of spec/openresty/lua), opts.replace
-- ({ {text, replacement}, ... }: more lines to change, each found once).
function M.example(opts)
  opts = opts or {}
  local text = assert(read_file(M.source_dir() .. "/examples/openresty/nginx.conf"))
  return function(port, prefix)
    local s = text
    s = replace_once(s, "worker_processes auto;", "worker_processes " .. (opts.workers or 2) .. ";",
                     "worker_processes")
    -- the log goes under the prefix, at notice (the preamble's error_log)
    s = replace_once(s, "\nerror_log /var/log/nginx/error.log warn;", "\n", "the error_log")
    s = replace_once(s, "listen 8080;",
                     "listen 127.0.0.1:" .. port .. " " .. (opts.listen or "") .. ";\n" ..
                     (opts.server or ""), "the listen directive")
    s = s:gsub('lua_package_path "[^"]*";', function()
      return 'lua_package_path "' .. M.package_path(opts.lua_dir) .. '";'
    end, 1)
    for _, r in ipairs(opts.replace or {}) do s = replace_once(s, r[1], r[2], r[1]) end
    s = s:gsub('lua_package_cpath "[^"]*";', function()
      return 'lua_package_cpath "' .. M.package_cpath() .. '";'
    end, 1)
    s = replace_once(s, "http {", "http {\n    " .. http_basics(prefix) .. (opts.http or "") .. "\n",
                     "the http block")
    local pre = preamble(prefix)
    if not is_root() then pre = pre:gsub("user root root;\n", "") end
    return pre .. s
  end
end

------------------------------------------------------------------------------
-- the nginx process

local Nginx = {}
Nginx.__index = Nginx

local function free_port()  -- a port nothing listens on (for now)
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

M.free_port = free_port

local function alive(pid)
  return read_file("/proc/" .. pid .. "/stat") ~= nil
end

local function group_kill(pid, sig)
  os.execute(string.format("kill -%s -%d 2>/dev/null", sig, pid))
end

local function finalize(self)
  if self.pid and not self.stopped then group_kill(self.pid, "KILL") end
end

local function launch(self, conf, port, extra)
  local text = conf(port, self.prefix, extra)
  write_file(self.prefix .. "/conf/nginx.conf", text)
  os.remove(self.prefix .. "/logs/error.log")
  os.remove(self.prefix .. "/logs/nginx.pid")
  os.remove(self.prefix .. "/rc")
  local envs = {}
  for k, v in pairs(self.env) do envs[#envs + 1] = k .. "=" .. quote(v) end
  local d = quote(self.prefix)
  -- setsid: nginx leads its own process group, so that stopping it also
  -- stops its workers whatever happens to the master
  local cmd = string.format(
    "( exec env %s setsid %s -p %s -c %s/conf/nginx.conf -e %s/logs/error.log " ..
    ">%s/logs/stdout 2>&1 & echo $! >%s/pid; wait $!; echo $? >%s/rc ) </dev/null >/dev/null 2>&1 &",
    table.concat(envs, " "), quote(M.nginx_bin()), d, d, d, d, d, d)
  os.remove(self.prefix .. "/pid")
  assert(os.execute(cmd), "cannot run the shell")
  local pid = tonumber(sandbox.wait_until(function()
    local p = read_file(self.prefix .. "/pid")
    return p and p:match("%d+")
  end, 2))
  assert(pid, "nginx did not start")
  self.pid = pid
  -- stop nginx if this process goes away (a crashed or killed busted)
  local parent = own_pid()
  if parent then
    os.execute(string.format("( while kill -0 %d 2>/dev/null && kill -0 %d 2>/dev/null; do " ..
                             "LD_PRELOAD= sleep 1; done; kill -TERM -%d 2>/dev/null ) </dev/null " ..
                             ">/dev/null 2>&1 &", parent, pid, pid))
  end
  local ready = sandbox.wait_until(function()
    if read_file(self.prefix .. "/rc") then return "dead" end
    if not read_file(self.prefix .. "/logs/nginx.pid") then return nil end
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    return ok and "up" or nil
  end, START_TIMEOUT, 0.02)
  -- the master listens before it forks its workers: up means every worker
  -- is there too (a spec counting them right after start found none once)
  local workers = tonumber(text:match("\nworker_processes (%d+);") or "")
  if ready == "up" and workers then
    ready = sandbox.wait_until(function()
      if read_file(self.prefix .. "/rc") then return "dead" end
      return #self:workers() >= workers and "up" or nil
    end, START_TIMEOUT, 0.05)
  end
  return ready
end

--- Starts nginx. opts.conf: a config function (config{} or example{});
-- opts.env: environment variables for nginx (it passes to its workers
-- only those named by `env` directives); opts.extra_ports: how many more
-- free ports the config needs (srv.extra_ports once started).
function M.start(opts)
  local ok, why = M.available()
  assert(ok, "cannot run nginx for the OpenResty specs: " .. tostring(why))
  local prefix = files.tmpdir("truv-nginx")
  os.execute(NOPRELOAD .. "chmod 755 " .. quote(prefix) .. " && " .. NOPRELOAD .. "mkdir -p " ..
             quote(prefix) .. "/conf " .. quote(prefix) .. "/logs " .. quote(prefix) .. "/tmp")
  local self = setmetatable({ prefix = prefix, env = opts.env or {} }, Nginx)
  setmetatable(self, { __index = Nginx, __gc = finalize })
  for _ = 1, 5 do
    local port = free_port()
    local extra = {}
    for i = 1, opts.extra_ports or 0 do
      repeat extra[i] = free_port() until extra[i] ~= port
    end
    local state = launch(self, opts.conf, port, extra)
    if state == "up" then
      self.port = port
      self.extra_ports = extra
      self.origin = "http://127.0.0.1:" .. port
      return self
    end
    local log = self:error_log()
    if state ~= "dead" then group_kill(self.pid, "KILL") end
    if not log:find("Address already in use", 1, true) then
      local conf = read_file(prefix .. "/conf/nginx.conf") or ""
      self.stopped = true
      os.execute(NOPRELOAD .. "rm -rf " .. quote(prefix))
      error("nginx did not come up (" .. tostring(state) .. ")\n--- error.log:\n" .. log ..
            "\n--- stdout:\n" .. (read_file(prefix .. "/logs/stdout") or "") ..
            "\n--- nginx.conf:\n" .. conf, 2)
    end
    sandbox.wait_until(function() return read_file(prefix .. "/rc") end, 2)
  end
  self.stopped = true
  os.execute(NOPRELOAD .. "rm -rf " .. quote(prefix))
  error("nginx: no free port after 5 tries", 2)
end

function Nginx:error_log()
  return read_file(self.prefix .. "/logs/error.log") or ""
end

--- Lines of the error log at `level` or worse ("[error]", "[alert]", ...),
-- excluding any matching one of `allowed` (plain substrings).
function Nginx:log_lines(levels, allowed)
  local out = {}
  for line in self:error_log():gmatch("[^\n]+") do
    for _, lvl in ipairs(levels or { "error", "crit", "alert", "emerg" }) do
      if line:find("[" .. lvl .. "]", 1, true) then
        local ok = false
        for _, a in ipairs(allowed or {}) do
          if line:find(a, 1, true) then ok = true end
        end
        if not ok then out[#out + 1] = line end
        break
      end
    end
  end
  return out
end

--- The workers' pids (children of the master).
function Nginx:workers()
  local pids = {}
  local p = io.popen(NOPRELOAD .. "ps -o pid= --ppid " .. self.pid .. " 2>/dev/null")
  for line in p:lines() do pids[#pids + 1] = tonumber(line) end
  p:close()
  return pids
end

--- Stops nginx (TERM to the group, bounded wait, then KILL); returns the
-- error log. Removes the prefix unless TRUV_KEEP_NGINX is set.
function Nginx:stop()
  if self.stopped then return self.final_log end
  group_kill(self.pid, "TERM")
  local gone = sandbox.wait_until(function() return not alive(self.pid) end, STOP_TIMEOUT)
  if not gone then group_kill(self.pid, "KILL") end
  sandbox.wait_until(function() return read_file(self.prefix .. "/rc") end, 2)
  -- the workers too
  sandbox.wait_until(function()
    local p = io.popen(NOPRELOAD .. "pgrep -g " .. self.pid .. " 2>/dev/null")
    local any = p:read("l")
    p:close()
    return any == nil
  end, 2)
  self.stopped = true
  self.final_log = self:error_log()
  if (os.getenv("TRUV_KEEP_NGINX") or "") == "" then
    os.execute(NOPRELOAD .. "rm -rf " .. quote(self.prefix))
  else
    io.stderr:write("nginx prefix kept: ", self.prefix, "\n")
  end
  return self.final_log
end

--- One request on a fresh connection (see sandbox.http): status, body
-- (decoded JSON), headers, raw body | nil, err.
function Nginx:request(method, path, body, headers, timeout)
  local h = {}
  if type(body) == "table" then body = sandbox.json.encode(body) end
  if body then h["Content-Type"] = "application/json" end
  for k, v in pairs(headers or {}) do h[k] = v end
  return sandbox.http("127.0.0.1", self.port, method, path, h, body, timeout)
end

--- Sends every request at once (each on its own connection, HTTP/1.0),
-- then reads all the answers. reqs: { {method, path, body, headers}, ... }.
-- Returns a list of { status =, body = (decoded JSON or {raw=}), raw =,
-- headers = (lower-case names), elapsed = seconds from send to the end of
-- the answer } in the order of
-- reqs; raises if they do not all finish within `timeout` seconds.
function Nginx:concurrent(reqs, timeout)
  local conns, out = {}, {}
  local t0 = socket.gettime()
  for i, r in ipairs(reqs) do
    local c = socket.tcp()
    c:settimeout(5)
    assert(c:connect("127.0.0.1", self.port))
    local body = r[3] or ""
    if type(body) == "table" then body = sandbox.json.encode(body) end
    local lines = { string.format("%s %s HTTP/1.0", r[1], r[2]), "Host: 127.0.0.1",
                    "Content-Length: " .. #body }
    if body ~= "" then lines[#lines + 1] = "Content-Type: application/json" end
    for k, v in pairs(r[4] or {}) do lines[#lines + 1] = k .. ": " .. v end
    assert(c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. body))
    c:settimeout(0)
    conns[i] = { sock = c, parts = {}, sent = socket.gettime() }
  end
  local deadline = t0 + (timeout or 30)
  local open = #conns
  while open > 0 do
    assert(socket.gettime() < deadline, "concurrent requests: no answer within the deadline")
    local socks = {}
    for _, c in ipairs(conns) do
      if not c.done then socks[#socks + 1] = c.sock end
    end
    socket.select(socks, nil, 0.1)
    for _, c in ipairs(conns) do
      if not c.done then
        local data, err, partial = c.sock:receive(65536)
        local chunk = data or partial
        if chunk and chunk ~= "" then c.parts[#c.parts + 1] = chunk end
        if err == "closed" then
          c.done = true
          c.elapsed = socket.gettime() - c.sent
          c.sock:close()
          open = open - 1
        end
      end
    end
  end
  for i, c in ipairs(conns) do
    local raw = table.concat(c.parts)
    local status = tonumber(raw:match("^HTTP/%d%.%d (%d%d%d)"))
    local head, bodytext = raw:match("^(.-)\r\n\r\n(.*)$")
    local headers = {}
    for name, value in (head or ""):gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do
      headers[name:lower()] = value
    end
    bodytext = bodytext or ""
    local ok, decoded = pcall(sandbox.json.decode, bodytext)
    out[i] = { status = status, raw = bodytext, body = ok and decoded or { raw = bodytext },
               headers = headers, elapsed = c.elapsed }
  end
  return out
end

return M
