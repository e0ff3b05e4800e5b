#!/bin/sh
# What TLS costs, side by side in one run, plain HTTP as the anchor:
#  1. the sandbox's own capacity (wrk, 2 threads, 64 connections, GET of a
#     small order) over http and https, kept alive and with a new connection
#     (a full handshake) per request ("Connection: close");
#  2. the client's CPU per billed request over TLS on a fresh connection each
#     against the same POST on a reused connection: bare libcurl with
#     lua-truv's settings (tls_reuse.c), over https and http;
#  3. lua-truv's own client (truv.core) per billed refresh under its rule
#     (the kept-alive connection, never sent twice) and with
#     billed_reuse_idle_s = 0 (a fresh connection each, the rule before),
#     per refresh task (a fresh connection) and per GET (kept alive), over
#     https and http;
#  4. the same over https with a CA file the size of the system's: Debian's
#     bundle (/etc/ssl/certs/ca-certificates.crt) with the sandbox's CA
#     added, as a client verifying Truv's certificate trusts.
#   bench/tls.sh [BUILD_DIR]      DURATION=5s N=2000 by default
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/release}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
BIN="$build/sandbox/truv-sandbox"
DURATION=${DURATION:-5s}
N=${N:-2000}
command -v wrk >/dev/null || { echo "bench/tls.sh: wrk is not installed" >&2; exit 1; }
[ -x "$BIN" ] || { echo "bench/tls.sh: no sandbox binary at $BIN (build it first)" >&2; exit 1; }
export LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;"
export LUA_CPATH="$build/lua/5.4/?.so;;"

dir=$(mktemp -d /tmp/truv-tls-bench.XXXXXX)
pids=""
cleanup() {
  for p in $pids; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

mkdir -p "$build/bench"
# shellcheck disable=SC2046
cc -O2 -o "$build/bench/tls_reuse" "$top/bench/tls_reuse.c" $(pkg-config --cflags --libs libcurl)

# start NAME ARGS...: a sandbox whose port lands in $dir/NAME.port
start() {
  name=$1
  shift
  "$BIN" --port 0 --port-file "$dir/$name.port" --seed-cases 20 --mix active=1 --rng-seed 1 \
    --rate-limit 0 --refresh-limit 0 --threads 2 --cases-out "$dir/$name.csv" "$@" >/dev/null &
  pids="$pids $!"
  i=0
  while [ ! -s "$dir/$name.port" ]; do
    i=$((i + 1)); [ $i -gt 200 ] && { echo "bench/tls.sh: the sandbox did not start" >&2; exit 1; }
    sleep 0.05
  done
}
start plain
start tls --tls --ca-out "$dir/ca.pem"
http_base=http://127.0.0.1:$(cat "$dir/plain.port")
https_base=https://127.0.0.1:$(cat "$dir/tls.port")

# the same seed: the same cases, orders and tokens on both
order=$(awk -F, '{ sub(/\r$/, "") } NR > 1 && $4 == "employment" && $11 !~ /;/ { print $2; exit }' \
        "$dir/plain.csv")
token=$(curl -s "$http_base/_sandbox/connections?order_id=$order" |
        sed 's/.*"access_token":"\([^"]*\)".*/\1/')
[ -n "$order" ] && [ -n "$token" ] || { echo "bench/tls.sh: no case" >&2; exit 1; }

rps() { awk '/^Requests\/sec:/ { printf "%.0f", $2 }'; }
wrk_get() { # BASE [extra wrk args]
  b=$1
  shift
  wrk -t2 -c64 -d"$DURATION" --timeout 5s -H "X-Access-Client-Id: sandbox-client-id" \
      -H "X-Access-Secret: sandbox-secret" "$@" "$b/v1/orders/$order/" | rps
}
ka_http=$(wrk_get "$http_base"); ka_https=$(wrk_get "$https_base")
cl_http=$(wrk_get "$http_base" -H "Connection: close")
cl_https=$(wrk_get "$https_base" -H "Connection: close")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
echo "1. sandbox capacity, GET of a small order (wrk, 64 connections, $DURATION each), requests/s:"
printf "   kept alive:             http %7s   https %7s   https/http %s\n" "$ka_http" "$ka_https" \
       "$(ratio "$ka_https" "$ka_http")"
printf "   new connection each:    http %7s   https %7s   https/http %s\n" "$cl_http" "$cl_https" \
       "$(ratio "$cl_https" "$cl_http")"

body="{\"access_token\":\"$token\",\"product_type\":\"employment\"}"
val() { sed 's/.*'"$1"'=\([0-9]*\).*/\1/'; }
echo "2. client CPU per billed POST /v1/refresh/tasks/ (bare libcurl, $N each, µs):"
for scheme in https http; do
  if [ $scheme = https ]; then b=$https_base; else b=$http_base; fi
  f=$("$build/bench/tls_reuse" "$b/v1/refresh/tasks/" "$dir/ca.pem" "$body" "$N" fresh)
  r=$("$build/bench/tls_reuse" "$b/v1/refresh/tasks/" "$dir/ca.pem" "$body" "$N" reuse)
  fc=$(echo "$f" | val cpu_us_per_request); rc=$(echo "$r" | val cpu_us_per_request)
  fw=$(echo "$f" | val wall_us_per_request); rw=$(echo "$r" | val wall_us_per_request)
  printf "   %-5s fresh connection: cpu %5s wall %5s (connects %s)   reused: cpu %5s wall %5s (connects %s)   fresh/reused cpu %s\n" \
    "$scheme" "$fc" "$fw" "$(echo "$f" | val connects)" "$rc" "$rw" "$(echo "$r" | val connects)" \
    "$(ratio "$fc" "$rc")"
done

echo "3. lua-truv's client (truv.core over libcurl easy), $N each, µs per request:"
for scheme in https http; do
  if [ $scheme = https ]; then b=$https_base; ca="$dir/ca.pem"; else b=$http_base; ca=-; fi
  lua5.4 "$top/bench/tls_client.lua" "$b/v1/" "$ca" "$token" "$order" employment "$N" |
    while read -r label _ cpu wall; do
      printf "   %-5s %-15s cpu %5s wall %5s\n" "$scheme" "$label" "$(echo "$cpu" | val cpu_us_per_request)" \
        "$(echo "$wall" | val wall_us_per_request)"
    done
done

bundle=/etc/ssl/certs/ca-certificates.crt
if [ -r "$bundle" ]; then
  cat "$bundle" "$dir/ca.pem" > "$dir/bundle.pem"
  echo "4. lua-truv's client over https, ca_file the system's bundle + the sandbox's CA" \
       "($(grep -c 'BEGIN CERTIFICATE' "$dir/bundle.pem") CAs), $N each, µs per request:"
  lua5.4 "$top/bench/tls_client.lua" "$https_base/v1/" "$dir/bundle.pem" "$token" "$order" \
         employment "$N" |
    while read -r label _ cpu wall; do
      printf "   https %-15s cpu %5s wall %5s\n" "$label" "$(echo "$cpu" | val cpu_us_per_request)" \
        "$(echo "$wall" | val wall_us_per_request)"
    done
fi
