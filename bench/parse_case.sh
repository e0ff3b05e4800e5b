#!/bin/sh
# The documents a case receives (the original order, the refresh's answer, a
# poll of the refresh order), fetched from the sandbox seeded as in
# bench/engine.sh, then parsed whole and turned into the order model
# (bench/parse_case.lua): what a parse of only the model's fields could save
# at most per case.
#
#   bench/parse_case.sh [BUILD_DIR] [CASES]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build/release}" && pwd)
N=${2:-100}
out="$top/build/bench-parse-case"
rm -rf "$out"; mkdir -p "$out"
pid=""
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap stop EXIT INT TERM
"$build/sandbox/truv-sandbox" --port 0 --port-file "$out/port" --rate-limit 0 --realtime \
  --time-scale 10000 --threads 1 --seed-cases "$N" --mix active=1 --rng-seed 11 \
  --cases-out "$out/cases.csv" > "$out/sandbox.log" 2>&1 &
pid=$!
i=0
while [ ! -s "$out/port" ]; do
  i=$((i + 1)); [ $i -gt 1000 ] && { cat "$out/sandbox.log"; exit 1; }; sleep 0.01
done
base="http://127.0.0.1:$(cat "$out/port")/v1"
get() { curl -sf -H "X-Access-Client-Id: sandbox-client-id" -H "X-Access-Secret: sandbox-secret" \
          -H "Content-Type: application/json" "$@"; }
n=0
# the refresh truv-renew makes: the case's product (cases.csv)
tail -n +2 "$out/cases.csv" | cut -d, -f2,4 | while IFS=, read -r order product; do
  n=$((n + 1))
  get "$base/orders/$order/" > "$out/case-$n.original.json"
  get -X POST -d "{\"products\":[\"$product\"]}" "$base/orders/$order/" > "$out/case-$n.refresh.json"
  refresh=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' < "$out/case-$n.refresh.json")
  sleep 0.005   # the refresh's tasks (20 virtual s) are done
  get "$base/orders/$refresh/" > "$out/case-$n.poll.json"
done
stop
LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" LUA_CPATH="$build/lua/5.4/?.so;;" \
  lua5.4 "$top/bench/parse_case.lua" "$out" 200
