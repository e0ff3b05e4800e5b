/* The default routing table, for Lua (see truv/route.h).
 *
 *   core.route_table() -> { task = { done = { route = "done", delay = 0 }, ... },
 *                           suborder = {...}, order = {...}, error = {...},
 *                           event = {...} }
 * A fresh table each call: the Lua router copies it and applies overrides. */
#include "binding.h"
#include "truv/route.h"

static int l_route_table(lua_State *L) {
  size_t n, i;
  const truv_route_entry *t = truv_route_table(&n);
  int o;
  lua_createtable(L, 0, TRUV_OUTCOME_COUNT);
  for (o = 0; o < TRUV_OUTCOME_COUNT; o++) {
    lua_newtable(L);
    lua_setfield(L, -2, truv_outcome_name((truv_outcome)o));
  }
  for (i = 0; i < n; i++) {
    lua_getfield(L, -1, truv_outcome_name(t[i].outcome));
    lua_createtable(L, 0, 2);
    lua_pushstring(L, truv_route_name(t[i].route));
    lua_setfield(L, -2, "route");
    lua_pushnumber(L, t[i].delay_s);
    lua_setfield(L, -2, "delay");
    lua_setfield(L, -2, t[i].name);
    lua_pop(L, 1);
  }
  return 1;
}

void truv_open_route(lua_State *L) {
  static const luaL_Reg funcs[] = {{"route_table", l_route_table}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
