/* Quota stores for Lua: the C stores of truv/quota.h behind the Lua-level
 * store contract (documented in truv/quota.lua, which Lua stores implement
 * too):
 *
 *   core.quota_key(token)                          -> 32 lowercase hex chars
 *   core.quota_memory{ limit=, window=, expected= } -> store
 *   core.quota_sqlite(path, { limit=, window= })    -> store | nil, err
 *   store:reserve(keys, now)     -> ticket | false, not_before, spent | nil, err
 *   store:release(keys, ticket)  -> true | nil, err
 *   store:record_limit(key, now) -> true | nil, err
 *   store:record_count(key, times, now) -> true | nil, err
 *   store:usage(key, now)        -> used, next_free (nil unless full) | nil, err
 *   store.limit, store.window, store.kind ("memory", "sqlite"), store.path (SQLite),
 *   store:close()
 *   store:note(key, fact, at [, reason]) -> true | nil, err   (connection facts)
 *   store:facts(key) -> { dead_at =, dead_reason =, alive_at =, auth_at = } | nil, err
 *     (fields only for what was noted; an empty table when nothing was)
 *
 * Keys are the hex strings quota_key makes; tickets are decimal strings.
 * Misuse (a wrong type, a key that is not one, a time that is not finite)
 * raises; a store failure returns nil, err. A store is closed by close(),
 * by the garbage collector, or by a to-be-closed variable (5.4). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "truv/quota.h"

#define STORE_MT "truv.quota.store"
#define SMALL_KEYS 16 /* reserve() parses up to this many keys on the C stack */

typedef struct lstore {
  truv_quota_store *s;      /* NULL once closed */
  truv_quota_policy policy; /* kept for store.limit after close */
  const char *kind;         /* "memory" or "sqlite" */
  const char *path;         /* the SQLite file (kept after the struct), or NULL */
} lstore;

static lstore *check_store(lua_State *L) {
  return luaL_checkudata(L, 1, STORE_MT);
}

static truv_quota_store *check_open(lua_State *L) {
  lstore *u = check_store(L);
  if (!u->s) luaL_error(L, "truv: the quota store is closed");
  return u->s;
}

/* A store call's failure: misuse raises, anything else is nil, err. */
static int failed(lua_State *L, const truv_err *err) {
  if (err->kind == TRUV_EINVALID) return luaL_error(L, "truv: %s", err->message);
  return truv_fail(L, err);
}

static void check_key_at(lua_State *L, int arg, int i, truv_quota_key *out) {
  size_t len = 0;
  const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
  if (!s || truv_quota_key_parse(s, len, out, NULL)) {
    if (i) lua_pushfstring(L, "keys[%d] is not a quota key (32 hex characters)", i);
    else lua_pushliteral(L, "quota key expected (32 hex characters)");
    luaL_argerror(L, arg, lua_tostring(L, -1));
  }
}

static void check_key(lua_State *L, int arg, truv_quota_key *out) {
  lua_pushvalue(L, arg);
  check_key_at(L, arg, 0, out);
  lua_pop(L, 1);
}

/* The keys array at arg, parsed into `small` or GC-owned scratch memory
 * (spent flags after the keys); *n is its length. */
static truv_quota_key *check_keys(lua_State *L, int arg, truv_quota_key *small, size_t *n) {
  truv_quota_key *keys = small;
  size_t i;
  luaL_checktype(L, arg, LUA_TTABLE);
  *n = lua_rawlen(L, arg);
  if (*n == 0) luaL_argerror(L, arg, "non-empty array of quota keys expected");
  if (*n > SMALL_KEYS) keys = lua_newuserdata(L, *n * (sizeof *keys + 1));
  for (i = 0; i < *n; i++) {
    lua_rawgeti(L, arg, (int)i + 1);
    check_key_at(L, arg, (int)i + 1, &keys[i]);
    lua_pop(L, 1);
  }
  return keys;
}

static double check_time(lua_State *L, int arg) {
  double t = luaL_checknumber(L, arg);
  if (!isfinite(t)) luaL_argerror(L, arg, "finite time expected");
  return t;
}

/* ---- methods ---- */

/* Pushes the distinct keys whose spent flag is set, as the caller spelled them. */
static void push_spent(lua_State *L, const truv_quota_key *keys, const unsigned char *spent,
                       size_t n) {
  size_t i, j;
  int out = 0;
  lua_createtable(L, 1, 0);
  for (i = 0; i < n; i++) {
    if (!spent[i]) continue;
    for (j = 0; j < i && memcmp(keys[j].bytes, keys[i].bytes, TRUV_QUOTA_KEY_LEN); j++) {
    }
    if (j < i) continue;
    lua_rawgeti(L, 2, (int)i + 1);
    lua_rawseti(L, -2, ++out);
  }
}

/* Pushes a ticket as its decimal text (by hand: snprintf costs as much as
 * the whole reserve). */
static void push_ticket(lua_State *L, truv_quota_ticket ticket) {
  char text[24], *p = text + sizeof text;
  do {
    *--p = (char)('0' + ticket % 10);
    ticket /= 10;
  } while (ticket);
  lua_pushlstring(L, p, (size_t)(text + sizeof text - p));
}

/* store:reserve(keys, now) */
static int l_reserve(lua_State *L) {
  truv_quota_store *s = check_open(L);
  truv_quota_key small[SMALL_KEYS];
  unsigned char small_spent[SMALL_KEYS];
  size_t n;
  truv_quota_key *keys = check_keys(L, 2, small, &n);
  unsigned char *spent = keys == small ? small_spent : (unsigned char *)(keys + n);
  double now = check_time(L, 3), not_before = 0;
  truv_quota_ticket ticket = 0;
  truv_err err;
  int rc = truv_quota_reserve(s, keys, n, now, &ticket, &not_before, spent, &err);
  if (rc == TRUV_EQUOTA) {
    lua_pushboolean(L, 0);
    lua_pushnumber(L, not_before);
    push_spent(L, keys, spent, n);
    return 3;
  }
  if (rc) return failed(L, &err);
  push_ticket(L, ticket);
  return 1;
}

/* A ticket's text -> its number; 0 (no ticket: nothing to release) for text
 * no store issued. */
static truv_quota_ticket parse_ticket(const char *s, size_t len) {
  char *end;
  unsigned long long v;
  if (len == 0 || len > 20 || s[0] < '0' || s[0] > '9') return 0;
  errno = 0;
  v = strtoull(s, &end, 10);
  if (errno || (size_t)(end - s) != len) return 0;
  return (truv_quota_ticket)v;
}

/* store:release(keys, ticket) */
static int l_release(lua_State *L) {
  truv_quota_store *s = check_open(L);
  truv_quota_key small[SMALL_KEYS];
  size_t n, len;
  truv_quota_key *keys = check_keys(L, 2, small, &n);
  const char *text = luaL_checklstring(L, 3, &len);
  truv_err err;
  if (truv_quota_release(s, keys, n, parse_ticket(text, len), &err)) return failed(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* store:record_limit(key, now) */
static int l_record_limit(lua_State *L) {
  truv_quota_store *s = check_open(L);
  truv_quota_key key;
  truv_err err;
  check_key(L, 2, &key);
  if (truv_quota_record_limit(s, &key, check_time(L, 3), &err)) return failed(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* store:record_count(key, times, now) */
static int l_record_count(lua_State *L) {
  truv_quota_store *s = check_open(L);
  truv_quota_key key;
  double small[SMALL_KEYS], *times = small, now;
  size_t n, i;
  truv_err err;
  check_key(L, 2, &key);
  luaL_checktype(L, 3, LUA_TTABLE);
  now = check_time(L, 4);
  n = lua_rawlen(L, 3);
  if (n > SMALL_KEYS) times = lua_newuserdata(L, n * sizeof *times);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, 3, (int)i + 1);
    if (lua_type(L, -1) != LUA_TNUMBER || !isfinite(lua_tonumber(L, -1)))
      return luaL_argerror(L, 3, "array of finite times expected");
    times[i] = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  if (truv_quota_record_count(s, &key, times, n, now, &err)) return failed(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* store:usage(key, now) */
static int l_usage(lua_State *L) {
  truv_quota_store *s = check_open(L);
  truv_quota_key key;
  truv_err err;
  int used = 0;
  double next_free = 0;
  check_key(L, 2, &key);
  if (truv_quota_usage(s, &key, check_time(L, 3), &used, &next_free, &err)) return failed(L, &err);
  lua_pushinteger(L, used);
  if (used >= s->policy.limit) lua_pushnumber(L, next_free);
  else lua_pushnil(L);
  return 2;
}

/* store:note(key, fact, at [, reason]) */
static int l_note(lua_State *L) {
  truv_quota_store *s = check_open(L);
  truv_quota_key key;
  truv_err err;
  const char *name, *reason;
  int fact;
  check_key(L, 2, &key);
  name = luaL_checkstring(L, 3);
  if ((fact = truv_quota_fact_of(name)) < 0)
    return luaL_argerror(L, 3, "\"dead\", \"alive\" or \"auth\" expected");
  reason = luaL_optstring(L, 5, NULL);
  if (truv_quota_note(s, &key, (truv_quota_fact)fact, check_time(L, 4), reason, &err))
    return failed(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static void set_time(lua_State *L, const char *name, double t) {
  lua_pushnumber(L, t);
  lua_setfield(L, -2, name);
}

/* store:facts(key) */
static int l_facts(lua_State *L) {
  truv_quota_store *s = check_open(L);
  truv_quota_key key;
  truv_quota_facts f;
  truv_err err;
  check_key(L, 2, &key);
  if (truv_quota_facts_read(s, &key, &f, &err)) return failed(L, &err);
  lua_createtable(L, 0, 4);
  if (f.seen & (1u << TRUV_FACT_DEAD)) {
    set_time(L, "dead_at", f.dead_at);
    if (f.dead_reason[0]) {
      lua_pushstring(L, f.dead_reason);
      lua_setfield(L, -2, "dead_reason");
    }
  }
  if (f.seen & (1u << TRUV_FACT_ALIVE)) set_time(L, "alive_at", f.alive_at);
  if (f.seen & (1u << TRUV_FACT_AUTH)) set_time(L, "auth_at", f.auth_at);
  return 1;
}

static int l_close(lua_State *L) {
  lstore *u = check_store(L);
  truv_quota_close(u->s);
  u->s = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  lstore *u = check_store(L);
  lua_pushfstring(L, "truv.quota.store (%s, %d per %f s%s)", u->kind, u->policy.limit,
                  u->policy.window_s, u->s ? "" : ", closed");
  return 1;
}

/* __index: the methods (upvalue 1), then the policy fields. */
static int l_index(lua_State *L) {
  lstore *u = check_store(L);
  const char *k = lua_tostring(L, 2);
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  if (!lua_isnil(L, -1) || !k) return 1;
  if (strcmp(k, "limit") == 0) lua_pushinteger(L, u->policy.limit);
  else if (strcmp(k, "window") == 0) lua_pushnumber(L, u->policy.window_s);
  else if (strcmp(k, "kind") == 0) lua_pushstring(L, u->kind);
  else if (strcmp(k, "path") == 0 && u->path) lua_pushstring(L, u->path);
  else lua_pushnil(L);
  return 1;
}

/* ---- constructors ---- */

static truv_quota_policy check_policy(const truv_options *o) {
  truv_quota_policy p = truv_quota_policy_default();
  char what[64];
  truv_err err;
  snprintf(what, sizeof what, "an integer from 1 to %d", TRUV_QUOTA_MAX_LIMIT);
  p.limit = (int)truv_opt_integer(o, "limit", 1, TRUV_QUOTA_MAX_LIMIT, p.limit, what);
  p.window_s = truv_opt_number(o, "window", -HUGE_VAL, HUGE_VAL, p.window_s, "a number");
  /* the limit is in range: what the core refuses is the window */
  if (truv_quota_policy_check(&p, &err))
    truv_opt_error(o, "window", "%s, got %.14g", err.message, p.window_s);
  return p;
}

static lstore *push_store(lua_State *L, const truv_quota_policy *p, const char *kind,
                          const char *path) {
  size_t len = path ? strlen(path) + 1 : 0;
  lstore *u = lua_newuserdata(L, sizeof *u + len);
  u->s = NULL;
  u->policy = *p;
  u->kind = kind;
  u->path = path ? memcpy((char *)(u + 1), path, len) : NULL;
  luaL_setmetatable(L, STORE_MT);
  return u;
}

/* core.quota_memory{ limit=, window=, expected= } */
static int l_quota_memory(lua_State *L) {
  truv_options o = truv_options_at(L, 1, "quota_memory");
  truv_quota_policy p = check_policy(&o);
  double expected =
    truv_opt_number(&o, "expected", 0, 1e9, 0, "a number of connections from 0 to 1e9");
  truv_err err;
  lstore *u = push_store(L, &p, "memory", NULL);
  if (!(u->s = truv_quota_memory(&p, (size_t)expected, &err))) return truv_fail(L, &err);
  return 1;
}

/* core.quota_sqlite(path, { limit=, window= }) */
static int l_quota_sqlite(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  truv_options o = truv_options_at(L, 2, "quota_sqlite");
  truv_quota_policy p = check_policy(&o);
  truv_err err;
  lstore *u = push_store(L, &p, "sqlite", path);
  if (!(u->s = truv_quota_sqlite(path, &p, &err))) return truv_fail(L, &err);
  return 1;
}

/* core.quota_key(token) */
static int l_quota_key(lua_State *L) {
  size_t len;
  const char *token = luaL_checklstring(L, 1, &len);
  char hex[TRUV_QUOTA_HEX_LEN + 1];
  truv_quota_key key;
  truv_err err;
  if (len == 0) luaL_argerror(L, 1, "non-empty access token expected");
  if (truv_quota_key_of_len(token, len, &key)) {
    truv_err_clear(&err);
    truv_err_set(&err, TRUV_EINTERNAL, "digest", "SHA-256 failed");
    return truv_fail(L, &err);
  }
  truv_quota_key_hex(&key, hex);
  lua_pushstring(L, hex);
  return 1;
}

void truv_open_quota(lua_State *L) {
  static const luaL_Reg methods[] = {{"reserve", l_reserve},
                                     {"release", l_release},
                                     {"record_limit", l_record_limit},
                                     {"record_count", l_record_count},
                                     {"usage", l_usage},
                                     {"note", l_note},
                                     {"facts", l_facts},
                                     {"close", l_close},
                                     {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"quota_key", l_quota_key},
                                   {"quota_memory", l_quota_memory},
                                   {"quota_sqlite", l_quota_sqlite},
                                   {NULL, NULL}};
  truv_new_handle_type(L, STORE_MT, methods, l_index, l_close, l_tostring);
  luaL_setfuncs(L, funcs, 0);
}
