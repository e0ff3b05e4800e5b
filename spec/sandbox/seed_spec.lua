-- Seeded recertification cases: determinism, the case list, the mix.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local socket = require "socket"


local read = files.slurp
local function tmpdir() return files.tmpdir("truv-seed-spec") end

-- RFC 4180 reader: rows of fields
local function parse_csv(text)
  local rows, row, field, i, quoted = {}, {}, {}, 1, false
  while i <= #text do
    local ch = text:sub(i, i)
    if quoted then
      if ch == '"' and text:sub(i + 1, i + 1) == '"' then field[#field + 1] = '"'; i = i + 1
      elseif ch == '"' then quoted = false
      else field[#field + 1] = ch end
    elseif ch == '"' then quoted = true
    elseif ch == "," then row[#row + 1] = table.concat(field); field = {}
    elseif ch == "\r" and text:sub(i + 1, i + 1) == "\n" then
      row[#row + 1] = table.concat(field); rows[#rows + 1] = row; row, field = {}, {}; i = i + 1
    else field[#field + 1] = ch end
    i = i + 1
  end
  return rows
end

describe("seeding determinism", function()
  local a, b, c

  lazy_setup(function()
    local args = { "--seed-cases", "20", "--rng-seed", "42", "--start-time", "1700000000" }
    a = sandbox.start{ args = args }
    b = sandbox.start{ args = args }
    c = sandbox.start{ args = { "--seed-cases", "20", "--rng-seed", "43", "--start-time", "1700000000" } }
  end)
  lazy_teardown(function()
    for _, sb in ipairs({ a, b, c }) do sb:shutdown() end
  end)

  it("gives byte-identical documents for the same seed and start time", function()
    local ca, cb = a:cases(), b:cases()
    assert.are.same(ca, cb)
    for _, case in ipairs(ca) do
      local _, _, _, ra = a:request("GET", "orders/" .. case.order_id .. "/")
      local _, _, _, rb = b:request("GET", "orders/" .. case.order_id .. "/")
      assert.is_true(#ra > 1000)
      assert.are.equal(ra, rb)
      local _, _, _, ea = a:request("GET", "orders/" .. case.order_id .. "/events/")
      local _, _, _, eb = b:request("GET", "orders/" .. case.order_id .. "/events/")
      assert.are.equal(ea, eb)
    end
  end)

  it("gives other ids and documents for another seed", function()
    local ca, cc = a:cases(), c:cases()
    assert.are_not.equal(ca[1].order_id, cc[1].order_id)
    local status = c:request("GET", "orders/" .. ca[1].order_id .. "/")
    assert.are.equal(404, status)
  end)

  it("keeps runtime seeding deterministic too, and never reuses ids", function()
    local sa = a:seed{ cases = 3, mix = "mfa=1", rng_seed = 9 }
    local sb2 = b:seed{ cases = 3, mix = "mfa=1", rng_seed = 9 }
    assert.are.same(sa, sb2)
    local again = a:seed{ cases = 3, mix = "mfa=1", rng_seed = 9 }
    assert.are_not.equal(sa[1].order_id, again[1].order_id)
    assert.are.equal("case-000021", sa[1].case_id)
    assert.are.equal("case-000024", again[1].case_id)
    assert.are.equal(26, #a:cases())
  end)
end)

describe("the case list", function()
  local dir, sb

  lazy_setup(function()
    dir = tmpdir()
    sb = sandbox.start{ args = { "--seed-cases", "50", "--cases-out", dir .. "/cases.csv" } }
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    os.execute("rm -rf '" .. dir .. "'")
  end)

  it("has every documented field and no access tokens", function()
    local cases = sb:cases()
    assert.are.equal(50, #cases)
    local c = cases[1]
    assert.are.equal("case-000001", c.case_id)
    for _, k in ipairs({ "case_id", "order_id", "user_id", "product", "first_name", "last_name", "email",
                         "phone", "order_number", "state", "employers", "financial_accounts" }) do
      assert.is_not_nil(c[k], k)
    end
    local _, _, _, raw = sb:request("GET", "/_sandbox/cases")
    for _, case in ipairs(cases) do
      for _, conn in ipairs(sb:connections(case.order_id)) do
        assert.is_nil(raw:find(conn.access_token, 1, true))
      end
      for _, e in ipairs(case.employers) do
        assert.is_string(e.id)
        assert.is_string(e.suborder_number)
        assert.are.equal(case.state, e.state)
      end
    end
  end)

  it("is written as CSV (RFC 4180) before the server reports its port", function()
    local rows = parse_csv(read(dir .. "/cases.csv"))
    assert.are.same({ "case_id", "order_id", "user_id", "product", "first_name", "last_name", "email",
                      "phone", "order_number", "state", "employers", "financial_accounts" }, rows[1])
    assert.are.equal(51, #rows)
    local cases = sb:cases()
    for i, c in ipairs(cases) do
      local r = rows[i + 1]
      assert.are.equal(c.case_id, r[1])
      assert.are.equal(c.order_id, r[2])
      assert.are.equal(c.user_id, r[3])
      assert.are.equal(c.state, r[10])
      local ids = {}
      for _, e in ipairs(c.employers) do ids[#ids + 1] = e.id end
      assert.are.equal(table.concat(ids, ";"), r[11])
      ids = {}
      for _, e in ipairs(c.financial_accounts) do ids[#ids + 1] = e.id end
      assert.are.equal(table.concat(ids, ";"), r[12])
    end
  end)

  it("is written as JSON for a .json name, matching GET /_sandbox/cases", function()
    local other = sandbox.start{ args = { "--seed-cases", "7", "--cases-out", dir .. "/cases.json" } }
    finally(function() other:shutdown() end)
    local doc = sandbox.json.decode(read(dir .. "/cases.json"))
    assert.are.same(other:cases(), doc.cases)
  end)

  it("refuses another extension", function()
    local ok, err = pcall(sandbox.start, { args = { "--seed-cases", "1", "--cases-out", dir
      .. "/cases.txt" } })
    assert.is_false(ok)
    assert.matches("%.csv or %.json", err)
  end)
end)

describe("the mix", function()
  local sb

  lazy_setup(function()
    sb = sandbox.start{ args = { "--seed-cases", "1000", "--rate-limit", "0" } }
  end)
  lazy_teardown(function() if sb then sb:shutdown() end end)

  it("defaults to the documented weights, honoured exactly over 1000 cases", function()
    local counts, products, with_fa, income = {}, {}, 0, 0
    for _, c in ipairs(sb:cases()) do
      counts[c.state] = (counts[c.state] or 0) + 1
      products[c.product] = (products[c.product] or 0) + 1
      if c.product == "income" then
        income = income + 1
        if #c.financial_accounts > 0 then with_fa = with_fa + 1 end
      end
      if c.product == "assets" then
        assert.are.equal(0, #c.employers)
        assert.is_true(#c.financial_accounts >= 1 and #c.financial_accounts <= 2)
      else
        assert.is_true(#c.employers >= 1 and #c.employers <= 3)
      end
    end
    assert.are.same({ active = 700, expired = 100, credentials = 50, mfa = 50, provider_down = 40,
                      no_data = 30, locked = 20, unsupported = 10 }, counts)
    assert.is_true(math.abs(products.income - 600) < 60, "income " .. products.income)
    assert.is_true(math.abs(products.employment - 300) < 50, "employment " .. products.employment)
    assert.is_true(math.abs(products.assets - 100) < 35, "assets " .. products.assets)
    assert.is_true(with_fa / income > 0.12 and with_fa / income < 0.28, "with accounts " .. with_fa)
  end)

  it("gives connections the case's state, OAuth for expired and about 40% of the others", function()
    local oauth, total = 0, 0
    for i, c in ipairs(sb:cases()) do
      if i > 200 then break end
      for _, conn in ipairs(sb:connections(c.order_id)) do
        assert.are.equal(c.state, conn.state)
        assert.are.equal(0, conn.refreshes_in_window)
        if c.state == "expired" then
          assert.are.equal(true, conn.oauth)
        else
          total = total + 1
          if conn.oauth then oauth = oauth + 1 end
        end
      end
    end
    assert.is_true(oauth / total > 0.3 and oauth / total < 0.5, "oauth share " .. oauth / total)
  end)

  it("is validated", function()
    local status, body = sb:request("POST", "/_sandbox/seed", { cases = 1, mix = "happy=1" })
    assert.are.equal(400, status)
    assert.matches("unknown state", body.error.extra["invalid-params"][1].message)
    status = sb:request("POST", "/_sandbox/seed", { cases = 1, mix = "active=0" })
    assert.are.equal(400, status)
    status = sb:request("POST", "/_sandbox/seed", { mix = "active=1" })
    assert.are.equal(400, status)
  end)
end)

describe("seeding at scale", function()
  it("seeds 20 000 cases in well under a few seconds", function()
    local sb = sandbox.start{ args = { "--rate-limit", "0" } }
    finally(function() sb:shutdown() end)
    local t0 = socket.gettime()
    local status, body = sb:request("POST", "/_sandbox/seed", { cases = 20000 }, nil, 60)
    local took = socket.gettime() - t0
    assert.are.equal(200, status)
    assert.are.equal(20000, #body.cases)
    assert.is_true(took < 10, "took " .. took .. " s")
    local last = body.cases[20000]
    assert.are.equal("case-020000", last.case_id)
    assert.are.equal(200, (sb:request("GET", "orders/" .. last.order_id .. "/")))
  end)
end)
