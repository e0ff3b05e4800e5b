-- Small file and shell helpers shared by the specs, their support modules
-- and the benchmark drivers.
local M = {}

--- `s` as one single-quoted shell word.
function M.quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The whole file, or nil when it cannot be opened.
function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read("a")
  f:close()
  return data
end

--- The whole file; raises when it cannot be opened.
function M.slurp(path)
  local f = assert(io.open(path, "rb"))
  local data = f:read("a")
  f:close()
  return data
end

function M.write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

--- A new directory /tmp/PREFIX.XXXXXX (mktemp -d); raises when it fails.
-- mktemp runs without LD_PRELOAD: under the sanitizer build the specs run
-- with the ASan runtime preloaded (spec/CMakeLists.txt), and helper
-- programs can deadlock with it.
function M.tmpdir(prefix)
  local p = assert(io.popen("LD_PRELOAD= mktemp -d /tmp/" .. prefix .. ".XXXXXX"))
  local dir = p:read("l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed")
  return dir
end

--- This process's pid (from /proc), or nil.
function M.own_pid()
  local stat = M.read("/proc/self/stat")
  return stat and tonumber(stat:match("^(%d+)"))
end

--- Starts `lua5.4 SCRIPT DIR` in the background (its output to opts.log,
-- default /dev/null; opts.no_preload: without the sanitizer runtime the
-- ASan suite preloads) and waits, 5 s at most, for the port it writes to
-- DIR/port. Returns its pid and that port (nil when it did not come up).
function M.start_lua_server(script, dir, opts)
  opts = opts or {}
  local h = assert(io.popen(string.format("%slua5.4 %s %s >%s 2>&1 & echo $!",
                                          opts.no_preload and "LD_PRELOAD= " or "", M.quote(script),
                                          M.quote(dir), M.quote(opts.log or "/dev/null"))))
  local pid = tonumber(h:read("l"))
  h:close()
  for _ = 1, 500 do
    local port = tonumber(M.read(dir .. "/port") or "")
    if port then return pid, port end
    os.execute("sleep 0.01")
  end
  return pid, nil
end

return M
