-- spec.support.soak: campaigns of bin/truv-renew against a truv-sandbox, and
-- the check that the sandbox's accounting agrees with the journal. Used by
-- scripts/soak (make soak) and by the renewal specs that run one small
-- campaign.
--
--   local soak = require "spec.support.soak"
--   local c = soak.campaign{ name = "mixed", cases = 100, rng_seed = 7,
--                            faults = { reset_after = 0.05, fault_5xx = 0.02 } }
--   local rc = c:run()              -- truv-renew to its end (bounded), its exit code
--   local r = c:start()             -- or in the background: r:alive(), r:kill(), r:wait(s)
--   local figures = c:check()       -- figures.problems: what disagrees
--   c:pass_time()                   -- faults off, the outage over, scheduled cases due
--   c:run(); c:check{ final = true }
--   c:close()
--
-- A campaign is one sandbox (seeded with `cases` recertification cases of
-- the default mix, --realtime at the wall clock's pace so that Truv's times
-- and the client's agree, tasks of task_duration_s), one cases file, one
-- journal and one stderr file of JSON lines per run of truv-renew. Every
-- wait is bounded (run_timeout_s for a run).
--
-- check() compares, for every case of the file:
--   lost          the journal has the case routed, or scheduled with a time
--   refreshes     per original order, the refresh orders the sandbox made
--                 (/_sandbox/stats refresh.by_order) against the journal:
--                 the latest is the journal's refresh_order_id (or the case
--                 is scheduled to reconcile a write-ahead it holds); one made
--                 after another is legitimate only when the earlier one had
--                 finished and the run had routed it to retry (a provider
--                 outage); anything else is a double refresh
--   links         verification orders per order_number (stats
--                 orders.by_order_number): at most one, and each one made is
--                 the journal's reverify_order_id or its case went to a
--                 person (fix, reverify_unconfirmed); bridge tokens per user
--                 (bridge_tokens.by_user) against the journal's count
--   routes        the final route against the state the case was seeded in
--   quota         the run's refresh quota store (--quota) against the
--                 tasks the sandbox made per connection: never fewer; more
--                 only while a refresh's fate is unknown, after a kill -9
--                 between a reservation and its write-ahead, or when the run
--                 reported it could not give a reservation back (quota_extra)
--   crashes       an "error" event (a fault of the library) or a run that
--                 exited otherwise than expected
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local core = require "truv.core"
local socket = require "socket"

local cjson = sandbox.json
local q = files.quote
local format = string.format

local M = {}

local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
M.BIN = SRC .. "/bin/truv-renew"

M.DEFAULTS = {
  cases = 100,
  concurrency = 16,
  poll_interval_s = 0.2,
  task_duration_s = 2,
  run_timeout_s = 600,
  rate = 0,                 -- truv-renew --rate (0: no limit of its own)
  rate_limit = 0,           -- the sandbox's --rate-limit
}

-- What a seeded state ends in once every fault is gone (route, reason); a
-- verification order whose creation could not be confirmed goes to a
-- person instead of being made twice (fix, reverify_unconfirmed).
local FINAL = {
  active = { done = { completed = true } },
  -- with --expiry-days (opt-in) an expired connection is not refreshed:
  -- connection_expired; by default Truv's answer routes it
  expired = { reverify = { login_error = true, connection_expired = true } },
  credentials = { reverify = { login_error = true } },
  mfa = { reverify = { mfa_error = true } },
  locked = { reverify = { account_locked = true } },
  no_data = { no_data = { no_data = true } },
  unsupported = { fix = { not_supported = true } },
  provider_down = { done = { completed = true }, retry = { unavailable = true } },
}
local REVERIFY_STATES = { expired = true, credentials = true, mfa = true, locked = true }

local function sleep(s) socket.sleep(s) end
local function now() return socket.gettime() end

local function sh(cmd)
  return os.execute(cmd .. " >/dev/null 2>&1") == true
end

-- Seeded cases from the sandbox's CSV (RFC 4180; seeded values hold no
-- commas or quotes).
local function read_cases(path)
  local text = files.slurp(path):gsub("\r", "")
  local header, list = nil, {}
  for line in text:gmatch("[^\n]+") do
    local fields = {}
    for f in (line .. ","):gmatch("([^,]*),") do fields[#fields + 1] = f end
    if not header then
      header = fields
    else
      local c = {}
      for i, name in ipairs(header) do c[name] = fields[i] end
      list[#list + 1] = c
    end
  end
  return list
end

------------------------------------------------------------------------------
-- a run of truv-renew

local Run = {}
Run.__index = Run

function Run:rc()
  if self.code then return self.code end
  local s = files.read(self.base .. ".rc")
  local code = s and tonumber(s:match("^(%d+)\n"))
  if code then self.code = code end
  return code
end

function Run:alive() return self:rc() == nil end

--- Waits (bounded) for the end; returns the exit code, or nil after
-- `timeout` seconds.
function Run:wait(timeout)
  local deadline = now() + (timeout or 60)
  while now() < deadline do
    local code = self:rc()
    if code then return code end
    sleep(0.05)
  end
  return self:rc()
end

--- kill -9 if it still runs; true when it was killed (not already done).
-- Returns once it is gone (its journal lock with it).
function Run:kill()
  if self:rc() then return false end
  os.execute(format("kill -9 %d 2>/dev/null", self.pid))
  local code = self:wait(10)
  assert(code, "truv-renew " .. self.pid .. " survived kill -9")
  self.killed = code == 137
  return self.killed
end

function Run:stderr() return files.read(self.base .. ".err") or "" end
function Run:stdout() return files.read(self.base .. ".out") or "" end

------------------------------------------------------------------------------
-- a campaign

local Campaign = {}
Campaign.__index = Campaign

--- A new campaign: opts.name, cases, rng_seed, mix, faults (the
-- /_sandbox/faults fields), reverify ("order" or "bridge"), concurrency,
-- rate, rate_limit, task_duration_s, args (more options of every run),
-- journal and quota (paths, --journal and --quota: by default in the
-- campaign's directory),
-- sandbox_args, dir (default: a new temporary directory).
function M.campaign(opts)
  local self = setmetatable({}, Campaign)
  for k, v in pairs(M.DEFAULTS) do self[k] = v end
  for k, v in pairs(opts) do self[k] = v end
  self.name = self.name or "campaign"
  self.own_dir = self.dir == nil
  self.dir = self.dir or files.tmpdir("truv-soak")
  self.cases_file = self.dir .. "/" .. self.name .. ".csv"
  self.journal = self.journal or (self.dir .. "/" .. self.name .. ".journal")
  self.quota = self.quota or (self.dir .. "/" .. self.name .. ".quota.db")
  self.runs = {}
  local args = { "--seed-cases", tostring(self.cases), "--rng-seed", tostring(self.rng_seed or 1),
                 "--rate-limit", tostring(self.rate_limit), "--realtime",
                 "--task-duration", tostring(self.task_duration_s),
                 "--provider-down-s", "864000", "--cases-out", self.cases_file }
  if self.mix then
    args[#args + 1] = "--mix"
    args[#args + 1] = self.mix
  end
  for _, a in ipairs(self.sandbox_args or {}) do args[#args + 1] = a end
  self.sb = sandbox.start{ args = args }
  self.list = read_cases(self.cases_file)
  self.by_id, self.by_order, self.by_number, self.by_user = {}, {}, {}, {}
  for _, c in ipairs(self.list) do
    self.by_id[c.case_id], self.by_order[c.order_id] = c, c
    self.by_number[c.order_number], self.by_user[c.user_id] = c, c
  end
  if self.faults then self:set_faults(self.faults) end
  return self
end

function Campaign:set_faults(f)
  local t = { reset = true }
  for k, v in pairs(f or {}) do t[k] = v end
  self.sb:faults(t)
end

--- Starts truv-renew in the background (opts.args: extra options).
function Campaign:start(opts)
  opts = opts or {}
  local n = #self.runs + 1
  local base = format("%s/%s.run%02d", self.dir, self.name, n)
  local argv = { "lua5.4", q(M.BIN), "--json", "--journal", q(self.journal),
                 "--quota", q(self.quota),
                 "--base-url", q(self.sb.base_url), "--rate", tostring(self.rate),
                 "--concurrency", tostring(self.concurrency),
                 "--poll-interval", tostring(self.poll_interval_s) }
  if self.reverify then
    argv[#argv + 1] = "--reverify"
    argv[#argv + 1] = self.reverify
  end
  for _, a in ipairs(self.args or {}) do argv[#argv + 1] = q(a) end
  for _, a in ipairs(opts.args or {}) do argv[#argv + 1] = q(a) end
  argv[#argv + 1] = q(self.cases_file)
  -- $! of a simple command is the program itself (kill -9 reaches it)
  local cmd = format("( TRUV_CLIENT_ID=%s TRUV_SECRET=%s %s >%s 2>%s & echo $! >%s; wait $!; "
                     .. "echo $? >%s ) </dev/null >/dev/null 2>&1 &",
                     q(self.sb.client_id), q(self.sb.secret), table.concat(argv, " "),
                     q(base .. ".out"), q(base .. ".err"), q(base .. ".pid"), q(base .. ".rc"))
  assert(os.execute(cmd), "cannot run the shell")
  local pid = sandbox.wait_until(function()
    local p = files.read(base .. ".pid")
    return p and tonumber(p:match("^(%d+)\n"))
  end, 5)
  assert(pid, "truv-renew did not start: " .. cmd)
  local run = setmetatable({ pid = pid, base = base, started = now(),
                             expect = opts.expect or 0 }, Run)
  self.runs[n] = run
  return run
end

--- Runs truv-renew to its end (bounded by run_timeout_s: then kill -9 and
-- an error); returns its exit code and the run.
function Campaign:run(opts)
  local r = self:start(opts)
  local code = r:wait(self.run_timeout_s)
  if not code then
    r:kill()
    error(format("%s: truv-renew did not finish in %d s (killed)", self.name, self.run_timeout_s))
  end
  return code, r
end

--- Time passes between two runs: the faults stop (rate limit included),
-- the provider outage is over, and the journal's scheduled cases are due
-- (their retry_at / not_before moved to now, as if that time had come; a
-- quota the sandbox refused stays spent, so a deferred case stays
-- deferred).
function Campaign:pass_time()
  self.sb:faults{ reset = true }
  self.sb:config{ rate_limit = 0 }
  for _, c in ipairs(self.list) do
    if c.state == "provider_down" then
      self.sb:set_state{ order_id = c.order_id, state = "active" }
    end
  end
  local j = assert(core.journal_open(self.journal))
  local due = {}
  for rec in j:each{ state = "scheduled" } do due[#due + 1] = rec end
  local t = core.now() - 1
  for _, rec in ipairs(due) do
    assert(j:put(rec.case_id, { retry_at = rec.retry_at and t or core.null,
                                not_before = rec.not_before and t or core.null }))
  end
  j:close()
  return #due
end

-- GET on the sandbox's API (faults are off when check() runs; a fault left
-- on is retried a few times).
function Campaign:api(path)
  local status, body
  for _ = 1, 5 do
    status, body = self.sb:request("GET", path)
    if status == 200 then return body end
    sleep(0.1)
  end
  error(format("GET %s: %s %s", path, tostring(status), cjson.encode(body or {})))
end

-- The refresh orders of an original, oldest first: { id, created, finished }
-- (finished: when its last suborder ended, or nil while one is pending).
function Campaign:refreshes_of(order_id)
  local ids, seen, page = {}, {}, 1
  repeat
    local body = self:api(format("orders/%s/events/?include_refresh_orders=true&page=%d",
                                 order_id, page))
    for _, ev in ipairs(body.results) do
      if ev.is_refresh and not seen[ev.order_id] then
        seen[ev.order_id] = true
        ids[#ids + 1] = ev.order_id
      end
    end
    page = page + 1
  until body.next == nil or body.next == sandbox.null
  local list = {}
  for _, id in ipairs(ids) do
    local o = self:api("orders/" .. id .. "/")
    local ended = true
    for _, kind in ipairs{ "employers", "financial_accounts" } do
      for _, sub in ipairs(type(o[kind]) == "table" and o[kind] or {}) do
        if sub.status == "pending" then ended = false end
      end
    end
    list[#list + 1] = { id = id, created = core.parse_time(o.created_at),
                        finished = ended and core.parse_time(o.updated_at) or nil }
  end
  table.sort(list, function(a, b) return (a.created or 0) < (b.created or 0) end)
  return list
end

-- Every JSON event of every run, and the lines that are not JSON.
function Campaign:events()
  local events, noise = {}, {}
  for i, r in ipairs(self.runs) do
    local text = r:stderr()
    local lines = {}
    for line in text:gmatch("[^\n]+") do lines[#lines + 1] = line end
    for k, line in ipairs(lines) do
      local ok, ev = pcall(cjson.decode, line)
      if ok and type(ev) == "table" then
        ev.run = i
        events[#events + 1] = ev
      elseif not (r.killed and k == #lines) then   -- a kill may cut the last line
        noise[#noise + 1] = { run = i, line = line }
      end
    end
  end
  return events, noise
end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

--- The agreement check; returns the figures, with `problems` (a list of
-- strings, empty when everything agrees). opts.final: faults are gone and
-- time has passed, so every case must have reached its state's final route.
function Campaign:check(opts)
  opts = opts or {}
  local problems = {}
  local function problem(fmt, ...) problems[#problems + 1] = format(fmt, ...) end
  local stats = self.sb:stats()
  -- the check's own reads go without faults or rate limit; both come back after
  local faults, config = self.sb:faults(), self.sb:config()
  self.sb:faults{ reset = true }
  self.sb:config{ rate_limit = 0 }
  local recs = {}
  local j = assert(core.journal_open(self.journal))
  for rec in j:each{} do recs[rec.case_id] = rec end
  j:close()
  local events, noise = self:events()

  local fig = { name = self.name, cases = #self.list, runs = #self.runs, kills = 0,
                requests = stats.requests.total, faults = stats.faults,
                refreshes = stats.refresh.order_refreshes, tasks_billed = stats.refresh.billed,
                refreshed_orders = 0, retried_refreshes = 0, double_refreshes = 0,
                orders_created = stats.orders.created, orders_twice = 0, links_journal = 0,
                links_unconfirmed = 0, tokens_created = stats.bridge_tokens.created,
                tokens_journal = 0, lost = 0, wrong_routes = 0, crashes = 0, routes = {},
                scheduled = 0, throttled = 0, problems = problems }
  for _, by_status in pairs(stats.requests.by_endpoint) do
    fig.throttled = fig.throttled + (by_status["429"] or 0)
  end

  -- runs: exit codes and faults of our own
  for i, r in ipairs(self.runs) do
    if r.killed then
      fig.kills = fig.kills + 1
    elseif r:rc() ~= r.expect then
      fig.crashes = fig.crashes + 1
      problem("run %d exited %s (expected %d): %s", i, tostring(r:rc()), r.expect,
              r:stderr():sub(-600))
    end
  end
  for _, n in ipairs(noise) do
    if self.runs[n.run].expect == 0 then
      fig.crashes = fig.crashes + 1
      problem("run %d wrote a line that is not an event: %s", n.run, n.line:sub(1, 300))
    end
  end
  local routed_as = {}   -- refresh order id -> { [route] = true }
  local unreleased = {}  -- case_id -> true: a reservation the run could not give back
  for _, ev in ipairs(events) do
    if ev.event == "error" then
      fig.crashes = fig.crashes + 1
      problem("run %d: error on %s: %s", ev.run, tostring(ev.case_id), tostring(ev.message))
    elseif ev.event == "quota_unreleased" then
      unreleased[ev.case_id] = true
    elseif ev.event == "routed" and type(ev.refresh_order_id) == "string" then
      routed_as[ev.refresh_order_id] = routed_as[ev.refresh_order_id] or {}
      routed_as[ev.refresh_order_id][ev.route] = true
    end
  end

  -- lost cases and routes
  for id in pairs(recs) do
    if not self.by_id[id] then problem("the journal has a case the file has not: %s", id) end
  end
  for _, c in ipairs(self.list) do
    local rec = recs[c.case_id]
    if not rec then
      fig.lost = fig.lost + 1
      problem("%s is not in the journal", c.case_id)
    elseif rec.state ~= "routed" and not (rec.state == "scheduled"
                                          and (rec.retry_at or rec.not_before)) then
      fig.lost = fig.lost + 1
      problem("%s left in state %s (%s)", c.case_id, tostring(rec.state), tostring(rec.error))
    else
      local key = tostring(rec.route) .. "/" .. tostring(rec.reason)
      fig.routes[key] = (fig.routes[key] or 0) + 1
      if rec.state == "scheduled" then fig.scheduled = fig.scheduled + 1 end
      local want = FINAL[c.state] or {}
      local fine = want[rec.route] and want[rec.route][rec.reason]
      if REVERIFY_STATES[c.state] and rec.route == "fix" and rec.reason == "reverify_unconfirmed" then
        fine = true
      end
      if c.spent then fine = rec.route == "defer" end
      if not opts.final and rec.state == "scheduled" then fine = true end
      if not fine then
        fig.wrong_routes = fig.wrong_routes + 1
        problem("%s (%s) routed %s (%s): %s", c.case_id, c.state, tostring(rec.route),
                tostring(rec.reason), tostring(rec.error))
      end
    end
  end

  -- refreshes: the sandbox's against the journal's
  local sum = 0
  for _, c in ipairs(self.list) do
    local rec = recs[c.case_id] or {}
    local s = stats.refresh.by_order[c.order_id]
    local n = s and s.refresh_orders or 0
    sum = sum + n
    if n == 0 then
      if rec.refresh_order_id then
        problem("%s: the journal names refresh %s, which the sandbox never made", c.case_id,
                rec.refresh_order_id)
      end
    else
      fig.refreshed_orders = fig.refreshed_orders + 1
      if c.spent then problem("%s: refreshed with its quota spent", c.case_id) end
      local latest = self:api("orders/" .. c.order_id .. "/").refresh_order
      local pending = rec.state == "scheduled" and rec.resume == "reconcile" and rec.sent_at
      if rec.refresh_order_id ~= latest and not pending then
        problem("%s: refresh %s is not in the journal (which has %s, state %s)", c.case_id,
                tostring(latest), tostring(rec.refresh_order_id), tostring(rec.state))
      end
      if n > 1 then
        local list = self:refreshes_of(c.order_id)
        for k = 1, #list - 1 do
          local a, b = list[k], list[k + 1]
          local retried = routed_as[a.id] and routed_as[a.id].retry
          if retried and a.finished and b.created and a.finished <= b.created then
            fig.retried_refreshes = fig.retried_refreshes + 1
          else
            fig.double_refreshes = fig.double_refreshes + 1
            problem("%s: order %s refreshed again (%s) while refresh %s was %s", c.case_id,
                    c.order_id, b.id, a.id, a.finished and "finished but never routed to retry"
                    or "unfinished")
          end
        end
      end
    end
  end
  if sum ~= stats.refresh.order_refreshes then
    problem("%d refreshes of the file's orders, %d in all", sum, stats.refresh.order_refreshes)
  end

  -- verification links
  for number, made in pairs(stats.orders.by_order_number) do
    local c = self.by_number[number]
    if made > 1 then
      fig.orders_twice = fig.orders_twice + made - 1
      problem("order_number %s got %d verification orders", number, made)
    end
    local rec = c and recs[c.case_id] or {}
    if not c then
      problem("a verification order for an unknown order_number %s", number)
    elseif not rec.reverify_order_id and rec.reason ~= "reverify_unconfirmed"
           and not (rec.state == "scheduled" and rec.resume == "link") then
      problem("%s: a verification order was made that the journal does not know", c.case_id)
    end
  end
  for _, c in ipairs(self.list) do
    local rec = recs[c.case_id] or {}
    if rec.reverify_order_id then
      fig.links_journal = fig.links_journal + 1
      if (stats.orders.by_order_number[c.order_number] or 0) == 0 then
        problem("%s: the journal's verification order %s was never made", c.case_id,
                rec.reverify_order_id)
      end
    end
    if rec.reason == "reverify_unconfirmed" then fig.links_unconfirmed = fig.links_unconfirmed + 1 end
    local tokens = tonumber(rec.bridge_tokens) or 0
    fig.tokens_journal = fig.tokens_journal + tokens
    local made = stats.bridge_tokens.by_user[c.user_id] or 0
    if made < tokens then
      problem("%s: the journal has %d bridge tokens, the sandbox made %d", c.case_id, tokens, made)
    end
    if made > 0 and not rec.link_mode then
      problem("%s: %d bridge tokens made for a case that never made a link", c.case_id, made)
    end
  end
  for user in pairs(stats.bridge_tokens.by_user) do
    if not self.by_user[user] then problem("bridge tokens for an unknown user %s", user) end
  end
  fig.users_with_tokens = count(stats.bridge_tokens.by_user)

  -- the run's refresh quota store against the tasks the sandbox made
  -- on each connection (spent connections aside: Truv's refusal fills them)
  fig.quota_extra, fig.quota_missing, fig.quota_unreleased = 0, 0, 0
  local quota = assert(require("truv.quota").sqlite(self.quota))
  local t = core.now()
  for _, c in ipairs(self.list) do
    if not c.spent then
      for _, conn in ipairs(self.sb:connections(c.order_id)) do
        local used = assert(quota:usage(core.quota_key(conn.access_token), t))
        local s = stats.refresh.by_access_token[sandbox.token_key(conn.access_token)]
        local made = s and s.created or 0
        if used > made then
          fig.quota_extra = fig.quota_extra + used - made
          -- a run killed between a reservation and its write-ahead, or one
          -- whose quota store could not be written, cannot give it back
          -- (conservative, see truv.renewal): counted, not a fault
          if unreleased[c.case_id] then fig.quota_unreleased = fig.quota_unreleased + used - made end
          if opts.final and fig.kills == 0 and not unreleased[c.case_id] then
            problem("%s: the quota counts %d refreshes of connection %s, the sandbox made %d",
                    c.case_id, used, conn.suborder_id, made)
          end
        elseif used < made then
          fig.quota_missing = fig.quota_missing + made - used
          problem("%s: the sandbox made %d refreshes of connection %s, the quota counts %d",
                  c.case_id, made, conn.suborder_id, used)
        end
      end
    end
  end
  quota:close()
  faults.reset = true
  self.sb:faults(faults)
  self.sb:config{ rate_limit = config.rate_limit }
  return fig
end

--- Stops the sandbox and removes the campaign's directory (unless it was
-- given, or keep is true).
function Campaign:close(keep)
  for _, r in ipairs(self.runs) do
    if r:alive() then r:kill() end
  end
  if self.sb then self.sb:shutdown() end
  self.sb = nil
  if self.own_dir and not keep then sh("rm -rf " .. q(self.dir)) end
end

--- Spends the refresh quota of `n` cases' connections at the sandbox (four
-- direct refresh tasks per access token: the 24 h window, which allows the
-- initial connection and 3 refreshes, is full), then
-- zeroes the counters; those cases are marked `spent` (their expected
-- route is defer, and nothing may be refreshed for them).
function Campaign:spend_quota(n)
  local done = 0
  for _, c in ipairs(self.list) do
    if done >= n then break end
    if c.state == "active" and (c.product == "income" or c.product == "employment") then
      for _, conn in ipairs(self.sb:connections(c.order_id)) do
        if conn.kind == "employer" then
          for _ = 1, 4 do
            local status, body = self.sb:request("POST", "refresh/tasks/",
              { access_token = conn.access_token, product_type = c.product })
            assert(status == 200, "cannot spend a refresh: " .. cjson.encode(body or {}))
          end
        end
      end
      c.spent = true
      done = done + 1
    end
  end
  self.sb:reset_stats()
  return done
end

M.FINAL = FINAL
M.read_cases = read_cases

return M
