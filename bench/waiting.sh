#!/bin/sh
# Memory per waiting case: N cases in progress at once, each waiting on a
# refresh that does not finish (the sandbox's tasks take 9e6 virtual seconds),
# the run's RSS, Lua heap and documents alive sampled once all are sent
# (bench/waiting_run.lua); two runs, N and 2N cases, and their difference
# divided by N is one waiting case. Target: <= 32 KB per waiting case.
#
#   bench/waiting.sh [BUILD_DIR] [N] [CONCURRENCY]    # default build/release 2000 64
#   (N / CONCURRENCY at most 100: truv.renewal's active_per_request)
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/release}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
N=${2:-2000}; C=${3:-64}
out="$top/build/bench-waiting"
export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;"
export LUA_CPATH="$build/lua/5.4/?.so;;"
export TRUV_CLIENT_ID=sandbox-client-id TRUV_SECRET=sandbox-secret
mkdir -p "$out"
pid=""
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap stop EXIT INT TERM
json() { echo "$1" | sed "s/.*\"$2\": *\([0-9.]*\).*/\1/"; }
# run COUNT: a fresh sandbox, COUNT cases in progress; prints the sample
run() {
  rm -f "$out/port"
  "$build/sandbox/truv-sandbox" --port 0 --port-file "$out/port" --rate-limit 0 --threads 2 \
    --seed-cases "$1" --mix active=1 --rng-seed 13 --cases-out "$out/cases.csv" \
    --task-duration 9000000 > "$out/sandbox.log" 2>&1 &
  pid=$!
  i=0
  while [ ! -s "$out/port" ]; do
    i=$((i + 1)); [ $i -gt 1000 ] && { cat "$out/sandbox.log" >&2; exit 1; }; sleep 0.01
  done
  lua5.4 "$top/bench/waiting_run.lua" "http://127.0.0.1:$(cat "$out/port")/v1/" \
    "$out/cases.csv" "$out/journal" "$1" "$C"
  stop
}
echo "== memory per waiting case: $N and $((2 * N)) cases in progress, $C request slots"
# in this shell, not in $(...): a run that fails leaves no sandbox behind (the trap)
run "$N" > "$out/a.json"; a=$(cat "$out/a.json"); echo "$a"
run $((2 * N)) > "$out/b.json"; b=$(cat "$out/b.json"); echo "$b"
per() { awk "BEGIN { printf \"%.1f\", ($(json "$b" "$1") - $(json "$a" "$1")) / $N }"; }
rss=$(per rss_kb); lua=$(per lua_kb); docs=$(per docs_kb)
echo "per waiting case: RSS $rss KB = Lua heap $lua KB + documents $docs KB" \
     "+ C heap and slack $(awk "BEGIN { printf \"%.1f\", $rss - $lua - $docs }") KB (target <= 32 KB)"
