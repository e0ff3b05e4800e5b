/* Webhooks for Lua: see truv/webhook.h. */
#include "binding.h"

void truv_open_webhook(lua_State *L) {
  (void)L;
}
