-- One journal is one run at a time, whatever name it is given: a second
-- truv-renew on the same journal through a symlink is refused while the
-- first runs, and no case is refreshed twice.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"

local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
local BIN = SRC .. "/bin/truv-renew"
local CASES = 90
local q = files.quote

local function alive(pid) return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true end
local function sleep(s) os.execute(string.format("sleep %.3f", s)) end

describe("truv-renew on a journal already in use", function()
  local sb, dir
  lazy_setup(function()
    dir = files.tmpdir("truv-exclusive")
    sb = sandbox.start{ args = { "--seed-cases", tostring(CASES), "--rng-seed", "5", "--mix",
      "active=1", "--rate-limit", "0", "--realtime", "--time-scale", "20",
      "--cases-out", dir .. "/cases.csv" } }
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  local function command(journal, out)
    return string.format("TRUV_CLIENT_ID=%s TRUV_SECRET=%s lua5.4 %s --json --journal %s "
      .. "--base-url %s --rate 0 --concurrency 8 --poll-interval 0.2 %s >%s.out 2>%s.err",
      q(sb.client_id), q(sb.secret), q(BIN), q(journal), q(sb.base_url), q(dir .. "/cases.csv"),
      q(out), q(out))
  end

  it("refuses the second run through a symlink while the first runs", function()
    assert(os.execute("ln -s run.journal " .. q(dir .. "/link.journal")))
    local p = assert(io.popen("sh -c " .. q("echo $$; exec env " .. command(dir .. "/run.journal",
                                                                            dir .. "/a")) .. " &"))
    local pid = tonumber(p:read("l"))
    p:close()
    -- the first run has its journal and is refreshing
    assert.is_truthy(sandbox.wait_until(function()
      local err = files.read(dir .. "/a.err") or ""
      return err:find('"sending"', 1, true)
    end, 20, 0.02), "the first run never started sending: " .. (files.read(dir .. "/a.err") or ""))
    assert.is_true(alive(pid), "the first run finished before the second started")
    local _, _, code = os.execute(command(dir .. "/link.journal", dir .. "/b"))
    assert.equal(1, code)
    assert.matches("in use", files.read(dir .. "/b.err"))
    for _ = 1, 600 do
      if not alive(pid) then break end
      sleep(0.1)
    end
    assert.is_false(alive(pid), "the first run did not finish in 60 s")
    local stats = sb:stats()
    assert.equal(CASES, stats.refresh.order_refreshes)
    for order_id, s in pairs(stats.refresh.by_order) do
      assert.equal(1, s.refresh_orders, "order " .. order_id .. " refreshed twice")
    end
  end)
end)
