-- Options are the caller's: a typo, a wrong type or a number out of range
-- is refused at once with an error that points at the caller's line, names
-- the option and says what it accepts; never a default silently taken, an
-- internal error later, or TLS verification turned off by a "false".
local truv = require "truv"
local core = require "truv.core"
local renewal = require "truv.renewal"
local cosocket = require "truv.transport.cosocket"
local files = require "spec.support.files"

local THIS_FILE = debug.getinfo(1, "S").short_src

-- The error raised by fn, checked to point at this file (the caller).
local function raised(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, "accepted")
  err = tostring(err)
  return err
end

local function caller_error(fn)
  local err = raised(fn)
  assert.truthy(err:find(THIS_FILE, 1, true), "the error does not point at the caller: " .. err)
  return err
end

local function new(extra)
  local o = { client_id = "cid", secret = "s", transport = {} }
  for k, v in pairs(extra) do o[k] = v end
  return truv.new(o)
end

describe("insecure", function()
  it("turns TLS verification off only when it is true", function()
    for _, bad in ipairs{ "false", "true", 0, 1, "", {} } do
      local err = caller_error(function() new{ insecure = bad, transport = "curl" } end)
      assert.matches("bad option 'insecure' to 'new' %(true or false expected", err)
    end
    for _, fine in ipairs{ true, false } do
      local c = assert(new{ insecure = fine, transport = "curl" })
      c:close()
    end
  end)

  it("is read as a boolean only by the C transports", function()
    for name, make in pairs{ http = core.http, multi = core.multi } do
      for _, bad in ipairs{ "false", 0 } do
        local err = raised(function() make{ insecure = bad } end)
        assert.matches("bad option 'insecure' to '" .. name .. "' %(true or false expected", err)
      end
      for _, fine in ipairs{ true, false } do
        local t = assert(make{ insecure = fine })
        t:close()
      end
    end
  end)

  it("is read as a boolean only by the cosocket transport", function()
    for _, bad in ipairs{ "false", 0 } do
      local err = caller_error(function() cosocket.new{ insecure = bad } end)
      assert.matches("bad option 'insecure' to 'cosocket transport'", err)
    end
    assert.is_true(assert(cosocket.new{ insecure = false }).verify)
    assert.is_false(assert(cosocket.new{ insecure = true }).verify)
  end)
end)

describe("truv.core's constructors", function()
  it("refuse a wrong option in one shape: the option, the function, what it takes", function()
    local path = os.tmpname()
    os.remove(path)
    local req = assert(core.build({ client_id = "cid", secret = "s" }, "get_order", "o1"))
    local cases = {
      { "http", "timeout_ms", function() core.http{ timeout_ms = "1" } end },
      { "multi", "max_in_flight", function() core.multi{ max_in_flight = -1 } end },
      { "http1_parser", "max_body", function() core.http1_parser{ max_body = 0 } end },
      { "build", "client_id",
        function() core.build({ client_id = 1, secret = "s" }, "get_order", "o1") end },
      { "journal_open", "sync", function() core.journal_open(path, { sync = "fast" }) end },
      { "journal_open", "exclusive", function() core.journal_open(path, { exclusive = 1 }) end },
      { "listener", "port", function() core.listener{ secrets = "s", port = 1.5 } end },
      { "quota_memory", "limit", function() core.quota_memory{ limit = 0 } end },
      { "quota_sqlite", "window", function() core.quota_sqlite(path, { window = "1d" }) end },
      { "serialize", "authorization", function() req:serialize{ authorization = 1 } end },
      { "http1_connect", "authorization",
        function() core.http1_connect("prod.truv.com", 443, { authorization = {} }) end },
    }
    for _, c in ipairs(cases) do
      local err = raised(c[3])
      assert.matches("bad option '" .. c[2] .. "' to '" .. c[1] .. "' %(.+ expected, got .+%)$",
                     err)
    end
    assert.is_nil(io.open(path), "a refused option still opened a file")
  end)
end)

describe("truv.new", function()
  it("refuses an unknown option, naming the one it resembles", function()
    local err = caller_error(function() new{ timeout = 5 } end)
    assert.matches("bad option 'timeout' to 'new' %(unknown option; did you mean 'timeout_ms'%?%)", err)
    err = caller_error(function() new{ expiry = 30 } end)
    assert.matches("did you mean 'expiry_days'", err)
    err = caller_error(function() new{ retry = { attempt = 2 } } end)
    assert.matches("bad option 'retry.attempt' to 'new' %(unknown option; did you mean 'retry.attempts'", err)
    err = caller_error(function() new{ refresh = { max_send = 2 } } end)
    assert.matches("did you mean 'refresh.max_sends'", err)
  end)

  it("refuses numbers out of range, saying the range", function()
    local cases = {
      { { timeout_ms = 0 },
        "'timeout_ms' to 'new' %(a number > 0 and <= 1000000000 %(milliseconds%) expected, got 0%)" },
      { { timeout_ms = -5 }, "'timeout_ms'.*got %-5" },
      { { connect_timeout_ms = 0 / 0 }, "'connect_timeout_ms'.*got %-?nan" },
      { { timeout_ms = math.huge }, "'timeout_ms'.*got inf" },
      { { expiry_days = -1 },
        "'expiry_days' to 'new' %(a number > 0 and <= 36500 %(days%), or false, expected, got %-1%)" },
      { { expiry_days = 0 }, "'expiry_days'" },
      { { expiry_days = "180" }, "'expiry_days'.*got \"180\"" },
      { { refresh = { max_sends = 0 } },
        "'refresh.max_sends' to 'new' %(an integer from 1 to 10 expected, got 0%)" },
      { { refresh = { max_sends = -1 } }, "'refresh.max_sends'" },
      { { refresh = { max_sends = 1.5 } }, "'refresh.max_sends'" },
      { { refresh = { settle_s = -1 } }, "'refresh.settle_s'" },
      { { refresh = { clock_skew_s = -1 } }, "'refresh.clock_skew_s'" },
      { { refresh = { expiry_days = -3 } }, "'refresh.expiry_days'" },
      { { refresh = { expiring_days = -1 } },
        "'refresh.expiring_days' to 'new' %(a number from 0 to 36500 %(days%), or false, expected" },
      { { refresh = { refuse_dead = "false" } },
        "'refresh.refuse_dead' to 'new' %(true or false expected, got \"false\"%)" },
      { { refresh = { oauth_providers = "adp" } },
        "'refresh.oauth_providers' to 'new' %(a list of provider ids, or false, expected%)" },
      { { refresh = { oauth_providers = {} } }, "'refresh.oauth_providers'" },
      { { refresh = { oauth_providers = { "adp", 3 } } }, "'refresh.oauth_providers'" },
      { { retry = { attempts = 0 } },
        "'retry.attempts' to 'new' %(an integer from 1 to 100 expected, got 0%)" },
      { { retry = { base_ms = -1 } }, "'retry.base_ms'" },
      { { retry = { cap_ms = 0 / 0 } }, "'retry.cap_ms'" },
      { { retry = { deadline_ms = -1 } }, "'retry.deadline_ms'" },
      { { quota = true }, "'quota' to 'new' %(a quota store, \"memory\", a file path or false "
                          .. "expected, got boolean" },
    }
    for _, c in ipairs(cases) do
      local err = caller_error(function() new(c[1]) end)
      assert.matches("bad option " .. c[2], err)
    end
  end)

  it("takes every documented option within range", function()
    local c = assert(new{ base_url = "http://x/v1/", timeout_ms = 1, connect_timeout_ms = 1e9,
                          user_agent = "ua", documents = "table", insecure = false,
                          retry = { attempts = 1, base_ms = 0, cap_ms = 0, deadline_ms = 0 },
                          clock = os.time, sleep = function() end, logger = function() end,
                          quota = false,
                          refresh = { settle_s = 0, clock_skew_s = 0, max_sends = 10,
                                      expiry_days = 1 } })
    assert.equal(1, c:refresh_setting("expiry_days"))
    c = assert(new{ expiry_days = false, refresh = { max_sends = 1 } })
    assert.is_false(c:refresh_setting("expiry_days"))
    c = assert(new{ refresh = { refuse_dead = false, expiring_days = false,
                                oauth_providers = { "adp", "paychex" } } })
    assert.is_false(c:refresh_setting("refuse_dead"))
    assert.same({ "adp", "paychex" }, c:refresh_setting("oauth_providers"))
    assert(new{ refresh = { expiring_days = 0, oauth_providers = false } })
  end)
end)

describe("renewal.run", function()
  local dir
  setup(function() dir = files.tmpdir("truv-options") end)
  teardown(function() os.execute("rm -rf " .. files.quote(dir)) end)

  local function run(extra)
    local o = { journal = dir .. "/j", cases = {},
                client = { client_id = "cid", secret = "s", base_url = "http://127.0.0.1:1/v1/" } }
    for k, v in pairs(extra) do o[k] = v end
    return renewal.run(o)
  end

  it("refuses numbers out of range before opening anything, saying the range", function()
    local cases = {
      { { concurrency = 100000 },
        "'concurrency' to 'renewal.run' %(an integer from 1 to 1024 expected, got 100000%)" },
      { { concurrency = 0 }, "'concurrency'" },
      { { concurrency = 2.5 }, "'concurrency'" },
      { { rate_per_minute = -1 }, "'rate_per_minute' to 'renewal.run' %(a number from 0 to 60000" },
      { { rate_per_minute = 0 / 0 }, "'rate_per_minute'" },
      { { expiry_days = -1 }, "'expiry_days'" },
      { { skew_s = -1 }, "'skew_s'" },
      { { commit_interval_s = -1 }, "'commit_interval_s'" },
      { { rate_reserve = 0.95 }, "'rate_reserve' to 'renewal.run' %(a number from 0 to 0.9" },
      { { memory_mb = 0 }, "'memory_mb'" },
      { { probation_cases = 0 }, "'probation_cases'" },
      { { store_busy_retry_s = -1 }, "'store_busy_retry_s'" },
      { { unreconciled_retry_s = -1 }, "'unreconciled_retry_s'" },
      { { reverify_pending_retry_s = 1e9 }, "'reverify_pending_retry_s'" },
      { { poll = { interval_s = 0 } }, "'poll.interval_s'" },
      { { poll = { timeout_s = -1 } }, "'poll.timeout_s'" },
      { { poll = { max_interval_s = math.huge } }, "'poll.max_interval_s'" },
      { { wait = "webhook", webhook = { fallback_s = 0 / 0 } }, "'webhook.fallback_s'" },
      { { poll = 5 }, "'poll' to 'renewal.run' %(a table expected" },
      { { expiring_days = -2 }, "'expiring_days'" },
      { { refuse_dead = 0 }, "'refuse_dead'" },
      { { oauth_providers = "adp,paychex" }, "'oauth_providers'" },
    }
    for _, c in ipairs(cases) do
      local err = caller_error(function() run(c[1]) end)
      assert.matches("bad option " .. c[2], err)
    end
    assert.is_nil(io.open(dir .. "/j"), "a journal was opened")
  end)

  it("runs with numbers at the edges of their ranges", function()
    local summary = assert(run{ concurrency = 1024, rate_per_minute = 0, expiry_days = false,
                                expiring_days = false, refuse_dead = false,
                                oauth_providers = { "adp" }, poll = { interval_s = 3600 } })
    assert.equal(0, summary.total)
  end)
end)

describe("truv-renew", function()
  local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
  local dir
  setup(function() dir = files.tmpdir("truv-options-cli") end)
  teardown(function() os.execute("rm -rf " .. files.quote(dir)) end)

  local function renew(args)
    files.write(dir .. "/cases.csv", "case_id,order_id,product\n")
    local q = {}
    for i, a in ipairs(args) do q[i] = files.quote(a) end
    local cmd = string.format("TRUV_CLIENT_ID=cid TRUV_SECRET=s lua5.4 %s --journal %s %s %s "
                              .. ">/dev/null 2>%s </dev/null", files.quote(SRC .. "/bin/truv-renew"),
                              files.quote(dir .. "/j"), table.concat(q, " "),
                              files.quote(dir .. "/cases.csv"), files.quote(dir .. "/err"))
    local _, _, code = os.execute(cmd)
    return code, files.read(dir .. "/err") or ""
  end

  it("refuses flags out of range as bad usage, saying the range", function()
    local cases = {
      { { "--concurrency", "100000" }, "%-%-concurrency: an integer from 1 to 1024 expected, got '100000'" },
      { { "--concurrency", "0" }, "%-%-concurrency" },
      { { "--rate", "1e9" }, "%-%-rate: a number from 0 to 60000" },
      { { "--rate", "-1" }, "%-%-rate" },
      { { "--rate", "inf" }, "%-%-rate" },
      { { "--poll-interval", "0" }, "%-%-poll%-interval" },
      { { "--poll-timeout", "1e12" }, "%-%-poll%-timeout" },
      { { "--expiry-days", "-5" }, "%-%-expiry%-days: .*, or off expected" },
      { { "--expiry-days", "1e99" }, "%-%-expiry%-days" },
      { { "--expiring-days", "-1" }, "%-%-expiring%-days: a number from 0 to 36500" },
      { { "--oauth-providers", ", ," }, "%-%-oauth%-providers: provider ids expected" },
      { { "--wait", "webhook", "--webhook-fallback", "-1" }, "%-%-webhook%-fallback" },
    }
    for _, c in ipairs(cases) do
      local code, err = renew(c[1])
      assert.equal(2, code, table.concat(c[1], " ") .. ": " .. err)
      assert.matches("^truv%-renew: " .. c[2], err)
    end
  end)
end)
