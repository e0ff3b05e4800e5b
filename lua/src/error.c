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

/* A text field of the facts table at 1, pushed (and so kept) on the stack:
 * a string, or a number as text; NULL for anything else. */
static const char *push_text(lua_State *L, const char *key) {
  lua_getfield(L, 1, key);
  return lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1)
                                                                          : NULL;
}

static double number_field(lua_State *L, const char *key) {
  double v;
  lua_getfield(L, 1, key);
  v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
  lua_pop(L, 1);
  return v;
}

/* Replaces the value at the top of the stack by tostring(value) (a string
 * or a number is kept: lua_tostring reads it) and returns its text. */
static const char *to_text(lua_State *L) {
  if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
    lua_getglobal(L, "tostring");
    lua_insert(L, -2);
    lua_call(L, 1, 1);
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      lua_pushliteral(L, "?");
    }
  }
  return lua_tostring(L, -1);
}

/* The invalid fields of the facts table at 1 as texts (tostring of each
 * entry's field and message), kept in a table pushed on the stack; *n
 * receives their count. */
static truv_err_text_field *push_fields(lua_State *L, size_t *n) {
  truv_err_text_field *fields;
  size_t i;
  lua_getfield(L, 1, "fields");
  *n = lua_type(L, -1) == LUA_TTABLE ? (size_t)lua_rawlen(L, -1) : 0;
  fields = lua_newuserdata(L, (*n ? *n : 1) * sizeof *fields);
  lua_createtable(L, (int)(2 * *n), 1); /* anchors the texts, and the array */
  lua_insert(L, -2);
  lua_rawseti(L, -2, 0);
  for (i = 0; i < *n; i++) {
    lua_rawgeti(L, -2, (lua_Integer)i + 1);
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "field");
      lua_getfield(L, -2, "message");
    } else {
      lua_pushvalue(L, -1);
      lua_pushliteral(L, "");
    }
    fields[i].message = to_text(L); /* anchored in the table below */
    lua_rawseti(L, -4, (lua_Integer)(2 * i + 2));
    fields[i].field = to_text(L);
    lua_rawseti(L, -3, (lua_Integer)(2 * i + 1));
    lua_pop(L, 1);
  }
  return fields;
}

/* format_error(facts) -> "truv: " .. the one line truv_err_format_facts
 * makes of an error's facts (kind, op, status, code, message, fields,
 * fields_dropped, maybe_sent, retry_at, request_id), redacted whole: a
 * text may have been set after the error was made. */
static int l_format_error(lua_State *L) {
  truv_err_facts f;
  size_t len;
  char *buf;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkstack(L, 16, NULL);
  memset(&f, 0, sizeof f);
  f.kind = push_text(L, "kind");
  f.op = push_text(L, "op");
  f.code = push_text(L, "code");
  f.message = push_text(L, "message");
  f.request_id = push_text(L, "request_id");
  f.status = (int)number_field(L, "status");
  f.retry_at = number_field(L, "retry_at");
  f.fields_dropped = (int)number_field(L, "fields_dropped");
  lua_getfield(L, 1, "maybe_sent");
  f.maybe_sent = lua_toboolean(L, -1);
  lua_pop(L, 1);
  f.fields = push_fields(L, &f.nfields);
  len = truv_err_format_facts(&f, NULL, 0);
  /* "truv: " and room for every SSN-shaped run growing into "[redacted]" */
  buf = lua_newuserdata(L, len * 10 + 32);
  memcpy(buf, "truv: ", 6);
  truv_err_format_facts(&f, buf + 6, len + 1);
  truv_redact(buf, len * 10 + 32, NULL, 0);
  lua_pushstring(L, buf);
  return 1;
}

void truv_open_error(lua_State *L) {
  static const luaL_Reg funcs[] = {{"set_error_maker", l_set_error_maker},
                                   {"redact", l_redact},
                                   {"format_error", l_format_error},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
