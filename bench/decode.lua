-- Decoding an order into something the workflow can use, side by side in
-- one run: lua-cjson's decode (the anchor), truv's lazy view, truv's full
-- conversion to tables, and the view plus the order model the refresh
-- workflow reads (ids, products, connections, tokens).
--
-- Each variant decodes the same bytes and then reads what the workflow
-- reads (every employer's id and access token), so a lazy variant is not
-- credited for work it skipped that the workflow needs.
--
--   lua5.4 bench/decode.lua [iterations]     (LUA_PATH / LUA_CPATH as for the specs)
local cjson = require "cjson"
local truv = require "truv"
local core = require "truv.core"

local iterations = tonumber(arg[1]) or 20000
local fixtures = os.getenv("TRUV_FIXTURES") or "spec/fixtures"

local function read(name)
  local f = assert(io.open(fixtures .. "/" .. name, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function use(order)
  local n = 0
  local employers = order.employers
  for i = 1, #employers do
    local e = employers[i]
    if e.id and e.access_token then n = n + 1 end
  end
  return n
end

local variants = {
  { "cjson.decode (anchor)", function(s) return use(cjson.decode(s)) end },
  { "truv.decode view", function(s) return use(truv.decode(s)) end },
  { "truv.decode table", function(s) return use(truv.decode(s, "table")) end },
  { "truv view + order_model", function(s)
      local m = core.order_model(truv.decode(s))
      return #m.connections
    end },
}

local function measure(fn, s)
  for _ = 1, math.max(100, iterations // 20) do fn(s) end   -- warm up
  collectgarbage()
  local t0 = os.clock()
  for _ = 1, iterations do fn(s) end
  return (os.clock() - t0) / iterations
end

print(string.format("%-28s %-26s %10s %10s %8s", "document", "variant", "us/decode", "MB/s",
                    "vs cjson"))
for _, name in ipairs{ "order-example.json", "order-two-employers.json" } do
  local s = read(name)
  local anchor
  for _, v in ipairs(variants) do
    local t = measure(v[2], s)
    anchor = anchor or t
    print(string.format("%-28s %-26s %10.1f %10.1f %7.2fx", name .. " (" .. (#s // 1024) .. " KB)",
                        v[1], t * 1e6, #s / t / 1e6, anchor / t))
  end
end
