#!/bin/sh
# What reserving quota inside a transaction already open (the journal's)
# would save against the SQLite quota store's own transaction: one run of
# bench/reserve_tx.c (see there), files on disk where a batch keeps them.
#
#   bench/reserve_tx.sh [BUILD_DIR] [OPS] [GROUP]
#
# Pinned to one CPU (taskset) where available.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=$(cd "${1:-$root/build/release}" && pwd)
cpu=$(( $(nproc) - 1 ))
pin="taskset -c $cpu"
command -v taskset >/dev/null 2>&1 || pin=""
[ -f "$build/core/libtruv.a" ] || { echo "reserve_tx.sh: build first ($build/core/libtruv.a missing)" >&2; exit 2; }
mkdir -p "$build/bench"
# shellcheck disable=SC2046
${CC:-cc} -O2 -std=c99 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I"$root/core/include" \
  "$here/reserve_tx.c" "$build/core/libtruv.a" \
  $(pkg-config --libs libcjson libcrypto libcurl sqlite3) -lhttp_parser -lm -lpthread \
  -o "$build/bench/reserve_tx"
work=$(mktemp -d "$build/bench/reserve-tx.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "reserve inside an open transaction vs the quota store's own; $(nproc) CPUs, load: $(cut -d' ' -f1-3 /proc/loadavg)"
$pin "$build/bench/reserve_tx" "$work" "${2:-20000}" "${3:-32}"
