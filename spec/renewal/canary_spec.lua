-- The canary: a renewal against the sandbox, with faults on, under a
-- recognisable secret, and the tokens and SSNs of every case known to the
-- spec; none of them may appear in what a run leaves behind: stdout,
-- stderr and its JSON lines, the report's files, the journal and quota
-- files (read as bytes), the client's log, the run's events, and any
-- tostring(err). The new verification links (they carry a bridge token)
-- stay out of every log and are kept in the report only.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local renewal = require "truv.renewal"
local truv = require "truv"

local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
local BIN = SRC .. "/bin/truv-renew"
local SECRET = "sandbox-canary-S3cr3tZq7vK2mX9pL4wR8t"
local CLIENT_ID = "canary-client"
local quote, read, write = files.quote, files.read, files.write

-- Every string at `key` anywhere in a decoded document.
local function collect(doc, key, out)
  if type(doc) ~= "table" then return out end
  for k, v in pairs(doc) do
    if k == key and type(v) == "string" and v ~= "" then out[v] = true
    else collect(v, key, out) end
  end
  return out
end

-- The ways an SSN may be written.
local function ssn_forms(ssn)
  local digits = ssn:gsub("%D", "")
  return { digits, digits:sub(1, 3) .. "-" .. digits:sub(4, 5) .. "-" .. digits:sub(6) }
end

-- The first canary that `text` holds, or nil.
local function leak(text, canaries)
  for c, what in pairs(canaries) do
    if text:find(c, 1, true) then return c, what end
  end
end

local function assert_clean(name, text, canaries)
  local c, what = leak(text, canaries)
  assert(c == nil, string.format("%s holds %s %q", name, tostring(what), tostring(c)))
end

-- Every file under dir (find), as bytes.
local function each_file(dir)
  local p = assert(io.popen("find " .. quote(dir) .. " -type f"))
  local list = {}
  for path in p:lines() do list[#list + 1] = path end
  p:close()
  return list
end

describe("a renewal with a canary secret, tokens and SSNs", function()
  local sb, dir, canaries, input, ncases

  setup(function()
    dir = files.tmpdir("truv-canary")
    sb = sandbox.start{ client_id = CLIENT_ID, secret = SECRET, args = {
      "--seed-cases", "40", "--rng-seed", "7", "--rate-limit", "0", "--realtime",
      "--time-scale", "50", "--cases-out", dir .. "/seeded.csv",
      "--mix", "active=4,expired=2,credentials=2,mfa=1,provider_down=1,no_data=1,locked=1",
      "--fault-5xx", "0.05", "--fault-reset-before", "0.03", "--fault-reset-after", "0.03",
      "--fault-truncate", "0.03", "--fault-stall", "0.02", "--stall-ms", "100" } }
    -- what the spec knows and no output may hold
    canaries = { [SECRET] = "the client secret" }
    local ids = {}
    for _, c in ipairs(sb:cases()) do ids[#ids + 1] = c.order_id end
    ncases = #ids
    sb:faults{ reset = true }                     -- the spec's own reads are not faulted
    for _, id in ipairs(ids) do
      local status, doc = sb:request("GET", "orders/" .. id .. "/")
      assert.equal(200, status)
      for t in pairs(collect(doc, "access_token", {})) do canaries[t] = "an access token" end
      for t in pairs(collect(doc, "bridge_token", {})) do canaries[t] = "a bridge token" end
      for s in pairs(collect(doc, "ssn", {})) do
        for _, f in ipairs(ssn_forms(s)) do canaries[f] = "an SSN of a document" end
      end
      local _, conns = sb:request("GET", "/_sandbox/connections?order_id=" .. id)
      for t in pairs(collect(conns, "access_token", {})) do canaries[t] = "an access token" end
    end
    -- the input: the seeded cases with an ssn column of the agency's own,
    -- and a bad row
    local text = assert(read(dir .. "/seeded.csv"))
    local header = text:match("^([^\r\n]*)")
    local rows = { header .. ",ssn" }
    local n = 0
    for line in text:sub(#header + 2):gmatch("[^\r\n]+") do
      n = n + 1
      local ssn = string.format("900-55-%04d", n)
      for _, f in ipairs(ssn_forms(ssn)) do canaries[f] = "an SSN of the case file" end
      rows[#rows + 1] = line .. "," .. ssn
    end
    local ncols = select(2, header:gsub(",", "")) + 2
    rows[#rows + 1] = "bad-1" .. string.rep(",", ncols - 1) .. "900-55-9999"
    for _, f in ipairs(ssn_forms("900-55-9999")) do canaries[f] = "an SSN of the case file" end
    input = dir .. "/cases.csv"
    write(input, table.concat(rows, "\n") .. "\n")
    sb:faults{ fault_5xx = 0.05, reset_before = 0.03, reset_after = 0.03, truncate = 0.03,
               stall = 0.02, stall_ms = 100 }
  end)

  teardown(function()
    if sb then sb:shutdown() end
    if dir then os.execute("rm -rf " .. quote(dir)) end
  end)

  it("knows what it looks for", function()
    local counts = {}
    for _, what in pairs(canaries) do counts[what] = (counts[what] or 0) + 1 end
    assert.is_true((counts["an access token"] or 0) >= ncases)
    assert.is_true((counts["an SSN of a document"] or 0) >= 2)
    assert.is_true((counts["an SSN of the case file"] or 0) >= 2 * ncases)
  end)

  it("leaves none in truv-renew's output, JSON lines, report or journal", function()
    local out_dir = dir .. "/cli"
    os.execute("mkdir -p " .. quote(out_dir))
    local cmd = string.format(
      "TRUV_CLIENT_ID=%s TRUV_SECRET=%s lua5.4 %s --json --journal %s --report %s "
      .. "--base-url %s --rate 0 --concurrency 8 --poll-interval 0.2 %s >%s 2>%s </dev/null",
      quote(CLIENT_ID), quote(SECRET), quote(BIN), quote(out_dir .. "/run.journal"),
      quote(out_dir .. "/report"), quote(sb.base_url), quote(input), quote(dir .. "/cli.out"),
      quote(dir .. "/cli.err"))
    local _, _, code = os.execute(cmd)
    local out, err = read(dir .. "/cli.out") or "", read(dir .. "/cli.err") or ""
    assert.equal(0, code, err)
    assert.matches("reverify", out)
    assert_clean("stdout", out, canaries)
    assert_clean("stderr (JSON lines)", err, canaries)
    -- every progress line is JSON, and none carries a link
    local links = 0
    for line in err:gmatch("[^\n]+") do
      local ev = sandbox.json.decode(line)
      assert.is_nil(ev.share_url, line)
      if ev.link then links = links + 1 end
    end
    assert.is_true(links > 0, "no case got a new link")
    -- the report keeps the links the logs leave out
    local csv = assert(read(out_dir .. "/report/cases.csv"))
    local urls = {}
    for u in csv:gmatch("https://cdn%.truv%.com/[^,\r\n]+") do urls[#urls + 1] = u end
    assert.equal(links, #urls)
    for _, u in ipairs(urls) do
      assert.falsy(err:find(u, 1, true))
      assert.falsy(out:find(u, 1, true))
    end
    for _, path in ipairs(each_file(out_dir)) do
      assert_clean(path, assert(read(path)), canaries)
    end
    -- the journal keeps each refreshed case's original (for --reuse-model),
    -- its connections by quota key: the check above read those rows too
    local j = assert(require("truv.core").journal_open(out_dir .. "/run.journal"))
    local kept = 0
    for rec in j:each{} do
      if type(rec.original_model) == "string" and rec.original_model:find('"quota_key"') then
        kept = kept + 1
      end
    end
    j:close()
    assert.is_true(kept > 0, "no original model was journaled")
  end)

  it("leaves none in the client's log, the run's events or any tostring(err)", function()
    local texts, links = {}, {}
    local function keep(label, v)
      if v ~= nil then texts[#texts + 1] = { label, tostring(v) } end
    end
    local function dump(label, t, depth)
      depth = depth or 0
      if type(t) ~= "table" or depth > 3 then return keep(label, t) end
      for k, v in pairs(t) do dump(label .. "." .. tostring(k), v, depth + 1) end
    end
    local function handler(route)
      return function(decision, case, outcome)
        keep(route .. " decision.reason", decision.reason)
        if outcome.error then keep(route .. " tostring(err)", outcome.error) end
        if outcome.link then
          for _, t in ipairs(outcome.link.tokens or {}) do links[t.bridge_token] = true end
          if outcome.link.share_url then links[outcome.link.share_url] = true end
        end
        keep(route .. " case", case.case_id)
      end
    end
    local router = truv.router{ done = handler("done"), reverify = handler("reverify"),
                                retry = handler("retry"), defer = handler("defer"),
                                no_data = handler("no_data"), fix = handler("fix") }
    local summary, err = renewal.run{
      cases = input, journal = dir .. "/lib.journal", router = router,
      client = { client_id = CLIENT_ID, secret = SECRET, base_url = sb.base_url,
                 retry = { base_ms = 5, cap_ms = 20 },
                 logger = function(level, event) dump("log " .. level, event) end },
      concurrency = 8, rate_per_minute = 0, poll = { interval_s = 0.2 },
      reverify = { mode = "bridge" },
      on_event = function(ev) dump("event " .. ev.event, ev) end,
    }
    assert(summary, tostring(err))
    assert.is_true(#texts > 100)
    assert.is_true(next(links) ~= nil, "no bridge token was made")
    local all = {}
    for c, what in pairs(canaries) do all[c] = what end
    for l in pairs(links) do all[l] = "a new link's bridge token" end
    for _, t in ipairs(texts) do assert_clean(t[1], t[2], all) end
    for _, path in ipairs(each_file(dir)) do
      if path:find("lib.journal", 1, true) then assert_clean(path, assert(read(path)), all) end
    end
  end)
end)
