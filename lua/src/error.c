/* truv_err -> Lua: the facts as a table { kind, status, code, message,
 * retry_at, request_id, maybe_sent, fields = { {field=, message=}, ... } },
 * handed to the function the Lua layer registers (truv.errors), which makes
 * the error object from them. Absent facts are absent keys (status is nil
 * when nothing was answered). Before truv.errors is loaded, the facts table
 * itself is the error. */
#include <string.h>

#include "binding.h"

#define ERROR_MAKER_KEY "truv.error.maker"

void truv_push_error(lua_State *L, const truv_err *err) {
  int i;
  lua_createtable(L, 0, 8);
  lua_pushstring(L, truv_kind_name(err->kind));
  lua_setfield(L, -2, "kind");
  if (err->status) {
    lua_pushinteger(L, err->status);
    lua_setfield(L, -2, "status");
  }
  if (err->code[0]) {
    lua_pushstring(L, err->code);
    lua_setfield(L, -2, "code");
  }
  lua_pushstring(L, err->message);
  lua_setfield(L, -2, "message");
  if (err->retry_at > 0) {
    lua_pushnumber(L, err->retry_at);
    lua_setfield(L, -2, "retry_at");
  }
  if (err->request_id[0]) {
    lua_pushstring(L, err->request_id);
    lua_setfield(L, -2, "request_id");
  }
  if (err->kind == TRUV_ENETWORK) {
    lua_pushboolean(L, err->maybe_sent);
    lua_setfield(L, -2, "maybe_sent");
  }
  if (err->nfields) {
    lua_createtable(L, err->nfields, 0);
    for (i = 0; i < err->nfields; i++) {
      lua_createtable(L, 0, 2);
      lua_pushstring(L, err->fields[i].field);
      lua_setfield(L, -2, "field");
      lua_pushstring(L, err->fields[i].message);
      lua_setfield(L, -2, "message");
      lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "fields");
    if (err->fields_dropped) {
      lua_pushinteger(L, err->fields_dropped);
      lua_setfield(L, -2, "fields_dropped");
    }
  }
  lua_getfield(L, LUA_REGISTRYINDEX, ERROR_MAKER_KEY);
  if (lua_isfunction(L, -1)) {
    lua_insert(L, -2);
    lua_call(L, 1, 1);
  } else {
    lua_pop(L, 1);
  }
}

int truv_fail(lua_State *L, const truv_err *err) {
  lua_pushnil(L);
  truv_push_error(L, err);
  return 2;
}

/* set_error_maker(fn): errors made from now on are fn(facts). */
static int l_set_error_maker(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, ERROR_MAKER_KEY);
  return 0;
}

/* redact(s, secrets...) -> s with the secrets and SSN-shaped runs replaced;
 * the same rules the core applies to every error it makes. */
static int l_redact(lua_State *L) {
  size_t len, n = 0;
  const char *s = luaL_checklstring(L, 1, &len);
  const char *secrets[16];
  char *buf;
  int top = lua_gettop(L), k;
  for (k = 2; k <= top && n < 16; k++)
    if (lua_type(L, k) == LUA_TSTRING) secrets[n++] = lua_tostring(L, k);
  /* scratch space (collected by the GC) with room for every match
   * turning into "[redacted]"; an embedded NUL ends the text */
  buf = lua_newuserdata(L, len * 10 + 16);
  memcpy(buf, s, len);
  buf[len] = '\0';
  truv_redact(buf, len * 10 + 16, secrets, n);
  lua_pushstring(L, buf);
  return 1;
}

void truv_open_error(lua_State *L) {
  static const luaL_Reg funcs[] = {
    {"set_error_maker", l_set_error_maker}, {"redact", l_redact}, {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
