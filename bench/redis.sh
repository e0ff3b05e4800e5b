#!/bin/sh
# Redis stores, side by side in one run against one redis-server on
# loopback (7.0, no persistence): a quota reserve through truv.quota.redis
# (Lua 5.4, the core's connection) against a bare EVALSHA of the same size
# (`return 1`, the reserve's keys and arguments), alternated call by call;
# redis-benchmark's own EVALSHA of that size at 1 and 16 clients; reserves
# per second from 16 concurrent processes; MEMORY USAGE per connection.
# The target: a reserve within 1.5x of the bare round trip.
#   bench/redis.sh [BUILD_DIR] [N] [CLIENTS] [SECONDS]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=$(cd "${1:-$root/build/release}" && pwd)
n=${2:-20000}
clients=${3:-16}
seconds=${4:-3}
dir=$(mktemp -d /tmp/truv-redis-bench.XXXXXX)
port=$(lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0); local _, p = s:getsockname(); s:close(); print(p)')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --maxmemory-policy noeviction \
  --dir "$dir" --logfile "$dir/redis.log" --daemonize yes --pidfile "$dir/redis.pid"
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
i=0
until redis-cli -p "$port" ping >/dev/null 2>&1; do
  i=$((i + 1)); [ $i -gt 100 ] && { echo "redis-server did not start" >&2; exit 1; }; sleep 0.05
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(redis-server --version | cut -d' ' -f1-3)"
export LUA_PATH="$root/lua/?.lua;$root/lua/?/init.lua;;" LUA_CPATH="$build/lua/5.4/?.so;;"
lua5.4 "$here/redis.lua" "$port" "$n" "$clients" "$seconds" > "$dir/lua.txt"
grep -v '^BARE_SHA' "$dir/lua.txt"
set -- $(grep '^BARE_SHA' "$dir/lua.txt")
sha=$2 key=$4 now=$6 ticket=$8
for c in 1 "$clients"; do
  redis-benchmark -p "$port" -n "$n" -c "$c" --csv EVALSHA "$sha" 1 "$key" "$now" 3 86400000 172860 "$ticket" \
    | tail -1 | awk -F'"' -v c="$c" '{ printf "redis-benchmark bare EVALSHA, %s client(s): %s req/s, mean %.1f us, p50 %.1f us, p99 %.1f us\n", c, $4, $6 * 1000, $10 * 1000, $14 * 1000 }'
done
