#!/bin/sh
# Quota and de-duplication stores, side by side in one run: the memory and
# SQLite stores from C (reserve, refusal, usage, bytes per connection;
# dedupe seen), then the same calls through the Lua binding (Lua 5.4, and
# LuaJIT when built).
#
#   bench/quota.sh [BUILD_DIR] [CONNECTIONS] [SQLITE_CONNECTIONS]
#     BUILD_DIR           a configured and built tree (default build/release)
#     CONNECTIONS         connections for the memory stores (default 1000000)
#     SQLITE_CONNECTIONS  connections for the SQLite stores (default 50000)
#
# Pinned to one CPU (taskset) where available. Design targets for the memory
# store: >= 5 M reserves/s and <= 64 B per connection.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=$(cd "${1:-$root/build/release}" && pwd)
connections=${2:-1000000}
sqlite_connections=${3:-50000}
cpu=$(( $(nproc) - 1 ))
pin="taskset -c $cpu"
command -v taskset >/dev/null 2>&1 || pin=""

[ -f "$build/core/libtruv.a" ] || { echo "quota.sh: build first ($build/core/libtruv.a missing)" >&2; exit 2; }

mkdir -p "$build/bench"
${CC:-cc} -O2 -std=c99 -D_POSIX_C_SOURCE=200809L -I"$root/core/include" \
  "$here/quota.c" "$build/core/libtruv.a" \
  $(pkg-config --libs libcjson libcrypto libcurl sqlite3) -lhttp_parser -lm -lpthread \
  -o "$build/bench/quota_bench"

# SQLite files go where a batch would keep them: on disk, not in tmpfs
work=$(mktemp -d "$build/bench/quota-files.XXXXXX")
trap 'rm -rf "$work"' EXIT

thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo "n/a")
echo "quota and dedupe stores: $connections connections in memory, $sqlite_connections in SQLite," \
     "CPU $cpu, transparent huge pages: $thp"
echo
$pin "$build/bench/quota_bench" "$work" "$connections" "$sqlite_connections"

echo
lua_path="$root/lua/?.lua;$root/lua/?/init.lua;;"
printf '| %-46s | %-16s | %16s |\n' "through the Lua binding" "interpreter" "result"
printf '|%s|%s|%s|\n' "------------------------------------------------" "------------------" "-----------------:"
LUA_PATH="$lua_path" LUA_CPATH="$build/lua/5.4/?.so;;" $pin lua5.4 "$here/quota.lua" 200000
if [ -f "$build/lua/luajit/truv/core.so" ] && command -v luajit >/dev/null 2>&1; then
  LUA_PATH="$lua_path" LUA_CPATH="$build/lua/luajit/?.so;;" $pin luajit "$here/quota.lua" 200000
fi
