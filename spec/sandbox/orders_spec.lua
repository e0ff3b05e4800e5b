-- Orders: create, read, refresh (validated as Truv documents it), events.
local sandbox = require "spec.support.sandbox"
local null = sandbox.null

local HEX32 = "^" .. string.rep("%x", 32) .. "$"
local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%d%d%d%dZ$"
local MONEY = "^%-?%d+%.%d%d$"

local function params(body)
  local out = {}
  for _, p in ipairs(body.error.extra["invalid-params"]) do
    out[#out + 1] = p.field .. ": " .. p.message
  end
  return out
end

local function fields(body)
  local out = {}
  for _, p in ipairs(body.error.extra["invalid-params"]) do out[p.field] = p.message end
  return out
end

local function find_case(cases, pred)
  for _, c in ipairs(cases) do
    if pred(c) then return c end
  end
end

describe("POST /v1/orders/", function()
  local sb

  lazy_setup(function() sb = sandbox.start{} end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("creates an order (201) with pending suborders and no access_token", function()
    local status, o = sb:request("POST", "orders/", {
      products = { "income" }, first_name = "Ada", last_name = "Lovelace",
      order_number = "ON-1", email = "ada@example.com", phone = "+1 (415) 555-0100",
      ssn = "991-91-9991", employers = { { company_name = "Acme" }, { company_mapping_id = "m1" } },
      notes = "renewal", cc_emails = { "cc@example.org" }, manager = { name = "M", email = "m@example.com" },
      template_id = "t-1", data_sources = { "payroll" }, unknown_field = "ignored" })
    assert.are.equal(201, status)
    assert.matches(HEX32, o.id)
    assert.matches(HEX32, o.user_id)
    assert.matches(HEX32, o.bridge_token)
    -- the Order object has no status, email, phone or external_user_id
    for _, k in ipairs({ "status", "email", "phone", "external_user_id" }) do assert.is_nil(o[k], k) end
    assert.are.same({ "income" }, o.products)
    assert.are.equal("internal", o.source)
    assert.are.equal("ON-1", o.order_number)
    assert.are.equal("Ada", o.first_name)
    assert.are.equal(null, o.initial_order)
    assert.are.equal(null, o.refresh_order)
    assert.are.equal(null, o.completed_at)
    assert.matches(ISO, o.created_at)
    assert.are.equal("https://cdn.truv.com/employment.html?bridge_token=", o.share_url:sub(1, 50))
    assert.matches("&order_group_id=" .. o.id .. "$", o.share_url)
    assert.matches("^https://truv%.com/s/%w+$", o.short_share_url)
    assert.are.equal(2, #o.employers)
    for _, e in ipairs(o.employers) do
      assert.are.equal("pending", e.status)
      assert.are.equal(null, e.access_token)
      assert.are.equal(null, e.link_id)
      assert.are.equal("income", e.product_type)
      assert.matches("^%d+$", e.suborder_number)
    end
    assert.are.equal("Acme", o.employers[1].company_name)
    assert.are.same({ name = "M", email = "m@example.com" }, o.manager)
    assert.are.same({ "cc@example.org" }, o.cc_emails)
    assert.are.equal("renewal", o.notes)
    assert.are.equal("t-1", o.template_id)
    local status2, again = sb:request("GET", "orders/" .. o.id .. "/")
    assert.are.equal(200, status2)
    assert.are.same(o, again)
  end)

  it("reuses the user of a known external_user_id, who carries the applicant's contact", function()
    local body = { products = { "employment" }, first_name = "A", last_name = "B",
      external_user_id = "ext-9", email = "a@example.com", ssn = "9991" }
    local _, a = sb:request("POST", "orders/", body)
    local _, b = sb:request("POST", "orders/", body)
    local _, c = sb:request("POST", "orders/", { products = { "employment" }, first_name = "A",
      last_name = "B" })
    assert.are.equal(a.user_id, b.user_id)
    assert.are_not.equal(a.id, b.id)
    assert.are_not.equal(a.user_id, c.user_id)
    local status, u = sb:request("GET", "users/" .. a.user_id .. "/")
    assert.are.equal(200, status)
    assert.are.same({ "ext-9", "A", "B", "a@example.com", "9991" },
                    { u.external_user_id, u.first_name, u.last_name, u.email, u.ssn })
  end)

  it("creates financial accounts from financial_institutions", function()
    local status, o = sb:request("POST", "orders/", { products = { "assets" }, first_name = "A",
      last_name = "B", financial_institutions = { { id = "fi-1" }, { name = "Bank" } } })
    assert.are.equal(201, status)
    assert.are.equal(0, #o.employers)
    assert.are.equal(2, #o.financial_accounts)
    assert.are.equal("assets", o.financial_accounts[1].product_type)
    assert.are.equal("pending", o.financial_accounts[2].status)
  end)

  it("requires products, first_name and last_name, listing every missing field", function()
    local status, body = sb:request("POST", "orders/", {})
    assert.are.equal(400, status)
    assert.are.equal("incorrect_parameters", body.error.code)
    assert.are.equal("Invalid parameters", body.error.message)
    assert.are.same({ "products: This field is required.", "first_name: This field is required.",
                      "last_name: This field is required." }, params(body))
  end)

  it("treats an empty body like {}", function()
    local status, body = sb:request("POST", "orders/")
    assert.are.equal(400, status)
    assert.are.equal(3, #params(body))
  end)

  it("validates every field and reports each offending one", function()
    local status, body = sb:request("POST", "orders/", {
      products = { "income", "income", "rocket" }, first_name = "  ", last_name = 5,
      email = "not-an-email", phone = "555-01", ssn = "12-34", notes = "",
      employers = { {}, { company_name = "" }, "x" }, financial_institutions = { {} },
      cc_emails = { "ok@example.com", "bad@" }, data_sources = { "nope" }, manager = "boss",
      order_number = { 1 }, external_user_id = 7, template_id = false })
    assert.are.equal(400, status)
    local f = fields(body)
    assert.are.equal('"rocket" is not a valid choice.', f.products)
    assert.are.equal("This field may not be blank.", f.first_name)
    assert.are.equal("Not a valid string.", f.last_name)
    assert.are.equal("Enter a valid email address.", f.email)
    assert.matches("phone number", f.phone)
    assert.matches("SSN", f.ssn)
    assert.are.equal("This field may not be blank.", f.notes)
    assert.matches("company_name or company_mapping_id is required", f["employers[0]"])
    assert.matches("non%-empty strings", f["employers[1]"])
    assert.matches("Expected a dictionary", f["employers[2]"])
    assert.matches("id or name is required", f["financial_institutions[0]"])
    assert.is_nil(f["cc_emails[0]"])
    assert.are.equal("Enter a valid email address.", f["cc_emails[1]"])
    assert.matches("not a valid choice", f["data_sources[0]"])
    assert.matches("Expected a dictionary", f.manager)
    assert.are.equal("Not a valid string.", f.order_number)
    assert.are.equal("Not a valid string.", f.external_user_id)
    assert.are.equal("Not a valid string.", f.template_id)
    -- the duplicate is reported too
    local dup = false
    for _, p in ipairs(params(body)) do dup = dup or p:find("Duplicate product") ~= nil end
    assert.is_true(dup)
  end)

  it("enforces list limits and types", function()
    local employers, fis, emails = {}, {}, {}
    for i = 1, 6 do employers[i] = { company_name = "C" .. i }; fis[i] = { id = "f" .. i } end
    for i = 1, 16 do emails[i] = "a" .. i .. "@example.com" end
    local body = sandbox.json.encode({ products = "PRODUCTS", first_name = "A", last_name = "B",
      employers = employers, financial_institutions = fis, cc_emails = emails,
      notes = string.rep("n", 2001) }):gsub('"PRODUCTS"', "[]")
    local status
    status, body = sb:request("POST", "orders/", body)
    assert.are.equal(400, status)
    local f = fields(body)
    assert.are.equal("This list may not be empty.", f.products)
    assert.are.equal("Ensure this field has no more than 5 elements.", f.employers)
    assert.are.equal("Ensure this field has no more than 5 elements.", f.financial_institutions)
    assert.are.equal("Ensure this field has no more than 15 elements.", f.cc_emails)
    assert.are.equal("Ensure this field has no more than 2000 characters.", f.notes)
    status, body = sb:request("POST", "orders/", { products = "income", first_name = "A", last_name = "B" })
    assert.are.equal(400, status)
    assert.are.equal('Expected a list of items but got type "str".', fields(body).products)
  end)

  it("accepts every documented product and valid formats", function()
    for _, p in ipairs({ "income", "employment", "assets", "insurance", "transactions",
                         "deposit_switch", "pll" }) do
      local status = sb:request("POST", "orders/", { products = { p }, first_name = "A", last_name = "B",
        phone = "415.555.0100", ssn = "991919991", email = "first.last+tag@sub.example.co.uk" })
      assert.are.equal(201, status, p)
    end
  end)

  it("takes an SSN of the last 4 digits or all 9, with or without dashes", function()
    for _, ssn in ipairs({ "9991", "991919991", "991-91-9991" }) do
      for _, key in ipairs({ "ssn", "social_security_number" }) do
        local status = sb:request("POST", "orders/", { products = { "income" }, first_name = "A",
          last_name = "B", [key] = ssn })
        assert.are.equal(201, status, key .. "=" .. ssn)
      end
    end
    for _, ssn in ipairs({ "99919", "999", "12-34", "99-91", "abcd", "9919199910" }) do
      local status, body = sb:request("POST", "orders/", { products = { "income" }, first_name = "A",
        last_name = "B", ssn = ssn })
      assert.are.equal(400, status, ssn)
      assert.are.equal("Enter a valid SSN (the last 4 digits or all 9).", fields(body).ssn)
    end
  end)
end)

describe("GET /v1/orders/{id}/ of a seeded order", function()
  local sb, cases

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "40", "--mix", "active=1", "--rng-seed", "7" } }
    cases = sb:cases()
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("has the fixture's fields, amounts as strings and ISO timestamps", function()
    local c = find_case(cases, function(x) return x.product == "income" and #x.employers >= 1 end)
    local status, o = sb:request("GET", "orders/" .. c.order_id .. "/")
    assert.are.equal(200, status)
    for _, k in ipairs({ "id", "products", "source", "order_number", "custom_field", "client_name",
                         "first_name", "last_name", "user_id", "bridge_token", "share_url",
                         "short_share_url", "created_at", "updated_at", "canceled_at", "completed_at",
                         "expired_at", "is_expired", "user_consent_at", "initial_order",
                         "refresh_order", "employers", "financial_accounts" }) do
      assert.is_not_nil(o[k], k)
    end
    assert.are.equal(c.order_number, o.order_number)
    assert.are.equal(c.user_id, o.user_id)
    for _, k in ipairs({ "created_at", "updated_at", "completed_at", "expired_at", "user_consent_at" }) do
      assert.matches(ISO, o[k], k)
    end
    local e = o.employers[1]
    for _, k in ipairs({ "id", "product_type", "status", "suborder_number", "created_at", "bridge_token",
                         "link_id", "access_token", "pdf_report", "data_source", "provider",
                         "is_suspicious", "start_date", "end_date", "company_name", "company_address",
                         "company_logo", "company_domain", "employments" }) do
      assert.is_not_nil(e[k], k)
    end
    assert.are.equal("completed", e.status)
    assert.are.equal("payroll", e.data_source)
    assert.are.equal(false, e.is_suspicious)
    assert.matches(HEX32, e.access_token)
    assert.matches(HEX32, e.link_id)
    assert.is_string(e.provider.id)
    local emp = e.employments[1]
    assert.matches(MONEY, emp.income)
    assert.matches(MONEY, emp.pay_rate)
    assert.is_true(#emp.statements >= 12 and #emp.statements <= 24)
    local s = emp.statements[1]
    for _, k in ipairs({ "net_pay", "net_pay_ytd", "gross_pay", "gross_pay_ytd", "regular", "bonus",
      "hours" }) do
      assert.matches(MONEY, s[k], k)
    end
    assert.matches("^%d%d%d%d%-%d%d%-%d%d$", s.pay_date)
    assert.is_true(#emp.w2s >= 1)
    assert.matches(MONEY, emp.w2s[1].wages)
    assert.is_true(#emp.annual_income_summary >= 1)
    assert.is_true(#emp.bank_accounts == 1)
    assert.are.equal(o.first_name, emp.profile.first_name)
    assert.is_string(emp.company.name)
  end)

  it("keeps statements consistent: YTD sums grow within a year", function()
    local c = find_case(cases, function(x) return x.product == "income" end)
    local _, o = sb:request("GET", "orders/" .. c.order_id .. "/")
    local st = o.employers[1].employments[1].statements
    for i = 2, #st do
      assert.is_true(st[i].pay_date > st[i - 1].pay_date)
      if st[i].pay_date:sub(1, 4) == st[i - 1].pay_date:sub(1, 4) then
        assert.is_true(tonumber(st[i].gross_pay_ytd) > tonumber(st[i - 1].gross_pay_ytd))
      end
    end
  end)

  it("shows financial accounts with their accounts for assets orders", function()
    local c = find_case(cases, function(x) return x.product == "assets" end)
    assert.is_not_nil(c, "no assets case among 40")
    local _, o = sb:request("GET", "orders/" .. c.order_id .. "/")
    assert.are.same({ "assets" }, o.products)
    assert.are.equal(0, #o.employers)
    local fa = o.financial_accounts[1]
    assert.are.equal("financial_accounts", fa.data_source)
    assert.are.equal("completed", fa.status)
    assert.matches(HEX32, fa.access_token)
    local acct = fa.accounts[1]
    assert.matches(HEX32, acct.id)
    assert.are.equal("CHECKING", acct.type)
    assert.matches("^%*+%d%d%d%d$", acct.mask)
  end)

  it("is a few KB without pay data and about 10-25 KB with one employer's pay history", function()
    local one = find_case(cases, function(x) return #x.employers == 1 and x.product == "income"
                                                    and #x.financial_accounts == 0 end)
    local _, _, h = sb:request("GET", "orders/" .. one.order_id .. "/")
    local size = tonumber(h["content-length"])
    assert.is_true(size > 8000 and size < 25000, "size " .. size)
    local emp = find_case(cases, function(x) return #x.employers == 1 and x.product == "employment" end)
    _, _, h = sb:request("GET", "orders/" .. emp.order_id .. "/")
    size = tonumber(h["content-length"])
    assert.is_true(size > 1500 and size < 6000, "size " .. size)
  end)
end)

describe("POST /v1/orders/{id}/ (refresh)", function()
  local sb, cases

  local function case(pred) return find_case(cases, pred) end
  local function refresh(id, body) return sb:request("POST", "orders/" .. id .. "/", body) end

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "60", "--mix", "active=1", "--refresh-limit", "0",
                                 "--start-time", "1700000000" } }
    cases = sb:cases()
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("creates a new order on the original's connections", function()
    local c = case(function(x) return x.product == "income" and #x.employers == 2 end)
    local _, original = sb:request("GET", "orders/" .. c.order_id .. "/")
    local status, r = refresh(c.order_id, { products = { "income" } })
    assert.are.equal(200, status)
    assert.are_not.equal(c.order_id, r.id)
    assert.are.equal(c.order_id, r.initial_order)
    assert.are.equal(null, r.refresh_order)
    assert.are.equal(original.order_number, r.order_number)
    assert.are.equal(original.user_id, r.user_id)
    assert.are.equal(original.first_name, r.first_name)
    assert.are.same({ "income" }, r.products)
    assert.is_nil(r.status)
    assert.are.equal(2, #r.employers)
    for i, e in ipairs(r.employers) do
      assert.are.equal("pending", e.status)
      assert.are_not.equal(original.employers[i].id, e.id)
      assert.are_not.equal(original.employers[i].suborder_number, e.suborder_number)
      assert.are.equal(original.employers[i].link_id, e.link_id)
      assert.are.equal(original.employers[i].access_token, e.access_token)
      assert.are.same({}, e.employments)
    end
    local _, after = sb:request("GET", "orders/" .. c.order_id .. "/")
    assert.are.equal(r.id, after.refresh_order)
    assert.are.equal(original.completed_at, after.completed_at)
    -- the original keeps its own employers
    assert.are.equal(original.employers[1].id, after.employers[1].id)
  end)

  it("fills the refresh order with fresh data once its tasks are done", function()
    local c = case(function(x) return x.product == "income" and #x.employers == 1 end)
    local _, r = refresh(c.order_id, { products = { "income" } })
    sb:advance(20)
    local _, done = sb:request("GET", "orders/" .. r.id .. "/")
    assert.are.equal("completed", done.employers[1].status)
    local st = done.employers[1].employments[1].statements
    local now_day = os.date("!%Y-%m-%d", math.floor(sb:now()))
    assert.is_true(st[#st].pay_date <= now_day)
    assert.is_true(st[#st].pay_date >= os.date("!%Y-%m-%d", math.floor(sb:now()) - 32 * 86400))
    assert.matches(ISO, done.completed_at)
  end)

  it("refreshes an income order as employment: employment facts without pay data", function()
    local c = case(function(x) return x.product == "income" and #x.employers == 1 end)
    local status, r = refresh(c.order_id, { products = { "employment" } })
    assert.are.equal(200, status)
    assert.are.same({ "employment" }, r.products)
    sb:advance(20)
    local _, done = sb:request("GET", "orders/" .. r.id .. "/")
    local emp = done.employers[1].employments[1]
    assert.are.equal("employment", done.employers[1].product_type)
    assert.are.same({}, emp.statements)
    assert.is_string(emp.job_title)
  end)

  it("enforces one product and the income/employment rule", function()
    local inc = case(function(x) return x.product == "income" end)
    local emp = case(function(x) return x.product == "employment" end)
    local assets = case(function(x) return x.product == "assets" end)
    local status, body = refresh(inc.order_id, { products = { "income", "employment" } })
    assert.are.equal(400, status)
    assert.are.equal("Only one product can be refreshed per request.", fields(body).products)
    status, body = refresh(inc.order_id, {})
    assert.are.equal(400, status)
    assert.are.equal("This field is required.", fields(body).products)
    status, body = refresh(inc.order_id, '{"products": []}')
    assert.are.equal(400, status)
    assert.are.equal("This list may not be empty.", fields(body).products)
    status, body = refresh(emp.order_id, { products = { "income" } })
    assert.are.equal(400, status)
    assert.matches('cannot be refreshed as "income"', fields(body).products)
    status = refresh(emp.order_id, { products = { "employment" } })
    assert.are.equal(200, status)
    status, body = refresh(inc.order_id, { products = { "insurance" } })
    assert.are.equal(400, status)
    assert.matches("cannot be refreshed as \"insurance\"", fields(body).products)
    status, body = refresh(inc.order_id, { products = { "pll" } })
    assert.are.equal(400, status)
    assert.are.equal('"pll" is not a valid choice.', fields(body).products)
    status, body = refresh(assets.order_id, { products = { "transactions" } })
    assert.are.equal(400, status)
    assert.matches('cannot be refreshed as "transactions"', fields(body).products)
    status = refresh(assets.order_id, { products = { "assets" } })
    assert.are.equal(200, status)
  end)

  it("selects employers by id or suborder_number and rejects unknown ones", function()
    local c = case(function(x) return x.product == "income" and #x.employers >= 2 end)
    local status, r = refresh(c.order_id, { products = { "income" },
      employers = { { suborder_number = c.employers[2].suborder_number } } })
    assert.are.equal(200, status)
    assert.are.equal(1, #r.employers)
    local conns = sb:connections(c.order_id)
    assert.are.equal(conns[2].access_token, r.employers[1].access_token)
    status, r = refresh(c.order_id, { products = { "income" }, employers = { { id = c.employers[1].id } } })
    assert.are.equal(200, status)
    assert.are.equal(conns[1].link_id, r.employers[1].link_id)
    -- Truv's own example names an employer by both keys: they must name the same one
    status, r = refresh(c.order_id, { products = { "income" }, employers = { { id = c.employers[2].id,
      suborder_number = c.employers[2].suborder_number } } })
    assert.are.equal(200, status)
    assert.are.equal(conns[2].link_id, r.employers[1].link_id)
    status, r = refresh(c.order_id, { products = { "income" }, employers = { { id = c.employers[1].id,
      suborder_number = c.employers[2].suborder_number } } })
    assert.are.equal(400, status)
    assert.matches("Not found in order", fields(r)["employers[0]"])
    local body
    status, body = refresh(c.order_id, { products = { "income" },
      employers = { { id = string.rep("0", 32) }, { id = c.employers[1].id }, { id = c.employers[1].id },
        { foo = 1 } } })
    assert.are.equal(400, status)
    local f = fields(body)
    assert.matches("Not found in order", f["employers[0]"])
    assert.is_nil(f["employers[1]"])
    assert.are.equal("Duplicate selection.", f["employers[2]"])
    assert.matches('"id" or "suborder_number"', f["employers[3]"])
    status, body = refresh(c.order_id, { products = { "income" }, financial_accounts = { { id = "x" } } })
    assert.are.equal(400, status)
    assert.matches("Cannot be refreshed with product", fields(body).financial_accounts)
  end)

  it("refreshes the financial accounts of an income order with assets", function()
    local c = case(function(x) return x.product == "income" and #x.financial_accounts > 0 end)
    assert.is_not_nil(c, "no income case with accounts among 60")
    local status, r = refresh(c.order_id, { products = { "assets" } })
    assert.are.equal(200, status)
    assert.are.equal(0, #r.employers)
    assert.are.equal(#c.financial_accounts, #r.financial_accounts)
  end)

  it("validates manager, email, phone, include_recent_paystub and reports.voa", function()
    local c = case(function(x) return x.product == "income" end)
    local status, body = refresh(c.order_id, { products = { "income" }, manager = 1, email = "x",
      phone = "1", include_recent_paystub = "yes", reports = { voa = { days_requested = 0,
      as_of_date = "yesterday", is_voe = 1, request_extended_history = "no", account_ids = { 1 },
      large_deposit_threshold = { fixed_amount = -5, sales_price = "abc", loan_type = 3 } } },
      anything_else = true })
    assert.are.equal(400, status)
    local f = fields(body)
    for _, k in ipairs({ "manager", "email", "phone", "include_recent_paystub",
                         "reports.voa.days_requested", "reports.voa.as_of_date", "reports.voa.is_voe",
                         "reports.voa.request_extended_history", "reports.voa.account_ids",
                         "reports.voa.large_deposit_threshold.fixed_amount",
                         "reports.voa.large_deposit_threshold.sales_price",
                         "reports.voa.large_deposit_threshold.loan_type" }) do
      assert.is_string(f[k], k)
    end
    assert.is_nil(f.anything_else)
    status, body = refresh(c.order_id, { products = { "income" },
      reports = { voa = { days_requested = 731 } } })
    assert.are.equal(400, status)
    assert.are.equal("Ensure this value is less than or equal to 730.",
      fields(body)["reports.voa.days_requested"])
    status = refresh(c.order_id, { products = { "income" }, manager = { name = "M" },
      email = "new@example.com",
      phone = "4155550100", include_recent_paystub = true, reports = { voa = { days_requested = 380,
      as_of_date = "2024-01-31T00:00:00Z", is_voe = false, request_extended_history = true,
      account_ids = { "a" }, large_deposit_threshold = { fixed_amount = 500, sales_price = "250000.00",
      qualifying_monthly_income = 4000, loan_type = "FHA" } } } })
    assert.are.equal(200, status)
  end)

  it("uses the new manager on the refresh order (the contact is a request field only)", function()
    local c = case(function(x) return x.product == "employment" end)
    local status, r = refresh(c.order_id, { products = { "employment" }, email = "new@example.com",
                                            manager = { name = "Ops" } })
    assert.are.equal(200, status)
    assert.is_nil(r.email)
    assert.are.same({ name = "Ops" }, r.manager)
  end)

  it("refreshing a refresh order refreshes its original, whose refresh_order is the latest", function()
    local c = case(function(x) return x.product == "employment" and #x.employers == 1 end)
    local _, r1 = refresh(c.order_id, { products = { "employment" } })
    local status, r2 = refresh(r1.id, { products = { "employment" } })
    assert.are.equal(200, status)
    assert.are.equal(c.order_id, r2.initial_order)
    local _, original = sb:request("GET", "orders/" .. c.order_id .. "/")
    assert.are.equal(r2.id, original.refresh_order)
    local _, first = sb:request("GET", "orders/" .. r1.id .. "/")
    assert.are.equal(null, first.refresh_order)
  end)

  it("404s for an unknown order", function()
    local status = refresh(string.rep("e", 32), { products = { "income" } })
    assert.are.equal(404, status)
  end)

  it("refuses an order whose suborders never completed", function()
    local _, o = sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B",
      employers = { { company_name = "Acme" } } })
    local status, body = refresh(o.id, { products = { "income" } })
    assert.are.equal(400, status)
    assert.matches("no completed employer connection", fields(body).employers)
    status, body = refresh(o.id, { products = { "income" }, employers = { { id = o.employers[1].id } } })
    assert.are.equal(400, status)
    assert.matches("no completed connection", fields(body)["employers[0]"])
  end)

  it("refreshes an API order once /_sandbox/orders/complete connected it", function()
    local _, o = sb:request("POST", "orders/", { products = { "income" }, first_name = "A", last_name = "B",
      employers = { { company_name = "Acme" } } })
    local done = sb:complete_order{ order_id = o.id }
    assert.are.equal("pending", done.employers[1].status)
    assert.matches(HEX32, done.employers[1].access_token)
    sb:advance(20)
    local _, now = sb:request("GET", "orders/" .. o.id .. "/")
    assert.are.equal("completed", now.employers[1].status)
    assert.are.equal("Acme", now.employers[1].company_name)
    local status = refresh(o.id, { products = { "income" } })
    assert.are.equal(200, status)
  end)
end)

describe("GET /v1/orders/{id}/events/", function()
  local sb, c

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "10", "--mix", "active=1", "--refresh-limit", "0" } }
    for _, x in ipairs(sb:cases()) do
      if #x.employers == 1 and x.product == "income" and #x.financial_accounts == 0 then c = x break end
    end
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  local function events(id, page)
    local status, body = sb:request("GET", "orders/" .. id .. "/events/" .. (page and ("?page="
      .. page) or ""))
    return status, body
  end

  local EVENT_KEYS = { "is_refresh", "link_id", "object", "order_id", "suborder_id", "task_id",
                       "timestamp", "type" }

  local function keys(t)
    local out = {}
    for k in pairs(t) do out[#out + 1] = k end
    table.sort(out)
    return out
  end

  it("lists the original's documented events, oldest first", function()
    local status, page = events(c.order_id)
    assert.are.equal(200, status)
    assert.are.equal(null, page.next)
    assert.are.equal(null, page.previous)
    assert.are.equal(2, page.count) -- order_created, suborder_completed
    local created, completed = page.results[1], page.results[2]
    assert.are.same({ "order_created", "order", false, c.order_id, null, null, null },
                    { created.type, created.object, created.is_refresh, created.order_id,
                      created.suborder_id, created.task_id, created.link_id })
    assert.are.same({ "suborder_completed", c.employers[1].id }, { completed.type, completed.suborder_id })
    assert.matches(HEX32, completed.task_id)
    assert.are.equal(sb:connections(c.order_id)[1].link_id, completed.link_id)
    assert.is_true(completed.timestamp > created.timestamp)
    for _, e in ipairs(page.results) do assert.are.same(EVENT_KEYS, keys(e)) end
  end)

  it("holds a refresh order's events in its own list, and in the original's on request", function()
    local _, r = sb:request("POST", "orders/" .. c.order_id .. "/", { products = { "income" } })
    sb:advance(10)
    local _, page = events(c.order_id)
    assert.are.equal(2, page.count)
    local _, own = events(r.id)
    assert.are.equal(1, own.count) -- created; nothing about a running task
    assert.are.same({ "order_created", true, r.id }, { own.results[1].type, own.results[1].is_refresh,
                                                      own.results[1].order_id })
    sb:advance(10)
    _, own = events(r.id)
    assert.are.equal(2, own.count)
    local done = own.results[2]
    assert.are.same({ "suborder_completed", true, r.employers[1].id, r.employers[1].link_id },
                    { done.type, done.is_refresh, done.suborder_id, done.link_id })
    local _, all = sb:request("GET", "orders/" .. c.order_id .. "/events/?include_refresh_orders=true")
    assert.are.equal(4, all.count)
    assert.are.same(own.results[2], all.results[4])
  end)

  it("lists nothing for a failed suborder (no documented event), no_data as suborder_no_data", function()
    local bad, nodata
    for _, x in ipairs(sb:cases()) do
      if x ~= c and #x.employers == 1 and x.product ~= "assets" then
        if not bad then bad = x elseif not nodata then nodata = x end
      end
    end
    sb:set_state{ order_id = bad.order_id, state = "credentials" }
    sb:set_state{ order_id = nodata.order_id, state = "no_data" }
    local _, r1 = sb:request("POST", "orders/" .. bad.order_id .. "/", { products = { bad.product } })
    local _, r2 = sb:request("POST", "orders/" .. nodata.order_id .. "/", { products = { nodata.product } })
    sb:advance(20)
    local _, e1 = events(r1.id)
    assert.are.equal(1, e1.count)
    assert.are.equal("order_created", e1.results[1].type)
    local _, e2 = events(r2.id)
    assert.are.same({ "order_created", "suborder_no_data" }, { e2.results[1].type, e2.results[2].type })
  end)

  it("pages by 100 with next/previous links", function()
    for _ = 1, 60 do
      local status = sb:request("POST", "orders/" .. c.order_id .. "/", { products = { "employment" } })
      assert.are.equal(200, status)
    end
    sb:advance(60)
    local flag = "?include_refresh_orders=true"
    local _, p1 = sb:request("GET", "orders/" .. c.order_id .. "/events/" .. flag)
    assert.is_true(p1.count > 100)
    assert.are.equal(100, #p1.results)
    local base = sb.origin .. "/v1/orders/" .. c.order_id .. "/events/" .. flag
    assert.are.equal(base .. "&page=2", p1.next)
    local _, p2 = sb:request("GET", "orders/" .. c.order_id .. "/events/" .. flag .. "&page=2")
    assert.are.equal(p1.count - 100, #p2.results)
    assert.are.equal(null, p2.next)
    assert.are.equal(base, p2.previous)
    local status, body = events(c.order_id, 3)
    assert.are.equal(404, status)
    assert.are.same({ detail = "Invalid page." }, body)
    status = events(c.order_id, "x")
    assert.are.equal(404, status)
  end)

  it("404s for an unknown order", function()
    assert.are.equal(404, (events(string.rep("1", 32))))
  end)
end)
