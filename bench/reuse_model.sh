#!/bin/sh
# Requests per retried case, with and without truv-renew --reuse-model, by
# polling and with webhooks: for each of the four, a fresh sandbox with the
# same seeded cases whose providers are all down (a long outage), a first
# run that routes every case to retry, then the providers back up, the
# retries made due, the sandbox's counters zeroed, and a later run (the one
# measured) that refreshes them. Figures are the sandbox's own counts of the
# later run: requests per case, and of them the reads of orders (originals,
# refresh orders), of events and the refresh POSTs.
#   bench/reuse_model.sh [BUILD_DIR]
# REUSE_CASES (400), REUSE_SCALE (10: virtual seconds per wall second)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/release}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
out="$top/build/bench-reuse-model"
N=${REUSE_CASES:-400}; SCALE=${REUSE_SCALE:-10}
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
    --mix provider_down=1 --provider-down-s 864000 --cases-out "$out/cases.csv" "$@" \
    > "$out/sandbox.log" 2>&1 &
  pid=$!
  i=0
  while [ ! -s "$out/port" ]; do
    i=$((i + 1)); [ $i -gt 1000 ] && { cat "$out/sandbox.log"; exit 1; }; sleep 0.01
  done
  port=$(cat "$out/port")
}

# variant NAME WAIT REUSE: a first run, then the measured later run
variant() {
  name=$1; wait=$2; reuse=$3
  hook=""
  if [ "$wait" = webhook ]; then
    hook_port=$(free_port)
    start_sandbox --webhook-url "http://127.0.0.1:$hook_port/truv/webhooks"
    hook="--listen 127.0.0.1:$hook_port"
  else
    start_sandbox
  fi
  base="http://127.0.0.1:$port/v1/"
  # shellcheck disable=SC2086
  renew() {
    lua5.4 "$top/bin/truv-renew" --quiet --journal "$out/$name.journal" --quota "$out/$name.quota" \
      --base-url "$base" --rate 0 --poll-interval "$poll" $hook "$@" "$out/cases.csv" \
      >> "$out/$name.out" 2>&1
  }
  renew
  # the providers are back, the retries are due, the counters start at zero
  lua5.4 - "$out/$name.journal" "http://127.0.0.1:$port" <<'LUA'
local core = require "truv.core"
local j = assert(core.journal_open(arg[1]))
local list, orders = {}, {}
for rec in j:each{} do
  assert(rec.route == "retry", "a case of the first run was not routed to retry: " .. rec.case_id)
  list[#list + 1] = rec.case_id
  orders[#orders + 1] = core.decode(rec.input, "table").order_id
end
for _, id in ipairs(list) do assert(j:put(id, { retry_at = core.now() - 1 })) end
assert(j:close())
for _, id in ipairs(orders) do
  assert(os.execute(string.format("curl -sf -o /dev/null -d '{\"order_id\":\"%s\",\"state\":"
    .. "\"active\"}' -H 'Content-Type: application/json' %s/_sandbox/connections/state", id, arg[2])))
end
LUA
  curl -sf -o /dev/null -X POST -d '{}' "http://127.0.0.1:$port/_sandbox/stats/reset"
  if [ "$reuse" = on ]; then renew --reuse-model 1d; else renew; fi
  curl -s "http://127.0.0.1:$port/_sandbox/stats" > "$out/$name.stats.json"
  stop
  lua5.4 - "$name" "$out/$name.stats.json" "$out/$name.journal" "$N" <<'LUA'
local cjson = require "cjson"
local core = require "truv.core"
local name, n = arg[1], tonumber(arg[4])
local s = cjson.decode(io.open(arg[2]):read("a"))
local function count(ep)
  local t = 0
  for _, c in pairs(s.requests.by_endpoint[ep] or {}) do t = t + c end
  return t
end
local j = assert(core.journal_open(arg[3]))
local done = 0
for rec in j:each{} do if rec.route == "done" then done = done + 1 end end
j:close()
local total = s.requests.total
print(string.format("%-16s %4d cases (%d done): %.2f requests per case: order reads %.2f, "
  .. "events %.2f, refresh POSTs %.2f, other %.2f", name, n, done, total / n,
  count("GET /v1/orders/{id}/") / n, count("GET /v1/orders/{id}/events/") / n,
  count("POST /v1/orders/{id}/") / n, (total - count("GET /v1/orders/{id}/")
  - count("GET /v1/orders/{id}/events/") - count("POST /v1/orders/{id}/")) / n))
LUA
}

echo "== retried cases' later run: $N cases, time x$SCALE, polling every ${poll}s or webhooks"
variant poll-read poll off
variant poll-reuse poll on
variant webhook-read webhook off
variant webhook-reuse webhook on
