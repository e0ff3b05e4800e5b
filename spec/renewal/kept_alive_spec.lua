-- A bulk renewal over HTTPS rides kept-alive connections with its refreshes
-- (README: Connections and billed requests) and sends none twice. With
-- resets before and after the sandbox processed a refresh, most of them on
-- connections that carried requests before, every connection is refreshed
-- once, every case is routed, and the run opens far fewer TLS connections
-- than it sends refreshes. libcurl would send a refresh that got no answer
-- on a reused connection again (after reset_after: a second refresh,
-- billed); the transport refuses, reports it maybe sent, and the refresh
-- reads it back. The run's connection pool takes the client's connection
-- options, its CA and billed_reuse_idle_s among them.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local core = require "truv.core"
local truv = require "truv"
local renewal = require "truv.renewal"

local REFRESH = "POST /v1/orders/{id}/"
-- the transport's message when libcurl asked to send a refresh again after
-- its kept-alive connection died without an answer (core/src/net/transfer.c)
local NOT_RESENT = "kept%-alive connection was lost"

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

  it("refreshes each connection once through resets, routes every case, and reuses "
     .. "connections", function()
    local cases = sb:seed{ cases = 100, mix = "active=17,credentials=2,no_data=1" }
    local lost = 0
    local function logger(_, ev)
      if ev.event == "error" and ev.op == "refresh_order" and tostring(ev.error):find(NOT_RESENT)
      then
        lost = lost + 1
      end
    end
    -- resets on refreshes (and on the re-verification orders: they go to fix)
    sb:faults{ reset_before = 0.04, reset_after = 0.04, match = "POST /v1/orders/" }
    local ok, summary, stats, opened = pcall(run, "faults", cases,
                                             { client = client_opts{ logger = logger } })
    sb:faults{ reset = true }
    assert(ok, summary)

    -- no connection refreshed twice, no order either
    local refreshed = 0
    for key, c in pairs(stats.refresh.by_access_token) do
      assert.are.same({ created = 1, billed = 1 }, c, "connection " .. key)
      refreshed = refreshed + 1
    end
    for id, o in pairs(stats.refresh.by_order) do
      assert.are.equal(1, o.refresh_orders, "order " .. id)
    end
    assert.is_true(refreshed > 0)
    assert.are.equal(refreshed, stats.refresh.billed)
    -- and every case's order refreshed (this mix refreshes them all)
    local orders = 0
    for _ in pairs(stats.refresh.by_order) do orders = orders + 1 end
    assert.are.equal(#cases, orders)

    -- the faults hit refreshes, on connections that had carried requests
    -- before: libcurl asked to send those again and was refused
    local by = stats.requests.by_endpoint[REFRESH] or {}
    assert.is_true((by.reset_after or 0) > 0, "no reset_after on a refresh")
    assert.is_true((by.reset_before or 0) > 0, "no reset_before on a refresh")
    assert.is_true(lost > 0, "no refresh lost on a kept-alive connection")

    -- every case routed, none lost
    assert.are.equal(#cases, summary.total)
    local missing = {}
    for _, c in ipairs(cases) do missing[c.case_id] = true end
    local j = assert(core.journal_open(dir .. "/faults.journal"))
    for rec in j:each{} do
      assert.is_true(missing[rec.case_id], rec.case_id)
      missing[rec.case_id] = nil
      assert.is_string(rec.route, rec.case_id)
      assert.is_truthy(rec.state == "routed" or rec.state == "scheduled", rec.case_id)
    end
    j:close()
    assert.are.same({}, missing)

    -- far fewer TLS connections than refreshes sent
    local posts = sent(stats, REFRESH)
    assert.is_true(posts >= stats.refresh.order_refreshes)
    -- (each refresh lost on a kept-alive connection costs two: the dead one's
    -- replacement, and the one libcurl opened for the resend it was refused)
    assert.is_true(opened * 2 <= posts, string.format("%d connections for %d refreshes sent",
                                                       opened, posts))
  end)

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
