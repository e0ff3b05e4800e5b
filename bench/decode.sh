#!/bin/sh
# Decoding orders into something the workflow can use, side by side with
# lua-cjson's decode of the same bytes, in one run (bench/decode.lua).
#   bench/decode.sh [BUILD_DIR] [ITERATIONS]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build/release}" && pwd)
LUA_PATH="$top/lua/?.lua;$top/lua/?/init.lua;;" LUA_CPATH="$build/lua/5.4/?.so;;" \
TRUV_FIXTURES="$top/spec/fixtures" lua5.4 "$top/bench/decode.lua" "${2:-20000}"
