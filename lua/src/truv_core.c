/* truv.core: the C half of the `truv` Lua module.
 *
 * Assembled from one sub-opener per concern; the Lua modules (truv.lua and
 * the truv.* modules) compose these primitives. Nothing here keeps module-level
 * mutable state: everything hangs off the objects it returns. */
#include "binding.h"
#include "truv/version.h"

__attribute__((visibility("default"))) int luaopen_truv_core(lua_State *L);

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
