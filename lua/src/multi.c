/* The libcurl multi transport, for Lua: many requests in flight from one
 * coroutine scheduler (see truv/multi.h for the transport's contract).
 *
 *   local m = core.multi{ max_in_flight = 32, max_host_connections = 32,
 *                         timeout_ms =, connect_timeout_ms =, ca_file =,
 *                         ca_path =, proxy =, insecure =, buffer_size = }
 *   m:add(request, tag [, mode]) -> true | nil, err
 *       tag: any value but nil or NaN, unique among the transfers not yet
 *       reported; it and the request are kept alive until then. `mode`,
 *       when given, is this answer's document mode (else run's).
 *   m:run(timeout_s, now [, mode]) -> { completion, ... } | nil, err
 *       runs for at most timeout_s, returning early once anything finished;
 *       completion = { tag =, doc =, meta = { status =, request_id = } }
 *                  | { tag =, err = <error table> }
 *       answers are classified in C with their request (the body never
 *       becomes a Lua string); `now` is for Retry-After, `mode` "view",
 *       "table" or "model" as for http:perform.
 *   m:pending()   -> transfers added and not yet reported
 *   m:cancel(tag) -> true if that transfer was pending (it is then never
 *                    reported), else false
 *   m:stats()     -> { transfers =, connects =, cancelled =, pending = }
 *   m:close()     aborts what is in flight; also on collection
 *
 * Layout: the userdata holds the C multi; its user value is a table with
 * four maps that keep what is in flight alive and findable:
 *   [1] id -> request   [2] id -> tag   [3] tag -> id
 *   [4] id -> mode (only for a transfer added with a mode of its own)
 * where id is a counter given to the C multi as its tag. Closing replaces
 * the table with an empty one. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "binding.h"
#include "truv/multi.h"

#define MULTI_MT "truv.multi"

enum { REQS = 1, TAGS = 2, IDS = 3, MODES = 4 };

typedef struct lmulti {
  truv_multi *m;
  lua_Integer last_id;
} lmulti;

static lmulti *check_multi(lua_State *L, int idx) {
  lmulti *lm = luaL_checkudata(L, idx, MULTI_MT);
  if (!lm->m) luaL_error(L, "truv: this multi transport is closed");
  return lm;
}

/* ------------------------------------------------------------ options */

/* A number of `unit` from 0 to max; a fraction above 0 counts as 1. */
static long opt_count(const truv_options *o, const char *key, double max, const char *unit) {
  char what[64];
  double v;
  snprintf(what, sizeof what, "a number of %s from 0 to %.0f", unit, max);
  v = truv_opt_number(o, key, 0, max, 0, what);
  return v > 0 && v < 1 ? 1 : (long)v;
}

static void read_options(lua_State *L, int idx, truv_multi_options *out) {
  truv_options o = truv_options_at(L, idx, "multi");
  memset(out, 0, sizeof *out);
  out->max_in_flight = (int)opt_count(&o, "max_in_flight", TRUV_MULTI_MAX_IN_FLIGHT, "transfers");
  out->max_host_connections =
    (int)opt_count(&o, "max_host_connections", TRUV_MULTI_MAX_IN_FLIGHT, "connections");
  out->buffer_size = opt_count(&o, "buffer_size", 1 << 30, "bytes");
  truv_read_http_options(&o, &out->http);
}

static int l_multi(lua_State *L) {
  truv_multi_options o;
  truv_err err;
  lmulti *lm;
  read_options(L, 1, &o);
  lm = lua_newuserdata(L, sizeof *lm);
  lm->m = NULL;
  lm->last_id = 0;
  luaL_setmetatable(L, MULTI_MT);
  lua_createtable(L, 4, 0);
  lua_newtable(L);
  lua_rawseti(L, -2, MODES);
  lua_newtable(L);
  lua_rawseti(L, -2, REQS);
  lua_newtable(L);
  lua_rawseti(L, -2, TAGS);
  lua_newtable(L);
  lua_rawseti(L, -2, IDS);
  truv_setuservalue(L, -2);
  if (!(lm->m = truv_multi_new(&o, &err))) return truv_fail(L, &err);
  return 1;
}

/* ------------------------------------------------------------ the maps */

/* Pushes map `which` of the multi at idx. */
static void push_map(lua_State *L, int idx, int which) {
  truv_getuservalue(L, idx);
  lua_rawgeti(L, -1, which);
  lua_remove(L, -2);
}

/* map[id] = the value at the top (popped). Keys go through lua_pushinteger,
 * not lua_rawseti, whose index is an int in the 5.1 API. */
static void set_by_id(lua_State *L, int self, int which, lua_Integer id) {
  push_map(L, self, which);
  lua_pushinteger(L, id);
  lua_pushvalue(L, -3);
  lua_rawset(L, -3);
  lua_pop(L, 2);
}

static void get_by_id(lua_State *L, int self, int which, lua_Integer id) {
  push_map(L, self, which);
  lua_pushinteger(L, id);
  lua_rawget(L, -2);
  lua_remove(L, -2);
}

/* Forgets transfer id (whose tag is at tag_idx) in every map. */
static void forget(lua_State *L, int self, lua_Integer id, int tag_idx) {
  tag_idx = lua_absindex(L, tag_idx);
  push_map(L, self, IDS);
  lua_pushvalue(L, tag_idx);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_pushnil(L);
  set_by_id(L, self, REQS, id);
  lua_pushnil(L);
  set_by_id(L, self, TAGS, id);
  lua_pushnil(L);
  set_by_id(L, self, MODES, id);
}

/* The id of the pending transfer tagged by the value at tag_idx, or 0. */
static lua_Integer id_of(lua_State *L, int self, int tag_idx) {
  lua_Integer id;
  tag_idx = lua_absindex(L, tag_idx);
  push_map(L, self, IDS);
  lua_pushvalue(L, tag_idx);
  lua_rawget(L, -2);
  id = lua_isnil(L, -1) ? 0 : (lua_Integer)lua_tonumber(L, -1);
  lua_pop(L, 2);
  return id;
}

static void check_tag(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx)) luaL_argerror(L, idx, "a tag (any value but nil) expected");
  if (lua_type(L, idx) == LUA_TNUMBER && lua_tonumber(L, idx) != lua_tonumber(L, idx))
    luaL_argerror(L, idx, "a tag cannot be NaN");
}

/* ------------------------------------------------------------ methods */

static int multi_add(lua_State *L) {
  lmulti *lm = check_multi(L, 1);
  truv_request *req = truv_check_request(L, 2);
  lua_Integer id;
  truv_err err;
  int mode;
  check_tag(L, 3);
  mode = truv_check_docmode(L, 4, -1);
  if (id_of(L, 1, 3)) {
    truv_err_clear(&err);
    truv_err_set(&err, TRUV_EINVALID, "duplicate_tag", "this tag names a transfer in flight");
    return truv_fail(L, &err);
  }
  /* the maps first: once the C multi holds the request, Lua must too */
  id = ++lm->last_id;
  lua_pushvalue(L, 2);
  set_by_id(L, 1, REQS, id);
  lua_pushvalue(L, 3);
  set_by_id(L, 1, TAGS, id);
  if (mode >= 0) {
    lua_pushinteger(L, mode);
    set_by_id(L, 1, MODES, id);
  }
  push_map(L, 1, IDS);
  lua_pushvalue(L, 3);
  lua_pushinteger(L, id);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  if (truv_multi_add(lm->m, req, (void *)(uintptr_t)id, &err)) {
    forget(L, 1, id, 3);
    return truv_fail(L, &err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* Pushes the completion table for one finished transfer. */
static void push_completion(lua_State *L, int self, const truv_multi_done *d, double now,
                            int mode) {
  lua_Integer id = (lua_Integer)(uintptr_t)d->tag;
  int top;
  lua_createtable(L, 0, 3);
  top = lua_gettop(L);
  get_by_id(L, self, TAGS, id);
  lua_setfield(L, top, "tag");
  get_by_id(L, self, MODES, id); /* the request's own mode wins over run's */
  if (lua_isnumber(L, -1)) mode = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  if (d->resp) {
    /* the request is still anchored in the maps while it is classified */
    truv_push_classified(L, d->req, d->resp, now, mode);
    if (lua_isnil(L, -2)) {
      lua_setfield(L, top, "err");
    } else {
      lua_setfield(L, top, "meta");
      lua_pushvalue(L, -1);
      lua_setfield(L, top, "doc");
    }
    lua_pop(L, 1);
  } else {
    truv_push_error(L, &d->err);
    lua_setfield(L, top, "err");
  }
  lua_getfield(L, top, "tag");
  forget(L, self, id, -1);
  lua_pop(L, 1);
}

static int multi_run(lua_State *L) {
  lmulti *lm = check_multi(L, 1);
  double timeout = luaL_checknumber(L, 2), now = luaL_checknumber(L, 3);
  int mode = truv_check_docmode(L, 4, TRUV_DOC_DEFAULT), n = 0;
  truv_multi_done d;
  truv_err err;
  size_t ready = 0;
  long ms;
  luaL_argcheck(L, timeout >= 0, 2, "a non-negative number of seconds expected");
  ms = timeout > 1e6 ? 1000000000L : (long)(timeout * 1000 + 0.999);
  if (truv_multi_run(lm->m, ms, &ready, &err)) return truv_fail(L, &err);
  lua_createtable(L, (int)ready, 0);
  while (truv_multi_next(lm->m, &d)) {
    push_completion(L, 1, &d, now, mode);
    lua_rawseti(L, -2, ++n);
  }
  return 1;
}

static int multi_pending(lua_State *L) {
  lmulti *lm = check_multi(L, 1);
  lua_pushinteger(L, (lua_Integer)truv_multi_pending(lm->m));
  return 1;
}

static int multi_cancel(lua_State *L) {
  lmulti *lm = check_multi(L, 1);
  lua_Integer id;
  check_tag(L, 2);
  id = id_of(L, 1, 2);
  if (!id || !truv_multi_cancel(lm->m, (void *)(uintptr_t)id)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  forget(L, 1, id, 2);
  lua_pushboolean(L, 1);
  return 1;
}

static void set_count(lua_State *L, const char *key, unsigned long long v) {
  lua_pushnumber(L, (lua_Number)v);
  lua_setfield(L, -2, key);
}

static int multi_stats(lua_State *L) {
  lmulti *lm = check_multi(L, 1);
  truv_multi_stats st;
  truv_multi_get_stats(lm->m, &st);
  lua_createtable(L, 0, 4);
  set_count(L, "transfers", st.transfers);
  set_count(L, "connects", st.connects);
  set_count(L, "cancelled", st.cancelled);
  set_count(L, "pending", truv_multi_pending(lm->m));
  return 1;
}

static int multi_close(lua_State *L) {
  lmulti *lm = luaL_checkudata(L, 1, MULTI_MT);
  truv_multi_free(lm->m);
  lm->m = NULL;
  /* what was in flight may now be collected */
  lua_newtable(L);
  truv_setuservalue(L, 1);
  return 0;
}

static int multi_tostring(lua_State *L) {
  lmulti *lm = luaL_checkudata(L, 1, MULTI_MT);
  if (lm->m) lua_pushfstring(L, "truv.multi (%d pending)", (int)truv_multi_pending(lm->m));
  else lua_pushliteral(L, "truv.multi (closed)");
  return 1;
}

void truv_open_multi(lua_State *L) {
  static const luaL_Reg methods[] = {{"add", multi_add},
                                     {"run", multi_run},
                                     {"pending", multi_pending},
                                     {"cancel", multi_cancel},
                                     {"stats", multi_stats},
                                     {"close", multi_close},
                                     {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"multi", l_multi}, {NULL, NULL}};
  truv_new_handle_type(L, MULTI_MT, methods, NULL, multi_close, multi_tostring);
  luaL_setfuncs(L, funcs, 0);
}
