/* Redis for Lua: the RESP codec and the blocking connection of
 * truv/redis.h, the embedded scripts (core/redis/, one .lua each), and tickets. The
 * stores themselves are Lua (truv/store/redis.lua), over either transport:
 *
 *   core.redis_connect{ host =, port =, unix_path =, user =, password =,
 *                       db =, tls =, ca_file =, server_name =, insecure =,
 *                       connect_timeout_ms =, timeout_ms = }   -> conn
 *   conn:call(arg, ...)   -> true, value     a reply
 *                         -> false, text     a Redis error reply ("NOSCRIPT ...")
 *                         -> nil, err, maybe_sent   the call failed (the
 *                            connection is closed; see truv/redis.h)
 *   conn:reset(), conn:close(), conn:connects(), conn:connected(), tostring(conn)
 *   core.redis_format(arg, ...)    -> the bytes of one command
 *   core.redis_reader()            -> reader
 *   reader:feed(bytes)             -> true | nil, err
 *   reader:get()                   -> true, value | false, text | nil (more
 *                                     bytes needed) | nil, err (not RESP)
 *   core.redis_script(name)        -> text, sha1 (40 hex) | nil
 *   core.redis_script_names()      -> { name, ... }
 *   core.redis_ticket()            -> 16 hex digits, 64 random bits, never 0
 *
 * Values: a bulk or status string is a string, an integer an integer, a nil
 * bulk false (as Redis's Lua sees it), an array a table 1..n. Arguments are
 * strings or numbers (integers as integers, others with %.17g). */
#include <stdio.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "binding.h"
#include "redis_scripts.h"
#include "truv/redis.h"

#define CONN_MT "truv.redis.conn"
#define READER_MT "truv.redis.reader"
#define MAX_ARGS 1024

typedef struct lconn {
  truv_redis_conn *c; /* NULL once closed */
} lconn;

typedef struct lreader {
  truv_redis_reader *r;
} lreader;

static void push_reply(lua_State *L, const redisReply *r, int depth) {
  size_t i;
  luaL_checkstack(L, 3, "Redis reply too deep");
  switch (r->type) {
    case REDIS_REPLY_INTEGER: lua_pushinteger(L, (lua_Integer)r->integer); break;
    case REDIS_REPLY_NIL: lua_pushboolean(L, 0); break;
    case REDIS_REPLY_ARRAY:
      lua_createtable(L, (int)(r->elements < 1000000 ? r->elements : 0), 0);
      for (i = 0; i < r->elements; i++) {
        push_reply(L, r->element[i], depth + 1);
        lua_rawseti(L, -2, (int)i + 1);
      }
      break;
    default: lua_pushlstring(L, r->str ? r->str : "", r->str ? r->len : 0); break;
  }
}

/* Pushes true, value or false, text; returns 2. Frees r. */
static int push_answer(lua_State *L, redisReply *r) {
  lua_pushboolean(L, r->type != REDIS_REPLY_ERROR);
  push_reply(L, r, 0);
  freeReplyObject(r);
  return 2;
}

/* The arguments from `first` on, as pointers and lengths (anchored by the
 * stack). Numbers are converted in place on the stack. */
static int collect_args(lua_State *L, int first, const char **argv, size_t *lens) {
  int top = lua_gettop(L), n = 0, i;
  if (top < first) luaL_error(L, "truv: a Redis command needs a name");
  if (top - first + 1 > MAX_ARGS) luaL_error(L, "truv: more than %d Redis arguments", MAX_ARGS);
  for (i = first; i <= top; i++) {
    int t = lua_type(L, i);
    if (t == LUA_TNUMBER) {
      char buf[40];
      lua_Number v = lua_tonumber(L, i);
      if (v == (lua_Number)(long long)v && v > -9.2e18 && v < 9.2e18)
        snprintf(buf, sizeof buf, "%lld", (long long)v);
      else snprintf(buf, sizeof buf, "%.17g", (double)v);
      lua_pushstring(L, buf);
      lua_replace(L, i);
    } else if (t != LUA_TSTRING) {
      luaL_argerror(L, i, "string or number expected");
    }
    argv[n] = lua_tolstring(L, i, &lens[n]);
    n++;
  }
  return n;
}

/* ---- connection ---- */

static const char *field_str(lua_State *L, int t, const char *key) {
  const char *s = NULL;
  lua_getfield(L, t, key);
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "truv: redis option %s must be a string", key);
    s = lua_tostring(L, -1); /* anchored by the options table */
  }
  lua_pop(L, 1);
  return s;
}

static long field_int(lua_State *L, int t, const char *key, long min, long max, long def) {
  long v = def;
  lua_getfield(L, t, key);
  if (!lua_isnil(L, -1)) {
    lua_Number n = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || n != (lua_Number)(long)n || n < min || n > max)
      luaL_error(L, "truv: redis option %s must be an integer from %ld to %ld", key, min, max);
    v = (long)n;
  }
  lua_pop(L, 1);
  return v;
}

static int field_bool(lua_State *L, int t, const char *key) {
  int v;
  lua_getfield(L, t, key);
  if (!lua_isnil(L, -1) && !lua_isboolean(L, -1))
    luaL_error(L, "truv: redis option %s must be true or false", key);
  v = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return v;
}

static int l_connect(lua_State *L) {
  truv_redis_endpoint ep;
  truv_err err;
  lconn *u;
  luaL_checktype(L, 1, LUA_TTABLE);
  memset(&ep, 0, sizeof ep);
  ep.host = field_str(L, 1, "host");
  ep.port = (int)field_int(L, 1, "port", 1, 65535, 6379);
  ep.unix_path = field_str(L, 1, "unix_path");
  ep.user = field_str(L, 1, "user");
  ep.password = field_str(L, 1, "password");
  ep.db = (int)field_int(L, 1, "db", 0, 1000000, 0);
  ep.tls = field_bool(L, 1, "tls");
  ep.ca_file = field_str(L, 1, "ca_file");
  ep.server_name = field_str(L, 1, "server_name");
  ep.insecure = field_bool(L, 1, "insecure");
  ep.connect_timeout_ms = field_int(L, 1, "connect_timeout_ms", 1, 1000000000, 1000);
  ep.timeout_ms = field_int(L, 1, "timeout_ms", 1, 1000000000, 1000);
  u = lua_newuserdata(L, sizeof *u);
  u->c = NULL;
  luaL_setmetatable(L, CONN_MT);
  u->c = truv_redis_conn_new(&ep, &err);
  if (!u->c) {
    if (err.kind == TRUV_EINVALID) return luaL_error(L, "truv: %s", err.message);
    return truv_fail(L, &err);
  }
  return 1;
}

static truv_redis_conn *check_conn(lua_State *L) {
  lconn *u = luaL_checkudata(L, 1, CONN_MT);
  if (!u->c) luaL_error(L, "truv: the Redis connection is closed");
  return u->c;
}

static int l_call(lua_State *L) {
  truv_redis_conn *c = check_conn(L);
  const char *argv[MAX_ARGS];
  size_t lens[MAX_ARGS];
  redisReply *r = NULL;
  truv_err err;
  int n = collect_args(L, 2, argv, lens);
  if (truv_redis_conn_call(c, n, argv, lens, &r, &err)) {
    truv_fail(L, &err);
    lua_pushboolean(L, err.maybe_sent);
    return 3;
  }
  return push_answer(L, r);
}

static int l_reset(lua_State *L) {
  truv_redis_conn_reset(check_conn(L));
  return 0;
}

static int l_connects(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)truv_redis_conn_connects(check_conn(L)));
  return 1;
}

static int l_connected(lua_State *L) {
  lua_pushboolean(L, truv_redis_conn_connected(check_conn(L)));
  return 1;
}

static int l_conn_close(lua_State *L) {
  lconn *u = luaL_checkudata(L, 1, CONN_MT);
  truv_redis_conn_free(u->c);
  u->c = NULL;
  return 0;
}

static int l_conn_tostring(lua_State *L) {
  lconn *u = luaL_checkudata(L, 1, CONN_MT);
  lua_pushfstring(L, "truv.redis.conn (%s)", u->c ? truv_redis_conn_name(u->c) : "closed");
  return 1;
}

/* ---- codec ---- */

static int l_format(lua_State *L) {
  const char *argv[MAX_ARGS];
  size_t lens[MAX_ARGS], len;
  char *cmd;
  truv_err err;
  int n = collect_args(L, 1, argv, lens);
  if (truv_redis_format(n, argv, lens, &cmd, &len, &err))
    return luaL_error(L, "truv: %s", err.message);
  lua_pushlstring(L, cmd, len);
  truv_redis_free_command(cmd);
  return 1;
}

static int l_reader(lua_State *L) {
  lreader *u = lua_newuserdata(L, sizeof *u);
  u->r = NULL;
  luaL_setmetatable(L, READER_MT);
  u->r = truv_redis_reader_new();
  if (!u->r) return luaL_error(L, "truv: out of memory");
  return 1;
}

static truv_redis_reader *check_reader(lua_State *L) {
  lreader *u = luaL_checkudata(L, 1, READER_MT);
  if (!u->r) luaL_error(L, "truv: the Redis reader is closed");
  return u->r;
}

static int l_feed(lua_State *L) {
  truv_redis_reader *r = check_reader(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  truv_err err;
  if (truv_redis_reader_feed(r, s, len, &err)) return truv_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_get(lua_State *L) {
  truv_redis_reader *r = check_reader(L);
  redisReply *reply;
  truv_err err;
  if (truv_redis_reader_get(r, &reply, &err)) return truv_fail(L, &err);
  if (!reply) return 0;
  return push_answer(L, reply);
}

static int l_reader_close(lua_State *L) {
  lreader *u = luaL_checkudata(L, 1, READER_MT);
  truv_redis_reader_free(u->r);
  u->r = NULL;
  return 0;
}

static int l_reader_tostring(lua_State *L) {
  lua_pushstring(L, "truv.redis.reader");
  return 1;
}

/* ---- scripts and tickets ---- */

static int l_script(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  size_t i;
  for (i = 0; i < sizeof redis_scripts / sizeof redis_scripts[0]; i++) {
    if (strcmp(redis_scripts[i].name, name) == 0) {
      unsigned char md[SHA_DIGEST_LENGTH];
      char hex[2 * SHA_DIGEST_LENGTH + 1];
      int j;
      SHA1((const unsigned char *)redis_scripts[i].text, redis_scripts[i].len, md);
      for (j = 0; j < SHA_DIGEST_LENGTH; j++) snprintf(hex + 2 * j, 3, "%02x", md[j]);
      lua_pushlstring(L, redis_scripts[i].text, redis_scripts[i].len);
      lua_pushstring(L, hex);
      return 2;
    }
  }
  lua_pushnil(L);
  return 1;
}

static int l_script_names(lua_State *L) {
  size_t i, n = sizeof redis_scripts / sizeof redis_scripts[0];
  lua_createtable(L, (int)n, 0);
  for (i = 0; i < n; i++) {
    lua_pushstring(L, redis_scripts[i].name);
    lua_rawseti(L, -2, (int)i + 1);
  }
  return 1;
}

static int l_ticket(lua_State *L) {
  unsigned char b[8];
  char hex[17];
  int i, zero;
  do {
    if (RAND_bytes(b, sizeof b) != 1) return luaL_error(L, "truv: no random bytes (OpenSSL)");
    zero = 1;
    for (i = 0; i < 8; i++) zero &= b[i] == 0;
  } while (zero);
  for (i = 0; i < 8; i++) snprintf(hex + 2 * i, 3, "%02x", b[i]);
  lua_pushlstring(L, hex, 16);
  return 1;
}

void truv_open_redis(lua_State *L) {
  static const luaL_Reg conn_methods[] = {{"call", l_call},         {"reset", l_reset},
                                          {"connects", l_connects}, {"connected", l_connected},
                                          {"close", l_conn_close},  {NULL, NULL}};
  static const luaL_Reg reader_methods[] = {
    {"feed", l_feed}, {"get", l_get}, {"close", l_reader_close}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {{"redis_connect", l_connect},
                                   {"redis_format", l_format},
                                   {"redis_reader", l_reader},
                                   {"redis_script", l_script},
                                   {"redis_script_names", l_script_names},
                                   {"redis_ticket", l_ticket},
                                   {NULL, NULL}};
  truv_new_handle_type(L, CONN_MT, conn_methods, NULL, l_conn_close, l_conn_tostring);
  truv_new_handle_type(L, READER_MT, reader_methods, NULL, l_reader_close, l_reader_tostring);
  luaL_setfuncs(L, funcs, 0);
}
