#include "compat.h"
#include "truv/version.h"
int luaopen_truv_core(lua_State *L);
__attribute__((visibility("default"))) int luaopen_truv_core(lua_State *L) {
  lua_newtable(L);
  lua_pushstring(L, truv_version());
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
