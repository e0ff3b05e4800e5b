-- truv.core's signals and terminal, for a command-line program: a caught
-- signal is a flag to poll (and cuts a wait short), a second one has its
-- default effect, an ignored one stays ignored, signal_raise ends the
-- process as the signal would; the terminal's size comes from the kernel.
local core = require "truv.core"
local files = require "spec.support.files"
local socket = require "socket"

local q = files.quote
local LUA = "lua5.4"

-- Runs a Lua chunk in a child interpreter (with this one's paths and
-- preload); returns the shell's status and what it printed.
local function child(code, shell_prefix)
  local dir = files.tmpdir("truv-signal")
  files.write(dir .. "/chunk.lua", code)
  local cmd = string.format("%s %s %s >%s 2>&1; echo $? >%s", shell_prefix or "", LUA,
                            q(dir .. "/chunk.lua"), q(dir .. "/out"), q(dir .. "/status"))
  os.execute("sh -c " .. q(cmd))
  local out, status = files.read(dir .. "/out") or "", files.read(dir .. "/status") or ""
  os.execute("rm -rf " .. q(dir))
  return tonumber(status:match("%d+")), out
end

-- Sends `name` to this process every `every` seconds from the background
-- until stop() (at most 100 times): a wait that begins after the first one
-- (a slow start under valgrind on a loaded machine) is still cut short by
-- the next. stop() returns once the sender is gone, so that no signal comes
-- after the spec releases it (USR2's default effect ends the process).
local function signal_me_until_stopped(name, every)
  local flag, gone = os.tmpname(), os.tmpname()
  os.remove(flag)
  os.remove(gone)
  os.execute(string.format("(i=0; while [ ! -e %s ] && [ $i -lt 100 ]; do LD_PRELOAD= sleep %.2f; " ..
                           "[ -e %s ] || kill -%s %d; i=$((i+1)); done; : >%s) >/dev/null 2>&1 &",
                           q(flag), every, q(flag), name, files.own_pid(), q(gone)))
  return function()
    local f = assert(io.open(flag, "w"))
    f:close()
    local t0 = core.monotonic()
    while not files.read(gone) and core.monotonic() - t0 < 10 do os.execute("LD_PRELOAD= sleep 0.05") end
    os.remove(flag)
    os.remove(gone)
  end
end

describe("core.signals_catch", function()
  after_each(function() core.signals_release() end)

  it("turns a signal into a flag the program polls", function()
    assert.is_nil(core.signal_caught())
    assert.is_true(core.signals_catch{ "INT", "TERM" })
    assert.is_nil(core.signal_caught())
    os.execute("kill -TERM " .. files.own_pid())
    assert.equal("TERM", core.signal_caught())
    core.signals_release()
    -- caught again from a clean slate
    core.signals_catch{ "SIGUSR1" }
    assert.is_nil(core.signal_caught())
    os.execute("kill -USR1 " .. files.own_pid())
    assert.equal("USR1", core.signal_caught())
  end)

  it("cuts a sleep and a wait for answers short", function()
    core.signals_catch{ "USR2" }
    local stop = signal_me_until_stopped("USR2", 0.2)
    local t0 = core.monotonic()
    core.sleep(30)
    stop()
    assert.equal("USR2", core.signal_caught())
    assert.is_true(core.monotonic() - t0 < 15, "the sleep went on")
    core.signals_release()

    -- a server that accepts and never answers
    local srv = assert(socket.bind("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local m = assert(core.multi{ proxy = "", timeout_ms = 60000 })
    local req = assert(core.build({ client_id = "c", secret = "s",
                                    base_url = "http://127.0.0.1:" .. port .. "/v1/" },
                                  "get_order", "abc"))
    assert.is_true(m:add(req, "t"))
    core.signals_catch{ "USR2" }
    stop = signal_me_until_stopped("USR2", 0.3)
    t0 = core.monotonic()
    local done = assert(m:run(30, core.now()))
    stop()
    assert.equal("USR2", core.signal_caught())
    assert.equal(0, #done)                 -- nothing finished: the wait was cut short
    assert.is_true(core.monotonic() - t0 < 15, "the wait went on")
    assert.equal(1, m:pending())
    m:close()
    srv:close()
  end)

  it("leaves the second one its default effect, and an ignored one ignored", function()
    local status = child([[
      local core = require "truv.core"
      core.signals_catch{ "TERM" }
      os.execute("kill -TERM " .. io.open("/proc/self/stat"):read("n"))
      io.write(core.signal_caught(), "\n")
      io.flush()
      os.execute("kill -TERM " .. io.open("/proc/self/stat"):read("n"))
      os.execute("sleep 5")
      io.write("still here\n")
    ]])
    assert.equal(143, status)
    local out
    status, out = child([[
      local core = require "truv.core"
      core.signals_catch{ "TERM" }
      os.execute("kill -TERM " .. io.open("/proc/self/stat"):read("n"))
      io.write(tostring(core.signal_caught()), " still here\n")
    ]], "trap '' TERM;")
    assert.equal(0, status)
    assert.equal("nil still here\n", out)
  end)

  it("ends the process as the signal would with signal_raise", function()
    for name, code in pairs{ INT = 130, TERM = 143 } do
      local status, out = child(string.format([[
        local core = require "truv.core"
        core.signals_catch{ "INT", "TERM" }
        core.signal_raise(%q)
        io.write("still here\n")
      ]], name))
      assert.equal(code, status, out)
      assert.is_nil(out:find("still here", 1, true))
    end
  end)

  it("refuses a signal it does not know", function()
    assert.has_error(function() core.signals_catch{ "KILL" } end)
    assert.has_error(function() core.signal_raise("NOPE") end)
  end)
end)

describe("core.terminal_size", function()
  it("is the terminal's size, and nil where there is no terminal", function()
    local status, out = child([[
      local core = require "truv.core"
      print(core.isatty(1), core.terminal_size(1))
    ]])
    assert.equal(0, status)
    assert.equal("false\tnil\n", out)
    -- inside a pseudo-terminal (script(1)) of 97 columns and 31 rows
    local dir = files.tmpdir("truv-tty")
    files.write(dir .. "/chunk.lua", [[
      local core = require "truv.core"
      print(core.isatty(1), core.terminal_size(1))
    ]])
    local inner = string.format("stty cols 97 rows 31; LD_PRELOAD=%s %s %s",
                                q(os.getenv("LD_PRELOAD") or ""), LUA, q(dir .. "/chunk.lua"))
    os.execute(string.format("env -u LD_PRELOAD script -qfec %s /dev/null >%s 2>&1 </dev/null",
                             q(inner), q(dir .. "/out")))
    out = files.read(dir .. "/out") or ""
    os.execute("rm -rf " .. q(dir))
    assert.matches("true\t97\t31", out)
  end)
end)
