/* Wall-clock time and a blocking sleep, for the plain-Lua runtime (in nginx
 * the Lua layer uses ngx.now and ngx.sleep instead).
 *
 *   core.now()        -> epoch seconds with a fraction (gettimeofday)
 *   core.monotonic()  -> seconds on a monotonic clock (for durations)
 *   core.sleep(s)     -> sleeps s seconds (fractions allowed); blocks the thread;
 *                        a signal caught through core.signals_catch ends it early
 *   core.parse_time(s) -> epoch seconds of an ISO 8601 timestamp, or nil */
#include <errno.h>
#include <time.h>

#include "binding.h"
#include "truv/time.h"

static int l_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

static int l_monotonic(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* parse_time(iso) -> epoch seconds | nil: Truv's ISO 8601 timestamps. */
static int l_parse_time(lua_State *L) {
  double t = truv_parse_time(luaL_checkstring(L, 1));
  if (t < 0) return 0;
  lua_pushnumber(L, t);
  return 1;
}

static int l_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts;
  if (s <= 0) return 0;
  if (s > 86400) s = 86400;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR && !truv_signal_caught()) {
  }
  return 0;
}

void truv_open_clock(lua_State *L) {
  static const luaL_Reg funcs[] = {{"now", l_now},
                                   {"monotonic", l_monotonic},
                                   {"sleep", l_sleep},
                                   {"parse_time", l_parse_time},
                                   {NULL, NULL}};
  luaL_setfuncs(L, funcs, 0);
}
