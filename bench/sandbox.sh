#!/bin/sh
# Measures truv-sandbox's own capacity with wrk (2 threads, 64 connections,
# 5 s each) on loopback: an authenticated GET /v1/orders/{id}/ of a small
# (one employer) seeded order, and a tiny 404 path; then 512 connections
# against 200 ms of injected latency (suspend/resume, no thread per request).
#
#   bench/sandbox.sh [BUILD_DIR]     # default build/release; needs wrk
#   SANDBOX_BIN=... DURATION=10s bench/sandbox.sh
set -eu

BUILD=${1:-build/release}
BIN=${SANDBOX_BIN:-$BUILD/sandbox/truv-sandbox}
DURATION=${DURATION:-5s}
CLIENT_ID=sandbox-client-id
SECRET=sandbox-secret

command -v wrk >/dev/null || { echo "bench/sandbox.sh: wrk is not installed" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench/sandbox.sh: no sandbox binary at $BIN (build it first)" >&2; exit 1; }

dir=$(mktemp -d /tmp/truv-sandbox-bench.XXXXXX)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

"$BIN" --port 0 --port-file "$dir/port" --seed-cases 50 --mix active=1 --rng-seed 1 \
       --rate-limit 0 --cases-out "$dir/cases.csv" >/dev/null &
pid=$!
i=0
while [ ! -s "$dir/port" ]; do
  i=$((i + 1))
  [ $i -gt 100 ] && { echo "bench/sandbox.sh: the sandbox did not start" >&2; exit 1; }
  sleep 0.05
done
port=$(cat "$dir/port")
base=http://127.0.0.1:$port

# a small order: an income case with one employer and no financial account
order=$(awk -F, '{ sub(/\r$/, "") } NR > 1 && $4 == "income" && $11 !~ /;/ && $12 == "" { print $2; exit }' "$dir/cases.csv")
[ -n "$order" ] || { echo "bench/sandbox.sh: no one-employer income case" >&2; exit 1; }
size=$(curl -s -H "X-Access-Client-Id: $CLIENT_ID" -H "X-Access-Secret: $SECRET" \
            "$base/v1/orders/$order/" | wc -c)

rps() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }'; }

get=$(wrk -t2 -c64 -d"$DURATION" -H "X-Access-Client-Id: $CLIENT_ID" -H "X-Access-Secret: $SECRET" \
          "$base/v1/orders/$order/" | rps)
notfound=$(wrk -t2 -c64 -d"$DURATION" "$base/v1/nowhere/" | rps)
curl -s -X POST "$base/_sandbox/faults" -d '{"latency_ms":200}' >/dev/null
delayed=$(wrk -t2 -c512 -d"$DURATION" --timeout 5s -H "X-Access-Client-Id: $CLIENT_ID" \
              -H "X-Access-Secret: $SECRET" "$base/v1/orders/$order/" | rps)

printf 'truv-sandbox (%s, wrk -t2 -c64 -d%s, loopback)\n' "$BIN" "$DURATION"
printf '  GET /v1/orders/{id}/ (%s bytes, authenticated)  %8s req/s\n' "$size" "$get"
printf '  GET /v1/nowhere/ (404)                          %8s req/s\n' "$notfound"
printf '  512 connections, 200 ms injected latency        %8s req/s (ideal 2560)\n' "$delayed"
