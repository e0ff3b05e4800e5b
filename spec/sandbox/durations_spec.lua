-- How long tasks take: a log-normal model around --task-duration (the
-- median), a share of slow providers, drawn from --rng-seed.
local sandbox = require "spec.support.sandbox"

-- seconds since the epoch of an ISO 8601 UTC time with microseconds
local function epoch(iso)
  local y, m, d, H, M, S = iso:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d.]+)")
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  if m <= 2 then y = y - 1 end
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * ((m + 9) % 12) + 2) // 5 + d - 1
  local days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
  return days * 86400 + tonumber(H) * 3600 + tonumber(M) * 60 + tonumber(S)
end

local function new_task(sb, token)
  local status, body = sb:request("POST", "refresh/tasks/", { access_token = token })
  assert.are.equal(200, status, body and (body.raw or sandbox.json.encode(body)))
  return body.task_id
end

-- the duration of each finished task, in seconds (updated_at of a terminal
-- task is its end)
local function durations_of(sb, ids)
  sb:advance(1e6)
  local out = {}
  for i, id in ipairs(ids) do
    local status, t = sb:request("GET", "tasks/" .. id .. "/")
    assert.are.equal(200, status)
    assert.are.equal("done", t.status)
    -- to the millisecond: the start time (the wall clock) moves the float error
    out[i] = math.floor((epoch(t.updated_at) - epoch(t.created_at)) * 1000 + 0.5) / 1000
  end
  return out
end

-- starts a sandbox of n active cases with `args`, makes `per_conn` refresh
-- tasks on the first connection of each case; returns the durations (per
-- connection, a list) and the sandbox (stopped unless keep)
local function run(n, args, per_conn, keep)
  local argv = { "--seed-cases", tostring(n), "--mix", "active=1", "--rate-limit", "0" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local sb = sandbox.start{ args = argv }
  local ids, owner = {}, {}
  for c, case in ipairs(sb:cases()) do
    local token = sb:connections(case.order_id)[1].access_token
    for _ = 1, per_conn or 1 do
      ids[#ids + 1] = new_task(sb, token)
      owner[#ids] = c
    end
  end
  local flat = durations_of(sb, ids)
  local by_conn = {}
  for i, d in ipairs(flat) do
    by_conn[owner[i]] = by_conn[owner[i]] or {}
    table.insert(by_conn[owner[i]], d)
  end
  if not keep then sb:shutdown() end
  return flat, by_conn, sb
end

local function median(xs)
  local s = { table.unpack(xs) }
  table.sort(s)
  local n = #s
  return n % 2 == 1 and s[(n + 1) // 2] or (s[n // 2] + s[n // 2 + 1]) / 2
end

local function log_sd(xs)
  local sum, sq = 0, 0
  for _, x in ipairs(xs) do sum = sum + math.log(x) end
  local mean = sum / #xs
  for _, x in ipairs(xs) do sq = sq + (math.log(x) - mean) ^ 2 end
  return math.sqrt(sq / (#xs - 1))
end

describe("task durations", function()
  it("are the task duration exactly without a spread (the default)", function()
    local d = run(10, { "--task-duration", "30" })
    for _, x in ipairs(d) do assert.near(30, x, 1e-6) end
  end)

  it("spread log-normally around --task-duration, the median", function()
    local d = run(150, { "--task-duration", "30", "--task-duration-spread", "0.5",
                         "--rng-seed", "5" })
    local distinct = {}
    for _, x in ipairs(d) do distinct[string.format("%.3f", x)] = true end
    assert.is_true(#d == 150 and next(distinct) ~= nil)
    local n = 0
    for _ in pairs(distinct) do n = n + 1 end
    assert.is_true(n > 140, "distinct durations: " .. n)
    local m, sd = median(d), log_sd(d)
    assert.is_true(m > 30 * 0.85 and m < 30 * 1.15, "median " .. m)
    assert.is_true(sd > 0.4 and sd < 0.6, "log-sd " .. sd)
    -- a task's steps are spread over its own duration
    table.sort(d)
    assert.is_true(d[1] < 20 and d[#d] > 45, "range " .. d[1] .. ".." .. d[#d])
  end)

  it("are the same for the same --rng-seed and calls, and differ with another seed", function()
    local args = { "--task-duration", "30", "--task-duration-spread", "0.8", "--slow-share",
                   "0.2" }
    local a = run(12, { "--rng-seed", "9", table.unpack(args) })
    local b = run(12, { "--rng-seed", "9", table.unpack(args) })
    local c = run(12, { "--rng-seed", "10", table.unpack(args) })
    assert.are.same(a, b)
    assert.are_not.same(a, c)
  end)

  it("make every task of a slow provider's connection slow", function()
    local _, by_conn = run(120, { "--task-duration", "30", "--slow-share", "0.25",
                                  "--slow-factor", "4", "--rng-seed", "3" }, 2)
    local slow = 0
    for _, ds in ipairs(by_conn) do
      assert.near(ds[1], ds[2], 1e-6)
      assert.is_true(math.abs(ds[1] - 30) < 1e-6 or math.abs(ds[1] - 120) < 1e-6,
                     "duration " .. ds[1])
      if ds[1] > 60 then slow = slow + 1 end
    end
    assert.is_true(slow >= 18 and slow <= 42, "slow connections: " .. slow .. " of 120")
  end)

  it("follow /_sandbox/config for tasks made afterwards", function()
    local sb = sandbox.start{ args = { "--seed-cases", "4", "--mix", "active=1",
                                       "--task-duration", "30" } }
    local tokens = {}
    for i, case in ipairs(sb:cases()) do tokens[i] = sb:connections(case.order_id)[1].access_token end
    local first = new_task(sb, tokens[1])
    local cfg = sb:config{ task_duration = 40, task_duration_spread = 1, slow_share = 0,
                           slow_factor = 2 }
    assert.are.equal(40, cfg.task_duration)
    assert.are.equal(1, cfg.task_duration_spread)
    assert.are.equal(2, cfg.slow_factor)
    local later = {}
    for i = 2, 4 do later[#later + 1] = new_task(sb, tokens[i]) end
    local d = durations_of(sb, { first, table.unpack(later) })
    assert.near(30, d[1], 1e-6)
    assert.is_true(d[2] ~= d[3] and d[3] ~= d[4] and d[2] ~= 40, table.concat(d, ","))
    local status, body = sb:request("POST", "/_sandbox/config", { task_duration_spread = 4,
                                                                 slow_share = 1.5, slow_factor = 0.5 })
    assert.are.equal(400, status)
    local fields = {}
    for _, p in ipairs(body.error.extra["invalid-params"]) do fields[#fields + 1] = p.field end
    table.sort(fields)
    assert.are.same({ "slow_factor", "slow_share", "task_duration_spread" }, fields)
    assert.are.equal(1, sb:config().task_duration_spread)   -- nothing changed
    sb:shutdown()
  end)

  it("refuses bad values on the command line", function()
    for _, bad in ipairs{ { "--task-duration-spread", "-1" }, { "--task-duration-spread", "9" },
                          { "--slow-share", "2" }, { "--slow-factor", "0.5" } } do
      local cmd = string.format("%s %s %s >/dev/null 2>&1", sandbox.bin(), bad[1], bad[2])
      local _, _, code = os.execute(cmd)
      assert.are.equal(2, code, table.concat(bad, " "))
    end
  end)
end)
