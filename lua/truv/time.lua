--- Instants: epoch seconds (with a fraction) inside lua-truv, ISO 8601 in
-- Truv's answers and in what lua-truv writes for people and logs (the
-- progress lines, the report, truv-renew's messages). One way to read
-- them and one to write them.
--
--   time.iso8601(1800000000.25)        --> "2027-01-15T08:00:00Z"
--   time.iso8601(1800000000.25, true)  --> "2027-01-15T08:00:00.250Z"
--   time.parse("2027-01-15T08:00:00Z") --> 1800000000
local core = require "truv.core"

local type, tostring = type, tostring
local floor, min = math.floor, math.min
local date, format = os.date, string.format

local _M = {}

--- Epoch seconds -> "2026-05-01T12:00:00Z" (UTC; with milliseconds,
-- ".123", when `ms`). Anything else is passed through as text, and nil
-- stays nil, so that a time a record may lack is written as it is.
function _M.iso8601(t, ms)
  if type(t) ~= "number" then return t ~= nil and tostring(t) or nil end
  local whole = floor(t)
  local s = date("!%Y-%m-%dT%H:%M:%S", whole)
  if ms then s = s .. format(".%03d", min(999, floor((t - whole) * 1000))) end
  return s .. "Z"
end

--- An ISO 8601 text, as Truv writes its times -> epoch seconds; nil for
-- anything else (an absent or malformed time).
function _M.parse(s)
  return type(s) == "string" and core.parse_time(s) or nil
end

return _M
