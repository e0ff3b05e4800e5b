#!/bin/sh
# The engine's own cost, each beside its anchor in one run:
#  1. truv-renew's throughput against a bare libcurl-multi C client making
#     the same calls (bench/renewal_multi.c: read the original order, POST
#     the refresh on a fresh connection, poll the refresh order), sandbox
#     without latency or rate limit, the same requests in flight; wrk's GET
#     on the same sandbox is printed as its capacity only;
#  2. client CPU per case over TLS (the sandbox's --tls, peers verified
#     against its test CA): truv-renew, the Python aiohttp client
#     (bench/renewal_aiohttp.py) and the C client, the same cases each.
#
#   bench/engine.sh [BUILD_DIR]
#
# Variables: TRUV_REPO, TRUV_BUILD as in bench/limits.sh (the truv-renew
# tested); ENGINE_CASES [3000]; ENGINE_INFLIGHT [32, truv-renew's default].
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/release}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
repo=$(cd "${TRUV_REPO:-$top}" && pwd)
rbuild=${TRUV_BUILD:-$repo/build/release}
sb_bin="$build/sandbox/truv-sandbox"
out="$top/build/bench-engine"
N=${ENGINE_CASES:-3000}; C=${ENGINE_INFLIGHT:-32}
# truv-renew keeps 1.25 cases in progress per request slot: the C client too
ACTIVE=$((C * 5 / 4))
export TRUV_CLIENT_ID=sandbox-client-id TRUV_SECRET=sandbox-secret
mkdir -p "$out"
# shellcheck disable=SC2046
cc -O2 -Wall -Wextra -Werror -o "$out/renewal_multi" "$top/bench/renewal_multi.c" \
  $(pkg-config --cflags --libs libcurl libcjson)
pid=""
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap stop EXIT INT TERM

# start_sandbox [--tls]: the same cases every time (seed 11), tasks of 20
# virtual s done in 2 ms; sets pid, base, port
start_sandbox() {
  rm -f "$out/port" "$out/ca.pem"
  "$sb_bin" --port 0 --port-file "$out/port" --rate-limit 0 --realtime --time-scale 10000 \
    --threads 2 --seed-cases "$N" --mix active=1 --rng-seed 11 --cases-out "$out/cases.csv" \
    "$@" > "$out/sandbox.log" 2>&1 &
  pid=$!
  i=0
  while [ ! -s "$out/port" ]; do
    i=$((i + 1)); [ $i -gt 1000 ] && { cat "$out/sandbox.log"; exit 1; }; sleep 0.01
  done
  port=$(cat "$out/port")
  case "$*" in *--tls*) scheme=https ;; *) scheme=http ;; esac
  base="$scheme://127.0.0.1:$port/v1/"
}
requests() {
  curl -s ${ca:+--cacert "$ca"} "${base%v1/}_sandbox/stats" |
    sed 's/.*"requests":{"total":\([0-9]*\).*/\1/'
}
json() { echo "$1" | sed "s/.*\"$2\": *\([0-9.]*\).*/\1/"; }
# the TCP connections the sandbox accepted so far (over TLS each a handshake)
accepted() {
  curl -s ${ca:+--cacert "$ca"} "${base%v1/}_sandbox/stats" |
    sed 's/.*"connections":{"accepted":\([0-9]*\).*/\1/'
}
# measured CMD...: runs it, prints {"wall_s":..,"cpu_s":..} (user + system of the command)
measured() {
  /usr/bin/python3 -c '
import resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("{\"rc\":%d,\"wall_s\":%.3f,\"cpu_s\":%.3f}" % (rc, time.monotonic() - t, r.ru_utime + r.ru_stime))
' "$@"
}
renew() { # CA_FILE or "", [CASES_FILE]
  rm -f "$out/j" "$out/j-"* "$out/q" "$out/q-"*
  measured env TRUV_BUILD_DIR="$rbuild" LUA_PATH="$repo/lua/?.lua;$repo/lua/?/init.lua;;" \
    LUA_CPATH="$rbuild/lua/5.4/?.so;;" "$repo/bin/truv-renew" --journal "$out/j" --quota "$out/q" \
    --base-url "$base" --rate 0 --concurrency "$C" --poll-interval 0.01 --quiet \
    ${1:+--ca-file "$1"} "${2:-$out/cases.csv}"
}
# truv-renew's start (Lua, modules, journal and quota files) is not per case:
# a run of one case, on a sandbox of its own, is taken off (wall and CPU)
renew_one() { # CA_FILE or ""
  head -n 2 "$out/cases.csv" > "$out/one.csv"
  renew "$1" "$out/one.csv"
}
minus() { awk "BEGIN { printf \"%.3f\", $1 - $2 }"; }
per() { awk "BEGIN { printf \"%.0f\", $1 / $2 }"; }
us() { awk "BEGIN { printf \"%.0f\", $1 / $2 * 1e6 }"; }
ratio() { awk "BEGIN { printf \"%.2f\", $1 / $2 }"; }

echo "truv-renew from $repo ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))"
echo "== 1. throughput, $N cases, $C requests in flight, no latency, no rate limit"
echo "(truv-renew: a run of one case, its start, taken off its wall and CPU time)"
ca=""
start_sandbox
r0=$(requests); one=$(renew_one ""); r_one=$(( $(requests) - r0 ))
stop
start_sandbox
order=$(sed -n 2p "$out/cases.csv" | cut -d, -f2)
wrk_rps=$(wrk -t2 -c"$C" -d3s -H "X-Access-Client-Id: $TRUV_CLIENT_ID" \
          -H "X-Access-Secret: $TRUV_SECRET" "${base}orders/$order/" | awk '/Requests\/sec/ { printf "%.0f", $2 }')
r0=$(requests); ours=$(renew ""); r_ours=$(( $(requests) - r0 ))
stop
[ "$(json "$ours" rc)" = 0 ] || { echo "truv-renew failed" >&2; exit 1; }
start_sandbox
r0=$(requests)
bare=$("$out/renewal_multi" "$base" "$out/cases.csv" "$C" "$ACTIVE" 0.01 fresh)
r_bare=$(( $(requests) - r0 ))
stop
raw_rps=$(per "$r_ours" "$(json "$ours" wall_s)")
ours_wall=$(minus "$(json "$ours" wall_s)" "$(json "$one" wall_s)")
ours_cpu=$(minus "$(json "$ours" cpu_s)" "$(json "$one" cpu_s)")
ours_rps=$(per "$((r_ours - r_one))" "$ours_wall"); bare_rps=$(per "$r_bare" "$(json "$bare" wall_s)")
echo "truv-renew: $r_ours requests in $(json "$ours" wall_s) s ($raw_rps req/s); less its start: $ours_rps req/s, CPU $(us "$ours_cpu" "$N") us/case"
echo "C multi:    $r_bare requests in $(json "$bare" wall_s) s = $bare_rps req/s, CPU $(us "$(json "$bare" cpu_s)" "$N") us/case"
echo "ratio truv-renew / C multi: $(ratio "$ours_rps" "$bare_rps")x (target >= 0.5x); sandbox capacity (wrk GET, $C connections): $wrk_rps req/s"

echo "== 2. client CPU per case over TLS, $N cases, $C in flight"
start_sandbox --tls --ca-out "$out/ca.pem"; ca="$out/ca.pem"
one=$(renew_one "$ca")
stop
start_sandbox --tls --ca-out "$out/ca.pem"
ours=$(renew "$ca")
# less the one asking for them
ours_conns=$(( $(accepted) - 1 ))
stop
ours_cpu=$(minus "$(json "$ours" cpu_s)" "$(json "$one" cpu_s)")
[ "$(json "$ours" rc)" = 0 ] || { echo "truv-renew over TLS failed" >&2; exit 1; }
start_sandbox --tls --ca-out "$out/ca.pem"
py=$(/usr/bin/python3 "$top/bench/renewal_aiohttp.py" "$base" "$out/cases.csv" "$C" "$out/py.journal" "$ca")
stop
start_sandbox --tls --ca-out "$out/ca.pem"
bare=$("$out/renewal_multi" "$base" "$out/cases.csv" "$C" "$ACTIVE" 0.01 fresh "$ca")
stop
start_sandbox --tls --ca-out "$out/ca.pem"
reuse=$("$out/renewal_multi" "$base" "$out/cases.csv" "$C" "$ACTIVE" 0.01 reuse "$ca")
stop
echo "truv-renew:          $(us "$ours_cpu" "$N") us/case less its start ($(us "$(json "$ours" cpu_s)" "$N") with it; $ours_conns connections, $(json "$ours" wall_s) s)"
echo "aiohttp:             $(us "$(json "$py" cpu_s)" "$N") us/case ($(json "$py" requests) requests, $(json "$py" wall_s) s)"
echo "C multi, fresh POST: $(us "$(json "$bare" cpu_s)" "$N") us/case ($(json "$bare" connects) connections, $(json "$bare" wall_s) s)"
echo "C multi, reused:     $(us "$(json "$reuse" cpu_s)" "$N") us/case ($(json "$reuse" connects) connections, $(json "$reuse" wall_s) s)"
echo "ratio truv-renew / aiohttp: $(ratio "$ours_cpu" "$(json "$py" cpu_s)")x; truv-renew / C multi (fresh): $(ratio "$ours_cpu" "$(json "$bare" cpu_s)")x"
