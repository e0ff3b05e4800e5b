-- The gateway's handlers for bench/openresty.sh: nothing to do, so that the
-- benchmark measures the receiving path itself (read, verify, parse,
-- de-duplicate, order, route, call the handler, answer).
local _M = {}
local function nothing() end
for _, r in ipairs{ "done", "reverify", "retry", "defer", "no_data", "fix", "wait" } do
  _M[r] = nothing
end
return _M
