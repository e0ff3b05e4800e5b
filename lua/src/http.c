/* The blocking libcurl transport, for Lua.
 *
 *   local http = core.http{ connect_timeout_ms =, timeout_ms =, ca_file =,
 *                           ca_path =, proxy =, insecure =, billed_reuse_idle_s = }
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
  truv_response resp; /* reused: its buffers grow to the largest answer */
} lhttp;

static lhttp *check_http(lua_State *L, int idx) {
  lhttp *h = luaL_checkudata(L, idx, HTTP_MT);
  if (!h->http) luaL_error(L, "truv: this http transport is closed");
  return h;
}

/* ------------------------------------------------------------ options */

/* A user's 0 is kept as 1 ms: 0 means "the default" in the core. */
static long opt_ms(const truv_options *o, const char *key) {
  double v = truv_opt_number(o, key, 0, 1e9, -1, "a number of milliseconds from 0 to 1e9");
  return v < 0 ? 0 : v < 1 ? 1 : (long)v;
}

/* Whole seconds; a user's 0 (never reuse) is the core's -1, absent its 0
 * (the default). */
static long opt_idle_s(const truv_options *o, const char *key) {
  double v = truv_opt_integer(o, key, 0, (double)TRUV_MAX_BILLED_REUSE_IDLE_S, -1,
                              "a whole number of seconds from 0 to 3600");
  return v < 0 ? 0 : v == 0 ? -1 : (long)v;
}

void truv_read_http_options(const truv_options *o, truv_http_options *out) {
  out->connect_timeout_ms = opt_ms(o, "connect_timeout_ms");
  out->timeout_ms = opt_ms(o, "timeout_ms");
  out->send_timeout_ms = opt_ms(o, "send_timeout_ms");
  out->read_timeout_ms = opt_ms(o, "read_timeout_ms");
  out->ca_file = truv_opt_string(o, "ca_file", 0);
  out->ca_path = truv_opt_string(o, "ca_path", 0);
  out->proxy = truv_opt_string(o, "proxy", 0);
  out->no_proxy = truv_opt_string(o, "no_proxy", 0);
  /* TLS verification off only when the caller wrote true */
  out->insecure = truv_opt_boolean(o, "insecure", 0);
  out->billed_reuse_idle_s = opt_idle_s(o, "billed_reuse_idle_s");
}

static int l_http(lua_State *L) {
  truv_options o = truv_options_at(L, 1, "http");
  truv_http_options opts;
  truv_err err;
  lhttp *h;
  memset(&opts, 0, sizeof opts);
  truv_read_http_options(&o, &opts);
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
  if (h->resp.body_cap > (1u << 20)) truv_response_free(&h->resp); /* don't hoard a huge buffer */
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
