-- A fleet sharing one Redis: two gateway "hosts" (two nginx instances of
-- the example, two workers each, TRUV_REDIS_URL set) and one truv-renew
-- --redis process, all refreshing one connection at once against one
-- sandbox. Exactly 3 refreshes are admitted in 24 h, Truv (the sandbox)
-- never has to refuse one, and a webhook delivered to both hosts is handled
-- once. Then Redis dies: a trigger is refused (500, the quota store
-- unavailable) and nothing is sent, a webhook is answered 500 (Truv retries
-- it); Redis comes back empty and everything works again.
local openresty = require "spec.support.openresty"
local sandbox = require "spec.support.sandbox"
local redis_server = require "spec.support.redis_server"
local files = require "spec.support.files"
local truv = require "truv"

local json = sandbox.json
local quote, read = files.quote, files.read
local SRC = os.getenv("TRUV_SOURCE_DIR") or "."

describe("a fleet sharing one Redis", function()
  local redis, sb, hosts, dir, csv_lines

  lazy_setup(function()
    dir = files.tmpdir("truv-fleet-spec")
    redis = redis_server.start()
    sb = sandbox.start{ args = { "--seed-cases", "12", "--mix", "active=1", "--rng-seed", "5",
                                 "--rate-limit", "0", "--realtime", "--time-scale", "20",
                                 "--cases-out", dir .. "/cases.csv" } }
    csv_lines = {}
    for l in assert(read(dir .. "/cases.csv")):gmatch("[^\n]+") do csv_lines[#csv_lines + 1] = l end
    hosts = {}
    for i = 1, 2 do
      hosts[i] = openresty.start{
        env = { TRUV_CLIENT_ID = sb.client_id, TRUV_SECRET = sb.secret,
                TRUV_BASE_URL = sb.base_url, TRUV_REDIS_URL = redis:url(0) },
        conf = openresty.example{ workers = 2, listen = "reuseport",
                                  http = "    lua_socket_log_errors off;\n" ..
                                         "    lua_shared_dict test_events 8m;" },
      }
    end
  end)

  lazy_teardown(function()
    for _, h in ipairs(hosts or {}) do h:stop() end
    if sb then sb:shutdown() end
    if redis then redis:stop() end
    if dir then os.execute("rm -rf " .. quote(dir)) end
  end)

  local used = {}
  local function fresh_case()
    for _, c in ipairs(sb:cases()) do
      if c.state == "active" and #c.employers == 1 and #(c.financial_accounts or {}) == 0
         and not used[c.case_id] then
        used[c.case_id] = true
        return c
      end
    end
    error("no unused single-connection case")
  end

  local function refresh_attempts()
    local e = sb:stats().requests.by_endpoint["POST /v1/orders/{id}/"] or {}
    local by = {}
    for status, n in pairs(e) do by[status] = n end
    return by
  end

  -- A shell line that POSTs body to url in the background, status to `out`.
  local function curl(url, body, out, headers)
    local h = {}
    for k, v in pairs(headers or {}) do h[#h + 1] = "-H " .. quote(k .. ": " .. v) end
    -- without the sanitizer runtime the ASan build preloads: curl deadlocks with it
    return string.format("LD_PRELOAD= curl -s -m 30 -o %s -w '%%{http_code}' -X POST -H 'Content-Type: " ..
                         "application/json' %s --data-binary %s %s > %s &",
                         quote(out .. ".body"), table.concat(h, " "), quote(body), quote(url),
                         quote(out))
  end

  it("admits exactly 3 of 30 concurrent refreshes of one connection from two hosts and " ..
     "truv-renew", function()
    local case = fresh_case()
    local token = sb:connections(case.order_id)[1].access_token
    local before = sb:stats().refresh.by_access_token[sandbox.token_key(token)]
    local attempts_before = refresh_attempts()
    -- truv-renew's list: the header and this case only
    local list = dir .. "/one.csv"
    local lines = { csv_lines[1] }
    for _, l in ipairs(csv_lines) do
      if l:find(case.case_id, 1, true) then lines[#lines + 1] = l end
    end
    assert.equal(2, #lines)
    files.write(list, table.concat(lines, "\n") .. "\n")
    local body = json.encode{ order_id = case.order_id, product = case.product }
    local cmds = {}
    for i = 1, 29 do
      local h = hosts[(i % 2) + 1]
      cmds[#cmds + 1] = curl(h.origin .. "/renewals/" .. case.case_id .. "/refresh", body,
                             dir .. "/t" .. i)
    end
    -- the batch, forcing a refresh whatever Truv's last one: only the quota holds it
    cmds[#cmds + 1] = string.format(
      "env TRUV_CLIENT_ID=%s TRUV_SECRET=%s lua5.4 %s --journal %s --redis %s --base-url %s " ..
      "--rate 0 --force --poll-interval 0.2 --poll-timeout 20 --json %s >%s 2>%s; echo $? > %s &",
      quote(sb.client_id), quote(sb.secret), quote(SRC .. "/bin/truv-renew"),
      quote(dir .. "/fleet.journal"), quote(redis:url(0)), quote(sb.base_url), quote(list),
      quote(dir .. "/renew.out"), quote(dir .. "/renew.err"), quote(dir .. "/renew.rc"))
    cmds[#cmds + 1] = "wait"
    os.execute(table.concat(cmds, "\n"))
    local created, deferred = 0, 0
    for i = 1, 29 do
      local status = read(dir .. "/t" .. i)
      local res = json.decode(read(dir .. "/t" .. i .. ".body") or "null")
      if status == "202" then
        created = created + 1
      else
        assert.equal("200", status, tostring(read(dir .. "/t" .. i .. ".body")))
        assert.equal("defer", res.route)
        assert.equal("quota", res.kind)
        deferred = deferred + 1
      end
    end
    assert.equal("0\n", read(dir .. "/renew.rc"), read(dir .. "/renew.err"))
    local j = assert(require("truv.core").journal_open(dir .. "/fleet.journal"))
    local renew_route
    for rec in j:each{} do renew_route = rec.route end
    j:close()
    local renew_created = renew_route ~= "defer" and 1 or 0
    assert.equal(3, created + renew_created,
                 "gateway " .. created .. ", truv-renew " .. tostring(renew_route))
    assert.equal(29 + 1 - 3, deferred + (1 - renew_created))
    -- Truv saw exactly 3, and never had to refuse one (no 429 for a spent limit)
    local after = sb:stats().refresh.by_access_token[sandbox.token_key(token)]
    assert.equal(((before and before.created) or 0) + 3, after.created)
    local attempts = refresh_attempts()
    assert.equal(attempts_before["429"] or 0, attempts["429"] or 0)
  end)

  it("handles a webhook delivered to both hosts once", function()
    local ev = { webhook_id = string.format("%032x", math.random(0, 2 ^ 40)),
                 event_type = "task-status-updated", event_created_at = "2026-01-01T00:00:00Z",
                 updated_at = "2026-01-01T00:00:00Z", user_id = "u1", template_id = json.null,
                 task_id = "t-fleet", link_id = "l1", product = "income",
                 data_source = "payroll", tracking_info = json.null, status = "parse" }
    local body = json.encode(ev)
    local sign = { ["X-WEBHOOK-SIGN"] = truv.webhook.sign(body, sb.secret) }
    local cmds = {}
    for i = 1, 6 do
      cmds[#cmds + 1] = curl(hosts[(i % 2) + 1].origin .. "/truv/webhooks", body,
                             dir .. "/w" .. i, sign)
    end
    cmds[#cmds + 1] = "wait"
    os.execute(table.concat(cmds, "\n"))
    local handled, dup = 0, 0
    for i = 1, 6 do
      assert.equal("200", read(dir .. "/w" .. i), read(dir .. "/w" .. i .. ".body"))
      local r = json.decode(read(dir .. "/w" .. i .. ".body"))
      if r.result == "handled" then handled = handled + 1 end
      if r.result == "duplicate" then dup = dup + 1 end
    end
    assert.equal(1, handled)
    assert.equal(5, dup)
  end)

  it("fails closed while Redis is down: no refresh sent, webhooks answered 500; then recovers",
     function()
    local case = fresh_case()
    redis:kill()
    local posts = refresh_attempts()
    local status, res = hosts[1]:request("POST", "/renewals/" .. case.case_id .. "/refresh",
                                         { order_id = case.order_id, product = case.product })
    assert.equal(500, status)
    assert.equal("internal", res.kind)
    -- the first store asked refuses: the rate budget (before any request) or the quota
    assert.matches("store_unavailable", res.error)
    assert.matches("store is unavailable", res.error)
    assert.same(posts, refresh_attempts())
    local body = json.encode{ webhook_id = string.format("%032x", math.random(0, 2 ^ 40)),
      event_type = "task-status-updated", event_created_at = "2026-01-01T00:00:00Z",
      updated_at = "2026-01-01T00:00:00Z", user_id = "u1", template_id = json.null,
      task_id = "t-down", link_id = "l1", product = "income", data_source = "payroll",
      tracking_info = json.null, status = "parse" }
    local sign = { ["X-WEBHOOK-SIGN"] = truv.webhook.sign(body, sb.secret) }
    status = hosts[2]:request("POST", "/truv/webhooks", body, sign)
    assert.equal(500, status)
    -- back, empty (no persistence): the scripts are sent again (NOSCRIPT -> EVAL)
    redis:restart()
    status = hosts[2]:request("POST", "/truv/webhooks", body, sign)
    assert.equal(200, status)
    status, res = hosts[1]:request("POST", "/renewals/" .. case.case_id .. "/refresh",
                                   { order_id = case.order_id, product = case.product })
    assert.equal(202, status, json.encode(res))
  end)
end)
