# Embeds the Redis scripts (core/redis/*.lua) in a C header, so that the
# C connection, the Lua 5.4 store and the nginx store send one text:
#   cmake -DDIR=<core/redis> -DOUT=<header> -P embed.cmake
file(GLOB scripts ${DIR}/*.lua)
list(SORT scripts)
set(body "/* Generated from the scripts in core/redis/ by core/redis/embed.cmake: do not edit. */\n")
set(table "")
foreach(f ${scripts})
  get_filename_component(n ${f} NAME_WE)
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(APPEND body "static const char script_${n}[] = {${hex}0};\n")
  string(APPEND table "  { \"${n}\", script_${n}, sizeof script_${n} - 1 },\n")
endforeach()
string(APPEND body "static const struct { const char *name, *text; size_t len; } redis_scripts[] = {\n${table}};\n")
file(WRITE ${OUT}.tmp "${body}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
