/* The request builder, the HTTP/1.1 request writer and the response
 * classifier, for Lua.
 *
 *   core.build(config, op, id, params [, facts]) -> request | nil, err
 *     config = { client_id =, secret =, base_url =, user_agent = }
 *     op     = "get_order", "refresh_order", ... (truv/request.h)
 *     facts  = { products = {...} }  the original order's products, if known
 *   request.method / .url / .target / .host / .path / .op / .billed / .safe
 *   request.connection    truv_request_connection (truv/request.h): "reuse"
 *                         (a GET: kept-alive, sent again when its connection
 *                         proves dead before any answer), "once" (a
 *                         refresh_order: may reuse a kept-alive connection,
 *                         never sent twice) or "fresh" (a connection of its
 *                         own, closed after the answer)
 *   request.fresh         request.connection == "fresh"
 *   request:body()        the JSON body (may hold an access token: never log it)
 *   request:serialize([proxy]) -> bytes | nil, err
 *                         the whole HTTP/1.1 request, for byte-pipe transports
 *                         (truv/http1.h: Connection: close when fresh; to a
 *                         plain-HTTP proxy, proxy = { authorization = }: the
 *                         absolute URL and Proxy-Authorization)
 *   core.http1_connect(host, port [, proxy]) -> bytes | nil, err
 *                         the CONNECT request of a tunnel to host:port
 *                         through a proxy (proxy as above, or none)
 *   request:redact(s)     s with this request's secrets removed
 *   request:set_timeouts(connect_ms, send_ms, read_ms, total_ms)
 *                         this request's own timeouts (nil or 0: the transport's)
 *   request.timeouts      { connect_ms =, send_ms =, read_ms =, total_ms = } (set ones)
 *   tostring(request)     "truv.request: POST orders/ab12/" (no secrets)
 *
 *   core.ops              { get_order = true, ... }: the operations build() knows
 *
 *   core.classify(request, status, headers, body, now [, mode]) -> doc, meta | nil, err
 *     mode: "view" (default), "table", or "model" (an order's model only)
 *     headers: a table of name -> value (any case)
 *     meta = { status =, request_id = }
 *
 * Wrong argument types raise; API-rule violations return nil, err. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"
#include "truv/classify.h"
#include "truv/http1.h"

#define REQUEST_MT "truv.request"
#define MAX_FACT_PRODUCTS 8

truv_request *truv_check_request(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, REQUEST_MT);
}

static int l_build(lua_State *L) {
  truv_options config;
  truv_config cfg;
  truv_order_facts facts, *pfacts = NULL;
  const char *products[MAX_FACT_PRODUCTS];
  const char *opname, *id;
  cJSON *params = NULL;
  truv_request *req;
  truv_err err;
  int op, rc;

  luaL_checktype(L, 1, LUA_TTABLE);
  config = truv_options_at(L, 1, "build");
  opname = luaL_checkstring(L, 2);
  id = luaL_optstring(L, 3, NULL);
  if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
  if (!lua_isnoneornil(L, 5)) luaL_checktype(L, 5, LUA_TTABLE);
  if ((op = truv_op_from_name(opname)) < 0)
    return luaL_argerror(L, 2, lua_pushfstring(L, "unknown operation '%s'", opname));

  cfg.client_id = truv_opt_string(&config, "client_id", 0);
  cfg.secret = truv_opt_string(&config, "secret", 0);
  cfg.base_url = truv_opt_string(&config, "base_url", 0);
  cfg.user_agent = truv_opt_string(&config, "user_agent", 0);

  if (lua_istable(L, 5)) {
    size_t n = 0;
    lua_getfield(L, 5, "products");
    if (lua_istable(L, -1)) {
      for (n = 0; n < MAX_FACT_PRODUCTS; n++) {
        lua_rawgeti(L, -1, (int)n + 1);
        if (lua_type(L, -1) != LUA_TSTRING) {
          lua_pop(L, 1);
          break;
        }
        products[n] = lua_tostring(L, -1); /* anchored by the products table */
        lua_pop(L, 1);
      }
    }
    lua_pop(L, 1);
    facts.products = products;
    facts.nproducts = n;
    pfacts = n ? &facts : NULL;
  }

  req = lua_newuserdata(L, sizeof *req);
  memset(req, 0, sizeof *req);
  luaL_setmetatable(L, REQUEST_MT);
  if (lua_istable(L, 4)) params = truv_to_json(L, 4);
  rc = truv_request_build(&cfg, (truv_op)op, id, params, pfacts, req, &err);
  cJSON_Delete(params);
  if (rc) return truv_fail(L, &err);
  return 1;
}

static int request_gc(lua_State *L) {
  truv_request_free(truv_check_request(L, 1));
  return 0;
}

static int request_tostring(lua_State *L) {
  truv_request *req = truv_check_request(L, 1);
  lua_pushfstring(L, "truv.request: %s %s", req->method ? req->method : "?",
                  req->path ? req->path : "?");
  return 1;
}

static int request_body(lua_State *L) {
  truv_request *req = truv_check_request(L, 1);
  if (req->body) lua_pushlstring(L, req->body, req->body_len);
  else lua_pushnil(L);
  return 1;
}

/* The bytes truv/http1.h writes for a request (req) or, req NULL, for a
 * tunnel to host:port; the options at proxy_idx name the proxy they go to
 * ({ authorization = "Basic ..." }), or none. Pushes them, or nil, err. */
static int push_written(lua_State *L, const truv_request *req, const char *host, int port,
                        int proxy_idx, const char *fname) {
  truv_options o = truv_options_at(L, proxy_idx, fname);
  truv_http1_proxy proxy;
  truv_err err;
  size_t len = 0;
  char *bytes;
  proxy.authorization = truv_opt_string(&o, "authorization", 0);
  truv_err_clear(&err);
  bytes = req ? truv_http1_request(req, o.t ? &proxy : NULL, &len, &err)
              : truv_http1_connect(host, port, o.t ? &proxy : NULL, &len, &err);
  if (!bytes) return truv_fail(L, &err);
  lua_pushlstring(L, bytes, len);
  free(bytes);
  return 1;
}

/* request:serialize([proxy]) */
static int request_serialize(lua_State *L) {
  return push_written(L, truv_check_request(L, 1), NULL, 0, 2, "serialize");
}

/* core.http1_connect(host, port [, proxy]) */
static int l_connect(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  return push_written(L, NULL, host, port < 0 || port > 65535 ? 0 : (int)port, 3, "http1_connect");
}

static int request_redact(lua_State *L) {
  truv_request *req = truv_check_request(L, 1);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  char *buf = lua_newuserdata(L, len * 10 + 16);
  memcpy(buf, s, len);
  buf[len] = '\0';
  truv_redact(buf, len * 10 + 16, (const char *const *)req->redact, req->nredact);
  lua_pushstring(L, buf);
  return 1;
}

static long check_ms(lua_State *L, int idx) {
  lua_Number v = luaL_optnumber(L, idx, 0);
  if (!(v >= 0 && v <= 1e9))
    luaL_argerror(L, idx, "a number of milliseconds from 0 to 1e9 expected");
  return v > 0 && v < 1 ? 1 : (long)v;
}

static int request_set_timeouts(lua_State *L) {
  truv_request *req = truv_check_request(L, 1);
  truv_request_timeouts t;
  t.connect_ms = check_ms(L, 2);
  t.send_ms = check_ms(L, 3);
  t.read_ms = check_ms(L, 4);
  t.total_ms = check_ms(L, 5);
  req->timeouts = t;
  return 0;
}

static void push_timeouts(lua_State *L, const truv_request_timeouts *t) {
  static const char *const names[] = {"connect_ms", "send_ms", "read_ms", "total_ms"};
  const long values[] = {t->connect_ms, t->send_ms, t->read_ms, t->total_ms};
  int i;
  lua_createtable(L, 0, 4);
  for (i = 0; i < 4; i++) {
    if (!values[i]) continue;
    lua_pushinteger(L, values[i]);
    lua_setfield(L, -2, names[i]);
  }
}

/* truv_request_connection's rule: "reuse", "once" or "fresh". */
static void push_connection(lua_State *L, truv_conn_rule rule) {
  lua_pushstring(L, rule == TRUV_CONN_REUSE        ? "reuse"
                    : rule == TRUV_CONN_REUSE_ONCE ? "once"
                                                   : "fresh");
}

static int request_index(lua_State *L) {
  truv_request *req = truv_check_request(L, 1);
  const char *k = luaL_checkstring(L, 2);
  if (strcmp(k, "method") == 0) lua_pushstring(L, req->method);
  else if (strcmp(k, "url") == 0) lua_pushstring(L, req->url);
  else if (strcmp(k, "target") == 0) lua_pushstring(L, req->target);
  else if (strcmp(k, "host") == 0) lua_pushstring(L, req->host);
  else if (strcmp(k, "path") == 0) lua_pushstring(L, req->path);
  else if (strcmp(k, "op") == 0) lua_pushstring(L, truv_op_name(req->op));
  else if (strcmp(k, "billed") == 0) lua_pushboolean(L, (req->flags & TRUV_REQ_BILLED) != 0);
  else if (strcmp(k, "safe") == 0) lua_pushboolean(L, (req->flags & TRUV_REQ_SAFE) != 0);
  else if (strcmp(k, "fresh") == 0) lua_pushboolean(L, truv_request_fresh(req));
  else if (strcmp(k, "connection") == 0) push_connection(L, truv_request_connection(req));
  else if (strcmp(k, "body") == 0) lua_pushcfunction(L, request_body);
  else if (strcmp(k, "serialize") == 0) lua_pushcfunction(L, request_serialize);
  else if (strcmp(k, "redact") == 0) lua_pushcfunction(L, request_redact);
  else if (strcmp(k, "set_timeouts") == 0) lua_pushcfunction(L, request_set_timeouts);
  else if (strcmp(k, "timeouts") == 0) push_timeouts(L, &req->timeouts);
  else lua_pushnil(L);
  return 1;
}

/* Pushes { status =, request_id = } for a successful exchange. */
static void push_meta(lua_State *L, const truv_response *resp) {
  const char *rid = truv_response_header(resp, "X-Request-Id");
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, resp->status);
  lua_setfield(L, -2, "status");
  if (rid) {
    lua_pushstring(L, rid);
    lua_setfield(L, -2, "request_id");
  }
}

int truv_push_classified(lua_State *L, const truv_request *req, const truv_response *resp,
                         double now, int mode) {
  truv_json *doc = NULL;
  truv_err err;
  if (truv_classify(req, resp, now, &doc, &err)) return truv_fail(L, &err);
  if (!doc) {
    lua_pushboolean(L, 1); /* 204: success without a document */
  } else if (truv_push_in_mode(L, doc, mode, &err)) {
    /* an answer that is no order, asked for as a model */
    const char *rid = truv_response_header(resp, "X-Request-Id");
    err.status = resp->status;
    if (rid) truv_err_set_request_id(&err, (const char *const *)req->redact, req->nredact, rid);
    return truv_fail(L, &err);
  }
  push_meta(L, resp);
  return 2;
}

static int l_classify(lua_State *L) {
  truv_request *req = truv_check_request(L, 1);
  int status = (int)luaL_checkinteger(L, 2);
  size_t len = 0;
  const char *body;
  double now = luaL_checknumber(L, 5);
  int mode = truv_check_docmode(L, 6, TRUV_DOC_DEFAULT), rc;
  truv_response resp;
  luaL_checktype(L, 3, LUA_TTABLE);
  body = luaL_optlstring(L, 4, "", &len);
  truv_response_init(&resp);
  resp.status = status;
  lua_pushnil(L);
  while (lua_next(L, 3)) {
    size_t nl, vl;
    const char *n, *v;
    if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING) {
      n = lua_tolstring(L, -2, &nl);
      v = lua_tolstring(L, -1, &vl);
      if (truv_response_add_header(&resp, n, nl, v, vl)) {
        truv_response_free(&resp);
        return luaL_error(L, "truv: out of memory");
      }
    }
    lua_pop(L, 1);
  }
  /* a response owns its body and a Lua string is read-only: the
   * classifier reads a copy */
  if (!(resp.body = malloc(len + 1))) {
    truv_response_free(&resp);
    return luaL_error(L, "truv: out of memory");
  }
  memcpy(resp.body, body, len);
  resp.body[len] = '\0';
  resp.body_len = len;
  resp.body_cap = len + 1;
  rc = truv_push_classified(L, req, &resp, now, mode);
  truv_response_free(&resp);
  return rc;
}

void truv_open_request(lua_State *L) {
  static const luaL_Reg mt[] = {{"__gc", request_gc},
                                {"__tostring", request_tostring},
                                {"__index", request_index},
                                {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"build", l_build}, {"classify", l_classify}, {"http1_connect", l_connect}, {NULL, NULL}};
  int op;
  luaL_newmetatable(L, REQUEST_MT);
  luaL_setfuncs(L, mt, 0);
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
  /* core.ops: the set of operation names build() knows */
  lua_createtable(L, 0, TRUV_OP_COUNT);
  for (op = 0; op < TRUV_OP_COUNT; op++) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, truv_op_name((truv_op)op));
  }
  lua_setfield(L, -2, "ops");
}
