/* The journal of a renewal batch, for Lua (see truv/journal.h for states,
 * fields, durability and group commits).
 *
 *   local j = core.journal_open(path [, { sync = "normal"|"full",
 *                                         busy_timeout_ms =, exclusive = }])
 *             -> journal | nil, err
 *   j:meta_get(key) -> value | nil
 *   j:meta_set(key, value) -> true | nil, err      (nil or core.null deletes)
 *   j:put(case_id, fields) -> true | nil, err
 *       fields: name -> string | number | boolean | core.null (clears it);
 *       numbers with an integral value (within 2^53) are stored as integers
 *   j:get(case_id) -> { case_id =, <field> = value, ... } | nil
 *   j:delete(case_id) -> true | nil, err        (a case removed; no-op if unknown)
 *   j:begin() / j:commit() / j:rollback() -> true | nil, err
 *       begin() inside an open group raises: groups do not nest
 *   for case in j:each{ state = s | {...}, not_state = s | {...},
 *                       route = s | {...} } do ... end
 *       in insertion order; put() inside the loop is allowed
 *   j:counts() -> { [state] = n }      j:route_counts() -> { [route] = n }
 *   j:close() -> true | nil, err       (commits an open group; also on collection)
 *
 * Wrong argument types raise (a case id, key or field name with a NUL byte
 * too); failures of the file (busy, disk full, a
 * newer schema) return nil, err. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "binding.h"
#include "truv/journal.h"

#define JOURNAL_MT "truv.journal"
#define CURSOR_MT "truv.journal.cursor"

typedef struct ljournal {
  truv_journal *j;
} ljournal;

typedef struct lcursor {
  truv_jcursor *c;
} lcursor;

static truv_journal *check_journal(lua_State *L, int idx) {
  ljournal *lj = luaL_checkudata(L, idx, JOURNAL_MT);
  if (!lj->j) luaL_error(L, "truv: this journal is closed");
  return lj->j;
}

static int ok_or_fail(lua_State *L, int rc, const truv_err *err) {
  if (rc) return truv_fail(L, err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ------------------------------------------------------------ values */

/* The Lua value at idx as a journal value; raises for what a journal
 * cannot hold. Text points into the Lua string (anchored by the caller). */
static void to_value(lua_State *L, int idx, const char *name, truv_jvalue *v) {
  memset(v, 0, sizeof *v);
  switch (lua_type(L, idx)) {
    case LUA_TSTRING:
      v->type = TRUV_JTEXT;
      v->s = lua_tolstring(L, idx, &v->len);
      return;
    case LUA_TBOOLEAN:
      v->type = TRUV_JBOOL;
      v->i = lua_toboolean(L, idx);
      return;
    case LUA_TNUMBER:
      if (truv_isinteger(L, idx)) {
        v->type = TRUV_JINT;
        v->i = (long long)lua_tointeger(L, idx);
      } else {
        double d = lua_tonumber(L, idx);
        if (d == floor(d) && fabs(d) <= 9007199254740992.0)
          v->type = TRUV_JINT, v->i = (long long)d;
        else v->type = TRUV_JREAL, v->r = d;
      }
      return;
    case LUA_TNIL: return;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) return; /* core.null */
      /* fallthrough */
    default:
      luaL_error(L,
                 "truv: journal field '%s' cannot hold a %s (strings, numbers, booleans "
                 "or core.null)",
                 name, luaL_typename(L, idx));
  }
}

static void push_value(lua_State *L, const truv_jvalue *v) {
  switch (v->type) {
    case TRUV_JINT: lua_pushinteger(L, (lua_Integer)v->i); break;
    case TRUV_JREAL: lua_pushnumber(L, v->r); break;
    case TRUV_JTEXT: lua_pushlstring(L, v->s, v->len); break;
    case TRUV_JBOOL: lua_pushboolean(L, (int)v->i); break;
    default: lua_pushnil(L); break;
  }
}

static void push_case(lua_State *L, const truv_jcase *c) {
  size_t i;
  lua_createtable(L, 0, (int)c->nfields + 1);
  lua_pushstring(L, c->case_id);
  lua_setfield(L, -2, "case_id");
  for (i = 0; i < c->nfields; i++) {
    push_value(L, &c->fields[i].value);
    lua_setfield(L, -2, c->fields[i].name);
  }
}

/* ------------------------------------------------------------ open */

static void read_options(lua_State *L, int idx, truv_journal_options *out) {
  static const char *const syncs[] = {"normal", "full", NULL};
  truv_options o = truv_options_at(L, idx, "journal_open");
  memset(out, 0, sizeof *out);
  out->sync_full = truv_opt_choice(&o, "sync", syncs, 0) == 1;
  out->busy_timeout_ms =
    (int)truv_opt_number(&o, "busy_timeout_ms", 0, INT_MAX, 0, "a number of milliseconds >= 0");
  out->exclusive = truv_opt_boolean(&o, "exclusive", 0);
}

static int l_journal_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  truv_journal_options o;
  ljournal *lj;
  truv_err err;
  read_options(L, 2, &o);
  lj = lua_newuserdata(L, sizeof *lj);
  lj->j = NULL;
  luaL_setmetatable(L, JOURNAL_MT);
  if (truv_journal_open(path, &o, &lj->j, &err)) return truv_fail(L, &err);
  return 1;
}

static int journal_close(lua_State *L) {
  ljournal *lj = luaL_checkudata(L, 1, JOURNAL_MT);
  truv_err err;
  int rc = truv_journal_close(lj->j, &err);
  int was_open = lj->j != NULL;
  lj->j = NULL;
  if (!was_open) return 0;
  return ok_or_fail(L, rc, &err);
}

static int journal_tostring(lua_State *L) {
  ljournal *lj = luaL_checkudata(L, 1, JOURNAL_MT);
  if (lj->j) lua_pushfstring(L, "truv.journal (%s)", truv_journal_path(lj->j));
  else lua_pushliteral(L, "truv.journal (closed)");
  return 1;
}

/* A case id or a key at idx: text without a NUL byte, which would cut it
 * short in the journal (two cases would become one). */
static const char *check_key(lua_State *L, int idx) {
  size_t len;
  const char *s = luaL_checklstring(L, idx, &len);
  if (strlen(s) != len) luaL_argerror(L, idx, "a NUL byte cannot be part of a case id or key");
  return s;
}

/* ------------------------------------------------------------ meta */

static int journal_meta_get(lua_State *L) {
  truv_journal *j = check_journal(L, 1);
  const char *key = check_key(L, 2);
  truv_jvalue v;
  truv_err err;
  if (truv_journal_meta_get(j, key, &v, &err)) return truv_fail(L, &err);
  push_value(L, &v);
  return 1;
}

static int journal_meta_set(lua_State *L) {
  truv_journal *j = check_journal(L, 1);
  const char *key = check_key(L, 2);
  truv_jvalue v;
  truv_err err;
  to_value(L, 3, key, &v);
  return ok_or_fail(L, truv_journal_meta_set(j, key, &v, &err), &err);
}

/* ------------------------------------------------------------ cases */

static int journal_put(lua_State *L) {
  truv_journal *j = check_journal(L, 1);
  const char *case_id = check_key(L, 2);
  truv_jfield *fields;
  size_t n = 0;
  truv_err err;
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, 3)) n++, lua_pop(L, 1);
  /* scratch the collector reclaims, also if a bad value raises below */
  fields = lua_newuserdata(L, (n ? n : 1) * sizeof *fields);
  n = 0;
  lua_pushnil(L);
  while (lua_next(L, 3)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      return luaL_error(L, "truv: journal field names must be strings (got a %s)",
                        luaL_typename(L, -2));
    fields[n].name = lua_tostring(L, -2); /* keys and values stay in the table */
    if (strlen(fields[n].name) != lua_rawlen(L, -2))
      return luaL_error(L, "truv: a journal field name cannot hold a NUL byte");
    to_value(L, -1, fields[n].name, &fields[n].value);
    n++;
    lua_pop(L, 1);
  }
  return ok_or_fail(L, truv_journal_put(j, case_id, fields, n, &err), &err);
}

static int journal_get(lua_State *L) {
  truv_journal *j = check_journal(L, 1);
  const char *case_id = check_key(L, 2);
  truv_jcase c;
  truv_err err;
  int found;
  if (truv_journal_get(j, case_id, &c, &found, &err)) return truv_fail(L, &err);
  if (found) push_case(L, &c);
  else lua_pushnil(L);
  return 1;
}

/* j:delete(case_id) -> true | nil, err */
static int journal_delete(lua_State *L) {
  truv_err err;
  return ok_or_fail(L, truv_journal_delete(check_journal(L, 1), check_key(L, 2), &err), &err);
}

static int journal_begin(lua_State *L) {
  truv_journal *j = check_journal(L, 1);
  truv_err err;
  if (truv_journal_in_group(j))
    return luaL_error(L, "truv: journal:begin() inside an open group (groups do not nest)");
  return ok_or_fail(L, truv_journal_begin(j, &err), &err);
}

static int journal_commit(lua_State *L) {
  truv_err err;
  return ok_or_fail(L, truv_journal_commit(check_journal(L, 1), &err), &err);
}

static int journal_rollback(lua_State *L) {
  truv_err err;
  return ok_or_fail(L, truv_journal_rollback(check_journal(L, 1), &err), &err);
}

/* ------------------------------------------------------------ counts */

static void count_into(void *ud, const char *key, long long n) {
  lua_State *L = ud;
  lua_pushinteger(L, (lua_Integer)n);
  lua_setfield(L, -2, key);
}

static int counts(lua_State *L, int by_route) {
  truv_journal *j = check_journal(L, 1);
  truv_err err;
  lua_newtable(L);
  if (truv_journal_counts(j, by_route, count_into, L, &err)) return truv_fail(L, &err);
  return 1;
}

static int journal_counts(lua_State *L) {
  return counts(L, 0);
}

static int journal_route_counts(lua_State *L) {
  return counts(L, 1);
}

/* ------------------------------------------------------------ each */

/* filter[key]: nil, a string, or a list of strings -> an array of C strings
 * (anchored by the filter table for the duration of the call). */
static const char **filter_list(lua_State *L, int t, const char *key, size_t *n) {
  const char **list;
  size_t i;
  *n = 0;
  lua_getfield(L, t, key);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return NULL;
  }
  if (lua_type(L, -1) == LUA_TSTRING) {
    list = lua_newuserdata(L, sizeof *list);
    list[0] = lua_tostring(L, -2);
    *n = 1;
  } else {
    if (!lua_istable(L, -1))
      luaL_error(L, "truv: journal filter %s must be a string or a list of strings", key);
    *n = lua_rawlen(L, -1);
    list = lua_newuserdata(L, (*n ? *n : 1) * sizeof *list);
    for (i = 0; i < *n; i++) {
      lua_rawgeti(L, -2, (int)i + 1);
      if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "truv: journal filter %s must be a list of strings", key);
      list[i] = lua_tostring(L, -1);
      lua_pop(L, 1);
    }
  }
  lua_replace(L, -2); /* the scratch stays on the stack, the value in the filter */
  return list;
}

static void check_filter_keys(lua_State *L, int t) {
  lua_pushnil(L);
  while (lua_next(L, t)) {
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
    if (strcmp(k, "state") != 0 && strcmp(k, "not_state") != 0 && strcmp(k, "route") != 0)
      luaL_error(L, "truv: unknown journal filter '%s' (state, not_state, route)", k);
    lua_pop(L, 1);
  }
}

static int cursor_gc(lua_State *L) {
  lcursor *lc = luaL_checkudata(L, 1, CURSOR_MT);
  truv_jcursor_free(lc->c);
  lc->c = NULL;
  return 0;
}

static int cursor_step(lua_State *L) {
  lcursor *lc = luaL_checkudata(L, lua_upvalueindex(1), CURSOR_MT);
  truv_jcase c;
  truv_err err;
  int found;
  if (!lc->c) return 0;
  if (truv_jcursor_next(lc->c, &c, &found, &err))
    return luaL_error(L, "truv: journal:each(): %s", err.message);
  if (!found) {
    /* let the statement go now rather than at collection */
    truv_jcursor_free(lc->c);
    lc->c = NULL;
    return 0;
  }
  push_case(L, &c);
  return 1;
}

/* Returns the iterator, and (for Lua 5.4's generic for) the cursor as the
 * closing value, so that a loop left by break releases it at once. */
static int journal_each(lua_State *L) {
  truv_journal *j = check_journal(L, 1);
  truv_jfilter f;
  lcursor *lc;
  truv_err err;
  memset(&f, 0, sizeof f);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    check_filter_keys(L, 2);
    f.states = filter_list(L, 2, "state", &f.nstates);
    f.not_states = filter_list(L, 2, "not_state", &f.nnot_states);
    f.routes = filter_list(L, 2, "route", &f.nroutes);
  }
  lc = lua_newuserdata(L, sizeof *lc);
  lc->c = NULL;
  luaL_setmetatable(L, CURSOR_MT);
  if (truv_journal_each(j, &f, &lc->c, &err)) return truv_fail(L, &err);
  lua_pushvalue(L, -1);
  lua_pushvalue(L, 1); /* the journal stays alive while its cursor is used */
  lua_pushcclosure(L, cursor_step, 2);
  lua_insert(L, -2);
  lua_pushnil(L);
  lua_insert(L, -2);
  lua_pushnil(L);
  lua_insert(L, -2);
  return 4;
}

void truv_open_journal(lua_State *L) {
  static const luaL_Reg methods[] = {{"meta_get", journal_meta_get},
                                     {"meta_set", journal_meta_set},
                                     {"put", journal_put},
                                     {"get", journal_get},
                                     {"delete", journal_delete},
                                     {"begin", journal_begin},
                                     {"commit", journal_commit},
                                     {"rollback", journal_rollback},
                                     {"each", journal_each},
                                     {"counts", journal_counts},
                                     {"route_counts", journal_route_counts},
                                     {"close", journal_close},
                                     {NULL, NULL}};
  static const luaL_Reg cursor_mt[] = {{"__gc", cursor_gc}, {"__close", cursor_gc}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"journal_open", l_journal_open}, {NULL, NULL}};
  truv_new_handle_type(L, JOURNAL_MT, methods, NULL, journal_close, journal_tostring);
  luaL_newmetatable(L, CURSOR_MT);
  luaL_setfuncs(L, cursor_mt, 0);
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
}
