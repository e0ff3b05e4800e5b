/* The core's lists and defaults, for Lua to read rather than write again.
 *
 *   core.lists = {
 *     routes = { "wait", "done", "reverify", "retry", "defer", "no_data", "fix" },
 *     kinds = { "invalid", "auth", ..., "expired", "handler" },   -- error kinds
 *     products = { create_order = { ... }, refresh_order = { ... },
 *                  create_refresh_task = { ... }, create_bridge_token = { ... } },
 *     refreshes = { income = "employers", ..., assets = "financial_accounts", ... },
 *     limits = { connections = 5, id_length = 128, quota_limit = 1000 },
 *     defaults = { base_url =, timeout_ms =, connect_timeout_ms =, quota_limit =,
 *                  quota_window_s =, fact_retention_s =, order_retention_s =,
 *                  listen_host =, webhook_path =, billed_reuse_idle_s = },
 *   }
 *   core.valid_id(s) -> true | false      Truv's id rule (validate.c)
 *
 * Each list is the core's own, in the core's order: routes as truv_route
 * (route.c), kinds as truv_kind (err.c, TRUV_OK left out), the products each
 * operation takes and the connections a refresh of each refreshes
 * (validate.c), limits and defaults as the headers define them. Built once,
 * when truv.core opens; a table Lua reads and never writes. */
#include <string.h>

#include "binding.h"
#include "truv/dedupe.h"
#include "truv/listener.h"
#include "truv/quota.h"
#include "truv/route.h"

/* A whole number as an integer (it prints as "3", not "3.0"). */
static void set_number(lua_State *L, const char *key, double v) {
  if (v == (double)(lua_Integer)v) lua_pushinteger(L, (lua_Integer)v);
  else lua_pushnumber(L, v);
  lua_setfield(L, -2, key);
}

static void set_string(lua_State *L, const char *key, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, key);
}

static void push_routes(lua_State *L) {
  int r;
  lua_createtable(L, TRUV_ROUTE_COUNT, 0);
  for (r = 0; r < TRUV_ROUTE_COUNT; r++) {
    lua_pushstring(L, truv_route_name((truv_route)r));
    lua_rawseti(L, -2, r + 1);
  }
}

static void push_kinds(lua_State *L) {
  int k;
  lua_createtable(L, TRUV_KIND_COUNT - 1, 0);
  for (k = TRUV_EINVALID; k < TRUV_KIND_COUNT; k++) {
    lua_pushstring(L, truv_kind_name((truv_kind)k));
    lua_rawseti(L, -2, k);
  }
}

/* products = { [operation] = { names... } } for the operations that take one
 * (every operation of the core is asked: a new one that takes products is
 * listed without a change here). */
static void push_products(lua_State *L) {
  int op;
  size_t i;
  const char *name;
  lua_newtable(L);
  for (op = 0; op < TRUV_OP_COUNT; op++) {
    int n = 0;
    lua_newtable(L);
    for (i = 0; (name = truv_product_name(i)) != NULL; i++) {
      if (!truv_product_takes((truv_op)op, name)) continue;
      lua_pushstring(L, name);
      lua_rawseti(L, -2, ++n);
    }
    if (n > 0) lua_setfield(L, -2, truv_op_name((truv_op)op));
    else lua_pop(L, 1);
  }
}

static void push_refreshes(lua_State *L) {
  size_t i;
  const char *name, *what;
  lua_newtable(L);
  for (i = 0; (name = truv_product_name(i)) != NULL; i++)
    if ((what = truv_product_refreshes(name)) != NULL) set_string(L, name, what);
}

static void push_limits(lua_State *L) {
  lua_createtable(L, 0, 3);
  set_number(L, "connections", TRUV_MAX_CONNECTIONS);
  set_number(L, "id_length", TRUV_MAX_ID);
  set_number(L, "quota_limit", TRUV_QUOTA_MAX_LIMIT);
}

static void push_defaults(lua_State *L) {
  lua_createtable(L, 0, 10);
  set_string(L, "base_url", TRUV_DEFAULT_BASE_URL);
  set_number(L, "timeout_ms", (double)TRUV_DEFAULT_TIMEOUT_MS);
  set_number(L, "connect_timeout_ms", (double)TRUV_DEFAULT_CONNECT_TIMEOUT_MS);
  set_number(L, "quota_limit", TRUV_QUOTA_DEFAULT_LIMIT);
  set_number(L, "quota_window_s", TRUV_QUOTA_DEFAULT_WINDOW_S);
  set_number(L, "fact_retention_s", TRUV_QUOTA_FACT_RETENTION_S);
  set_number(L, "order_retention_s", TRUV_DEDUPE_ORDER_RETENTION_S);
  set_string(L, "listen_host", TRUV_LISTENER_DEFAULT_HOST);
  set_string(L, "webhook_path", TRUV_LISTENER_DEFAULT_PATH);
  set_number(L, "billed_reuse_idle_s", (double)TRUV_DEFAULT_BILLED_REUSE_IDLE_S);
}

/* valid_id(s) -> boolean */
static int l_valid_id(lua_State *L) {
  lua_pushboolean(L, lua_type(L, 1) == LUA_TSTRING && truv_valid_id(lua_tostring(L, 1)) &&
                       lua_rawlen(L, 1) == strlen(lua_tostring(L, 1)));
  return 1;
}

/* core.lists' fields, each pushed by its function. */
static const struct {
  const char *name;
  void (*push)(lua_State *L);
} LISTS[] = {
  {"routes", push_routes},       {"kinds", push_kinds},   {"products", push_products},
  {"refreshes", push_refreshes}, {"limits", push_limits}, {"defaults", push_defaults},
};

void truv_open_lists(lua_State *L) {
  static const luaL_Reg funcs[] = {{"valid_id", l_valid_id}, {NULL, NULL}};
  size_t i;
  luaL_setfuncs(L, funcs, 0);
  lua_createtable(L, 0, (int)(sizeof LISTS / sizeof LISTS[0]));
  for (i = 0; i < sizeof LISTS / sizeof LISTS[0]; i++) {
    LISTS[i].push(L);
    lua_setfield(L, -2, LISTS[i].name);
  }
  lua_setfield(L, -2, "lists");
}
