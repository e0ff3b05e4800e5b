-- The documents one case receives, parsed whole and turned into the model,
-- and in "model" mode (the model alone handed back), per case
-- (bench/parse_case.sh): the original order, the refresh's answer and a poll
-- of the refresh order, as the sandbox serves them.
--
--   lua5.4 bench/parse_case.lua DIR [ROUNDS]
--     DIR holds case-N.original.json, case-N.refresh.json, case-N.poll.json
local core = require "truv.core"

local dir, rounds = arg[1], tonumber(arg[2]) or 200
local kinds = { "original", "refresh", "poll" }

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local docs = {}
for i = 1, 100000 do
  local set = {}
  for _, k in ipairs(kinds) do set[k] = read(("%s/case-%d.%s.json"):format(dir, i, k)) end
  if not set.original then break end
  docs[#docs + 1] = set
end
assert(#docs > 0, "no documents in " .. dir)

-- seconds per round of fn over every document of a kind
local function time(kind, fn)
  for _, set in ipairs(docs) do fn(set[kind]) end   -- warm up
  collectgarbage()
  local best = math.huge
  for _ = 1, 5 do
    local t0 = os.clock()
    for _ = 1, rounds // 5 do
      for _, set in ipairs(docs) do fn(set[kind]) end
    end
    best = math.min(best, (os.clock() - t0) / (rounds // 5))
  end
  return best / #docs
end

-- the whole parse (a view over the whole tree); the whole parse then the
-- model read from the view; "model" mode (core.decode(s, "model"): the
-- whole parse, the model read and pushed as a table, the document freed).
local function parse(s) return core.decode(s) end
local function whole_model(s) return core.order_model(core.decode(s)) end
local function model_mode(s) return core.decode(s, "model") end
print(("%d cases; %d rounds; best of 5"):format(#docs, rounds))
print(("| %-18s | %5s | %11s | %14s | %11s | %13s |"):format("document", "KB", "parse us",
      "parse+model us", "model us", "model mode us"))
print("|---|---:|---:|---:|---:|---:|")
local function row(name, bytes, tp, tb, ts)
  print(("| %-18s | %5.1f | %11.1f | %14.1f | %11.1f | %13.1f |"):format(name, bytes / 1024,
        tp * 1e6, tb * 1e6, (tb - tp) * 1e6, ts * 1e6))
end
local sum = { bytes = 0, parse = 0, both = 0, mode = 0 }
for _, k in ipairs(kinds) do
  local bytes = 0
  for _, set in ipairs(docs) do bytes = bytes + #set[k] end
  bytes = bytes / #docs
  local tp, tb, ts = time(k, parse), time(k, whole_model), time(k, model_mode)
  row(k, bytes, tp, tb, ts)
  sum.bytes, sum.parse, sum.both, sum.mode = sum.bytes + bytes, sum.parse + tp, sum.both + tb,
                                             sum.mode + ts
end
row("a case (the three)", sum.bytes, sum.parse, sum.both, sum.mode)
