#!/bin/sh
# The documents a case receives (the original order, the refresh's answer, a
# poll of the refresh order), fetched from the sandbox seeded as in
# bench/engine.sh, then parsed whole and turned into the order model
# (bench/parse_case.lua), and the parses alone in C against the floor of a
# parse of only the model's fields with yajl (bench/parse_select.c), in the
# same run.
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
echo "$N cases; $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "through truv.core (Lua 5.4):"
LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" LUA_CPATH="$build/lua/5.4/?.so;;" \
  lua5.4 "$top/bench/parse_case.lua" "$out" 200
# the parses alone, in C: cJSON's stock parse, the arena's, and yajl's scan
# with no callbacks (the floor of a selective parse on yajl)
[ -f "$build/core/libtruv.a" ] || { echo "parse_case.sh: build first" >&2; exit 2; }
mkdir -p "$build/bench"
# shellcheck disable=SC2046
${CC:-cc} -O2 -std=c99 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I"$top/core/include" \
  "$top/bench/parse_select.c" "$build/core/libtruv.a" \
  $(pkg-config --cflags --libs libcjson yajl libcrypto) -lhttp_parser -lm -lpthread \
  -o "$build/bench/parse_select"
echo "the parses alone (C):"
"$build/bench/parse_select" "$out" 200
