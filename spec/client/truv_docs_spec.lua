-- The client against Truv's own documentation examples (spec/fixtures/
-- truv-docs/, served verbatim by a loopback server): what it must do with
-- the answers Truv documents, where the sandbox may differ.
local docserver = require "spec.support.docserver"
local truv = require "truv"
local core = require "truv.core"

local doc, decoded, json = docserver.doc, docserver.decoded, docserver.json

local ORDER_ID = "39aa1486ccca4bc19cda071ffc1ba392"      -- the orders_read example
local USER_ID = "99dd17074ac94aa9ace2621d657c7610"
local EMPLOYER_ID = "ad9f14440d624ec3b0f66e81e44518c7"
local SUBORDER_NUMBER = "133982343355"
local TOKEN = "e4100fccdae94691b4414c7306220c06"         -- its access_token and link_id
local LINK_ID = TOKEN
local NOW = core.parse_time("2022-06-10T00:00:00Z")       -- after the tasks_read example's times
local TASK_DONE_AT = core.parse_time("2022-06-07T15:30:00Z")   -- tasks_read updated_at

local function client_for(srv, extra)
  local t = { now = NOW }
  local opts = {
    client_id = "client-id", secret = "secret", base_url = srv.base_url,
    clock = function() return t.now end,
    sleep = function(s) t.now = t.now + s end,
    retry = { attempts = 1 },
  }
  for k, v in pairs(extra or {}) do opts[k] = v end
  return assert(truv.new(opts)), t
end

-- The orders_read example with every suborder in `status` (a documented
-- suborder status).
local function order_with_status(status)
  return doc("order.json", function(o)
    for _, list in ipairs{ o.employers, o.financial_accounts } do
      for _, s in ipairs(list) do s.status = status end
    end
  end)
end

-- GET tasks/ in the envelope of Truv's lists, each item the tasks_read
-- example with `fields` set.
local function task_list(...)
  local results = {}
  for i, fields in ipairs{ ... } do
    local t = decoded("task.json")
    for k, v in pairs(fields) do t[k] = v end
    results[i] = t
  end
  return docserver.encode{ count = #results, next = json.null, previous = json.null,
                           results = #results > 0 and results or docserver.EMPTY_ARRAY }
end

local function body_of(srv, pattern)
  for _, r in ipairs(srv:requests()) do
    if (r.method .. " " .. r.target):match(pattern) then return json.decode(r.body) end
  end
end

describe("201 Created", function()
  local srv
  lazy_setup(function()
    srv = docserver.start{ { "POST", "^/v1/orders/$", 201, doc("order.json") } }
  end)
  lazy_teardown(function() srv:stop() end)

  it("is a success for create_order, with Truv's documented order as the answer", function()
    local client = client_for(srv)
    local order, meta = client:create_order{ products = { "income" }, first_name = "John",
                                             last_name = "Doe" }
    assert.is_truthy(order, tostring(meta))
    assert.equal(201, meta.status)
    assert.equal(ORDER_ID, order.id)
    assert.equal(EMPLOYER_ID, order.employers[1].id)
    client:close()
  end)

  it("is a success on the multi transport (truv-renew's) too", function()
    local scheduler = require "truv.scheduler"
    local sched = assert(scheduler.new{ concurrency = 2, rate_per_minute = 0 })
    local client = client_for(srv, { transport = sched:transport(), sleep = sched.sleep })
    local order, meta
    sched:spawn(function()
      order, meta = client:create_order{ products = { "income" }, first_name = "John",
                                         last_name = "Doe" }
    end)
    sched:run()
    client:close()
    sched:close()
    assert.is_truthy(order, tostring(meta))
    assert.equal(201, meta.status)
    assert.equal(ORDER_ID, order.id)
  end)
end)

describe("polling a failed refresh (Truv sends no order event for it)", function()
  local function wait_with(routes, extra)
    local srv = docserver.start(routes)
    local client = client_for(srv, extra)
    local result, err = client:wait_for_refresh(ORDER_ID, { timeout_s = 60 })
    return srv, client, result, err
  end

  it("learns the cause from the link's tasks (GET tasks/?user_id=): login_error, reverify, " ..
     "and the connection is noted dead", function()
    local srv, client, result, err = wait_with{
      { "GET", "^/v1/orders/" .. ORDER_ID .. "/$", 200, order_with_status("error") },
      { "GET", "^/v1/tasks/%?", 200, task_list({ status = "login_error", link_id = LINK_ID }) },
    }
    finally(function() srv:stop() end)
    assert.is_truthy(result, tostring(err))
    assert.is_true(result.finished)
    assert.equal("reverify", result.decision.route)
    assert.equal("login_error", result.decision.reason)
    local c = result.connections[1]
    assert.equal("login_error", c.task_status)
    assert.equal("48427a36d43c4d5aa6324bc06c692456", c.task_id)
    assert.equal("Invalid credentials provided", c.error_message)
    assert.equal(1, srv:count("^GET /v1/tasks/%?.*user_id=" .. USER_ID))
    -- what it learned is kept for the next refresh, keyed by the token's hash
    local f = client.quota:facts(truv.quota.key(TOKEN))
    assert.equal("login_error", f.dead_reason)
    assert.equal(TASK_DONE_AT, f.dead_at)
  end)

  it("routes a suborder error of unknown cause to fix, never to an automatic retry", function()
    local srv, _, result, err = wait_with{
      { "GET", "^/v1/orders/" .. ORDER_ID .. "/$", 200, order_with_status("error") },
      { "GET", "^/v1/tasks/%?", 200, task_list() },
      { "GET", "^/v1/orders/" .. ORDER_ID .. "/events/", 200, doc("order-events.json") },
    }
    finally(function() srv:stop() end)
    assert.is_truthy(result, tostring(err))
    assert.equal("fix", result.decision.route)
    assert.equal("refresh_failed_unknown", result.decision.reason)
    assert.is_nil(result.decision.retry_at)
    -- the events name no task of this suborder: no refresh task was read
    assert.equal(0, srv:count("^GET /v1/refresh/tasks/"))
  end)

  it("treats Truv's generic task status `error` as an unknown cause, with its error_message",
     function()
    local srv, client, result, err = wait_with{
      { "GET", "^/v1/orders/" .. ORDER_ID .. "/$", 200, order_with_status("error") },
      { "GET", "^/v1/tasks/%?", 200, task_list({ status = "error", link_id = LINK_ID }) },
    }
    finally(function() srv:stop() end)
    assert.is_truthy(result, tostring(err))
    assert.equal("fix", result.decision.route)
    assert.equal("refresh_failed_unknown", result.decision.reason)
    assert.equal("Invalid credentials provided", result.decision.error_message)
    assert.same({}, client.quota:facts(truv.quota.key(TOKEN)))
  end)

  it("reads a refresh task's status when the order's events name its task", function()
    local srv, _, result, err = wait_with{
      { "GET", "^/v1/orders/" .. ORDER_ID .. "/$", 200, order_with_status("error") },
      { "GET", "^/v1/tasks/%?", 404, '{"detail": "Not Found."}' },
      { "GET", "^/v1/orders/" .. ORDER_ID .. "/events/", 200,
        doc("order-events.json", function(e)
          e.results[1].suborder_id = EMPLOYER_ID
        end) },
      { "GET", "^/v1/refresh/tasks/85aec5c06cc34a66cdc6a4c34febe1fe/$", 200,
        doc("refresh-task.json", function(t) t.status = "mfa_error" end) },
    }
    finally(function() srv:stop() end)
    assert.is_truthy(result, tostring(err))
    assert.equal("reverify", result.decision.route)
    assert.equal("mfa_error", result.decision.reason)
    assert.equal("85aec5c06cc34a66cdc6a4c34febe1fe", result.connections[1].task_id)
  end)

  it("does not wait on an order status Truv does not send: an order without connections " ..
     "is finished at once (fix, no_connections)", function()
    local srv, _, result, err = wait_with{
      { "GET", "^/v1/orders/" .. ORDER_ID .. "/$", 200, doc("order.json", function(o)
          o.employers = docserver.EMPTY_ARRAY
          o.financial_accounts = docserver.EMPTY_ARRAY
        end) },
    }
    finally(function() srv:stop() end)
    assert.is_truthy(result, tostring(err))
    assert.is_true(result.finished)
    assert.equal("fix", result.decision.route)
    assert.equal("no_connections", result.decision.reason)
    assert.equal(1, srv:count("^GET /v1/orders/"))
  end)
end)

describe("a connection known to need the user", function()
  local refresh_answer = doc("order.json")

  local function serve(tasks)
    return docserver.start{
      { "GET", "^/v1/tasks/%?", 200, tasks },
      { "POST", "^/v1/orders/" .. ORDER_ID .. "/$", 200, refresh_answer },
    }
  end

  local function refresh(client, params)
    return client:refresh_order(ORDER_ID, params or { products = { "income" } },
                                { order = decoded("order.json") })
  end

  it("is refused without a refresh (connection_dead, its cause, reverify) when Truv's tasks " ..
     "show no re-authentication since", function()
    local srv = serve(task_list({ status = "done", link_id = LINK_ID }))
    finally(function() srv:stop() end)
    local client = client_for(srv)
    -- it failed after the link's last done task
    assert(client.quota:note(truv.quota.key(TOKEN), "dead", TASK_DONE_AT + 3600, "login_error"))
    local fresh, err = refresh(client)
    assert.is_nil(fresh)
    assert.equal("expired", err.kind)
    assert.equal("connection_dead", err.code)
    assert.equal("login_error", err.reason)
    assert.equal(EMPLOYER_ID, err.expired[1].id)
    assert.equal("reverify", truv.route(err).route)
    assert.equal(0, srv:count("^POST "))
    assert.equal(1, srv:count("^GET /v1/tasks/%?.*user_id=" .. USER_ID))
    -- nothing was reserved: the quota is untouched
    assert.equal(0, (client.quota:usage(truv.quota.key(TOKEN), NOW)))
  end)

  it("is refreshed once Truv's tasks show the user re-authenticated after the failure " ..
     "(Bridge update mode), which is noted", function()
    local srv = serve(task_list({ status = "done", link_id = LINK_ID }))
    finally(function() srv:stop() end)
    local client = client_for(srv)
    assert(client.quota:note(truv.quota.key(TOKEN), "dead", TASK_DONE_AT - 86400, "mfa_error"))
    local fresh, meta = refresh(client)
    assert.is_truthy(fresh, tostring(meta))
    assert.equal(1, srv:count("^POST /v1/orders/" .. ORDER_ID .. "/$"))
    assert.equal(TASK_DONE_AT, client.quota:facts(truv.quota.key(TOKEN)).auth_at)
  end)

  it("is refreshed without asking when a completed refresh came after the failure", function()
    local srv = serve(task_list())
    finally(function() srv:stop() end)
    local client = client_for(srv)
    local key = truv.quota.key(TOKEN)
    assert(client.quota:note(key, "dead", NOW - 7200, "login_error"))
    assert(client.quota:note(key, "alive", NOW - 3600))
    assert.is_truthy(refresh(client))
    assert.equal(0, srv:count("^GET /v1/tasks/"))
  end)

  it("is refreshed when the check is off (refuse_dead = false)", function()
    local srv = serve(task_list())
    finally(function() srv:stop() end)
    local client = client_for(srv, { refresh = { refuse_dead = false } })
    assert(client.quota:note(truv.quota.key(TOKEN), "dead", NOW - 60, "account_locked"))
    assert.is_truthy(refresh(client))
    assert.equal(1, srv:count("^POST "))
  end)
end)

describe("connection age", function()
  local function serve()
    return docserver.start{
      { "POST", "^/v1/orders/" .. ORDER_ID .. "/$", 200, doc("order.json") },
    }
  end

  it("refuses nothing by itself: a connection older than 180 days is refreshed, and listed " ..
     "in meta.expiring", function()
    local srv = serve()
    finally(function() srv:stop() end)
    local client = client_for(srv)
    local order = decoded("order.json")
    local fresh, meta = client:refresh_order(ORDER_ID, { products = { "income" } },
                                             { order = order })
    assert.is_truthy(fresh, tostring(meta))
    assert.equal(1, #meta.expiring)
    local e = meta.expiring[1]
    assert.equal(EMPLOYER_ID, e.id)
    assert.equal(LINK_ID, e.link_id)
    assert.equal("truv_api", e.provider_id)
    assert.equal("created", e.basis)
    assert.equal(core.parse_time("2021-04-21T22:12:59.346109Z"), e.since)
    assert.equal(math.floor((NOW - e.since) / 86400), e.age_days)
  end)

  it("hands the warning on through the wait, to the route the handlers get", function()
    local srv = docserver.start{
      { "POST", "^/v1/orders/" .. ORDER_ID .. "/$", 200, doc("order.json") },
      { "GET", "^/v1/orders/" .. ORDER_ID .. "/$", 200, order_with_status("completed") },
    }
    finally(function() srv:stop() end)
    local client = client_for(srv)
    local fresh, meta = assert(client:refresh_order(ORDER_ID, { products = { "income" } },
                                                    { order = decoded("order.json") }))
    local result = assert(client:wait_for_refresh(fresh, { expiring = meta.expiring }))
    assert.equal("done", result.decision.route)
    assert.equal(meta.expiring, result.expiring)
    assert.equal(meta.expiring, result.decision.expiring)
  end)

  it("counts from the last re-authentication the client saw", function()
    local srv = serve()
    finally(function() srv:stop() end)
    local client = client_for(srv)
    assert(client.quota:note(truv.quota.key(TOKEN), "auth", NOW - 10 * 86400))
    local _, meta = assert(client:refresh_order(ORDER_ID, { products = { "income" } },
                                                { order = decoded("order.json") }))
    assert.is_nil(meta.expiring)
    local _, m2 = assert(client:refresh_order(ORDER_ID, { products = { "income" } },
                                              { order = decoded("order.json"),
                                                expiring_days = 5 }))
    assert.equal("auth", m2.expiring[1].basis)
    assert.equal(10, m2.expiring[1].age_days)
  end)

  it("warns only for the providers listed as OAuth, when a list is given", function()
    local srv = serve()
    finally(function() srv:stop() end)
    local client = client_for(srv, { refresh = { oauth_providers = { "adp" } } })
    local _, meta = assert(client:refresh_order(ORDER_ID, { products = { "income" } },
                                                { order = decoded("order.json") }))
    assert.is_nil(meta.expiring)
    local _, m2 = assert(client:refresh_order(ORDER_ID, { products = { "income" } },
      { order = decoded("order.json"), oauth_providers = { "adp", "truv_api" } }))
    assert.equal(1, #m2.expiring)
  end)
end)

describe("Truv's own refresh request example", function()
  local srv
  lazy_setup(function()
    srv = docserver.start{
      { "POST", "^/v1/orders/" .. ORDER_ID .. "/$", 200, doc("order.json") },
    }
  end)
  lazy_teardown(function() srv:stop() end)

  it("names an employer by id and suborder_number together: accepted, sent as given", function()
    local client = client_for(srv)
    local fresh, err = client:refresh_order(ORDER_ID, {
      products = { "income" },
      employers = { { id = EMPLOYER_ID, suborder_number = SUBORDER_NUMBER } },
    }, { order = decoded("order.json") })
    assert.is_truthy(fresh, tostring(err))
    local body = body_of(srv, "^POST /v1/orders/")
    assert.same({ { id = EMPLOYER_ID, suborder_number = SUBORDER_NUMBER } }, body.employers)
  end)

  it("refuses an id and a suborder_number of two different connections, sending nothing",
     function()
    local before = srv:count("^POST ")
    local order = decoded("order.json")
    local second = decoded("order.json").employers[1]
    second.id, second.suborder_number = "5c1e2a90b7f84d3c9e6a1f2b3c4d5e6f", "133982343356"
    second.access_token, second.link_id = TOKEN .. "b", LINK_ID .. "b"
    order.employers[2] = second
    local client = client_for(srv)
    local fresh, err = client:refresh_order(ORDER_ID, {
      products = { "income" },
      employers = { { id = EMPLOYER_ID, suborder_number = "133982343356" } },
    }, { order = order })
    assert.is_nil(fresh)
    assert.equal("invalid", err.kind)
    assert.equal("employers[1]", err.fields[1].field)
    assert.matches("do not name the same connection", err.fields[1].message)
    assert.equal(before, srv:count("^POST "))
  end)
end)

describe("a new verification order (reverify)", function()
  local srv
  before_each(function()
    srv = docserver.start{ { "POST", "^/v1/orders/$", 201, doc("order.json") } }
  end)
  after_each(function() srv:stop() end)

  it("carries the contact the caller gives: Truv's Order has none to copy", function()
    local client = client_for(srv)
    local link = assert(client:reverify(decoded("order.json"), {
      contact = { email = "john.doe@example.com", phone = "4155554193" } }))
    assert.equal("order", link.mode)
    assert.is_true(link.contact)
    assert.equal(ORDER_ID, link.order_id)
    local body = body_of(srv, "^POST /v1/orders/$")
    assert.equal("john.doe@example.com", body.email)
    assert.equal("4155554193", body.phone)
    assert.equal("John", body.first_name)
    assert.equal("Doe", body.last_name)
    assert.equal("1534332", body.order_number)
    assert.same({ "income" }, body.products)
  end)

  it("says when it has no contact: the order exists, but nobody was sent the link", function()
    local client = client_for(srv)
    local link = assert(client:reverify(decoded("order.json")))
    assert.is_false(link.contact)
    assert.is_string(link.share_url)
    local body = body_of(srv, "^POST /v1/orders/$")
    assert.is_nil(body.email)
    assert.is_nil(body.phone)
  end)

  it("takes email and phone among the order's extra fields too", function()
    local client = client_for(srv)
    local link = assert(client:reverify(decoded("order.json"), {
      order = { email = "jane@example.com", notes = "renewal" } }))
    assert.is_true(link.contact)
    assert.equal("jane@example.com", body_of(srv, "^POST /v1/orders/$").email)
  end)
end)

describe("webhooks about a link (truv.receiver with facts)", function()
  local LINK = "d39d86dcc20c46e0ae75ba9ab1311a21"   -- the link-disconnected example's

  local function signed(body)
    return { ["X-WEBHOOK-SIGN"] = truv.webhook.sign(body, "secret") }
  end

  -- A loopback Truv whose task list for the user shows the link's newest task
  -- in `status`, and a receiver keeping facts in the client's quota store.
  local function setup_link(status)
    local srv = docserver.start{
      { "GET", "^/v1/tasks/%?", 200, task_list({ status = status, link_id = LINK,
                                                 created_at = "2022-08-25T09:00:00Z",
                                                 updated_at = "2022-08-25T09:30:00Z" }) },
      { "POST", "^/v1/orders/" .. ORDER_ID .. "/$", 200, doc("order.json") },
    }
    local client, clock = client_for(srv)
    clock.now = core.parse_time("2022-09-01T00:00:00Z")
    local receiver = truv.receiver{ secrets = "secret", facts = client.quota }
    local order = decoded("order.json")
    order.employers[1].link_id = LINK
    return srv, client, receiver, order
  end

  it("link-disconnected, with the link's newest task in login_error: the next refresh is " ..
     "refused locally; link-connected lets it through again", function()
    local srv, client, receiver, order = setup_link("login_error")
    finally(function() srv:stop() end)
    local body = doc("webhook-link-disconnected.json")
    local status, res = receiver:handle(body, signed(body))
    assert.equal(200, status)
    assert.equal("reverify", res.decision.route)
    local fresh, err = client:refresh_order(ORDER_ID, { products = { "income" } },
                                            { order = order })
    assert.is_nil(fresh)
    assert.equal("connection_dead", err.code)
    assert.equal("link-disconnected", err.reason)
    assert.equal(0, srv:count("^POST "))

    -- the same event's fields under the documented link-connected type, later
    local back = doc("webhook-link-disconnected.json", function(e)
      e.event_type, e.webhook_id = "link-connected", "a7b8c9d0e1f2a3b4c5d6a7b8c9d0e1f2"
      e.updated_at = "2022-08-26T09:31:00.000000+00:00"
    end)
    assert.equal(200, (receiver:handle(back, signed(back))))
    assert.is_truthy(client:refresh_order(ORDER_ID, { products = { "income" } },
                                          { order = order }))
    assert.equal(1, srv:count("^POST "))
  end)

  it("link-disconnected alone refuses nothing when the link's newest task failed for " ..
     "another cause (a provider outage: Truv would serve the next refresh)", function()
    local srv, client, receiver, order = setup_link("unavailable")
    finally(function() srv:stop() end)
    local body = doc("webhook-link-disconnected.json")
    assert.equal(200, (receiver:handle(body, signed(body))))
    assert.equal("link-disconnected",
                 client.quota:facts(require("truv.facts").link_key(LINK)).dead_reason)
    assert.is_truthy(client:refresh_order(ORDER_ID, { products = { "income" } },
                                          { order = order }))
    assert.equal(1, srv:count("^POST "))
  end)

  -- the link-disconnected example's instant
  local DISCONNECTED = core.parse_time("2022-08-25T09:31:00Z")

  it("link-disconnected that the caller's own failed refresh explains (own_failure): " ..
     "refreshed without reading Truv's tasks", function()
    local srv, client, receiver, order = setup_link("unavailable")
    finally(function() srv:stop() end)
    local body = doc("webhook-link-disconnected.json")
    assert.equal(200, (receiver:handle(body, signed(body))))
    -- sent 40 s before the event, seen `unavailable` 20 s after it
    assert.is_truthy(client:refresh_order(ORDER_ID, { products = { "income" } }, {
      order = order,
      own_failure = { status = "unavailable", from = DISCONNECTED - 40, to = DISCONNECTED + 20 },
    }))
    assert.equal(1, srv:count("^POST "))
    assert.equal(0, srv:count("^GET /v1/tasks/"))
  end)

  it("own_failure explains neither a link-disconnected outside its time nor one after a " ..
     "failure only the user can fix: Truv's tasks decide", function()
    local srv, client, receiver, order = setup_link("login_error")
    finally(function() srv:stop() end)
    local body = doc("webhook-link-disconnected.json")
    assert.equal(200, (receiver:handle(body, signed(body))))
    local params = { products = { "income" } }
    -- a failure of ours an hour before the event (clock_skew_s: 300)
    local fresh, err = client:refresh_order(ORDER_ID, params, {
      order = order,
      own_failure = { status = "unavailable", from = DISCONNECTED - 3700,
                      to = DISCONNECTED - 3600 } })
    assert.is_nil(fresh)
    assert.equal("connection_dead", err.code)
    assert.equal(1, srv:count("^GET /v1/tasks/"))
    -- at the right time, but a status only the user can fix
    fresh, err = client:refresh_order(ORDER_ID, params, {
      order = order,
      own_failure = { status = "login_error", from = DISCONNECTED - 40, to = DISCONNECTED } })
    assert.is_nil(fresh)
    assert.equal("connection_dead", err.code)
    assert.equal(2, srv:count("^GET /v1/tasks/"))
    assert.equal(0, srv:count("^POST "))
    assert.has_error(function()
      client:refresh_order(ORDER_ID, params, { order = order, own_failure = { status = "error" } })
    end, "bad option 'own_failure' to 'refresh_order' ({ status = string, from = number, " ..
         "to = number } expected)")
  end)

  it("a completed refresh (order-status-updated) is noted alive for its link", function()
    local store = truv.quota.memory()
    local receiver = truv.receiver{ secrets = "secret", facts = store }
    local body = doc("webhook-order-status-updated.json")
    assert.equal(200, (receiver:handle(body, signed(body))))
    local f = store:facts(require("truv.facts").link_key("d8a8945ee2b049b193110cfba643f5df"))
    -- kept to the millisecond
    assert.is_true(math.abs(core.parse_time("2024-07-11T21:40:48.424655+00:00") - f.alive_at)
                   < 0.001)
  end)
end)
