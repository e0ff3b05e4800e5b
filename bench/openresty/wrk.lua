-- wrk script for bench/openresty.sh: POSTs signed webhook deliveries, each
-- one a distinct webhook_id (and object), cycling through pre-signed ids.
--   wrk ... -s bench/openresty/wrk.lua URL -- TEMPLATE IDS NTHREADS
-- TEMPLATE: the body with @@W@@ (webhook_id) and @@E@@ (employer id); IDS:
-- lines "webhook_id employer_id signature_hex"; thread i of NTHREADS takes
-- lines i, i + NTHREADS, ... A thread that runs out starts over (its
-- deliveries are then duplicates) and says so at the end.
-- wrk calls these globals; `index`, `bad` and `wrapped` are per-thread
-- globals that setup() and done() reach through thread:set/get.
-- luacheck: globals setup init request response done index bad wrapped, read globals wrk
local threads = {}

function setup(thread)
  thread:set("index", #threads)
  threads[#threads + 1] = thread
end

local parts, ids = {}, {}
local n = 0
local path
bad, wrapped = 0, 0

function init(args)
  local template_file, ids_file, nthreads = args[1], args[2], tonumber(args[3])
  path = wrk.path
  local f = assert(io.open(template_file, "rb"))
  local t = f:read("*a")
  f:close()
  -- the webhook_id once, the object's id twice (employer_id, tracking_info)
  parts = { t:match("^(.-)@@W@@(.-)@@E@@(.-)@@E@@(.*)$") }
  assert(#parts == 4, "the template needs @@W@@ once and @@E@@ twice")
  local i = 0
  for line in io.lines(ids_file) do
    if i % nthreads == index then
      local w, emp, sig = line:match("^(%x+) (%x+) (%x+)$")
      ids[#ids + 1] = { w, emp, "v1=" .. sig }
    end
    i = i + 1
  end
end

function request()
  n = n + 1
  if n > #ids then
    n = 1
    wrapped = wrapped + 1
  end
  local id = ids[n]
  local body = parts[1] .. id[1] .. parts[2] .. id[2] .. parts[3] .. id[2] .. parts[4]
  return wrk.format("POST", path, { ["Content-Type"] = "application/json",
                                    ["X-WEBHOOK-SIGN"] = id[3] }, body)
end

function response(status)
  if status ~= 200 then bad = bad + 1 end
end

function done(summary)
  local b, w = 0, 0
  for _, t in ipairs(threads) do
    b = b + (t:get("bad") or 0)
    w = w + (t:get("wrapped") or 0)
  end
  io.write(string.format("RESULT requests=%d seconds=%.3f non200=%d wrapped=%d\n",
                         summary.requests, summary.duration / 1e6, b, w))
end
