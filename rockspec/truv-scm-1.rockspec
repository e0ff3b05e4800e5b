rockspec_format = "3.0"
package = "truv"
version = "scm-1"
-- A checkout: luarocks make rockspec/truv-scm-1.rockspec. This file and
-- truv-0.1.0-1.rockspec differ only in `version` and `source` (a spec checks).
source = {
  url = "git+https://github.com/lua-truv/lua-truv.git",
}
description = {
  summary = "A client for Truv's data refresh workflow: C core, Lua API",
  detailed = [[
lua-truv runs Truv's data refresh workflow from Lua: refresh income,
employment and asset verifications over connections users already made,
within Truv's refresh limits, never refreshing twice by accident, and route
every outcome to its next step. A small C core (libcurl, cJSON, OpenSSL,
SQLite) under a thin Lua layer, for Lua 5.4 and OpenResty.
]],
  license = "MIT",
  labels = { "truv", "http", "api-client", "openresty" },
}
dependencies = {
  "lua >= 5.1",
}
external_dependencies = {
  -- no `header` for CURL: luarocks cannot see Debian's multiarch include path
  CURL = { library = "curl" },
  CJSON = { header = "cjson/cJSON.h", library = "cjson" },
  CRYPTO = { header = "openssl/evp.h", library = "crypto" },
  SQLITE = { header = "sqlite3.h", library = "sqlite3" },
  HTTP_PARSER = { header = "http_parser.h", library = "http_parser" },
  MHD = { header = "microhttpd.h", library = "microhttpd" },   -- the webhook listener
  HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },   -- the Redis codec
  SSL = { header = "openssl/ssl.h", library = "ssl" },   -- TLS to Redis (rediss://)
}
build = {
  type = "cmake",
  variables = {
    CMAKE_BUILD_TYPE = "Release",
    CMAKE_INSTALL_PREFIX = "$(PREFIX)",
    LUA_FLAVOR = "auto",        -- the Lua luarocks targets: 5.4, or 5.1 meaning LuaJIT
    LUA_INCDIR = "$(LUA_INCDIR)",
    LUA_CMOD_DIR = "$(LIBDIR)",
    LUA_LMOD_DIR = "$(LUADIR)",
    TRUV_TESTS = "OFF",
    TRUV_SANDBOX = "ON",        -- truv-sandbox: test an integration against a local Truv
  },
  install = {
    bin = {
      ["truv-renew"] = "bin/truv-renew",
      ["truv-sandbox"] = "build.luarocks/sandbox/truv-sandbox",
    },
  },
}
