-- The small model of bench/limits.sh: what two time-compressed runs of one
-- strategy say about a batch of BIG cases.
--
--   lua5.4 bench/limits_model.lua RATE_PER_MIN BIG RUN1 RUN2
--
-- RUNn is "N,REQUESTS,THROTTLED,T_S,TIMES_FILE[,SAMPLES_FILE]": the cases,
-- the requests the sandbox counted on /v1/, its 429s, the run's virtual
-- duration (seconds), a file of the virtual second each case was routed at,
-- one a line, and optionally "VIRTUAL_S REQUESTS" samples of the sandbox's
-- count taken during the run.
--
-- The model: after a ramp, cases finish at a steady throughput X (cases per
-- second, read between the 10th and the 90th percentile of the routed
-- times); a run of N cases takes T(N) = N / X + D, where D is what the ramp
-- and the tail add (T - N / X of the run). Requests per case r do not
-- depend on N. So the share of the rate budget used is r * X / R and the
-- batch's time against its floor (N * r / R) is T(N) / (N * r / R). Run 1's
-- X and D predict run 2, which says how far the model can be trusted; run
-- 2's (the longer run) extrapolate to BIG. With samples, the steady state's
-- requests per case r_s are the requests made while the middle 80 % of the
-- cases were routed, over those cases: a short run spends a share of its
-- requests learning when to poll (its first cases poll on the fixed
-- schedule) and on its ramp, which a batch of BIG cases spreads over many
-- more, so BIG's floor and budget share use r_s (r is shown beside it).
-- Prints one JSON line per run and one for BIG.
--
-- Two helpers of bench/limits.sh:
--   lua5.4 bench/limits_model.lua times VNOW LOG   the routed times of a
--     truv-renew --log file (ISO 8601 UTC, under TZ=UTC), seconds after VNOW
--   lua5.4 bench/limits_model.lua counts < STATS   "REQUESTS THROTTLED" from
--     the sandbox's /_sandbox/stats (requests on /v1/, 429s)
if arg[1] == "times" then
  local vnow = tonumber(arg[2])
  for l in io.lines(arg[3]) do
    local y, mo, d, h, mi, s, ms = l:match(
      [[^{"ts":"(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)%.(%d+)Z","event":"routed"]])
    if y then
      local t = os.time{ year = y, month = mo, day = d, hour = h, min = mi, sec = s }
      print(string.format("%.3f", t + ms / 1000 - vnow))
    end
  end
  return
elseif arg[1] == "counts" then
  local s = io.read("a")
  local throttled = 0
  for n in s:gmatch([["429":(%d+)]]) do throttled = throttled + tonumber(n) end
  print(assert(s:match([["requests":{"total":(%d+)]]), "no request count"), throttled)
  return
end

local rate_min, big = tonumber(arg[1]), tonumber(arg[2])
local R = rate_min / 60   -- requests per second

-- the requests counted at virtual second t, between the samples around it
local function requests_at(samples, t)
  local prev
  for _, s in ipairs(samples) do
    if s[1] >= t then
      if not prev or s[1] == prev[1] then return s[2] end
      return prev[2] + (s[2] - prev[2]) * (t - prev[1]) / (s[1] - prev[1])
    end
    prev = s
  end
  return prev and prev[2]
end

local function read_run(spec)
  local n, req, thr, t, file, sfile = spec:match("^(%d+),(%d+),(%d+),([%d.]+),([^,]+),?(.*)$")
  assert(n, "a run is N,REQUESTS,THROTTLED,T_S,TIMES_FILE[,SAMPLES_FILE]: " .. spec)
  local times = {}
  for l in io.lines(file) do times[#times + 1] = tonumber(l) end
  table.sort(times)
  n = tonumber(n)
  assert(#times == n, string.format("%s: %d routed times for %d cases", file, #times, n))
  local lo, hi = math.max(1, math.ceil(0.1 * n)), math.floor(0.9 * n)
  local x = (hi - lo) / (times[hi] - times[lo])
  t = tonumber(t)
  local rpc, steady = tonumber(req) / n, nil
  if sfile ~= "" then
    local samples = {}
    for l in io.lines(sfile) do
      local v, r = l:match("^(%-?%d+) (%d+)$")
      if v then samples[#samples + 1] = { tonumber(v), tonumber(r) } end
    end
    local a, b = requests_at(samples, times[lo]), requests_at(samples, times[hi])
    if a and b and b > a then steady = (b - a) / (hi - lo) end
  end
  return { n = n, requests = tonumber(req), throttled = tonumber(thr), t = t,
           rpc = rpc, steady = steady, x = x, d = t - n / x }
end

local function line(what, n, t, rpc, x, extra)
  local floor = n * rpc / R
  return string.format('{"what":"%s","cases":%d,"hours":%.3f,"floor_hours":%.3f,"vs_floor":%.2f,'
                       .. '"requests_per_case":%.2f,"budget_share":%.3f,"cases_per_hour":%.0f%s}',
                       what, n, t / 3600, floor / 3600, t / floor, rpc, rpc * n / (R * t),
                       x * 3600, extra or "")
end

local r1, r2 = read_run(arg[3]), read_run(arg[4])
for i, r in ipairs{ r1, r2 } do
  print(line("run" .. i, r.n, r.t, r.rpc, r.x,
             string.format(',"throttled":%d,"steady_budget_share":%.3f,"ramp_tail_s":%.0f%s',
                           r.throttled, (r.steady or r.rpc) * r.x / R, r.d,
                           r.steady and string.format(',"steady_requests_per_case":%.2f', r.steady)
                           or "")))
end
local predicted = r2.n / r1.x + r1.d
print(string.format('{"what":"run2 predicted from run1","hours":%.3f,"measured_hours":%.3f,'
                    .. '"error":%.3f}', predicted / 3600, r2.t / 3600, predicted / r2.t - 1))
print(line("model", big, big / r2.x + r2.d, r2.steady or r2.rpc, r2.x,
           string.format(',"run_requests_per_case":%.2f', r2.rpc)))
