#!/bin/sh
# Measures truv-sandbox's own capacity with wrk (2 threads, 64 connections,
# 5 s each) on loopback: an authenticated GET /v1/orders/{id}/ of a small
# seeded order (one employer, employment only) and of a one-employer income
# order, and a tiny 404 path; then 512 connections against 200 ms of injected
# latency (suspend/resume, no thread per request).
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

# a small order (one employer, employment only: no pay history) and a typical
# one (one employer, income: a year or so of pay statements)
pick() {
  awk -F, -v product="$1" '{ sub(/\r$/, "") }
    NR > 1 && $4 == product && $11 !~ /;/ && $12 == "" { print $2; exit }' "$dir/cases.csv"
}
small=$(pick employment)
income=$(pick income)
[ -n "$small" ] && [ -n "$income" ] || { echo "bench/sandbox.sh: no one-employer cases" >&2; exit 1; }
size() {
  curl -s -H "X-Access-Client-Id: $CLIENT_ID" -H "X-Access-Secret: $SECRET" "$base/v1/orders/$1/" | wc -c
}

rps() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }'; }

get() {
  wrk -t2 -c"${2:-64}" -d"$DURATION" --timeout 5s -H "X-Access-Client-Id: $CLIENT_ID" \
      -H "X-Access-Secret: $SECRET" "$base/v1/orders/$1/" | rps
}
small_rps=$(get "$small")
income_rps=$(get "$income")
notfound=$(wrk -t2 -c64 -d"$DURATION" "$base/v1/nowhere/" | rps)
curl -s -X POST "$base/_sandbox/faults" -d '{"latency_ms":200}' >/dev/null
delayed=$(get "$small" 512)

printf 'truv-sandbox (%s, wrk -t2 -c64 -d%s, loopback)\n' "$BIN" "$DURATION"
printf '  GET /v1/orders/{id}/ small (%6s bytes)        %8s req/s\n' "$(size "$small")" "$small_rps"
printf '  GET /v1/orders/{id}/ income (%6s bytes)       %8s req/s\n' "$(size "$income")" "$income_rps"
printf '  GET /v1/nowhere/ (404)                         %8s req/s\n' "$notfound"
printf '  512 connections, 200 ms injected latency       %8s req/s (ideal 2560)\n' "$delayed"
