-- bench/openresty.sh's driver (Lua 5.4): starts the example gateway
-- (examples/openresty/nginx.conf, as the specs adapt it) with a static
-- location beside it, signs distinct deliveries, and runs wrk against both
-- in the same nginx, rounds interleaved.
--   lua5.4 bench/openresty/driver.lua SECONDS ROUNDS CONNECTIONS THREADS
local openresty = require "spec.support.openresty"
local files = require "spec.support.files"
local truv = require "truv"

local seconds = tonumber(arg[1]) or 5
local rounds = tonumber(arg[2]) or 3
local connections = tonumber(arg[3]) or 64
local threads = tonumber(arg[4]) or 2

local src = openresty.source_dir()
local SECRET = "sandbox-bench-secret"

local read = files.slurp

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  p:close()
  return out
end

-- The 2 KB delivery of bench/webhook-body.json, its webhook_id and its
-- object (employer_id, tracking_info) made placeholders.
local body = read(src .. "/bench/webhook-body.json"):gsub("%s+$", "")
local doc = truv.decode(body, "table")
local template = body:gsub(doc.webhook_id, "@@W@@", 1):gsub(doc.employer_id, "@@E@@")
assert(select(2, template:gsub("@@E@@", "")) == 2, "employer_id and tracking_info expected")

local work = sh("mktemp -d /tmp/truv-bench.XXXXXX"):gsub("%s+$", "")
local template_file = work .. "/template.json"
do
  local f = assert(io.open(template_file, "wb"))
  f:write(template)
  f:close()
end

local serial = 0
-- n distinct signed deliveries (ids only; wrk rebuilds each body).
local function make_ids(n)
  local path = string.format("%s/ids-%d.txt", work, serial + 1)
  local f = assert(io.open(path, "wb"))
  for _ = 1, n do
    serial = serial + 1
    local w = string.format("%032x", serial)
    local e = string.format("e%031x", serial)
    local b = template:gsub("@@W@@", w):gsub("@@E@@", e)
    f:write(w, " ", e, " ", truv.webhook.sign(b, SECRET):sub(4), "\n")
  end
  f:close()
  return path
end

local srv = openresty.start{
  env = { TRUV_CLIENT_ID = "bench", TRUV_SECRET = SECRET, TRUV_BASE_URL = "http://127.0.0.1:9/v1/" },
  conf = openresty.example{
    workers = tonumber(os.getenv("BENCH_WORKERS") or "") or threads,
    lua_dir = src .. "/bench/openresty",
    replace = { { "lua_shared_dict truv_webhooks 128m;",
                  "lua_shared_dict truv_webhooks " .. (os.getenv("BENCH_WEBHOOK_DICT") or "512m")
                  .. ";" },
                { "worker_connections 1024;", "worker_connections 4096;" } },
    server = "        location = /static { default_type application/json; " ..
             "return 200 '{\"result\":\"handled\"}'; }\n" ..
             "        location = /dict { content_by_lua_block { local d = " ..
             "ngx.shared.truv_webhooks; ngx.say(d:capacity() - d:free_space()) } }\n",
  },
}

-- CPU seconds the nginx workers used so far (utime + stime).
local function workers_cpu()
  local total = 0
  for _, pid in ipairs(srv:workers()) do
    local f = io.open("/proc/" .. pid .. "/stat")
    if f then
      local fields = {}
      for x in f:read("a"):match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = x end
      f:close()
      total = total + (tonumber(fields[12]) + tonumber(fields[13])) / 100
    end
  end
  return total
end

local function wrk(path, ids)
  local cpu0 = workers_cpu()
  local out = sh(string.format("wrk -t%d -c%d -d%ds --latency -s %s %s -- %s %s %d",
                               threads, connections, seconds,
                               src .. "/bench/openresty/wrk.lua", srv.origin .. path,
                               template_file, ids, threads))
  local rps = tonumber(out:match("Requests/sec:%s+([%d%.]+)"))
  local requests, secs, non200, wrapped = out:match(
    "RESULT requests=(%d+) seconds=([%d%.]+) non200=(%d+) wrapped=(%d+)")
  local p50 = out:match("%s50%%%s+(%S+)")
  local p99 = out:match("%s99%%%s+(%S+)")
  assert(rps and requests, "wrk failed:\n" .. out)
  return { rps = rps, requests = tonumber(requests), seconds = tonumber(secs),
           non200 = tonumber(non200), wrapped = tonumber(wrapped), p50 = p50, p99 = p99,
           cpu_us = (workers_cpu() - cpu0) / tonumber(requests) * 1e6 }
end

local ok, err = pcall(function()
  -- calibration: how many deliveries a round needs
  local cal = wrk("/truv/webhooks", make_ids(20000))
  local delivered = cal.requests
  local per_round = math.max(20000, math.ceil(cal.rps * seconds * 1.6))
  print(string.format("gateway %s, wrk -t%d -c%d -d%ds, %d B signed deliveries, " ..
                      "each a new webhook_id; %d rounds, interleaved",
                      srv.origin, threads, connections, seconds, #body, rounds))
  local best_s, best_g, ratios, cpu_ratios = nil, nil, {}, {}
  for r = 1, rounds do
    local ids = make_ids(per_round)
    local s = wrk("/static", ids)
    local g = wrk("/truv/webhooks", ids)
    delivered = delivered + g.requests
    -- the gateway's deliveries must all be new: a wrapped thread would
    -- send duplicates (cheaper); report it
    print(string.format("round %d: static %.0f req/s (p50 %s, p99 %s, nginx CPU %.1f us/req), " ..
                        "gateway %.0f req/s (p50 %s, p99 %s, nginx CPU %.1f us/req), " ..
                        "ratio %.3f; duplicates sent: %s",
                        r, s.rps, s.p50, s.p99, s.cpu_us, g.rps, g.p50, g.p99, g.cpu_us,
                        g.rps / s.rps, g.wrapped > 0 and "yes" or "no"))
    assert(g.non200 == 0 and s.non200 == 0, "some answers were not 200")
    if not best_s or s.rps > best_s.rps then best_s = s end
    if not best_g or g.rps > best_g.rps then best_g = g end
    ratios[#ratios + 1] = g.rps / s.rps
    cpu_ratios[#cpu_ratios + 1] = s.cpu_us / g.cpu_us
  end
  table.sort(ratios)
  table.sort(cpu_ratios)
  local mid = (#ratios + 1) // 2
  print(string.format("best: static %.0f req/s, gateway %.0f req/s, ratio %.3f " ..
                      "(median of the rounds' ratios %.3f)", best_s.rps, best_g.rps,
                      best_g.rps / best_s.rps, ratios[mid]))
  -- what one worker core can carry: the inverse ratio of nginx CPU per request
  print(string.format("nginx CPU per request, median over the rounds: static/gateway = %.3f",
                      cpu_ratios[mid]))
  -- what the de-duplication keeps: each delivery a new webhook_id about a
  -- new object, so an id and an ordering record each
  local _, _, _, raw = srv:request("GET", "/dict")
  local used = tonumber(raw:match("%d+"))
  print(string.format("truv_webhooks dictionary: %.1f MB used for %d deliveries: %.0f B each",
                      used / 2 ^ 20, delivered, used / delivered))
  local log = srv:log_lines()
  if #log > 0 then print("nginx errors:\n" .. table.concat(log, "\n")) end
end)
srv:stop()
os.execute("rm -rf '" .. work .. "'")
if not ok then error(err, 0) end
