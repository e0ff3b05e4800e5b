-- A bulk renewal over HTTPS: its connection pool (the scheduler's multi)
-- takes the client's connection options, its CA and billed_reuse_idle_s
-- among them (README: Connections and billed requests).
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local truv = require "truv"
local renewal = require "truv.renewal"

local REFRESH = "POST /v1/orders/{id}/"

describe("a renewal over HTTPS on kept-alive connections", function()
  local sb, dir

  lazy_setup(function()
    dir = files.tmpdir("truv-kept-alive")
    sb = sandbox.start{ tls = true, args = { "--rate-limit", "0", "--realtime",
                                             "--time-scale", "100", "--rng-seed", "41" } }
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. files.quote(dir)) end
  end)

  -- The client's options: the CA on the client only, as a user gives it
  -- (the run's pool takes it from there).
  local function client_opts(extra)
    local o = { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url,
                ca_file = sb.ca_file, retry = { base_ms = 5, cap_ms = 20 } }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  -- Requests of the stats' endpoint `key`, whatever their outcome.
  local function sent(stats, key)
    local n = 0
    for _, count in pairs(stats.requests.by_endpoint[key] or {}) do n = n + count end
    return n
  end

  -- The run of `cases` on a new journal, with the sandbox's counters zeroed
  -- first; returns the summary, the sandbox's stats after it, and the
  -- connections the run opened (the stats call's own left out).
  local function run(name, cases, opts)
    sb:reset_stats()
    local o = { cases = cases, journal = dir .. "/" .. name .. ".journal", concurrency = 8,
                rate_per_minute = 0, poll = { interval_s = 0.05 } }
    for k, v in pairs(opts) do o[k] = v end
    local summary, err = renewal.run(o)
    assert(summary, tostring(err))
    local stats = sb:stats()
    return summary, stats, stats.connections.accepted - 1
  end

  it("takes the client's billed_reuse_idle_s for its connection pool", function()
    local function posts_and_connections(name, opts)
      local cases = sb:seed{ cases = 20, mix = "active=1" }
      opts.concurrency = 4
      local _, stats, opened = run(name, cases, opts)
      local posts = sent(stats, REFRESH)
      assert.are.equal(20, stats.refresh.order_refreshes)
      return posts, opened
    end
    -- 0: a fresh connection for each refresh, from the client's options or
    -- from a client
    for name, client in pairs{ table = client_opts{ billed_reuse_idle_s = 0 },
                               client = assert(truv.new(client_opts{ billed_reuse_idle_s = 0 })) }
    do
      local posts, opened = posts_and_connections("fresh-" .. name, { client = client })
      assert.is_true(opened >= posts, string.format("%s: %d connections for %d refreshes", name,
                                                    opened, posts))
    end
    -- the run's own http options go over the client's
    local posts, opened = posts_and_connections("http", {
      client = client_opts{ billed_reuse_idle_s = 0 }, http = { billed_reuse_idle_s = 4 } })
    assert.is_true(opened < posts, string.format("%d connections for %d refreshes", opened, posts))
  end)

  it("refuses a client billed_reuse_idle_s out of range before opening anything", function()
    local journal = dir .. "/bad.journal"
    for _, bad in ipairs{ -1, 3601, 1.5 } do
      local ok, err = pcall(renewal.run, { journal = journal, cases = {},
                                           client = client_opts{ billed_reuse_idle_s = bad } })
      assert.is_false(ok)
      assert.matches("client.billed_reuse_idle_s", err, 1, true)
    end
    assert.is_nil(io.open(journal, "rb"))
  end)
end)
