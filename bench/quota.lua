-- Quota and de-duplication stores through the Lua binding: what a Lua caller
-- pays per call on top of the C store (argument checks, key parsing, the
-- ticket string). Keys and ids are made before the clock starts.
--
--   lua5.4 bench/quota.lua [CONNECTIONS]      (also runs under LuaJIT)
local quota = require "truv.quota"
local dedupe = require "truv.dedupe"

local n = tonumber(arg and arg[1]) or 200000
local clock = os.clock
local T0, DAY = 1700000000, 86400
local flavour = jit and jit.version or _VERSION

local keys, ids = {}, {}
for i = 1, n do
  keys[i] = { quota.key("bench-access-token-" .. i) }
  ids[i] = string.format("%016x%016x", i * 2654435761 % 4294967296, i)
end

local function report(what, ops, seconds)
  io.write(string.format("| %-46s | %-16s | %8.2f M ops/s |\n", what, flavour, ops / seconds / 1e6))
end

local store = quota.memory()
for i = 1, n do assert(store:reserve(keys[i], T0)) end
local best = 0
for r = 1, 3 do
  local now = T0 + r * DAY / 3
  local t = clock()
  for i = 1, n do store:reserve(keys[i], now) end
  local rate = n / (clock() - t)
  if rate > best then best = rate end
end
report(string.format("store:reserve, memory, %d connections", n), best, 1)
local t = clock()
for i = 1, n do store:usage(keys[i][1], T0 + DAY + 1) end
report("store:usage, memory", n, clock() - t)
store:close()

local d = dedupe.memory()
t = clock()
for i = 1, n do d:seen(ids[i], T0, 7 * DAY) end
report("dedupe:seen, memory, first sight", n, clock() - t)
t = clock()
for i = 1, n do d:seen(ids[i], T0 + 1, 7 * DAY) end
report("dedupe:seen, memory, duplicate", n, clock() - t)
d:close()
