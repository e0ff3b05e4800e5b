/* truv.core: the C half of the `truv` Lua module.
 *
 * Assembled from one sub-opener per concern; the Lua modules (truv.lua and
 * the truv.* modules) compose these primitives. Nothing here keeps module-level
 * mutable state: everything hangs off the objects it returns. */
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

int luaopen_truv_core(lua_State *L) {
  lua_newtable(L);
  truv_open_error(L);
  truv_open_clock(L);
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
  lua_pushstring(L, truv_version());
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
