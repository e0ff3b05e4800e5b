--- Checking a caller's options: known names, the right types, numbers in
-- range. A wrong option is the caller's mistake, so it raises, at the
-- caller's line, with a message that names the option and says what it
-- accepts:
--
--   bad option 'timeout' to 'new' (unknown option; did you mean 'timeout_ms'?)
--   bad option 'refresh.max_sends' to 'new' (an integer from 1 to 10 expected, got 0)
--
-- `level` is the caller's level as seen from the function doing the check
-- (2: whoever called it), as for error().
local type, pairs, tostring, error, pcall = type, pairs, tostring, error, pcall
local format = string.format
local huge, min = math.huge, math.min
local sort, concat = table.sort, table.concat

local _M = {}

local function raise(fname, name, what, level)
  error(format("bad option '%s' to '%s' (%s)", name, fname, what), level + 1)
end

local function shown(v)
  if type(v) == "string" then return format("%q", v) end
  if type(v) == "number" then return format("%.14g", v) end
  return type(v)
end

-- Levenshtein distance, for "did you mean".
local function distance(a, b)
  local prev, cur = {}, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    cur[0] = i
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev, cur = cur, prev
  end
  return prev[#b]
end

local function closest(name, known)
  local best, best_d
  for k in pairs(known) do
    local d = distance(name, k)
    if k:sub(1, #name) == name or name:sub(1, #k) == k then d = min(d, 1) end
    if d <= 3 and (not best_d or d < best_d or (d == best_d and k < best)) then
      best, best_d = k, d
    end
  end
  return best
end

--- Raises on a key of `opts` that `known` (a set) does not hold. `prefix`
-- names a nested table ("retry.").
function _M.names(fname, opts, known, level, prefix)
  prefix = prefix or ""
  for k in pairs(opts) do
    if type(k) ~= "string" then
      raise(fname, prefix .. tostring(k), "option names are strings", level + 1)
    end
    if known[k] == nil then
      local near = closest(k, known)
      local list = {}
      for n in pairs(known) do list[#list + 1] = n end
      sort(list)
      raise(fname, prefix .. k, near and ("unknown option; did you mean '" .. prefix .. near .. "'?")
            or ("unknown option; known: " .. concat(list, ", ")), level + 1)
    end
  end
end

local function range_text(r)
  local kind = r.integer and "an integer" or "a number"
  local lo = r.above and ("> " .. shown(r.above)) or (r.min and (">= " .. shown(r.min)))
  if r.min and r.max then
    return format("%s from %s to %s", kind, shown(r.min), shown(r.max))
  elseif lo and r.max then
    return format("%s %s and <= %s", kind, lo, shown(r.max))
  elseif lo then
    return format("%s %s", kind, lo)
  end
  return kind
end
_M.range_text = range_text

--- Whether v (a number) is within r = { min =, above =, max =, integer = }.
function _M.in_range(v, r)
  if type(v) ~= "number" or v ~= v or v == huge or v == -huge then return false end
  if r.integer and v % 1 ~= 0 then return false end
  if r.min and v < r.min then return false end
  if r.above and v <= r.above then return false end
  if r.max and v > r.max then return false end
  return true
end

--- Returns v if it is nil or a finite number in range r (see in_range);
-- raises otherwise. r.unit is added to the message ("milliseconds"), and
-- r.otherwise names what else is accepted ("false").
function _M.number(fname, name, v, r, level)
  if v == nil or _M.in_range(v, r) then return v end
  raise(fname, name, format("%s%s%s expected, got %s", range_text(r),
                            r.unit and (" (" .. r.unit .. ")") or "",
                            r.otherwise and (", or " .. r.otherwise .. ",") or "", shown(v)),
        level + 1)
end

--- Checks every number of `opts` that `ranges` names ({ key = range }).
function _M.numbers(fname, opts, ranges, level, prefix)
  for k, r in pairs(ranges) do
    _M.number(fname, (prefix or "") .. k, opts[k], r, level + 1)
  end
end

--- Returns v if it is nil, true or false; raises otherwise: a string such as
-- "false" or a number such as 0 would be true in Lua, which is never what a
-- caller who wrote it meant.
function _M.boolean(fname, name, v, level)
  if v == nil or v == true or v == false then return v end
  raise(fname, name, "true or false expected, got " .. shown(v), level + 1)
end

--- What a store given as an option says it is (its `kind` and `path`,
-- see truv.quota): { kind = its kind, or "custom", path = its path or nil }.
-- A field that cannot be read (a userdata store may raise) is not said.
function _M.store_where(store)
  local ok, kind = pcall(function() return store.kind end)
  local _, path = pcall(function() return store.path end)
  return { kind = ok and type(kind) == "string" and kind or "custom",
           path = type(path) == "string" and path or nil }
end

return _M
