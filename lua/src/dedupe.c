/* Webhook de-duplication stores for Lua: the C stores of truv/dedupe.h
 * behind the Lua-level contract (documented in truv/dedupe.lua, which Lua
 * stores implement too):
 *
 *   core.dedupe_memory([expected])          -> store
 *   core.dedupe_sqlite(path)                -> store | nil, err
 *   store:seen(id, now, ttl)                -> true (first) | false | nil, err
 *   store:last_update(object_key, updated_at) -> true (newer) | false | nil, err
 *   store:forget(id)                        -> true | nil, err
 *   store:close(), store.kind ("memory", "sqlite"), store.path (SQLite)
 *
 * Misuse raises; a store failure returns nil, err. A store is closed by
 * close(), by the garbage collector, or by a to-be-closed variable (5.4). */
#include <math.h>
#include <string.h>

#include "binding.h"
#include "truv/dedupe.h"

#define DEDUPE_MT "truv.dedupe.store"

typedef struct ldedupe {
  truv_dedupe_store *s; /* NULL once closed */
  const char *kind;     /* "memory" or "sqlite" */
  const char *path;     /* the SQLite file (kept after the struct), or NULL */
} ldedupe;

static ldedupe *check_store(lua_State *L) {
  return luaL_checkudata(L, 1, DEDUPE_MT);
}

static truv_dedupe_store *check_open(lua_State *L) {
  ldedupe *u = check_store(L);
  if (!u->s) luaL_error(L, "truv: the dedupe store is closed");
  return u->s;
}

static double check_number(lua_State *L, int arg, const char *what) {
  double t = luaL_checknumber(L, arg);
  if (!isfinite(t)) luaL_argerror(L, arg, what);
  return t;
}

/* Pushes a store call's answer: the boolean, or (misuse) raises, or nil, err. */
static int answer(lua_State *L, int rc, int yes, const truv_err *err) {
  if (rc == TRUV_EINVALID) return luaL_error(L, "truv: %s", err->message);
  if (rc) return truv_fail(L, err);
  lua_pushboolean(L, yes);
  return 1;
}

/* store:seen(id, now, ttl) */
static int l_seen(lua_State *L) {
  truv_dedupe_store *s = check_open(L);
  size_t len;
  const char *id = luaL_checklstring(L, 2, &len);
  double now = check_number(L, 3, "finite time expected");
  double ttl = check_number(L, 4, "finite ttl in seconds expected");
  truv_err err;
  int first = 0, rc;
  if (ttl < 0) luaL_argerror(L, 4, "ttl must be >= 0");
  rc = truv_dedupe_seen(s, id, len, now, ttl, &first, &err);
  return answer(L, rc, first, &err);
}

/* store:last_update(object_key, updated_at) */
static int l_last_update(lua_State *L) {
  truv_dedupe_store *s = check_open(L);
  size_t len;
  const char *key = luaL_checklstring(L, 2, &len);
  double updated_at = check_number(L, 3, "finite time expected");
  truv_err err;
  int newer = 0, rc;
  rc = truv_dedupe_last_update(s, key, len, updated_at, &newer, &err);
  return answer(L, rc, newer, &err);
}

/* store:forget(id) */
static int l_forget(lua_State *L) {
  truv_dedupe_store *s = check_open(L);
  size_t len;
  const char *id = luaL_checklstring(L, 2, &len);
  truv_err err;
  int rc = truv_dedupe_forget(s, id, len, &err);
  return answer(L, rc, 1, &err);
}

static int l_close(lua_State *L) {
  ldedupe *u = check_store(L);
  truv_dedupe_close(u->s);
  u->s = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  ldedupe *u = check_store(L);
  lua_pushfstring(L, "truv.dedupe.store (%s%s)", u->kind, u->s ? "" : ", closed");
  return 1;
}

/* __index: the methods (upvalue 1), then store.kind and store.path. */
static int l_index(lua_State *L) {
  ldedupe *u = check_store(L);
  const char *k = lua_tostring(L, 2);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1) || !k) return 1;
  if (strcmp(k, "kind") == 0) lua_pushstring(L, u->kind);
  else if (strcmp(k, "path") == 0 && u->path) lua_pushstring(L, u->path);
  else lua_pushnil(L);
  return 1;
}

static ldedupe *push_store(lua_State *L, const char *kind, const char *path) {
  size_t len = path ? strlen(path) + 1 : 0;
  ldedupe *u = lua_newuserdata(L, sizeof *u + len);
  u->s = NULL;
  u->kind = kind;
  u->path = path ? memcpy((char *)(u + 1), path, len) : NULL;
  luaL_setmetatable(L, DEDUPE_MT);
  return u;
}

/* core.dedupe_memory([expected]) */
static int l_dedupe_memory(lua_State *L) {
  double expected = luaL_optnumber(L, 1, 0);
  truv_err err;
  ldedupe *u;
  if (!(expected >= 0 && expected <= 1e9)) luaL_argerror(L, 1, "number of ids >= 0 expected");
  u = push_store(L, "memory", NULL);
  if (!(u->s = truv_dedupe_memory((size_t)expected, &err))) return truv_fail(L, &err);
  return 1;
}

/* core.dedupe_sqlite(path) */
static int l_dedupe_sqlite(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  truv_err err;
  ldedupe *u = push_store(L, "sqlite", path);
  if (!(u->s = truv_dedupe_sqlite(path, &err))) return truv_fail(L, &err);
  return 1;
}

void truv_open_dedupe(lua_State *L) {
  static const luaL_Reg methods[] = {{"seen", l_seen},
                                     {"last_update", l_last_update},
                                     {"forget", l_forget},
                                     {"close", l_close},
                                     {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"dedupe_memory", l_dedupe_memory}, {"dedupe_sqlite", l_dedupe_sqlite}, {NULL, NULL}};
  truv_new_handle_type(L, DEDUPE_MT, methods, l_index, l_close, l_tostring);
  luaL_setfuncs(L, funcs, 0);
}
