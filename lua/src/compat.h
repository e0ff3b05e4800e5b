/* The one place where Lua 5.4 and LuaJIT (the 5.1 API plus a few 5.2
 * functions) differ for truv.core.
 *
 * Each shim is keyed on the macro whose absence marks the missing feature,
 * never on LUA_VERSION_NUM, so the same binding source compiles against
 * either set of headers. Only what the binding uses is here. */
#ifndef TRUV_LUA_COMPAT_H
#define TRUV_LUA_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

/* 5.4 defines lua_getuservalue as a macro over lua_getiuservalue; the 5.1
 * API has no user values, only one environment table per userdata, which
 * serves the same purpose (the binding keeps one table there). */
#ifdef lua_getuservalue
#define truv_getuservalue(L, i) ((void)lua_getuservalue(L, (i)))
#define truv_setuservalue(L, i) ((void)lua_setuservalue(L, (i)))
#else
#define truv_getuservalue(L, i) lua_getfenv(L, (i))
#define truv_setuservalue(L, i) ((void)lua_setfenv(L, (i)))
#endif

/* LUA_RIDX_MAINTHREAD marks the 5.2+ API: lua_rawlen replaced lua_objlen. */
#ifndef LUA_RIDX_MAINTHREAD
#define lua_rawlen(L, i) lua_objlen(L, (i))
#endif

/* lua_absindex is 5.2+. */
#ifndef LUA_RIDX_MAINTHREAD
#define lua_absindex(L, i) (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#endif

/* Integers: 5.3+ has a separate integer subtype (LUA_MAXINTEGER); on the
 * 5.1 API every number is a double and integral values push as doubles. */
#ifdef LUA_MAXINTEGER
#define truv_isinteger(L, i) lua_isinteger(L, (i))
#define TRUV_MAX_EXACT_INT ((double)LUA_MAXINTEGER)
#else
#define truv_isinteger(L, i) 0
#define TRUV_MAX_EXACT_INT 9007199254740992.0
#endif

#endif
