/* The form a parsed document takes in Lua, as the caller names it (a
 * `mode`): a lazy view or plain tables (doc.c), or, for an order, its
 * model alone (model.c), the document freed at once.
 *
 *   core.decode(json [, "view"|"table"|"model"]) -> value | nil, err */
#include "binding.h"

int truv_check_docmode(lua_State *L, int idx, int def) {
  static const char *const names[] = {"view", "table", "model", NULL};
  if (lua_isnoneornil(L, idx)) return def;
  return luaL_checkoption(L, idx, NULL, names);
}

int truv_push_in_mode(lua_State *L, truv_json *doc, int mode, truv_err *err) {
  int rc;
  if (mode != TRUV_DOC_MODEL) {
    truv_push_document(L, doc, mode);
    return 0;
  }
  /* only the model: the document is freed before anything else runs */
  rc = truv_push_order_model(L, truv_json_root(doc), err);
  truv_json_free(doc);
  return rc;
}

/* decode(json [, mode]) -> value | nil, err */
static int l_decode(lua_State *L) {
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  int mode = truv_check_docmode(L, 2, TRUV_DOC_DEFAULT);
  truv_err err;
  truv_json *doc;
  truv_err_clear(&err);
  if (!(doc = truv_json_parse(s, len, &err))) return truv_fail(L, &err);
  return truv_push_in_mode(L, doc, mode, &err) ? truv_fail(L, &err) : 1;
}

void truv_open_docmode(lua_State *L) {
  static const luaL_Reg funcs[] = {{"decode", l_decode}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
