/* Handle types: the metatable every userdata handle of truv.core gets (an
 * HTTP transport, a store, a journal, a listener, ...), so that they all
 * close, collect and print alike. */
#include "binding.h"

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
