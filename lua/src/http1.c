/* HTTP/1.1 answers off the wire, for byte-pipe transports
 * (truv.transport.cosocket): the incremental response parser. What goes
 * out is request.c's (request:serialize(), core.http1_connect).
 *
 *   local p = core.http1_parser{ max_header_bytes =, max_headers =, max_body = }
 *   p:feed(bytes)      -> done (boolean) | nil, err
 *   p:eof()            -> true | nil, err       the peer closed the connection
 *   p:done()           -> boolean
 *   p:keepalive()      -> boolean               the connection may carry another request
 *   p:received()       -> bytes fed since the reset
 *   p:classify(request, now [, mode]) -> doc, meta | nil, err
 *   p:response()       -> status, headers (name -> value), body   (for tests and logs)
 *   p:reset()          ready for the next response
 *
 * classify works on the parsed response in C: the body never becomes a Lua
 * string. Errors are truv errors (see truv/http1.h for the codes); calling
 * classify before the response is complete raises. */
#include <string.h>

#include "binding.h"
#include "truv/http1.h"
#include "truv/response.h"

#define HTTP1_MT "truv.http1"
#define KEEP_BUFFER (1u << 20) /* reset frees a body buffer larger than this */

typedef struct lhttp1 {
  truv_http1 *p;
} lhttp1;

static truv_http1 *check_parser(lua_State *L) {
  lhttp1 *u = luaL_checkudata(L, 1, HTTP1_MT);
  if (!u->p) luaL_error(L, "truv: this HTTP parser is closed");
  return u->p;
}

static size_t opt_size(const truv_options *o, const char *key) {
  return (size_t)truv_opt_number(o, key, 1, 1e12, 0, "a positive number");
}

static int l_parser(lua_State *L) {
  truv_options o = truv_options_at(L, 1, "http1_parser");
  truv_http1_limits limits;
  truv_err err;
  lhttp1 *u;
  memset(&limits, 0, sizeof limits);
  limits.max_header_bytes = opt_size(&o, "max_header_bytes");
  limits.max_headers = opt_size(&o, "max_headers");
  limits.max_body = opt_size(&o, "max_body");
  u = lua_newuserdata(L, sizeof *u);
  u->p = NULL;
  luaL_setmetatable(L, HTTP1_MT);
  if (!(u->p = truv_http1_new(&limits, &err))) return truv_fail(L, &err);
  return 1;
}

static int p_feed(lua_State *L) {
  truv_http1 *p = check_parser(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  truv_err err;
  if (truv_http1_feed(p, data, len, &err)) return truv_fail(L, &err);
  lua_pushboolean(L, truv_http1_done(p));
  return 1;
}

static int p_eof(lua_State *L) {
  truv_http1 *p = check_parser(L);
  truv_err err;
  if (truv_http1_eof(p, &err)) return truv_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int p_done(lua_State *L) {
  lua_pushboolean(L, truv_http1_done(check_parser(L)));
  return 1;
}

static int p_keepalive(lua_State *L) {
  lua_pushboolean(L, truv_http1_keepalive(check_parser(L)));
  return 1;
}

static int p_received(lua_State *L) {
  lua_pushnumber(L, (lua_Number)truv_http1_received(check_parser(L)));
  return 1;
}

static int p_classify(lua_State *L) {
  truv_http1 *p = check_parser(L);
  truv_request *req = truv_check_request(L, 2);
  double now = luaL_checknumber(L, 3);
  int mode = truv_check_docmode(L, 4, TRUV_DOC_DEFAULT);
  if (!truv_http1_done(p)) return luaL_error(L, "truv: the response is not complete");
  return truv_push_classified(L, req, truv_http1_response(p), now, mode);
}

static int p_response(lua_State *L) {
  truv_http1 *p = check_parser(L);
  truv_response *r = truv_http1_response(p);
  size_t i;
  lua_pushinteger(L, r->status);
  lua_createtable(L, 0, (int)r->nheaders);
  for (i = 0; i < r->nheaders; i++) {
    lua_pushstring(L, r->headers[i].value);
    lua_setfield(L, -2, r->headers[i].name);
  }
  lua_pushlstring(L, r->body ? r->body : "", r->body_len);
  return 3;
}

static int p_reset(lua_State *L) {
  truv_http1 *p = check_parser(L);
  truv_response *r = truv_http1_response(p);
  truv_http1_reset(p);
  if (r->body_cap > KEEP_BUFFER) truv_response_free(r); /* don't hoard a huge buffer */
  return 0;
}

static int p_close(lua_State *L) {
  lhttp1 *u = luaL_checkudata(L, 1, HTTP1_MT);
  truv_http1_free(u->p);
  u->p = NULL;
  return 0;
}

static int p_tostring(lua_State *L) {
  lhttp1 *u = luaL_checkudata(L, 1, HTTP1_MT);
  if (!u->p) lua_pushliteral(L, "truv.http1_parser (closed)");
  else lua_pushfstring(L, "truv.http1_parser (%s)", truv_http1_done(u->p) ? "done" : "reading");
  return 1;
}

void truv_open_http1(lua_State *L) {
  static const luaL_Reg methods[] = {{"feed", p_feed},         {"eof", p_eof},
                                     {"done", p_done},         {"keepalive", p_keepalive},
                                     {"received", p_received}, {"classify", p_classify},
                                     {"response", p_response}, {"reset", p_reset},
                                     {"close", p_close},       {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"http1_parser", l_parser}, {NULL, NULL}};
  truv_new_handle_type(L, HTTP1_MT, methods, NULL, p_close, p_tostring);
  luaL_setfuncs(L, funcs, 0);
}
