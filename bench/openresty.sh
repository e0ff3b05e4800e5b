#!/bin/sh
# Webhook deliveries per second through the OpenResty gateway
# (examples/openresty) against the same nginx serving a static 200, in the
# same run: wrk POSTs the same signed 2 KB deliveries (bench/webhook-body.json,
# each with its own webhook_id and object, so de-duplication and ordering do
# their full work) to /truv/webhooks and to a `return 200` location.
#
#   bench/openresty.sh [BUILD_DIR] [SECONDS] [ROUNDS] [CONNECTIONS] [THREADS]
#     BUILD_DIR    a built tree with the LuaJIT truv.core (default build/release)
#     SECONDS      per wrk run (default 5)
#     ROUNDS       rounds, static and gateway interleaved; the best of each counts (3)
#     CONNECTIONS  wrk connections (64); THREADS wrk threads and nginx workers (2)
#   BENCH_WEBHOOK_DICT  the webhook dictionary's size (default 512m, so that
#                       nothing is evicted; 12m fills it)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=$(cd "${1:-$root/build/release}" && pwd)
seconds=${2:-5}
rounds=${3:-3}
connections=${4:-64}
threads=${5:-2}

[ -f "$build/lua/luajit/truv/core.so" ] || { echo "openresty.sh: $build/lua/luajit/truv/core.so missing (build with LUA_FLAVOR including luajit)" >&2; exit 2; }
[ -f "$build/lua/5.4/truv/core.so" ] || { echo "openresty.sh: $build/lua/5.4/truv/core.so missing" >&2; exit 2; }
command -v wrk >/dev/null 2>&1 || { echo "openresty.sh: wrk is needed (scripts/deps --bench)" >&2; exit 2; }

cd "$root"
LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;$root/?.lua;$root/?/init.lua;;" \
LUA_CPATH="$build/lua/5.4/?.so;;" TRUV_SOURCE_DIR="$root" TRUV_BUILD_DIR="$build" \
  lua5.4 "$here/openresty/driver.lua" "$seconds" "$rounds" "$connections" "$threads"
