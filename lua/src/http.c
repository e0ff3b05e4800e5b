/* The blocking libcurl transport, for Lua.
 *
 *   local http = core.http{ connect_timeout_ms =, timeout_ms =, ca_file =,
 *                           ca_path =, proxy =, insecure = }
 *   http:perform(request, now [, mode]) -> doc, meta | nil, err
 *   http:close()
 *
 * perform sends, waits and classifies in C: the body never becomes a Lua
 * string. One http object keeps its connections alive between calls. The
 * options (truv/http.h) are read here for core.multi too. */
#include <string.h>

#include "binding.h"
#include "truv/http.h"
#include "truv/response.h"

#define HTTP_MT "truv.http"

typedef struct lhttp {
  truv_http *http;
  truv_response resp;   /* reused: its buffers grow to the largest answer */
} lhttp;

static lhttp *check_http(lua_State *L, int idx) {
  lhttp *h = luaL_checkudata(L, idx, HTTP_MT);
  if (!h->http) luaL_error(L, "truv: this http transport is closed");
  return h;
}

/* ------------------------------------------------------------ options */

static long opt_ms(lua_State *L, int t, const char *key) {
  lua_Number v = 0;
  lua_getfield(L, t, key);
  if (!lua_isnil(L, -1)) {
    v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(v >= 0 && v <= 1e9))
      luaL_error(L, "truv: %s must be a number of milliseconds from 0 to 1e9", key);
    if (v < 1) v = 1;   /* 0 means "default" in the core: keep the user's intent */
  }
  lua_pop(L, 1);
  return (long)v;
}

static const char *opt_str(lua_State *L, int t, const char *key) {
  const char *s = NULL;
  lua_getfield(L, t, key);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "truv: %s must be a string", key);
    s = lua_tostring(L, -1);   /* anchored by the options table */
  }
  lua_pop(L, 1);
  return s;
}

void truv_read_http_options(lua_State *L, int t, truv_http_options *o) {
  o->connect_timeout_ms = opt_ms(L, t, "connect_timeout_ms");
  o->timeout_ms = opt_ms(L, t, "timeout_ms");
  o->send_timeout_ms = opt_ms(L, t, "send_timeout_ms");
  o->read_timeout_ms = opt_ms(L, t, "read_timeout_ms");
  o->ca_file = opt_str(L, t, "ca_file");
  o->ca_path = opt_str(L, t, "ca_path");
  o->proxy = opt_str(L, t, "proxy");
  o->no_proxy = opt_str(L, t, "no_proxy");
  lua_getfield(L, t, "insecure");
  /* only a boolean: a string "false" or a 0 is true in Lua, and would turn
   * TLS verification off for a caller who meant the opposite */
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
    luaL_error(L, "truv: insecure must be true or false, got a %s", luaL_typename(L, -1));
  o->insecure = lua_toboolean(L, -1);
  lua_pop(L, 1);
}

static int l_http(lua_State *L) {
  truv_http_options opts;
  truv_err err;
  lhttp *h;
  memset(&opts, 0, sizeof opts);
  if (!lua_isnoneornil(L, 1)) {
    luaL_checktype(L, 1, LUA_TTABLE);
    truv_read_http_options(L, 1, &opts);
  }
  h = lua_newuserdata(L, sizeof *h);
  h->http = NULL;
  truv_response_init(&h->resp);
  luaL_setmetatable(L, HTTP_MT);
  if (!(h->http = truv_http_new(&opts, &err))) return truv_fail(L, &err);
  return 1;
}

static int http_perform(lua_State *L) {
  lhttp *h = check_http(L, 1);
  truv_request *req = truv_check_request(L, 2);
  double now = luaL_checknumber(L, 3);
  int mode = truv_check_docmode(L, 4, TRUV_DOC_DEFAULT);
  truv_err err;
  int rc;
  if (truv_http_send(h->http, req, &h->resp, &err)) return truv_fail(L, &err);
  rc = truv_push_classified(L, req, &h->resp, now, mode);
  if (h->resp.body_cap > (1u << 20)) truv_response_free(&h->resp);  /* don't hoard a huge buffer */
  else truv_response_reset(&h->resp);
  return rc;
}

static int http_close(lua_State *L) {
  lhttp *h = luaL_checkudata(L, 1, HTTP_MT);
  truv_http_free(h->http);
  h->http = NULL;
  truv_response_free(&h->resp);
  return 0;
}

static int http_tostring(lua_State *L) {
  lhttp *h = luaL_checkudata(L, 1, HTTP_MT);
  lua_pushfstring(L, "truv.http (%s)%s", truv_http_backend(), h->http ? "" : " closed");
  return 1;
}

void truv_open_http(lua_State *L) {
  static const luaL_Reg methods[] = {
    {"perform", http_perform}, {"close", http_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"http", l_http}, {NULL, NULL}};
  truv_new_handle_type(L, HTTP_MT, methods, NULL, http_close, http_tostring);
  luaL_setfuncs(L, funcs, 0);
  lua_pushstring(L, truv_http_backend());
  lua_setfield(L, -2, "http_backend");
}
