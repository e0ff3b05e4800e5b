--- The cases of a bulk renewal (truv.renewal) into its journal, and back
-- out: a case file or list read into the journal once (truv.cases checks
-- every row), the ids of the cases a run works on, and a case read back
-- from its record.
--
--   load.cases(ctx, input)   -> n, problems | nil, err | nil, nil, { problem }
--   load.due(ctx)            -> { case_id, ... } | nil, err
--   load.case(rec)           -> the case a journal record holds
--
-- ctx is the run's context (see truv.renewal.case): its journal, clock and
-- on_event.
local core = require "truv.core"
local cases_mod = require "truv.cases"
local route_mod = require "truv.route"
local case_mod = require "truv.renewal.case"

local type, ipairs, tostring, error, pcall = type, ipairs, tostring, error, pcall
local setmetatable = setmetatable
local get, put, emit, journal_failure = case_mod.get, case_mod.put, case_mod.emit,
                                        case_mod.journal_failure

local _M = {}

-- A case as its journal record keeps it (`input`), and back.
local function case_input(case)
  return core.encode{
    case_id = case.case_id, order_id = case.order_id, product = case.product,
    employers = setmetatable(case.employers or {}, { __jsontype = "array" }),
    financial_accounts = setmetatable(case.financial_accounts or {}, { __jsontype = "array" }),
    first_name = case.first_name, last_name = case.last_name, email = case.email,
    phone = case.phone, order_number = case.order_number,
  }
end

--- The case a journal record holds (its input, and the line it was read at).
function _M.case(rec)
  local c = core.decode(rec.input, "table")
  c.line = rec.line
  return c
end

-- Adds the input's cases to the journal (existing ones are left alone) and
-- records bad rows as failed. Returns n, problems, or nil, err when the
-- journal cannot be written, or nil, nil, { problem } when the input cannot
-- be read at all.
function _M.cases(ctx, input)
  local iter = type(input) == "string" and cases_mod.each(input) or cases_mod.each_list(input)
  local j = ctx.journal
  local function write(ok, err)
    if not ok then error({ run_error = journal_failure(err) }, 0) end
  end
  local ok, n, problems = pcall(function()
    -- one transaction: an input that cannot be read to its end adds nothing
    write(j:begin())
    -- bad rows describe this reading of the input: the previous reading's go
    local stale = {}
    for rec in j:each{ state = "failed" } do stale[#stale + 1] = rec.case_id end
    for _, id in ipairs(stale) do write(j:delete(id)) end
    local count, list = 0, {}
    for fine, v in iter do
      if fine then
        count = count + 1
        if not get(ctx, v.case_id) then
          put(ctx, v.case_id, { state = "new", input = case_input(v), line = v.line,
                                order_id = v.order_id })
        end
      elseif v.line == 0 then
        j:rollback()
        return nil, { v }
      else
        list[#list + 1] = v
        local id = v.case_id and ("line-" .. v.line .. ":" .. v.case_id) or ("line-" .. v.line)
        put(ctx, id, { state = "failed", line = v.line, error = v.message })
        emit(ctx, { event = "bad_row", line = v.line, case_id = v.case_id, message = v.message })
      end
    end
    write(j:commit())
    return count, list
  end)
  if ok then
    if n == nil then return nil, nil, problems end
    return n, problems
  end
  j:rollback()   -- nothing of this reading stays (a no-op outside a group)
  if type(n) == "table" and n.run_error then return nil, n.run_error end
  if type(n) == "string" and n:find("journal", 1, true) then
    return nil, journal_failure({ message = n })
  end
  error(n, 0)
end

-- The ids of the cases this run works on: not final, and scheduled ones
-- only once due. Ids only: a record is read again when its turn comes, so a
-- 100 000-case run does not keep every case's input in memory (where every
-- collection would walk it). nil, err when the journal cannot be read.
function _M.due(ctx)
  local list = {}
  local now = ctx.clock()
  local ok, err = pcall(function()
    for rec in ctx.journal:each{ not_state = { "routed", "failed" } } do
      local due = rec.state ~= "scheduled" or (route_mod.due_at(rec) or 0) <= now
      if due then list[#list + 1] = rec.case_id end
    end
  end)
  if not ok then return nil, journal_failure({ message = tostring(err) }) end
  return list
end

return _M
