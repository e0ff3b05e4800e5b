-- The soak campaigns (run through scripts/soak, which sets the paths): bin/
-- truv-renew against truv-sandbox on loopback, each campaign ending with
-- the check of spec/support/soak.lua (the sandbox's /_sandbox/stats against
-- the journal: nothing refreshed twice, no verification order made twice,
-- no case lost, every route the one its seeded state calls for).
--
--   faults  one campaign per fault the sandbox injects (latency, 5xx,
--           resets before and after processing, truncated and stalled
--           answers, 429s: the request rate limit and spent refresh
--           quotas), then all of them mixed (once with verification
--           orders, once with bridge tokens), and refreshes that outlive the
--           polling deadline; each campaign's journal is then run again
--           with the faults off, after its scheduled cases came due
--   kills   rounds of runs killed with SIGKILL at random moments, each kill
--           followed by a resume on the same journal, the last run of a
--           round to its end (links as orders, then as Bridge tokens, in
--           turn); then the same rerun with the faults off
--   disk    (root) the journal on a small tmpfs that fills mid-run, then a
--           run on the still-full disk, then one with room again; and a
--           journal whose file system went read-only after a killed run
--
-- Every loop is bounded in count, every wait in time (SOAK_RUN_TIMEOUT for a
-- run). Variables:
--   SOAK=full              the long setting (500 cases, 60 kills)
--   SOAK_CASES             cases per fault or disk campaign [100; full 500]
--   SOAK_KILLS             kill -9s in all [20; full 60]
--   SOAK_KILL_CASES        cases per kill round [100; full 200]
--   SOAK_FAULT_P           probability of the single fault campaigns [0.08]
--   SOAK_CONCURRENCY       truv-renew --concurrency [16]
--   SOAK_CAMPAIGNS         which, comma-separated [faults,kills,disk]
--   SOAK_SEED              random seed (printed; the same seed draws the same
--                          faults, cases and kill moments) [the time]
--   SOAK_RUN_TIMEOUT       seconds a run may take before it is killed and
--                          the soak fails [600]
--   SOAK_OUT               where each campaign's files, figures.md and
--                          figures.json go [build/soak]
-- Exit status 0 when every check agreed, 1 otherwise (the disagreements are
-- listed), 2 for a bad variable.
local soak = require "spec.support.soak"
local files = require "spec.support.files"
local core = require "truv.core"
local socket = require "socket"
local cjson = require("cjson").new()

local q = files.quote
local format = string.format
local out = io.stdout

local function bad(msg)
  io.stderr:write("soak: ", msg, "\n")
  os.exit(2)
end

local function num(name, default, integer)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  local n = tonumber(v)
  if not n or n < 0 or (integer and n % 1 ~= 0) then
    bad(format("%s: a number >= 0 expected, got '%s'", name, v))
  end
  return n
end

local MODE = os.getenv("SOAK") or ""
if MODE ~= "" and MODE ~= "full" then bad("SOAK: 'full' or nothing, got '" .. MODE .. "'") end
local FULL = MODE == "full"
local S = {
  cases = num("SOAK_CASES", FULL and 500 or 100, true),
  kills = num("SOAK_KILLS", FULL and 60 or 20, true),
  kill_cases = num("SOAK_KILL_CASES", FULL and 200 or 100, true),
  fault_p = num("SOAK_FAULT_P", 0.08),
  concurrency = num("SOAK_CONCURRENCY", 16, true),
  seed = num("SOAK_SEED", os.time(), true),
  run_timeout = num("SOAK_RUN_TIMEOUT", 600),
  out = os.getenv("SOAK_OUT") or "build/soak",
}
local WANT = {}
for name in (os.getenv("SOAK_CAMPAIGNS") or "faults,kills,disk"):gmatch("[^,%s]+") do
  if name ~= "faults" and name ~= "kills" and name ~= "disk" then
    bad("SOAK_CAMPAIGNS: faults, kills or disk, got '" .. name .. "'")
  end
  WANT[name] = true
end
math.randomseed(S.seed)
soak.DEFAULTS.concurrency = S.concurrency
soak.DEFAULTS.run_timeout_s = S.run_timeout

local function sh(cmd) return os.execute(cmd .. " >/dev/null 2>&1") == true end
local function now() return socket.gettime() end
local started = now()

local function say(fmt, ...)
  out:write(format("[%6.1fs] ", now() - started), format(fmt, ...), "\n")
  out:flush()
end

-- A fresh directory for a campaign's files, kept for inspection.
local function dir_for(name)
  local d = S.out .. "/" .. name
  assert(sh("rm -rf " .. q(d) .. " && mkdir -p " .. q(d)), "cannot make " .. d)
  return d
end

local seeds = 0
local function next_seed()
  seeds = seeds + 1
  return S.seed % 100000 * 100 + seeds
end

-- results: one row per campaign; problems: every disagreement, named.
local results, problems, notes = {}, {}, {}

local function absorb(name, fig, phase)
  for _, p in ipairs(fig.problems) do problems[#problems + 1] = format("%s (%s): %s", name, phase, p) end
end

local function routes_line(fig)
  local keys = {}
  for k in pairs(fig.routes) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. " " .. fig.routes[k] end
  return table.concat(parts, ", ")
end

local function faults_fired(fig)
  local n = 0
  for _, v in pairs(fig.faults) do n = n + v end
  return n
end

-- Runs `c` to its end; a run that exits otherwise than `expect` is a
-- problem the check reports.
local function run(c, what, expect, args)
  local t = now()
  local code, r = c:run{ expect = expect, args = args }
  say("  %s: exit %d in %.1f s", what, code, now() - t)
  return code, r
end

-- The check after a campaign's runs with faults, then time passes, the
-- rerun with the faults off and the final check. Returns the final figures.
local function finish(c, row)
  local fig = c:check()
  absorb(c.name, fig, "after the faults")
  say("  check: %d lost, %d refreshed twice, %d orders twice, %d wrong routes, %d crashes, "
      .. "%d scheduled; %d problems", fig.lost, fig.double_refreshes, fig.orders_twice,
      fig.wrong_routes, fig.crashes, fig.scheduled, #fig.problems)
  local due = c:pass_time()
  run(c, format("rerun, faults off, %d scheduled cases due", due))
  local final = c:check{ final = true }
  absorb(c.name, final, "rerun")
  say("  final check: %d lost, %d refreshed twice (%d refreshes, %d after a retry route), "
      .. "%d orders twice, %d wrong routes, %d crashes; %d problems", final.lost,
      final.double_refreshes, final.refreshes, final.retried_refreshes, final.orders_twice,
      final.wrong_routes, final.crashes, #final.problems)
  say("  routes: %s", routes_line(final))
  row.fig = final
  row.first_problems = #fig.problems
  row.scheduled_after_faults = fig.scheduled
  results[#results + 1] = row
  return final
end

------------------------------------------------------------------------------
-- a) faults, one at a time, then mixed

local function fault_campaigns()
  local p = S.fault_p
  local rate_limit = math.max(60, S.cases * 5)   -- per minute: a run needs about 8 requests a case
  local list = {
    { "latency", "latency 50-250 ms", { latency_ms = 50, latency_jitter_ms = 200 } },
    { "5xx", format("500/502/503, p %.2f", p), { fault_5xx = p } },
    { "reset-before", format("reset before processing, p %.2f", p), { reset_before = p } },
    { "reset-after", format("reset after processing, p %.2f", p), { reset_after = p } },
    { "truncate", format("truncated body, p %.2f", p), { truncate = p } },
    { "stall", format("stalled body (1.5 s, then closed), p %.2f", p / 2),
      { stall = p / 2, stall_ms = 1500 } },
    { "429", format("rate limit %d/min, refresh quota spent on 5%% of cases", rate_limit), {},
      { rate_limit = rate_limit, spend = 0.05 } },
    { "mixed", format("all of the above at p %.2f each, latency 2-22 ms, rate limit %d/min, "
                      .. "2%% spent", p / 4, rate_limit),
      { latency_ms = 2, latency_jitter_ms = 20, fault_5xx = p / 4, reset_before = p / 4,
        reset_after = p / 4, truncate = p / 4, stall = p / 8, stall_ms = 1500 },
      { rate_limit = rate_limit, spend = 0.02 } },
    { "mixed-bridge", "as mixed, verification links as Bridge tokens (--reverify bridge)",
      { latency_ms = 2, latency_jitter_ms = 20, fault_5xx = p / 4, reset_before = p / 4,
        reset_after = p / 4, truncate = p / 4, stall = p / 8, stall_ms = 1500 },
      { rate_limit = rate_limit, spend = 0.02, reverify = "bridge" } },
    { "poll-timeout", "no fault; every refresh outlives the first run's --poll-timeout 1 "
                      .. "(tasks take 3 s)", {},
      { args = { "--poll-timeout", "1" }, task_duration_s = 3 } },
  }
  for _, f in ipairs(list) do
    local name, what, faults, extra = f[1], f[2], f[3], f[4] or {}
    say("== faults: %s (%s), %d cases", name, what, S.cases)
    local c = soak.campaign{ name = name, cases = S.cases, rng_seed = next_seed(),
                             dir = dir_for("faults-" .. name), reverify = extra.reverify,
                             task_duration_s = extra.task_duration_s }
    local ok, err = pcall(function()
      if extra.spend then
        say("  %d cases' refresh quota spent at the sandbox", c:spend_quota(math.ceil(S.cases * extra.spend)))
      end
      if extra.rate_limit then c.sb:config{ rate_limit = extra.rate_limit } end
      c:set_faults(faults)
      run(c, "run with the faults", 0, extra.args)
      finish(c, { campaign = "faults", name = name, what = what })
    end)
    c:close(true)
    if not ok then problems[#problems + 1] = format("%s: %s", name, tostring(err)) end
  end
end

------------------------------------------------------------------------------
-- b) kill -9 at random moments, each followed by a resume

local KILLS_PER_ROUND = 10
-- kills fall within this many seconds of a run's start; a run that finished
-- first shortens it for the next ones (as many cases are in progress as the
-- rate allows: a round's cases can all be done within a second or two)
local kill_span = 2.45

local function kill_campaigns()
  local total, round = 0, 0
  local max_rounds = math.ceil(S.kills / KILLS_PER_ROUND) * 3   -- rounds that end early
  local faults = { latency_ms = 2, latency_jitter_ms = 10, reset_after = 0.03, fault_5xx = 0.02,
                   truncate = 0.02 }
  while total < S.kills and round < max_rounds do
    round = round + 1
    local name = format("kills-%d", round)
    -- every other round makes its verification links as Bridge tokens
    local reverify = round % 2 == 0 and "bridge" or "order"
    say("== kills: round %d, %d cases, links as %s, faults: resets after 3%%, 5xx 2%%, "
        .. "truncated 2%%", round, S.kill_cases, reverify == "bridge" and "Bridge tokens" or "orders")
    local c = soak.campaign{ name = name, cases = S.kill_cases, rng_seed = next_seed(),
                             dir = dir_for(name), faults = faults, reverify = reverify }
    local ok, err = pcall(function()
      local kills, moments = 0, {}
      while kills < KILLS_PER_ROUND and total + kills < S.kills do
        local r = c:start()
        local at = 0.05 + math.random() * kill_span
        socket.sleep(at)
        if not r:kill() then
          r.expect = r:rc()   -- it finished before the kill: the round is over
          kill_span = math.max(0.2, (at - 0.05) * 0.7)
          break
        end
        kills = kills + 1
        moments[#moments + 1] = format("%.2f", at)
      end
      total = total + kills
      say("  %d runs killed after %s s", kills, table.concat(moments, ", "))
      run(c, "resume to the end")
      finish(c, { campaign = "kills", name = name,
                  what = format("%d kills, links as %s", kills, reverify) })
    end)
    c:close(true)
    if not ok then
      problems[#problems + 1] = format("%s: %s", name, tostring(err))
      break
    end
  end
  if total < S.kills then
    problems[#problems + 1] = format("kills: only %d of %d runs were still going when killed",
                                     total, S.kills)
  end
  return total
end

------------------------------------------------------------------------------
-- c) a journal on a full disk, and on a read-only one

local function is_root()
  local p = io.popen("id -u")
  local uid = p:read("l")
  p:close()
  return uid == "0"
end

-- Fills the file system at `dir` but for about `keep` bytes.
local function fill(dir, keep)
  sh(format("dd if=/dev/zero of=%s bs=4096 count=%d", q(dir .. "/spare"), math.ceil(keep / 4096)))
  sh(format("dd if=/dev/zero of=%s bs=65536", q(dir .. "/filler")))   -- until ENOSPC
  os.remove(dir .. "/spare")
end

local function count_events(r, name)
  local n = 0
  for _ in r:stderr():gmatch('"event":"' .. name .. '"') do n = n + 1 end
  return n
end

-- Waits (bounded) until run `r` has sent `n` refreshes or ended.
local function wait_sent(r, n, timeout)
  local deadline = now() + timeout
  while now() < deadline and r:alive() and count_events(r, "sent") < n do socket.sleep(0.02) end
end

local function billed(c)
  local s = c.sb:stats()
  return { refreshes = s.refresh.order_refreshes, tasks = s.refresh.billed,
           orders = s.orders.created, tokens = s.bridge_tokens.created,
           requests = s.requests.total }
end

local function same_billing(a, b)
  return a.refreshes == b.refreshes and a.tasks == b.tasks and a.orders == b.orders
         and a.tokens == b.tokens
end

-- A run stopped by its journal: exit 1 with a message that names it.
local function stopped_clearly(c, code, r, pattern, what)
  local msg = r:stderr():match("truv%-renew: ([^\n]*)") or ""
  say("  says: %s", msg:sub(1, 240))
  if code ~= 1 or not msg:find(pattern) then
    problems[#problems + 1] = format("%s: %s: exit %d, message '%s'", c.name, what, code, msg)
  end
  return msg
end

-- `keep`: the bytes left free once the disk is filled. The quota store
-- (--quota) is on the same disk, and is often the first to fail; with
-- `quota_elsewhere` it is in the campaign's directory, so that the journal
-- is the one that fails.
local function disk_full(fs, name, keep, quota_elsewhere)
  say("== disk: the journal on a 16 MB tmpfs that fills mid-run but for %d KB%s, %d cases",
      keep // 1024, quota_elsewhere and " (its quota store on another disk)" or "", S.cases)
  local dir = dir_for(name)
  local c = soak.campaign{ name = name, cases = S.cases, rng_seed = next_seed(), dir = dir,
                           journal = fs .. "/" .. name .. ".journal",
                           quota = (quota_elsewhere and dir or fs) .. "/" .. name .. ".quota.db",
                           faults = { latency_ms = 2, latency_jitter_ms = 10 } }
  local row = { campaign = "disk", name = name,
                what = format("disk full mid-run (%d KB left%s)", keep // 1024,
                              quota_elsewhere and ", quota store elsewhere" or "") }
  local ok, err = pcall(function()
    local r = c:start{ expect = 1 }
    wait_sent(r, math.max(1, S.cases // 4), 60)
    local sent = count_events(r, "sent")
    fill(fs, keep)
    local code = r:wait(S.run_timeout) or -1
    say("  run: the disk filled after %d refreshes; exit %d", sent, code)
    row.stop = stopped_clearly(c, code, r, "full", "a run on a disk that filled")
    -- every refresh Truv made has its write-ahead in the journal
    local stats = c.sb:stats()
    local j = assert(core.journal_open(c.journal))
    local ahead, missing = 0, 0
    for order_id in pairs(stats.refresh.by_order) do
      local case = c.by_order[order_id]
      local rec = case and j:get(case.case_id)
      if rec and rec.sent_at then
        ahead = ahead + 1
      else
        missing = missing + 1
        problems[#problems + 1] = format("%s: order %s refreshed with no write-ahead in the journal",
                                         name, order_id)
      end
    end
    j:close()
    row.refreshed_at_stop, row.without_record = ahead + missing, missing
    say("  %d orders refreshed when it stopped, %d of them without a record", ahead + missing, missing)
    -- the same command while the disk is still full: it stops before any
    -- billed call. (Full again: the stopped run's SQLite files gave space
    -- back as they closed, their write-ahead logs checkpointed and removed.)
    fill(fs, 0)
    local before = billed(c)
    r = c:start{ expect = 1 }
    code = r:wait(S.run_timeout) or -1
    local after = billed(c)
    stopped_clearly(c, code, r, "full", "a run on a disk still full")
    row.full_again_billed = after.refreshes - before.refreshes + after.orders - before.orders
                            + after.tokens - before.tokens
    row.full_again_requests = after.requests - before.requests
    if not same_billing(before, after) then
      problems[#problems + 1] = format("%s: a run on a still-full disk made billed calls "
                                       .. "(%s -> %s)", name, cjson.encode(before), cjson.encode(after))
    end
    say("  run on the still-full disk: exit %d, %d requests, %d billed", code,
        row.full_again_requests, row.full_again_billed)
    os.remove(fs .. "/filler")
    run(c, "run with room again")
    finish(c, row)
  end)
  c:close(true)
  os.remove(fs .. "/filler")
  sh("rm -f " .. q(fs .. "/" .. name) .. ".*")   -- room for the next campaign
  if not ok then problems[#problems + 1] = format("%s: %s", name, tostring(err)) end
end

local function read_only(fs)
  local name = "read-only"
  say("== disk: a run killed, its journal's file system remounted read-only, %d cases", S.cases)
  local c = soak.campaign{ name = name, cases = S.cases, rng_seed = next_seed(), dir = dir_for(name),
                           journal = fs .. "/ro.journal", quota = fs .. "/ro.quota.db",
                           faults = { latency_ms = 2, latency_jitter_ms = 10 } }
  local row = { campaign = "disk", name = name, what = "read-only journal" }
  local ok, err = pcall(function()
    local r = c:start()
    wait_sent(r, math.max(1, S.cases // 3), 60)
    r:kill()
    socket.sleep(0.5)   -- what the killed run had in flight reaches the sandbox
    say("  run killed after %d refreshes", count_events(r, "sent"))
    assert(sh("mount -o remount,ro " .. q(fs)), "cannot remount read-only")
    local before = billed(c)
    local code
    code, r = run(c, "run on the read-only journal", 1)
    local after = billed(c)
    assert(sh("mount -o remount,rw " .. q(fs)), "cannot remount read-write")
    row.stop = stopped_clearly(c, code, r, "[Rr]ead%-only", "a run on a read-only journal")
    row.ro_requests = after.requests - before.requests
    row.ro_billed = after.refreshes - before.refreshes + after.orders - before.orders
                    + after.tokens - before.tokens
    if not same_billing(before, after) then
      problems[#problems + 1] = format("%s: a run on a read-only journal made billed calls", name)
    end
    say("  %d requests, %d billed while read-only", row.ro_requests, row.ro_billed)
    run(c, "run on the writable journal")
    finish(c, row)
  end)
  c:close(true)
  sh("mount -o remount,rw " .. q(fs))
  if not ok then problems[#problems + 1] = format("%s: %s", name, tostring(err)) end
end

local function disk_campaigns()
  if not is_root() then
    notes[#notes + 1] = "DISK CAMPAIGNS SKIPPED: mounting a tmpfs needs root"
    say("!! %s", notes[#notes])
    return
  end
  local fs = S.out .. "/disk-fs"
  sh("umount " .. q(fs))
  assert(sh("mkdir -p " .. q(fs)))
  if not sh("mount -t tmpfs -o size=16m tmpfs " .. q(fs)) then
    notes[#notes + 1] = "DISK CAMPAIGNS SKIPPED: cannot mount a tmpfs on " .. fs
    say("!! %s", notes[#notes])
    return
  end
  local ok, err = pcall(function()
    disk_full(fs, "disk-full", 64 * 1024)
    disk_full(fs, "disk-full-2", 1024 * 1024)
    disk_full(fs, "disk-full-journal", 64 * 1024, true)
    read_only(fs)
  end)
  sh("umount " .. q(fs))
  if not ok then error(err, 0) end
end

------------------------------------------------------------------------------
-- the figures

local function totals()
  local t = { cases = 0, runs = 0, kills = 0, requests = 0, faults = 0, throttled = 0, refreshes = 0,
              retried = 0, double = 0, orders = 0, orders_twice = 0, unconfirmed = 0, tokens = 0,
              tokens_journal = 0, quota_extra = 0, lost = 0,
              wrong = 0, crashes = 0 }
  for _, row in ipairs(results) do
    local f = row.fig
    t.cases = t.cases + f.cases
    t.runs = t.runs + f.runs
    t.kills = t.kills + f.kills
    t.requests = t.requests + f.requests
    t.faults = t.faults + faults_fired(f)
    t.throttled = t.throttled + f.throttled
    t.refreshes = t.refreshes + f.refreshes
    t.retried = t.retried + f.retried_refreshes
    t.double = t.double + f.double_refreshes
    t.orders = t.orders + f.orders_created
    t.orders_twice = t.orders_twice + f.orders_twice
    t.unconfirmed = t.unconfirmed + f.links_unconfirmed
    t.quota_extra = t.quota_extra + f.quota_extra
    t.tokens = t.tokens + f.tokens_created
    t.tokens_journal = t.tokens_journal + f.tokens_journal
    t.lost = t.lost + f.lost
    t.wrong = t.wrong + f.wrong_routes
    t.crashes = t.crashes + f.crashes
  end
  return t
end

local function md_row(cells)
  local text = {}
  for i, v in ipairs(cells) do text[i] = type(v) == "number" and format("%d", v) or v end
  return "| " .. table.concat(text, " | ") .. " |"
end

local function table_md()
  local lines = {
    md_row{ "campaign", "what", "cases", "runs", "kills", "requests", "faults", "429s", "refreshes",
            "after a retry", "refreshed twice", "orders / tokens", "twice", "unconfirmed",
            "quota extra", "lost", "wrong routes", "crashes" },
    "|---|---|" .. string.rep("---:|", 16),
  }
  -- tokens: made at the sandbox (recorded in the journal); a token whose
  -- answer was lost, or made beside one that failed, is made again by design
  local function links(orders, tokens, recorded)
    return tokens > 0 and format("%d / %d tokens (%d recorded)", orders, tokens, recorded)
           or format("%d", orders)
  end
  for _, row in ipairs(results) do
    local f = row.fig
    lines[#lines + 1] = md_row{ row.name, row.what, f.cases, f.runs, f.kills, f.requests,
      faults_fired(f), f.throttled, f.refreshes, f.retried_refreshes, f.double_refreshes,
      links(f.orders_created, f.tokens_created, f.tokens_journal), f.orders_twice,
      f.links_unconfirmed, f.quota_extra, f.lost, f.wrong_routes, f.crashes }
  end
  local t = totals()
  local function bold(n) return format("**%d**", n) end
  lines[#lines + 1] = md_row{ "**total**", "", t.cases, t.runs, t.kills, t.requests, t.faults,
    t.throttled, t.refreshes, t.retried, bold(t.double), links(t.orders, t.tokens, t.tokens_journal),
    bold(t.orders_twice), t.unconfirmed, t.quota_extra, bold(t.lost), bold(t.wrong),
    bold(t.crashes) }
  return table.concat(lines, "\n"), t
end

------------------------------------------------------------------------------

say("soak: %s setting, seed %d, %d cases per campaign, %d kills (%d cases a round), "
    .. "concurrency %d; files under %s", FULL and "full" or "default", S.seed, S.cases, S.kills,
    S.kill_cases, S.concurrency, S.out)
local ok, err = pcall(function()
  if WANT.faults then fault_campaigns() end
  if WANT.kills then kill_campaigns() end
  if WANT.disk then disk_campaigns() end
end)
if not ok then problems[#problems + 1] = "soak: " .. tostring(err) end

local md, t = table_md()
local extra = {}
for _, row in ipairs(results) do
  if row.campaign == "disk" then
    if row.refreshed_at_stop then
      extra[#extra + 1] = format("- %s: the run stopped after %d orders were refreshed, "
        .. "%d of them without a write-ahead record; message: \"%s\"; the same command on the "
        .. "still-full disk made %d requests, %d billed calls", row.what, row.refreshed_at_stop,
        row.without_record, tostring(row.stop), row.full_again_requests, row.full_again_billed)
    elseif row.ro_requests then
      extra[#extra + 1] = format("- %s: message \"%s\"; %d requests, %d billed calls "
        .. "while read-only", row.what, tostring(row.stop), row.ro_requests, row.ro_billed)
    end
  end
end
local report = table.concat({
  format("soak %s, %s setting, seed %d, %.0f s", os.date("!%Y-%m-%d"), FULL and "full" or "default",
         S.seed, now() - started),
  "", md, "", table.concat(extra, "\n"), table.concat(notes, "\n"),
  format("%d problems", #problems), table.concat(problems, "\n") }, "\n")
files.write(S.out .. "/figures.md", report .. "\n")
local rows = {}
for _, row in ipairs(results) do
  local f = row.fig
  f.problems = nil
  rows[#rows + 1] = { campaign = row.campaign, name = row.name, what = row.what, figures = f,
                      problems_after_faults = row.first_problems }
end
files.write(S.out .. "/figures.json", cjson.encode{ seed = S.seed, setting = FULL and "full" or "default",
  date = os.date("!%Y-%m-%dT%H:%M:%SZ"), seconds = now() - started, totals = t, campaigns = rows,
  notes = notes, problems = problems } .. "\n")
out:write("\n", report, "\n")
out:write(format("\nfigures: %s/figures.md\n", S.out))
os.exit(#problems == 0 and 0 or 1)
