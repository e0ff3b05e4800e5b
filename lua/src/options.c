/* Option tables, read the same way by every constructor of truv.core (see
 * binding.h). A wrong option is the caller's mistake: it raises, naming
 * the option, the function and what the option takes, in the shape the
 * Lua layer uses (truv.options):
 *
 *   bad option 'timeout_ms' to 'http' (a number of milliseconds from 0 to 1e9 expected, got string)
 *
 * Names the function does not know are left alone: the Lua layer, which
 * knows each caller's whole set, checks those. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "binding.h"

truv_options truv_options_at(lua_State *L, int idx, const char *fname) {
  truv_options o;
  o.L = L;
  o.fname = fname;
  o.t = 0;
  if (!lua_isnoneornil(L, idx)) {
    luaL_checktype(L, idx, LUA_TTABLE);
    o.t = lua_absindex(L, idx);
  }
  return o;
}

int truv_opt_error(const truv_options *o, const char *key, const char *fmt, ...) {
  char what[256];
  va_list ap;
  va_start(ap, fmt);
  if (vsnprintf(what, sizeof what, fmt, ap) < 0) what[0] = '\0';
  va_end(ap);
  return luaL_error(o->L, "bad option '%s' to '%s' (%s)", key, o->fname, what);
}

/* Pushes opts[key] (nil without a table); returns its type. */
static int get(const truv_options *o, const char *key) {
  if (!o->t) {
    lua_pushnil(o->L);
    return LUA_TNIL;
  }
  lua_getfield(o->L, o->t, key);
  return lua_type(o->L, -1);
}

/* What the caller gave, for the message: a number or a boolean as such,
 * anything else by its type (a string may be a secret). */
static const char *given(lua_State *L, char *buf, size_t size) {
  switch (lua_type(L, -1)) {
    case LUA_TNUMBER: snprintf(buf, size, "%.14g", (double)lua_tonumber(L, -1)); return buf;
    case LUA_TBOOLEAN: return lua_toboolean(L, -1) ? "true" : "false";
    default: return luaL_typename(L, -1);
  }
}

static int expected(const truv_options *o, const char *key, const char *what) {
  char buf[32];
  return truv_opt_error(o, key, "%s expected, got %s", what, given(o->L, buf, sizeof buf));
}

const char *truv_opt_string(const truv_options *o, const char *key, size_t max_len) {
  const char *s = NULL;
  size_t len;
  int type = get(o, key);
  if (type != LUA_TNIL) {
    if (type != LUA_TSTRING) expected(o, key, "a string");
    s = lua_tolstring(o->L, -1, &len); /* anchored by the options table */
    if (max_len && len > max_len)
      truv_opt_error(o, key, "at most %zu bytes expected, got %zu", max_len, len);
  }
  lua_pop(o->L, 1);
  return s;
}

static double number(const truv_options *o, const char *key, double min, double max, double def,
                     const char *what, int integral) {
  double v = def;
  int type = get(o, key);
  if (type != LUA_TNIL) {
    v = lua_tonumber(o->L, -1);
    if (type != LUA_TNUMBER || !(v >= min && v <= max) || (integral && v != floor(v)))
      expected(o, key, what);
  }
  lua_pop(o->L, 1);
  return v;
}

double truv_opt_number(const truv_options *o, const char *key, double min, double max, double def,
                       const char *what) {
  return number(o, key, min, max, def, what, 0);
}

double truv_opt_integer(const truv_options *o, const char *key, double min, double max, double def,
                        const char *what) {
  return number(o, key, min, max, def, what, 1);
}

int truv_opt_boolean(const truv_options *o, const char *key, int def) {
  int v = def, type = get(o, key);
  /* only a boolean: a string "false" or a 0 is true in Lua, and would mean
   * the opposite of what the caller wrote */
  if (type != LUA_TNIL) {
    if (type != LUA_TBOOLEAN) expected(o, key, "true or false");
    v = lua_toboolean(o->L, -1);
  }
  lua_pop(o->L, 1);
  return v;
}

int truv_opt_choice(const truv_options *o, const char *key, const char *const *names, int def) {
  int i, type = get(o, key);
  const char *s;
  char what[128];
  size_t n = 0;
  if (type == LUA_TNIL) {
    lua_pop(o->L, 1);
    return def;
  }
  s = type == LUA_TSTRING ? lua_tostring(o->L, -1) : NULL;
  for (i = 0; s && names[i]; i++) {
    if (strcmp(s, names[i]) == 0) {
      lua_pop(o->L, 1);
      return i;
    }
  }
  what[0] = '\0';
  for (i = 0; names[i] && n < sizeof what; i++)
    n += (size_t)snprintf(what + n, sizeof what - n, "%s\"%s\"",
                          i == 0         ? ""
                          : names[i + 1] ? ", "
                                         : " or ",
                          names[i]);
  if (s) return truv_opt_error(o, key, "%s expected, got \"%.40s\"", what, s);
  return expected(o, key, what);
}
