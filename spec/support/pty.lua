-- spec.support.pty: a command run at a terminal, as a user would run it.
--
--   local pty = require "spec.support.pty"
--   local t = pty.start{ dir = dir, cols = 100, rows = 30, env = { NAME = "v" },
--                        argv = { "lua5.4", BIN, "--journal", ... } }
--   t:key("\3")            -- Ctrl-C, typed: the terminal sends SIGINT
--   t:resize(60, 20)       -- the window made narrower while it runs
--   local status = t:wait(30)   -- the exit status a shell shows (130 after SIGINT)
--   local text = t:screen()     -- everything it wrote to the terminal
--
-- The command runs in a pseudo-terminal made by script(1) (util-linux's
-- bsdutils, part of every Debian): its stdin, stdout and stderr are the
-- terminal, which is its controlling terminal, with TERM=xterm and the size
-- given (stty). What t:key() writes goes through the terminal's line
-- discipline as typed keys: Ctrl-C there is a SIGINT to the command,
-- exactly as at a keyboard. t.pid is the command's own pid (it is exec'd,
-- not a child of a shell), for signals sent with kill(1); t.tty its
-- terminal device. script(1) itself runs without LD_PRELOAD (the sanitizer
-- runtime the suite may preload for truv.core); the command gets it back.
local files = require "spec.support.files"
local socket = require "socket"

local quote, read = files.quote, files.read

local M = {}

local Term = {}
Term.__index = Term

local function wait_for(path, timeout)
  local deadline = socket.gettime() + timeout
  repeat
    local v = read(path)
    if v and v:match("\n$") then return v end
    socket.sleep(0.01)
  until socket.gettime() > deadline
  return nil
end

function M.start(opts)
  local dir = assert(opts.dir, "pty.start: dir is required")
  os.remove(dir .. "/pty.pid"); os.remove(dir .. "/pty.tty"); os.remove(dir .. "/pty.status")
  local env = { "TERM=xterm" }
  local preload = os.getenv("LD_PRELOAD")
  if preload and preload ~= "" then env[#env + 1] = "LD_PRELOAD=" .. quote(preload) end
  for k, v in pairs(opts.env or {}) do env[#env + 1] = k .. "=" .. quote(v) end
  local argv = {}
  for i, a in ipairs(opts.argv) do argv[i] = quote(a) end
  local inner = string.format("stty cols %d rows %d; tty > %s; echo $$ > %s; exec env %s %s",
                              opts.cols or 80, opts.rows or 24, quote(dir .. "/pty.tty"),
                              quote(dir .. "/pty.pid"), table.concat(env, " "),
                              table.concat(argv, " "))
  local cmd = string.format("env -u LD_PRELOAD script -qfec %s /dev/null >%s 2>&1; echo $? >%s",
                            quote(inner), quote(dir .. "/pty.screen"), quote(dir .. "/pty.status"))
  local input = assert(io.popen(cmd, "w"))
  local t = setmetatable({ dir = dir, input = input }, Term)
  local pid = wait_for(dir .. "/pty.pid", 10)
  assert(pid, "the command did not start in a terminal: " .. (read(dir .. "/pty.screen") or ""))
  t.pid = tonumber(pid)
  t.tty = (read(dir .. "/pty.tty") or ""):match("^(%S+)")
  return t
end

--- Types `bytes` at the terminal.
function Term:key(bytes)
  self.input:write(bytes)
  self.input:flush()
end

--- Sends a signal to the command itself (kill -NAME pid).
function Term:kill(name)
  return os.execute(string.format("kill -%s %d 2>/dev/null", name, self.pid)) == true
end

--- Resizes the terminal while the command runs.
function Term:resize(cols, rows)
  assert(self.tty and self.tty:match("^/dev/"), "no terminal device known")
  return os.execute(string.format("env -u LD_PRELOAD stty -F %s cols %d rows %d", self.tty,
                                  cols, rows)) == true
end

function Term:alive()
  return os.execute(string.format("kill -0 %d 2>/dev/null", self.pid)) == true
end

--- The exit status as a shell shows it (128 + N when signal N ended it),
-- or nil when the command is still running after `timeout` seconds.
function Term:wait(timeout)
  local status = wait_for(self.dir .. "/pty.status", timeout or 30)
  if not status then return nil end
  if self.input then
    self.input:close()
    self.input = nil
  end
  return tonumber(status:match("%d+"))
end

--- What the command wrote to the terminal so far (with its CRs and
-- escape sequences).
function Term:screen()
  return read(self.dir .. "/pty.screen") or ""
end

--- The lines as they were drawn: split at CR and LF, escape sequences
-- and the terminal's echo of Ctrl-C ("^C") removed, empty ones dropped.
function M.drawn_lines(text)
  local out = {}
  text = text:gsub("\27%[[%d;?]*%a", ""):gsub("%^C", "")
  for l in text:gmatch("[^\r\n]+") do out[#out + 1] = l end
  return out
end

return M
