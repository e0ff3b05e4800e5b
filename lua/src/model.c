/* Order models for Lua (see truv/model.h).
 *
 *   core.order_model(order) -> model | nil, err
 *     order: a document view, plain tables, or JSON text
 *     model: { id, order_number, user_id, initial_order, refresh_order,
 *              share_url, first_name, last_name, created_at,
 *              products = {...},
 *              connections = { { kind = "employers"|"financial_accounts", id,
 *                status, suborder_number, access_token, link_id, product_type,
 *                data_source, provider_id, provider_name, company_name,
 *                created_at }, ... } }
 *   Absent fields are nil; times are epoch seconds. */
#include <string.h>

#include "binding.h"
#include "truv/model.h"

static void set_str(lua_State *L, const char *key, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, key);
}

static void set_time(lua_State *L, const char *key, double t) {
  if (t < 0) return;
  lua_pushnumber(L, t);
  lua_setfield(L, -2, key);
}

static void push_model(lua_State *L, const truv_order *o) {
  size_t i;
  lua_createtable(L, 0, 16);
  set_str(L, "id", o->id);
  set_str(L, "order_number", o->order_number);
  set_str(L, "user_id", o->user_id);
  set_str(L, "initial_order", o->initial_order);
  set_str(L, "refresh_order", o->refresh_order);
  set_str(L, "share_url", o->share_url);
  set_str(L, "first_name", o->first_name);
  set_str(L, "last_name", o->last_name);
  set_time(L, "created_at", o->created_at);
  lua_createtable(L, (int)o->nproducts, 0);
  for (i = 0; i < o->nproducts; i++) {
    lua_pushstring(L, o->products[i]);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "products");
  lua_createtable(L, (int)o->nconnections, 0);
  for (i = 0; i < o->nconnections; i++) {
    const truv_connection *c = &o->connections[i];
    lua_createtable(L, 0, 12);
    set_str(L, "kind", truv_connection_kind_name(c->kind));
    set_str(L, "id", c->id);
    set_str(L, "status", c->status);
    set_str(L, "suborder_number", c->suborder_number);
    set_str(L, "access_token", c->access_token);
    set_str(L, "link_id", c->link_id);
    set_str(L, "product_type", c->product_type);
    set_str(L, "data_source", c->data_source);
    set_str(L, "provider_id", c->provider_id);
    set_str(L, "provider_name", c->provider_name);
    set_str(L, "company_name", c->company_name);
    set_time(L, "created_at", c->created_at);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_setfield(L, -2, "connections");
}

int truv_push_order_model(lua_State *L, const cJSON *doc, truv_err *err) {
  truv_order order;
  int rc = truv_order_read(doc, &order, err);
  if (!rc) push_model(L, &order);
  truv_order_release(&order);
  return rc;
}

static int l_order_model(lua_State *L) {
  const cJSON *node = truv_doc_node(L, 1);
  cJSON *owned = NULL;
  truv_json *parsed = NULL;
  truv_err err;
  int rc;
  truv_err_clear(&err);
  if (!node && lua_type(L, 1) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    if (!(parsed = truv_json_parse(s, len, &err))) return truv_fail(L, &err);
    node = truv_json_root(parsed);
  } else if (!node) {
    luaL_checktype(L, 1, LUA_TTABLE);
    node = owned = truv_to_json(L, 1);
  }
  rc = truv_push_order_model(L, node, &err);
  truv_json_free(parsed);
  cJSON_Delete(owned);
  return rc ? truv_fail(L, &err) : 1;
}

void truv_open_model(lua_State *L) {
  static const luaL_Reg funcs[] = {{"order_model", l_order_model}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
