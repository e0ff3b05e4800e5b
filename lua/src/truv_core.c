/* truv.core: the C half of the `truv` Lua module.
 *
 * Assembled from one sub-opener per concern; the Lua modules (truv.lua and
 * the truv.* modules) compose these primitives. Nothing here keeps module-level
 * mutable state: everything hangs off the objects it returns (but for
 * signal.c, whose state, a signal's disposition, is the process's). */
#include "binding.h"
#include "truv/version.h"

__attribute__((visibility("default"))) int luaopen_truv_core(lua_State *L);

void truv_new_handle_type(lua_State *L, const char *name, const luaL_Reg *methods,
                          lua_CFunction index, lua_CFunction close, lua_CFunction tostring) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  if (index) lua_pushcclosure(L, index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

static long opt_ms(lua_State *L, int t, const char *key) {
  lua_Number v = 0;
  lua_getfield(L, t, key);
  if (!lua_isnil(L, -1)) {
    v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(v >= 0 && v <= 1e9))
      luaL_error(L, "truv: %s must be a number of milliseconds from 0 to 1e9", key);
    if (v < 1) v = 1;   /* 0 means "default" in the core: keep the user's intent */
  }
  lua_pop(L, 1);
  return (long)v;
}

static const char *opt_str(lua_State *L, int t, const char *key) {
  const char *s = NULL;
  lua_getfield(L, t, key);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "truv: %s must be a string", key);
    s = lua_tostring(L, -1);   /* anchored by the options table */
  }
  lua_pop(L, 1);
  return s;
}

void truv_read_http_options(lua_State *L, int t, truv_http_options *o) {
  o->connect_timeout_ms = opt_ms(L, t, "connect_timeout_ms");
  o->timeout_ms = opt_ms(L, t, "timeout_ms");
  o->send_timeout_ms = opt_ms(L, t, "send_timeout_ms");
  o->read_timeout_ms = opt_ms(L, t, "read_timeout_ms");
  o->ca_file = opt_str(L, t, "ca_file");
  o->ca_path = opt_str(L, t, "ca_path");
  o->proxy = opt_str(L, t, "proxy");
  o->no_proxy = opt_str(L, t, "no_proxy");
  lua_getfield(L, t, "insecure");
  /* only a boolean: a string "false" or a 0 is true in Lua, and would turn
   * TLS verification off for a caller who meant the opposite */
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
    luaL_error(L, "truv: insecure must be true or false, got a %s", luaL_typename(L, -1));
  o->insecure = lua_toboolean(L, -1);
  lua_pop(L, 1);
}

int luaopen_truv_core(lua_State *L) {
  lua_newtable(L);
  truv_open_error(L);
  truv_open_clock(L);
  truv_open_signal(L);
  truv_open_terminal(L);
  truv_open_doc(L);
  truv_open_request(L);
  truv_open_http(L);
  truv_open_http1(L);
  truv_open_multi(L);
  truv_open_journal(L);
  truv_open_route(L);
  truv_open_model(L);
  truv_open_quota(L);
  truv_open_dedupe(L);
  truv_open_webhook(L);
  truv_open_listener(L);
  truv_open_state_dir(L);
  lua_pushstring(L, truv_version());
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
