#!/bin/sh
# Requests per retried case, with and without truv-renew --reuse-model, by
# polling and with webhooks, for two reasons a case is retried. For each
# reason and each of the four, a fresh sandbox with the same seeded cases,
# runs that route them to retry, the retries made due, the sandbox's
# counters zeroed, and a later run (the one measured) that refreshes them.
#   outage     every provider down (a long outage): a first run refreshes
#              every case and routes it to retry (the tasks end
#              `unavailable`, Truv sends `link-disconnected`); then the
#              providers are back up.
#   throttled  Truv's rate limit refuses the refresh POSTs (429, nothing
#              created or billed): a first run reads every original and
#              journals its model, sending nothing (--max-billed 0); then the
#              sandbox's limit is 1 request a minute, its one slot taken, and
#              a second run (models from the journal: no read) meets a 429
#              on each send of each refresh; a refresh refused on all of its
#              sends (truv.refresh's max_sends, 3) routes its case to retry.
#              The few refreshes the limit let through (one a minute) are
#              not measured: those cases are left out of the later run; then
#              the limit is lifted.
# Figures are the sandbox's own counts of the later run: requests per case,
# and of them the reads of orders (originals, refresh orders), of events and
# the refresh POSTs.
#   bench/reuse_model.sh [BUILD_DIR]
# REUSE_CASES (400), REUSE_SCALE (10: virtual seconds per wall second),
# REUSE_SCENARIOS ("outage throttled"; a throttled one takes about 4 minutes
# of wall time before its later run: the rate limit's minute, three sends)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/release}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
out="$top/build/bench-reuse-model"
N=${REUSE_CASES:-400}; SCALE=${REUSE_SCALE:-10}
SCENARIOS=${REUSE_SCENARIOS:-outage throttled}
poll=$(awk "BEGIN { print 2 / $SCALE }")     # Truv's quickstart's 2 s, compressed
rm -rf "$out"; mkdir -p "$out"
export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;"
export LUA_CPATH="$build/lua/5.4/?.so;;"
export TRUV_CLIENT_ID=sandbox-client-id TRUV_SECRET=sandbox-secret
pid=""
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap stop EXIT INT TERM

free_port() {
  lua5.4 -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
             local _, p = s:getsockname() print(p) s:close()'
}

# start_sandbox [ARGS...]: the same cases every time (--rng-seed)
start_sandbox() {
  rm -f "$out/port"
  "$build/sandbox/truv-sandbox" --port 0 --port-file "$out/port" --threads 2 \
    --realtime --time-scale "$SCALE" --rate-limit 0 --seed-cases "$N" --rng-seed 11 \
    --cases-out "$out/cases.csv" "$@" > "$out/sandbox.log" 2>&1 &
  pid=$!
  i=0
  while [ ! -s "$out/port" ]; do
    i=$((i + 1)); [ $i -gt 1000 ] && { cat "$out/sandbox.log"; exit 1; }; sleep 0.01
  done
  port=$(cat "$out/port")
}

control() {   # control PATH JSON: a /_sandbox/ call
  curl -sf -o /dev/null -d "$2" -H 'Content-Type: application/json' \
    "http://127.0.0.1:$port/_sandbox/$1"
}

# due SCENARIO JOURNAL MEASURED: checks that the earlier runs routed the
# cases as the scenario means, makes the measured ones due and writes their
# ids to MEASURED; a case the scenario does not measure is put off by 10 days
# (the later run leaves it alone). Prints the orders of the measured cases.
due() {
  lua5.4 - "$@" <<'LUA'
local core = require "truv.core"
local sends = require("truv.refresh").DEFAULTS.max_sends   -- truv-renew's
local scenario, measured = arg[1], {}
local j = assert(core.journal_open(arg[2]))
local later = {}
for rec in j:each{} do
  local ok
  if scenario == "outage" then
    assert(rec.route == "retry", "a case of the first run was not routed to retry: " .. rec.case_id)
    ok = true
  else
    -- a refresh Truv refused as over its rate limit on every send: nothing
    -- exists at Truv (no refresh order, no resume point), the model journaled
    ok = rec.route == "retry" and rec.reason == "throttled" and rec.state == "scheduled"
         and rec.attempts == sends and rec.refresh_order_id == nil and rec.resume == nil
         and type(rec.original_model) == "string"
         and tostring(rec.error):find("in refresh_order (HTTP 429", 1, true) ~= nil
  end
  if ok then
    measured[#measured + 1] = rec.case_id
    print(core.decode(rec.input, "table").order_id)
  elseif rec.state ~= "routed" then
    later[#later + 1] = rec.case_id
  end
end
assert(#measured > 0, "no case was routed as the scenario means")
for _, id in ipairs(measured) do assert(j:put(id, { retry_at = core.now() - 1 })) end
for _, id in ipairs(later) do assert(j:put(id, { retry_at = core.now() + 864000 })) end
assert(j:close())
local f = assert(io.open(arg[3], "w"))
f:write(table.concat(measured, "\n"), "\n")
f:close()
LUA
}

# variant SCENARIO WAIT REUSE: the earlier runs, then the measured later run
variant() {
  scenario=$1; wait=$2; reuse=$3
  name="$scenario-$wait-$([ "$reuse" = on ] && echo reuse || echo read)"
  hook=""
  if [ "$scenario" = outage ]; then
    set -- --mix provider_down=1 --provider-down-s 864000
  else
    set -- --mix active=1
  fi
  if [ "$wait" = webhook ]; then
    hook_port=$(free_port)
    start_sandbox "$@" --webhook-url "http://127.0.0.1:$hook_port/truv/webhooks"
    hook="--listen 127.0.0.1:$hook_port"
  else
    start_sandbox "$@"
  fi
  base="http://127.0.0.1:$port/v1/"
  # shellcheck disable=SC2086
  renew() {
    lua5.4 "$top/bin/truv-renew" --quiet --journal "$out/$name.journal" --quota "$out/$name.quota" \
      --base-url "$base" --rate 0 --poll-interval "$poll" $hook "$@" "$out/cases.csv" \
      >> "$out/$name.out" 2>&1
  }
  if [ "$scenario" = outage ]; then
    renew
  else
    renew --max-billed 0
    control config '{"rate_limit": 1}'
    # the minute's one request, taken by a read (the first case's order)
    curl -sf -o /dev/null -H "X-Access-Client-Id: $TRUV_CLIENT_ID" \
      -H "X-Access-Secret: $TRUV_SECRET" "${base}orders/$(sed -n 2p "$out/cases.csv" | cut -d, -f2)/"
    renew --reuse-model 1d
    control config '{"rate_limit": 0}'
  fi
  # the retries are due, the providers are back, the counters start at zero
  due "$scenario" "$out/$name.journal" "$out/$name.measured" > "$out/$name.orders"
  if [ "$scenario" = outage ]; then
    while read -r id; do
      control connections/state "{\"order_id\":\"$id\",\"state\":\"active\"}"
    done < "$out/$name.orders"
  fi
  control stats/reset '{}'
  if [ "$reuse" = on ]; then renew --reuse-model 1d; else renew; fi
  curl -s "http://127.0.0.1:$port/_sandbox/stats" > "$out/$name.stats.json"
  stop
  lua5.4 - "$name" "$out/$name.stats.json" "$out/$name.journal" "$out/$name.measured" <<'LUA'
local cjson = require "cjson"
local core = require "truv.core"
local name = arg[1]
local s = cjson.decode(io.open(arg[2]):read("a"))
local function count(ep)
  local t = 0
  for _, c in pairs(s.requests.by_endpoint[ep] or {}) do t = t + c end
  return t
end
local j = assert(core.journal_open(arg[3]))
local n, done = 0, 0
for id in io.lines(arg[4]) do
  n = n + 1
  if assert(j:get(id)).route == "done" then done = done + 1 end
end
j:close()
local total = s.requests.total
local orders, events = count("GET /v1/orders/{id}/"), count("GET /v1/orders/{id}/events/")
local posts = count("POST /v1/orders/{id}/")
print(string.format("%-25s %4d cases (%d done): %.2f requests per case: order reads %.2f, "
  .. "events %.2f, refresh POSTs %.2f, other %.2f", name, n, done, total / n, orders / n,
  events / n, posts / n, (total - orders - events - posts) / n))
for ep, by in pairs(s.requests.by_endpoint) do
  if ep:find("/v1/", 1, true) and ep ~= "GET /v1/orders/{id}/" and ep ~= "POST /v1/orders/{id}/"
     and ep ~= "GET /v1/orders/{id}/events/" then
    local c = 0
    for _, k in pairs(by) do c = c + k end
    print(string.format("%-25s   other: %s %d", "", ep, c))
  end
end
LUA
}

for scenario in $SCENARIOS; do
  case "$scenario" in
    outage) what="every provider down in the first run" ;;
    throttled) what="every refresh POST refused by the rate limit (429)" ;;
    *) echo "unknown scenario '$scenario' (outage, throttled)" >&2; exit 2 ;;
  esac
  echo "== retried cases' later run ($scenario: $what): $N cases seeded, time x$SCALE," \
       "polling every ${poll}s or webhooks"
  variant "$scenario" poll off
  variant "$scenario" poll on
  variant "$scenario" webhook off
  variant "$scenario" webhook on
done
