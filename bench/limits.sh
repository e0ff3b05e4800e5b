#!/bin/sh
# Under Truv's limits: how long a batch takes at 300 requests per minute
# when refreshes take tens of seconds to minutes, for truv-renew as it is and
# for Truv's quickstart strategy (bench/quickstart.py), on the same sandbox.
#
# Time is compressed K times: the sandbox runs --realtime --time-scale K,
# its rate limit is 300 * K per wall minute, and truv-renew runs under
# libfaketime at K times the wall clock (its clock, its sleeps and libcurl's
# waits all speed up together), with --rate 300 of its own minutes; the
# quickstart client divides its pauses by K itself. Every ratio that decides
# the outcome (requests per task duration, polls per task) is then the one of
# a real run; times are reported in virtual seconds and hours.
#
# For each task-duration median, two runs per strategy (N1 and N2 cases) and
# the model of bench/limits_model.lua, which predicts run 2 from run 1 and
# extrapolates run 2 to LIMITS_BIG cases.
#
#   bench/limits.sh [BUILD_DIR]
#
# Variables:
#   TRUV_REPO     the repository whose truv-renew is tested (its bin/ and
#                 lua/) [this one]; TRUV_BUILD its build directory
#                 [$TRUV_REPO/build/release]. The sandbox is BUILD_DIR's.
#   LIMITS_SETS   "MEDIAN:K:N1,N2:Q1,Q2 ...": task median (virtual s), time
#                 scale, truv-renew's two runs, the quickstart's two runs
#                 [30:60:1000,3000:500,1500 180:120:600,1800:300,600]
#   LIMITS_SPREAD, LIMITS_SLOW_SHARE, LIMITS_SLOW_FACTOR: the durations'
#                 model [0.5, 0.05, 5]; LIMITS_BIG [100000];
#   LIMITS_RENEW_ARGS  more truv-renew options (e.g. --concurrency 64) [];
#   LIMITS_QS_CONCURRENCY  the quickstart's cases at a time [10: the cases
#                 whose polls every 2 s fill 300 requests a minute]
#   LIMITS_QUICK=1  one short set (30:60:300,900:150,450)
#   LIMITS_STRATEGIES  which to run, of "renew" (truv-renew polling), "hook"
#                 (truv-renew --listen, the sandbox sending its webhooks there;
#                 same case counts as renew) and "qs" [renew hook qs]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$top/build/release}
case "$build" in /*) ;; *) build="$top/$build" ;; esac
repo=$(cd "${TRUV_REPO:-$top}" && pwd)
rbuild=${TRUV_BUILD:-$repo/build/release}
sb_bin="$build/sandbox/truv-sandbox"
out="$top/build/bench-limits"
rate=300
sets=${LIMITS_SETS:-"30:60:1000,3000:500,1500 180:120:600,1800:300,600"}
[ "${LIMITS_QUICK:-0}" = 1 ] && sets="30:60:300,900:150,450"
spread=${LIMITS_SPREAD:-0.5}; slow_share=${LIMITS_SLOW_SHARE:-0.05}; slow_factor=${LIMITS_SLOW_FACTOR:-5}
big=${LIMITS_BIG:-100000}; qs_conc=${LIMITS_QS_CONCURRENCY:-10}
strategies=${LIMITS_STRATEGIES:-"renew hook qs"}
faketime_so=$(dpkg -L libfaketime 2>/dev/null | grep '/libfaketimeMT\.so\.1$' | head -n 1 || true)
[ -n "$faketime_so" ] || { echo "bench/limits.sh: libfaketime is missing (scripts/deps --bench)" >&2; exit 1; }
[ -x "$repo/bin/truv-renew" ] || { echo "bench/limits.sh: no $repo/bin/truv-renew" >&2; exit 1; }
export TRUV_CLIENT_ID=sandbox-client-id TRUV_SECRET=sandbox-secret
mkdir -p "$out"
pid=""
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=""; }
trap 'stop_sampler; stop' EXIT INT TERM

# start_sandbox K MEDIAN CASES [MORE...]: sets pid, port, base; cases in $out/cases.csv
start_sandbox() {
  rm -f "$out/port"
  sk=$1; smedian=$2; sn=$3; shift 3
  "$sb_bin" "$@" --port 0 --port-file "$out/port" --realtime --time-scale "$sk" \
    --rate-limit $((rate * sk)) --threads 2 --task-duration "$smedian" \
    --task-duration-spread "$spread" --slow-share "$slow_share" --slow-factor "$slow_factor" \
    --seed-cases "$sn" --mix active=1 --rng-seed 14 --cases-out "$out/cases.csv" \
    > "$out/sandbox.log" 2>&1 &
  pid=$!
  i=0
  while [ ! -s "$out/port" ]; do
    i=$((i + 1)); [ $i -gt 1000 ] && { cat "$out/sandbox.log"; exit 1; }; sleep 0.01
  done
  port=$(cat "$out/port"); base="http://127.0.0.1:$port/v1/"
}
stats() { curl -s "http://127.0.0.1:$port/_sandbox/stats"; }
# requests on /v1/ and 429s, from the sandbox's counters: "REQUESTS THROTTLED"
counts() { stats | lua5.4 "$top/bench/limits_model.lua" counts; }
now_s() { date +%s.%N; }

# a free loopback port for truv-renew's webhook listener
free_port() {
  lua5.4 -e 'local s = assert(require("socket").bind("127.0.0.1", 0))
             local _, p = s:getsockname() print(p) s:close()'
}

vclock() { curl -s "http://127.0.0.1:$port/_sandbox/clock" | sed 's/.*"now": *\([0-9]*\).*/\1/'; }

# sample FILE VNOW: every wall second until killed, "VIRTUAL_S REQUESTS" (the
# sandbox's clock since VNOW and its request count), for the steady state's
# requests per case (bench/limits_model.lua)
sample() {
  while :; do
    # shellcheck disable=SC2046
    c=$(counts 2>/dev/null) && v=$(vclock 2>/dev/null) && [ -n "$v" ] &&
      set -- "$1" "$2" $c && echo "$((v - $2)) $3" >> "$1"
    sleep 1
  done
}
sampler=""
stop_sampler() {
  [ -z "$sampler" ] || { kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true; }
  sampler=""
}

# run_renew K N [MORE...]: truv-renew under a clock K times the wall's,
# started at the sandbox's virtual now, with MORE options; prints
# "N,REQUESTS,THROTTLED,T_S,TIMES_FILE,SAMPLES_FILE"
run_renew() {
  k=$1; n=$2; shift 2; tag="$strategy-$median-$n"
  vnow=$(vclock)
  rm -f "$out/$tag".*
  sample "$out/$tag.samples" "$vnow" & sampler=$!
  t0=$(now_s)
  # shellcheck disable=SC2086
  TZ=UTC FAKETIME="@$(date -u -d "@$vnow" '+%Y-%m-%d %H:%M:%S') x$k" LD_PRELOAD="$faketime_so" \
    TRUV_BUILD_DIR="$rbuild" LUA_PATH="$repo/lua/?.lua;$repo/lua/?/init.lua;;" \
    LUA_CPATH="$rbuild/lua/5.4/?.so;;" \
    "$repo/bin/truv-renew" --journal "$out/$tag.journal" --quota "$out/$tag.quota" \
    --base-url "$base" --rate "$rate" --log "$out/$tag.log" --quiet ${LIMITS_RENEW_ARGS:-} \
    "$@" "$out/cases.csv" > "$out/$tag.out" 2> "$out/$tag.err" \
    || { echo "truv-renew failed:" >&2; cat "$out/$tag.err" >&2; exit 1; }
  t=$(awk "BEGIN { printf \"%.1f\", ($(now_s) - $t0) * $k }")
  stop_sampler
  TZ=UTC lua5.4 "$top/bench/limits_model.lua" times "$vnow" "$out/$tag.log" > "$out/$tag.times"
  # shellcheck disable=SC2046
  set -- $(counts)
  echo "$n,$1,$2,$t,$out/$tag.times,$out/$tag.samples"
}

# run_qs K N: the quickstart strategy; prints the same
run_qs() {
  k=$1; n=$2; tag="qs-$median-$n"
  rm -f "$out/$tag".*
  sample "$out/$tag.samples" "$(vclock)" & sampler=$!
  j=$(/usr/bin/python3 "$top/bench/quickstart.py" "$base" "$out/cases.csv" "$k" "$rate" \
      "$qs_conc" "$out/$tag.times")
  t=$(echo "$j" | sed 's/.*"virtual_s": *\([0-9.]*\).*/\1/')
  stop_sampler
  # shellcheck disable=SC2046
  set -- $(counts)
  echo "$n,$1,$2,$t,$out/$tag.times,$out/$tag.samples"
}

echo "task durations: log-normal, median M, spread $spread; $slow_share of connections slow (x$slow_factor)"
echo "rate $rate requests/min; truv-renew from $repo ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))"
for set in $sets; do
  median=${set%%:*}; rest=${set#*:}; k=${rest%%:*}; rest=${rest#*:}
  renew_ns=${rest%%:*}; qs_ns=${rest#*:}
  echo "== median ${median} s, time scale x$k"
  for strategy in $strategies; do
    if [ $strategy = qs ]; then ns=$qs_ns; else ns=$renew_ns; fi
    runs=""
    for n in $(echo "$ns" | tr , ' '); do
      case $strategy in
        renew) start_sandbox "$k" "$median" "$n"; r=$(run_renew "$k" "$n") ;;
        hook)
          hport=$(free_port)
          start_sandbox "$k" "$median" "$n" --webhook-url "http://127.0.0.1:$hport/truv/webhooks"
          r=$(run_renew "$k" "$n" --listen "127.0.0.1:$hport") ;;
        qs) start_sandbox "$k" "$median" "$n"; r=$(run_qs "$k" "$n") ;;
        *) echo "bench/limits.sh: unknown strategy $strategy" >&2; exit 2 ;;
      esac
      stop
      runs="$runs $r"
    done
    echo "-- $strategy"
    # shellcheck disable=SC2086
    lua5.4 "$top/bench/limits_model.lua" "$rate" "$big" $runs
  done
done
