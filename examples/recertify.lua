--- recertify.lua: a nightly recertification batch with your own handlers.
--
-- Start here if you want what truv-renew does, but wired into your own
-- systems. Copy this file and replace the three handlers below with calls
-- into your case management system, your mailer and your ticket queue.
--
-- Try it against the local sandbox (from the repository, after `make`):
--
--   build/release/sandbox/truv-sandbox --port 8900 --seed-cases 50 \
--       --cases-out /tmp/cases.csv --realtime --time-scale 50 --rate-limit 0 &
--   LUA_PATH="lua/?.lua;;" LUA_CPATH="build/release/lua/5.4/?.so;;" \
--   TRUV_BASE_URL=http://127.0.0.1:8900/v1/ \
--   TRUV_CLIENT_ID=sandbox-client-id TRUV_SECRET=sandbox-secret \
--       lua5.4 examples/recertify.lua /tmp/cases.csv /tmp/recertify.journal
--
-- Arguments: CASES_FILE [JOURNAL] [BASE_URL]. Credentials come from the
-- environment only (TRUV_CLIENT_ID, TRUV_SECRET), never from arguments:
-- other users of the machine can read a process's command line.
local truv = require "truv"
local renewal = require "truv.renewal"
local report = require "truv.report"

local cases_file = arg[1] or os.getenv("CASES_FILE")
local journal_file = arg[2] or "recertify.journal"
local base_url = arg[3] or os.getenv("TRUV_BASE_URL") or "https://prod.truv.com/v1/"
if not cases_file then
  io.stderr:write("usage: lua5.4 examples/recertify.lua CASES_FILE [JOURNAL] [BASE_URL]\n")
  os.exit(2)
end

-- ---------------------------------------------------------------------------
-- The handlers. Each one is called when the case reaches its route, as
-- handler(decision, case, outcome), at least once: a batch killed after a
-- handler returned calls it again on resume with the same outcome.key:
--   decision  { route =, reason =, retry_at =, not_before = } (see truv.route)
--   case      the input row: case_id, order_id, product, first_name, email, ...
--   outcome   what produced the decision: outcome.order is the fresh refresh
--             order (done), outcome.link the new verification link
--             (reverify), outcome.error the error (fix, retry, ...);
--             outcome.key the same string for every call about this outcome
--             (record it to act once), outcome.refresh_order_id
-- If a handler raises, the batch goes on: the case keeps its route and the
-- failure is recorded in the journal (handler_error) and shown in the report.

-- done: fresh data arrived. A real agency would copy the income figures onto
-- the caseworker's screen; here, one line per case in a file.
local prefill = assert(io.open("prefill.log", "a"))
local function on_done(decision, case, outcome)
  prefill:write(string.format("%s\torder %s\t%s\n", case.case_id, outcome.order.id,
                              decision.reason))
end

-- reverify: the connection needs the applicant again (expired, password
-- changed, MFA, locked). The batch already created the new verification link;
-- a real agency would email or text it. Here, printed.
local function on_reverify(decision, case, outcome)
  local link = outcome.link
  if link then
    print(string.format("email %s <%s>: please reconnect (%s): %s", case.first_name or "applicant",
                        case.email or "no email on file", decision.reason, link.share_url))
  end
end

-- fix: nothing automatic will help (a bad order id, a product Truv does not
-- support for this connection, a configuration problem). A real agency would
-- open a ticket; here, a list printed at the end.
local tickets = {}
local function on_fix(decision, case)
  tickets[#tickets + 1] = string.format("case %s (order %s): %s", case.case_id, case.order_id,
                                        decision.reason)
end

-- retry, defer, no_data need no handler: retry and defer are scheduled in the
-- journal (run this script again later with the same journal and they are
-- picked up once due), no_data is reported.
local router = truv.router{ done = on_done, reverify = on_reverify, fix = on_fix }

-- ---------------------------------------------------------------------------
-- The run. renewal.run reads the cases, and for each one plans, refreshes,
-- waits, routes and calls the handler above, many cases at once. The journal
-- is what makes it safe to stop: run the script again with the same journal
-- and it carries on, never refreshing a case twice.
local summary, err = renewal.run{
  cases = cases_file,
  journal = journal_file,
  client = {
    client_id = os.getenv("TRUV_CLIENT_ID"),
    secret = os.getenv("TRUV_SECRET"),
    base_url = base_url,
  },
  router = router,
  concurrency = 16,            -- requests in flight
  rate_per_minute = tonumber(os.getenv("TRUV_RATE")) or 300,  -- Truv's limit
  poll = { interval_s = 0.5 },  -- the sandbox is quick; Truv's quickstart polls every 2 s
  -- Progress: every case event. Here, only the problems.
  on_event = function(ev)
    if ev.event == "bad_row" then
      io.stderr:write(string.format("skipped line %d: %s\n", ev.line, ev.message))
    elseif ev.event == "error" or ev.event == "handler_error" then
      io.stderr:write(string.format("case %s: %s\n", ev.case_id, ev.message))
    end
  end,
}
prefill:close()
if not summary then
  io.stderr:write("the batch could not run: ", tostring(err), "\n")
  os.exit(1)
end

-- The same table truv-renew prints, then the tickets to open.
io.write("\n", report.summary_table(summary))
if #tickets > 0 then
  print("\ntickets to open:")
  for _, t in ipairs(tickets) do print("  " .. t) end
end
