/* The webhook listener for Lua (see truv/listener.h for its contract and
 * for why it verifies signatures itself).
 *
 *   local l = core.listener{ secrets = secret_or_list,   -- required
 *                            host = "127.0.0.1", port = 0, path = "/truv/webhooks",
 *                            max_queue = 4096, max_body = 1048576 }
 *             -> l | nil, err
 *   l.port, l.host, l.path
 *   l:url()          -> "http://127.0.0.1:PORT/truv/webhooks" ([::1] for IPv6)
 *   l:drain([max])   -> { { body =, headers = { ["x-webhook-sign"] =,
 *                          ["content-type"] =, ["user-agent"] = },
 *                          received_at = }, ... }   (oldest first; {} if none)
 *   l:stats()        -> { accepted, unauthorized, not_found, bad_method,
 *                         too_large, full, queued }
 *   l:close()        stops it; also on collection and as a to-be-closed variable
 *
 * Header names are lower-case, as the receiver looks them up. Wrong option
 * types raise; a listener that cannot start returns nil, err (kind
 * "network" code "bind" for an address in use, "invalid" for a bad host). */
#include <stdio.h>
#include <string.h>

#include "binding.h"
#include "truv/listener.h"

#define LISTENER_MT "truv.listener"
#define DRAINED_MT "truv.listener.drained"
#define MAX_SECRETS 16

typedef struct llistener {
  truv_listener *l; /* NULL once closed */
  char host[64];
  char path[256];
} llistener;

static llistener *check_listener(lua_State *L) {
  return luaL_checkudata(L, 1, LISTENER_MT);
}

static truv_listener *check_open(lua_State *L) {
  llistener *u = check_listener(L);
  if (!u->l) luaL_error(L, "truv: this webhook listener is closed");
  return u->l;
}

/* ---- options ---- */

static size_t opt_count(const truv_options *o, const char *key, double max) {
  char what[64];
  snprintf(what, sizeof what, "an integer from 0 to %.0f", max);
  return (size_t)truv_opt_integer(o, key, 0, max, 0, what);
}

/* The secrets option: a string or a list of strings (kept alive by the
 * options table, which is on the stack for the whole call). */
static size_t opt_secrets(const truv_options *o, const char *out[MAX_SECRETS]) {
  lua_State *L = o->L;
  size_t i, n;
  lua_getfield(L, o->t, "secrets");
  if (lua_type(L, -1) == LUA_TSTRING) {
    out[0] = lua_tostring(L, -1);
    lua_pop(L, 1);
    return 1;
  }
  if (lua_type(L, -1) != LUA_TTABLE)
    truv_opt_error(o, "secrets",
                   "the access secret Truv signs webhooks with, or a list of "
                   "them, expected, got %s",
                   luaL_typename(L, -1));
  n = lua_rawlen(L, -1);
  if (n > MAX_SECRETS)
    truv_opt_error(o, "secrets", "at most %d secrets expected, got %d", MAX_SECRETS, (int)n);
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, -1, (int)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      truv_opt_error(o, "secrets", "a list of strings expected, got a %s at #%d",
                     luaL_typename(L, -1), (int)i + 1);
    out[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return n;
}

/* core.listener(opts) */
static int l_listener(lua_State *L) {
  const char *secrets[MAX_SECRETS];
  truv_listener_options lo;
  truv_options o;
  llistener *u;
  truv_err err;
  luaL_checktype(L, 1, LUA_TTABLE);
  o = truv_options_at(L, 1, "listener");
  memset(&lo, 0, sizeof lo);
  lo.nsecrets = opt_secrets(&o, secrets);
  lo.secrets = secrets;
  lo.host = truv_opt_string(&o, "host", sizeof u->host - 1);
  lo.path = truv_opt_string(&o, "path", sizeof u->path - 1);
  lo.port = (int)opt_count(&o, "port", 65535);
  lo.max_queue = opt_count(&o, "max_queue", TRUV_LISTENER_MAX_QUEUE);
  lo.max_body = opt_count(&o, "max_body", TRUV_LISTENER_MAX_BODY);
  u = lua_newuserdata(L, sizeof *u);
  u->l = NULL;
  luaL_setmetatable(L, LISTENER_MT);
  strcpy(u->host, lo.host ? lo.host : TRUV_LISTENER_DEFAULT_HOST);
  strcpy(u->path, lo.path ? lo.path : TRUV_LISTENER_DEFAULT_PATH);
  truv_err_clear(&err);
  if (truv_listener_new(&lo, &u->l, &err)) return truv_fail(L, &err);
  return 1;
}

/* ---- methods ---- */

static void set_string(lua_State *L, const char *key, const char *v) {
  if (!v) return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, key);
}

static void push_delivery(lua_State *L, const truv_delivery *d) {
  lua_createtable(L, 0, 3);
  lua_pushlstring(L, d->body, d->len);
  lua_setfield(L, -2, "body");
  lua_createtable(L, 0, 3);
  set_string(L, "x-webhook-sign", d->signature);
  set_string(L, "content-type", d->content_type);
  set_string(L, "user-agent", d->user_agent);
  lua_setfield(L, -2, "headers");
  lua_pushnumber(L, d->received_at);
  lua_setfield(L, -2, "received_at");
}

/* l:drain([max]). The drained list is held by a box whose __gc frees it,
 * so that a memory error while the tables are built leaks nothing; the
 * box lets go of it once the copies are made. */
static int l_box_gc(lua_State *L) {
  truv_delivery **box = luaL_checkudata(L, 1, DRAINED_MT);
  truv_deliveries_free(*box);
  *box = NULL;
  return 0;
}

static int l_drain(lua_State *L) {
  truv_listener *l = check_open(L);
  lua_Number max = luaL_optnumber(L, 2, 0);
  truv_delivery **box, *d;
  size_t n;
  int i = 0;
  if (!(max >= 0 && max <= 1e9)) luaL_argerror(L, 2, "a count >= 0 expected");
  box = lua_newuserdata(L, sizeof *box);
  *box = NULL;
  luaL_setmetatable(L, DRAINED_MT);
  n = truv_listener_drain(l, (size_t)max, box);
  lua_createtable(L, n > 100000 ? 100000 : (int)n, 0);
  for (d = *box; d; d = d->next) {
    push_delivery(L, d);
    lua_rawseti(L, -2, ++i);
  }
  truv_deliveries_free(*box);
  *box = NULL;
  return 1;
}

static void set_count(lua_State *L, const char *key, unsigned long long v) {
  lua_pushnumber(L, (lua_Number)v);
  lua_setfield(L, -2, key);
}

static int l_stats(lua_State *L) {
  truv_listener_stats st;
  truv_listener_get_stats(check_open(L), &st);
  lua_createtable(L, 0, 7);
  set_count(L, "accepted", st.accepted);
  set_count(L, "unauthorized", st.unauthorized);
  set_count(L, "not_found", st.not_found);
  set_count(L, "bad_method", st.bad_method);
  set_count(L, "too_large", st.too_large);
  set_count(L, "full", st.full);
  set_count(L, "queued", st.queued);
  return 1;
}

static int l_url(lua_State *L) {
  llistener *u = check_listener(L);
  int port = truv_listener_port(check_open(L));
  if (strchr(u->host, ':')) lua_pushfstring(L, "http://[%s]:%d%s", u->host, port, u->path);
  else lua_pushfstring(L, "http://%s:%d%s", u->host, port, u->path);
  return 1;
}

static int l_close(lua_State *L) {
  llistener *u = check_listener(L);
  truv_listener_free(u->l);
  u->l = NULL;
  return 0;
}

static int l_tostring(lua_State *L) {
  llistener *u = check_listener(L);
  if (u->l) lua_pushfstring(L, "truv.listener (%s port %d)", u->host, truv_listener_port(u->l));
  else lua_pushliteral(L, "truv.listener (closed)");
  return 1;
}

/* __index: the fields port, host and path, else the methods (upvalue 1). */
static int l_index(lua_State *L) {
  llistener *u = check_listener(L);
  const char *key = lua_tostring(L, 2);
  if (key && strcmp(key, "port") == 0) {
    if (u->l) lua_pushinteger(L, truv_listener_port(u->l));
    else lua_pushnil(L);
  } else if (key && strcmp(key, "host") == 0) {
    lua_pushstring(L, u->host);
  } else if (key && strcmp(key, "path") == 0) {
    lua_pushstring(L, u->path);
  } else {
    lua_pushvalue(L, 2);
    lua_rawget(L, lua_upvalueindex(1));
  }
  return 1;
}

void truv_open_listener(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"drain", l_drain}, {"stats", l_stats}, {"url", l_url}, {"close", l_close}, {NULL, NULL}};
  truv_new_handle_type(L, LISTENER_MT, methods, l_index, l_close, l_tostring);
  luaL_newmetatable(L, DRAINED_MT);
  lua_pushcfunction(L, l_box_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_listener);
  lua_setfield(L, -2, "listener");
}
