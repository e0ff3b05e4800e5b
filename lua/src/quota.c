/* Quota stores for Lua: see truv/quota.h. */
#include "binding.h"

void truv_open_quota(lua_State *L) {
  (void)L;
}
