#!/bin/sh
# Where truv-renew's client CPU per case goes, plain HTTP and over TLS, the
# runs set up as in bench/engine.sh (same sandbox, seed and options); in
# each, a run of one case (truv-renew's start) is taken off a longer one:
#  1. CPU per case measured without instrumentation (P cases);
#  2. perf time samples of the same runs with DWARF call stacks, kernel
#     included: the time spent inside the calls into JSON parsing, the order
#     model, the quota store, the journal, libcurl (inclusive, system time
#     under them counted), and self time by library (adds up), in us per case;
#  3. callgrind instructions of N-case runs: the same split in instructions
#     (user space only; an instruction of cJSON weighs as one of the Lua VM).
# bench/profile_split.py prints the tables.
#
#   bench/profile.sh [BUILD_DIR]
#
# Variables: PROFILE_CASES [300, under callgrind]; PROFILE_PERF_CASES [3000];
# PROFILE_PERF_HZ [4999]; PROFILE_INFLIGHT [32]; PROFILE_MODES ["plain tls"].
# Outputs stay in build/bench-profile (perf report -i perf.*.data,
# callgrind_annotate callgrind.*.out). Needs valgrind; perf (as root, or
# with kernel.perf_event_paranoid <= 1) for 2.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/release}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
sb_bin="$build/sandbox/truv-sandbox"
out="$top/build/bench-profile"
N=${PROFILE_CASES:-300}; C=${PROFILE_INFLIGHT:-32}; P=${PROFILE_PERF_CASES:-3000}
F=${PROFILE_PERF_HZ:-4999}
export TRUV_CLIENT_ID=sandbox-client-id TRUV_SECRET=sandbox-secret
command -v valgrind >/dev/null || { echo "profile.sh: valgrind is needed" >&2; exit 2; }
mkdir -p "$out"
pid=""; measure=""
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap stop EXIT INT TERM

start_sandbox() { # [--tls --ca-out F]: sets pid, base
  rm -f "$out/port"
  "$sb_bin" --port 0 --port-file "$out/port" --rate-limit 0 --realtime --time-scale 10000 \
    --threads 2 --seed-cases "$seed" --mix active=1 --rng-seed 11 --cases-out "$out/cases.csv" \
    "$@" > "$out/sandbox.log" 2>&1 &
  pid=$!
  i=0
  while [ ! -s "$out/port" ]; do
    i=$((i + 1)); [ $i -gt 1000 ] && { cat "$out/sandbox.log"; exit 1; }; sleep 0.01
  done
  case "$*" in *--tls*) scheme=https ;; *) scheme=http ;; esac
  base="$scheme://127.0.0.1:$(cat "$out/port")/v1/"
}
requests() {
  curl -s ${ca:+--cacert "$ca"} "${base%v1/}_sandbox/stats" |
    sed 's/.*"requests":{"total":\([0-9]*\).*/\1/'
}
# measured CMD...: {"rc":..,"wall_s":..,"user_s":..,"sys_s":..} of the command
measured() {
  /usr/bin/python3 -c '
import resource, subprocess, sys, time
t = time.monotonic()
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print("{\"rc\":%d,\"wall_s\":%.3f,\"user_s\":%.3f,\"sys_s\":%.3f}" % (rc, time.monotonic() - t, r.ru_utime, r.ru_stime))
' "$@"
}
# renew PREFIX CASES_FILE: truv-renew under PREFIX (a command or nothing);
# under $measure (measured, or nothing) as a whole
renew() {
  prefix=$1; shift
  rm -f "$out/j" "$out/j-"* "$out/q" "$out/q-"*
  # shellcheck disable=SC2086
  $measure env TRUV_BUILD_DIR="$build" LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" \
    LUA_CPATH="$build/lua/5.4/?.so;;" $prefix lua5.4 "$top/bin/truv-renew" --journal "$out/j" \
    --quota "$out/q" --base-url "$base" --rate 0 --concurrency "$C" --poll-interval 0.01 \
    --quiet ${ca:+--ca-file "$ca"} "$1"
}
json() { echo "$1" | sed "s/.*\"$2\": *\([0-9.]*\).*/\1/"; }

# run MODE: one-case and P-case runs measured, and under perf; one-case and
# N-case runs under callgrind
run() {
  mode=$1; ca=""; tls=""
  [ "$mode" = tls ] && { tls="--tls --ca-out $out/ca.pem"; ca="$out/ca.pem"; }
  for what in one all; do
    seed=$P
    # shellcheck disable=SC2086
    start_sandbox $tls
    if [ $what = one ]; then head -n 2 "$out/cases.csv" > "$out/run.csv"
    else cp "$out/cases.csv" "$out/run.csv"; fi
    r0=$(requests)
    measure=measured; m=$(renew "" "$out/run.csv"); measure=""
    echo "$m" | sed "s/}/,\"requests\":$(( $(requests) - r0 ))}/" > "$out/$mode.$what.measured"
    [ "$(json "$m" rc)" = 0 ] || { echo "truv-renew failed ($mode, $what)" >&2; exit 1; }
    stop
    if [ -n "$perf" ]; then
      # shellcheck disable=SC2086
      start_sandbox $tls
      r0=$(requests)
      renew "perf record -q -e cpu-clock -F $F --call-graph dwarf,16384 -o $out/perf.$mode.$what.data" \
        "$out/run.csv" > /dev/null 2>&1 || { echo "perf record failed ($mode, $what)" >&2; exit 1; }
      echo "$(( $(requests) - r0 ))" > "$out/$mode.$what.perf-requests"
      stop
      perf report -i "$out/perf.$mode.$what.data" --no-inline --children --sort sym --stdio \
        -g none > "$out/perf.$mode.$what.sym.txt" 2>/dev/null
      perf report -i "$out/perf.$mode.$what.data" --no-children -n --sort dso --stdio -g none \
        > "$out/perf.$mode.$what.dso.txt" 2>/dev/null
    fi
    seed=$N
    # shellcheck disable=SC2086
    start_sandbox $tls
    if [ $what = one ]; then head -n 2 "$out/cases.csv" > "$out/run.csv"
    else cp "$out/cases.csv" "$out/run.csv"; fi
    r0=$(requests)
    renew "valgrind --tool=callgrind --callgrind-out-file=$out/callgrind.$mode.$what.out -q" \
      "$out/run.csv" > /dev/null
    echo "$(( $(requests) - r0 ))" > "$out/$mode.$what.cg-requests"
    stop
  done
}
perf=""
if command -v perf >/dev/null 2>&1 && perf record -q -e cpu-clock -o "$out/perf.probe" true 2>/dev/null; then
  perf=1
fi
echo "truv-renew from $top ($(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo '?')), $C in flight;" \
  "$P cases measured and under perf, $N under callgrind; load: $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in ${PROFILE_MODES:-plain tls}; do
  run "$mode"
  /usr/bin/python3 "$top/bench/profile_split.py" "$out" "$mode" "$N" "$P" "${perf:+$F}"
done
