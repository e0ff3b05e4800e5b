-- truv.renewal against Truv's documentation examples (a loopback server):
-- a case whose connection is known to need the user goes to reverify
-- without a refresh, and its new verification order carries the case's
-- contact, since Truv's Order has none to copy; a case without one is
-- reported as such (the link exists, nobody was told).
local docserver = require "spec.support.docserver"
local files = require "spec.support.files"
local truv = require "truv"
local core = require "truv.core"
local renewal = require "truv.renewal"
local report = require "truv.report"
local cases_mod = require "truv.cases"

local ORDER_ID = "39aa1486ccca4bc19cda071ffc1ba392"
local OTHER_ID = "5e0a7c2b9d1f4e3a8c6b0d2f4a6c8e10"   -- answered with the same example
local TOKEN = "e4100fccdae94691b4414c7306220c06"

describe("renewal: new verification links and the applicant's contact", function()
  local srv, dir, summary, journal, events

  lazy_setup(function()
    dir = files.tmpdir("truv-contact-spec")
    local empty = docserver.encode{ count = 0, next = docserver.json.null,
                                    previous = docserver.json.null,
                                    results = docserver.EMPTY_ARRAY }
    srv = docserver.start{
      { "GET", "^/v1/orders/%x+/$", 200, docserver.doc("order.json") },
      { "GET", "^/v1/tasks/%?", 200, empty },
      { "POST", "^/v1/orders/$", 201, docserver.doc("order.json") },
    }
    -- what an earlier refresh of the connection learned: it needs the user
    local quota = assert(truv.quota.sqlite(dir .. "/quota.db"))
    assert(quota:note(truv.quota.key(TOKEN), "dead", core.now() - 3600, "login_error"))
    events = {}
    summary = assert(renewal.run{
      cases = {
        { case_id = "with-contact", order_id = ORDER_ID, product = "income",
          email = "john.doe@example.com", phone = "4155554193" },
        { case_id = "no-contact", order_id = OTHER_ID, product = "income" },
      },
      journal = dir .. "/journal", quota = quota, concurrency = 1, rate_per_minute = 0,
      client = { client_id = "client-id", secret = "secret", base_url = srv.base_url },
      on_event = function(ev) events[#events + 1] = ev end,
    })
    quota:close()
    journal = assert(core.journal_open(dir .. "/journal"))
  end)

  lazy_teardown(function()
    if journal then journal:close() end
    if srv then srv:stop() end
    if dir then os.execute("rm -rf '" .. dir .. "'") end
  end)

  it("sends a case whose connection is known dead to reverify without refreshing it", function()
    assert.equal(2, summary.routes.reverify)
    assert.equal(0, srv:count("^POST /v1/orders/%x"))
    for _, id in ipairs{ "with-contact", "no-contact" } do
      local rec = journal:get(id)
      assert.equal("reverify", rec.route)
      assert.equal("connection_dead", rec.reason)
      assert.equal(ORDER_ID, rec.reverify_order_id)
    end
  end)

  it("gives the new order the case's email and phone, and none to a case without", function()
    local bodies = {}
    for _, r in ipairs(srv:requests()) do
      if r.method == "POST" and r.target == "/v1/orders/" then
        bodies[#bodies + 1] = docserver.json.decode(r.body)
      end
    end
    assert.equal(2, #bodies)
    table.sort(bodies, function(a, b) return (a.email or "") > (b.email or "") end)
    assert.equal("john.doe@example.com", bodies[1].email)
    assert.equal("4155554193", bodies[1].phone)
    assert.is_nil(bodies[2].email)
    assert.is_nil(bodies[2].phone)
    for _, b in ipairs(bodies) do
      assert.equal("John", b.first_name)
      assert.equal("1534332", b.order_number)
    end
  end)

  it("reports the link that reached nobody, in the journal, the events and cases.csv", function()
    assert.is_nil(journal:get("with-contact").no_contact)
    assert.is_true(journal:get("no-contact").no_contact)
    local flagged = {}
    for _, ev in ipairs(events) do
      if ev.event == "routed" then flagged[ev.case_id] = ev.no_contact end
    end
    assert.is_true(flagged["no-contact"])
    assert.is_nil(flagged["with-contact"])
    local paths = assert(report.write(dir .. "/report", journal, summary))
    local rows = assert(cases_mod.parse_csv(files.slurp(paths.csv)))
    local col
    for i, name in ipairs(rows[1]) do if name == "contact" then col = i end end
    for i = 2, #rows do
      assert.equal(rows[i][1] == "no-contact" and "none" or "", rows[i][col])
    end
    assert.same({ no_contact = 1, expiring = 0 }, report.notices(journal))
  end)
end)

describe("renewal: connections likely to expire soon", function()
  local srv, dir, summary, journal, events, seen

  lazy_setup(function()
    dir = files.tmpdir("truv-expiring-spec")
    local completed = docserver.doc("order.json", function(o)
      for _, list in ipairs{ o.employers, o.financial_accounts } do
        for _, s in ipairs(list) do s.status = "completed" end
      end
    end)
    srv = docserver.start{
      -- the original first, then the refresh (the example's id too), completed
      { "GET", "^/v1/orders/%x+/$", { 200, docserver.doc("order.json") }, { 200, completed } },
      { "POST", "^/v1/orders/%x+/$", 200, docserver.doc("order.json") },
    }
    events, seen = {}, {}
    summary = assert(renewal.run{
      cases = { { case_id = "old", order_id = ORDER_ID, product = "income",
                  email = "john.doe@example.com" } },
      journal = dir .. "/journal", concurrency = 1, rate_per_minute = 0,
      poll = { interval_s = 0.01 },
      client = { client_id = "client-id", secret = "secret", base_url = srv.base_url },
      router = truv.router{ done = function(d) seen.done = d end },
      on_event = function(ev) events[#events + 1] = ev end,
    })
    journal = assert(core.journal_open(dir .. "/journal"))
  end)

  lazy_teardown(function()
    if journal then journal:close() end
    if srv then srv:stop() end
    if dir then os.execute("rm -rf '" .. dir .. "'") end
  end)

  it("refreshes an old connection (nothing refused by age) and tells the done handler", function()
    assert.equal(1, summary.routes.done)
    assert.equal(1, srv:count("^POST /v1/orders/" .. ORDER_ID .. "/$"))
    local e = seen.done.expiring[1]
    assert.equal("employers", e.kind)
    assert.equal("ad9f14440d624ec3b0f66e81e44518c7", e.id)
    assert.equal("created", e.basis)
  end)

  it("lists it in the journal, the events, cases.csv and the report", function()
    local text = journal:get("old").expiring
    assert.matches("^employers/ad9f14440d624ec3b0f66e81e44518c7 %d+d since connection$", text)
    local routed
    for _, ev in ipairs(events) do
      if ev.event == "routed" then routed = ev end
    end
    assert.equal(text, routed.expiring)
    local paths = assert(report.write(dir .. "/report", journal, summary))
    assert.truthy(files.slurp(paths.csv):find(text, 1, true))
    local html = files.slurp(paths.html)
    assert.matches("Likely to expire soon: send a link ahead of time %(1%)", html)
    assert.same({ no_contact = 0, expiring = 1 }, report.notices(journal))
  end)
end)
