#!/bin/sh
# Webhook verification + parsing, side by side in one run: libtruv from C,
# the Lua binding from Lua 5.4 (and LuaJIT when built), and Node doing what
# Truv's sample code does (createHmac + timingSafeEqual + JSON.parse), on the
# same 2 KB signed body (bench/webhook-body.json) and the same secret.
#
#   bench/webhook.sh [BUILD_DIR] [SECONDS] [ROUNDS]
#     BUILD_DIR  a configured and built tree (default build/release)
#     SECONDS    measuring time per variant and round (default 2)
#     ROUNDS     rounds, the variants interleaved; the best round counts (default 3)
#
# Every variant runs pinned to the same CPU (taskset), one process at a time,
# so "per second" means per second of one core. Design target: >= 50 k/s per
# core and >= 1x Node.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=$(cd "${1:-$root/build/release}" && pwd)
seconds=${2:-2}
rounds=${3:-3}
body="$here/webhook-body.json"
cpu=$(( $(nproc) - 1 ))
pin="taskset -c $cpu"
command -v taskset >/dev/null 2>&1 || pin=""

[ -f "$build/core/libtruv.a" ] || { echo "webhook.sh: build first ($build/core/libtruv.a missing)" >&2; exit 2; }
[ -f "$build/lua/5.4/truv/core.so" ] || { echo "webhook.sh: $build/lua/5.4/truv/core.so missing" >&2; exit 2; }
command -v node >/dev/null 2>&1 || { echo "webhook.sh: node is needed for the anchor" >&2; exit 2; }

# The C driver links the static libtruv; the flags match the library's own.
mkdir -p "$build/bench"
${CC:-cc} -O2 -std=c99 -D_POSIX_C_SOURCE=200809L -I"$root/core/include" \
  "$here/webhook_bench.c" "$build/core/libtruv.a" \
  $(pkg-config --libs libcjson libcrypto libcurl sqlite3) -lhttp_parser -lm -lpthread \
  -o "$build/bench/webhook_bench"

lua_path="$root/lua/?.lua;$root/lua/?/init.lua;;"
run_c()      { $pin "$build/bench/webhook_bench" "$body" "$seconds"; }
run_lua54()  { LUA_PATH="$lua_path" LUA_CPATH="$build/lua/5.4/?.so;;" \
               $pin lua5.4 "$here/webhook.lua" "$body" "$seconds"; }
run_luajit() { LUA_PATH="$lua_path" LUA_CPATH="$build/lua/luajit/?.so;;" \
               $pin luajit "$here/webhook.lua" "$body" "$seconds"; }
run_node()   { $pin node "$here/webhook.js" "$body" "$seconds" 2>/dev/null; }

variants="c lua54 node"
if [ -f "$build/lua/luajit/truv/core.so" ] && command -v luajit >/dev/null 2>&1; then
  variants="c lua54 luajit node"
fi

results=$(mktemp)
trap 'rm -f "$results"' EXIT
echo "webhook verify + parse, $(wc -c < "$body") B body, one secret, CPU $cpu," \
     "$rounds rounds x ${seconds}s per variant (best round)"
r=1
while [ "$r" -le "$rounds" ]; do
  for v in $variants; do "run_$v" >> "$results"; done
  r=$((r + 1))
done

awk '
  { if ($2 > best[$1]) best[$1] = $2; if (!($1 in seen)) { order[n++] = $1; seen[$1] = 1 } }
  END {
    label["c"] = "libtruv from C, secret";
    label["c-keys"] = "libtruv from C, prepared keys";
    label["lua5.4"] = "truv.webhook from Lua 5.4, secret";
    label["lua5.4-keys"] = "truv.webhook from Lua 5.4, prepared keys";
    label["luajit"] = "truv.webhook from LuaJIT, secret";
    label["luajit-keys"] = "truv.webhook from LuaJIT, prepared keys";
    label["lua5.4-receiver"] = "truv.receiver, Lua 5.4: + dedupe, order, route";
    label["luajit-receiver"] = "truv.receiver, LuaJIT: + dedupe, order, route";
    label["node"] = "Node: createHmac + timingSafeEqual + JSON.parse";
    printf "%-44s %12s %9s %9s\n", "variant", "deliveries/s", "us each", "vs Node";
    for (i = 0; i < n; i++) {
      k = order[i];
      printf "%-44s %12.0f %9.2f %8.2fx\n", label[k], best[k], 1e6 / best[k], best[k] / best["node"];
    }
  }' "$results"
