-- The example gateway as its operator sees it, with the example's own
-- handlers (examples/openresty/truv_handlers.lua): GET /metrics in
-- Prometheus' text format with the counters of both workers added up
-- (billed requests exactly the refreshes Truv created), and the lines an
-- operator acts on (a new verification link to send, a refresh refused)
-- logged at `warn`, which the example's nginx.conf keeps; nothing at
-- `error` when nothing failed.
local openresty = require "spec.support.openresty"
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"

local hogs = require "spec.support.hogs"

local json = sandbox.json

-- The last test is a bounded stress of the metrics' agreement right after
-- refreshes (a delivery still in flight when /metrics is read was seen once:
-- CPU pressure reproduced it in 3 of 8 runs):
--   TRUV_STRESS_ROUNDS=20 TRUV_STRESS_HOGS=3 ctest -R gateway_ops --output-on-failure
local ROUNDS = tonumber(os.getenv("TRUV_STRESS_ROUNDS") or "") or 2
local HOGS = tonumber(os.getenv("TRUV_STRESS_HOGS") or "") or 0

-- Prometheus' text format: { ["name"] = v, ['name{label="x"}'] = v }, and
-- the TYPE of each family.
local function parse_metrics(text)
  local values, types = {}, {}
  for line in text:gmatch("[^\n]+") do
    local family, kind = line:match("^# TYPE (%S+) (%S+)$")
    if family then
      types[family] = kind
    elseif not line:match("^#") then
      local key, v = line:match("^(%S+) (%S+)$")
      assert(key, "not a sample line: " .. line)
      values[key] = tonumber(v)
    end
  end
  return values, types
end

describe("the gateway's metrics and logs", function()
  local srv, sb, empty

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", tostring(40 + 3 * ROUNDS), "--rng-seed", "23",
                                 "--rate-limit", "0",
                                 "--mix", "active=3,credentials=1" } }
    empty = files.tmpdir("truv-nolua")   -- searched first: the example's handlers are used
    os.execute("chmod 755 " .. files.quote(empty))
    srv = openresty.start{
      env = { TRUV_CLIENT_ID = sb.client_id, TRUV_SECRET = sb.secret, TRUV_BASE_URL = sb.base_url },
      conf = openresty.example{ workers = 2, listen = "reuseport", lua_dir = empty,
                                http = "    add_header X-Worker-Pid $pid always;" },
    }
    sb:config{ webhook_url = srv.origin .. "/truv/webhooks" }
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if sb then sb:stop() end
    if empty then os.execute("rm -rf " .. files.quote(empty)) end
  end)

  local used = {}
  local function fresh_case(state, any_shape)
    for _, c in ipairs(sb:cases()) do
      if c.state == state and not used[c.case_id] and (any_shape or c.product == "income"
         and #c.employers == 1 and #(c.financial_accounts or {}) == 0) then
        used[c.case_id] = true
        return c
      end
    end
    error("no unused " .. state .. " case")
  end

  local function trigger(case)
    return srv:request("POST", "/renewals/" .. case.case_id .. "/refresh",
                       { order_id = case.order_id, product = case.product })
  end

  local active, dead, created

  it("refreshes, routes Truv's webhooks and refuses what it must", function()
    active = fresh_case("active")
    dead = fresh_case("credentials")
    created = 0
    for _, case in ipairs{ active, dead, fresh_case("active") } do
      local status, body = trigger(case)
      assert.equal(202, status, json.encode(body))
      created = created + 1
    end
    sb:advance(60)     -- the refreshes end; the webhooks reach the gateway
    assert(sandbox.wait_until(function()
      local settled, s = sb:webhooks_settled()
      return settled and s.attempts > 0
        and srv:error_log():find("new verification link for case " .. dead.case_id, 1, true)
    end, 15, 0.05), "no new verification link was logged:\n" .. srv:error_log())
    -- the dead link is refused locally now; the active one until its quota is spent
    local status, body = trigger(dead)
    assert.equal(200, status)
    assert.equal("reverify", body.route)
    for _ = 1, 2 do
      assert.equal(202, (trigger(active)))
      created = created + 1
    end
    status, body = trigger(active)
    assert.equal(200, status)
    assert.equal("defer", body.route)
  end)

  -- /metrics read 12 times once the sandbox's webhooks are answered: both
  -- workers must answer, with the same text (one set of numbers, shared)
  local function metrics_of_both()
    assert(sandbox.wait_until(function() return sb:webhooks_settled() end, 15, 0.05),
           "the sandbox's webhooks never settled")
    local seen_workers, first = {}, nil
    for _ = 1, 12 do
      local status, _, headers, raw = srv:request("GET", "/metrics")
      assert.equal(200, status)
      assert.matches("^text/plain; version=0%.0%.4", headers["content-type"])
      seen_workers[headers["x-worker-pid"]] = true
      first = first or raw
      assert.equal(first, raw, "two workers disagree")
    end
    local n = 0
    for _ in pairs(seen_workers) do n = n + 1 end
    assert.equal(2, n, "both workers answered /metrics")
    return first
  end

  it("serves every worker's counters at /metrics, in Prometheus' text format", function()
    -- the last refreshes' webhooks may still be on their way: read once they are answered
    -- (each is counted before the gateway answers it)
    local first = metrics_of_both()
    local v, types = parse_metrics(first)
    for _, family in ipairs{ "truv_requests_total", "truv_billed_requests_total",
                             "truv_retries_total", "truv_throttled_total", "truv_errors_total",
                             "truv_routes_total", "truv_webhooks_total",
                             "truv_store_evictions_total" } do
      assert.equal("counter", types[family], family)
    end
    -- what a full webhook dictionary evicted: shown, at 0, before any eviction
    assert.equal(0, v['truv_store_evictions_total{dict="truv_webhooks"}'])
    -- billed requests: exactly the refreshes Truv created, whichever worker sent them
    assert.equal(created, v.truv_billed_requests_total)
    assert.equal(created, sb:stats().refresh.order_refreshes)
    assert.is_true(v.truv_requests_total > created)
    assert.equal(0, v.truv_throttled_total)
    -- the refusals (nothing sent) and the webhooks' routes
    assert.equal(1, v['truv_routes_total{route="defer"}'])
    assert.is_true(v['truv_routes_total{route="reverify"}'] >= 2)
    assert.is_true(v['truv_routes_total{route="done"}'] >= 2)
    local delivered = 0
    for _, d in ipairs(sb:webhooks()) do
      if d.status == 200 then delivered = delivered + 1 end
    end
    assert.equal(delivered, (v['truv_webhooks_total{result="handled"}'] or 0)
                            + (v['truv_webhooks_total{result="duplicate"}'] or 0)
                            + (v['truv_webhooks_total{result="stale"}'] or 0))
  end)

  it("logs the new link and the refusals at warn, and nothing at error", function()
    local function warned(text)
      for _, line in ipairs(srv:log_lines{ "warn" }) do
        if line:find(text, 1, true) then return line end
      end
      error("no [warn] line with '" .. text .. "':\n" .. srv:error_log())
    end
    warned("new verification link for case " .. dead.case_id)
    warned("case " .. dead.case_id .. ": no refresh of order " .. dead.order_id ..
           ": reverify (connection_dead)")
    warned("case " .. active.case_id .. ": no refresh of order " .. active.order_id ..
           ": defer (refresh_quota)")
    warned("order-refresh-failed -> reverify")
    assert.same({}, srv:log_lines())
  end)

  it("agrees across workers right after each refresh, under CPU pressure", function()
    local pids = hogs.start(HOGS, 300)
    local ok, err = pcall(function()
      for _ = 1, ROUNDS do
        local before = parse_metrics(metrics_of_both()).truv_billed_requests_total
        assert.equal(202, (trigger(fresh_case("active", true))))
        local after = parse_metrics(metrics_of_both()).truv_billed_requests_total
        assert.equal(before + 1, after)
      end
    end)
    hogs.stop(pids)
    assert(ok, err)
  end)
end)
