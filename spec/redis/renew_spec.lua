-- truv-renew --redis when Redis refuses mid-way: a Redis whose user may
-- open the stores (CONFIG GET, SET) but not run their scripts stands for
-- one that fails after the run began. The run stops at the first request
-- with a message naming the fleet's rate budget, having sent Truv nothing;
-- the same command with a working Redis resumes it, each case refreshed
-- once, each connection's refresh counted in Redis.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local redis_server = require "spec.support.redis_server"
local core = require "truv.core"
local quota = require "truv.quota"

local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
local quote, read = files.quote, files.read

describe("truv-renew --redis", function()
  local srv, sb, dir

  lazy_setup(function()
    dir = files.tmpdir("truv-renew-redis")
    srv = redis_server.start()
    sb = sandbox.start{ args = { "--seed-cases", "3", "--mix", "active=1", "--rng-seed", "9",
                                 "--rate-limit", "0", "--realtime", "--time-scale", "50",
                                 "--cases-out", dir .. "/cases.csv" } }
  end)

  lazy_teardown(function()
    if sb then sb:shutdown() end
    if srv then srv:stop() end
    if dir then os.execute("rm -rf " .. quote(dir)) end
  end)

  local function renew(url)
    local cmd = string.format("env TRUV_CLIENT_ID=%s TRUV_SECRET=%s lua5.4 %s --journal %s " ..
      "--redis %s --base-url %s --rate 0 --poll-interval 0.1 --json %s >%s/out 2>%s/err",
      quote(sb.client_id), quote(sb.secret), quote(SRC .. "/bin/truv-renew"),
      quote(dir .. "/run.journal"), quote(url), quote(sb.base_url), quote(dir .. "/cases.csv"),
      quote(dir), quote(dir))
    local _, _, code = os.execute(cmd)
    return code, read(dir .. "/out") or "", read(dir .. "/err") or ""
  end

  it("stops before sending anything when Redis refuses its scripts, and resumes once it works",
     function()
    local ok, v = srv:call("ACL", "SETUSER", "batch", "on", ">batch-pw", "~*", "+@all",
                           "-evalsha", "-eval")
    assert.is_true(ok, tostring(v))
    local before = sb:stats()
    local code, _, err = renew(string.format("redis://batch:batch-pw@127.0.0.1:%d/0", srv.port))
    assert.equal(1, code, err)
    assert.matches("the fleet's rate budget failed", err)
    assert.matches("NOPERM", err)
    assert.is_nil(err:find("batch-pw", 1, true))
    assert.equal(before.requests.total, sb:stats().requests.total)   -- Truv saw nothing
    -- resumed with a Redis that works: every case refreshed once
    code, _, err = renew(srv:url(0))
    assert.equal(0, code, err)
    local stats = sb:stats()
    local q = assert(quota.redis{ url = srv:url(0), namespace = "truv:" .. sb.client_id })
    for _, c in ipairs(sb:cases()) do
      assert.equal(1, stats.refresh.by_order[c.order_id].refresh_orders, c.case_id)
      for _, conn in ipairs(sb:connections(c.order_id)) do
        assert.equal(1, (q:usage(quota.key(conn.access_token), core.now())))
      end
    end
    q:close()
  end)
end)
