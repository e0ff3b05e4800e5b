/* truv.core: the C half of the `truv` Lua module. This file only opens it:
 * each concern is a sub-opener (LuaSocket's pattern) that adds its
 * functions to the module table; the Lua modules (truv.lua and the truv.*
 * modules) compose these primitives. Nothing in truv.core keeps
 * module-level mutable state: everything hangs off the objects it returns
 * (but for signal.c, whose state, a signal's disposition, is the
 * process's). */
#include "binding.h"
#include "truv/version.h"

__attribute__((visibility("default"))) int luaopen_truv_core(lua_State *L);

/* In this order: errors first, since every other concern reports them. */
static void (*const openers[])(lua_State *L) = {
  truv_open_error,     /* error.c: set_error_maker, redact */
  truv_open_clock,     /* clock.c: now, monotonic, sleep, parse_time */
  truv_open_signal,    /* signal.c: signals a program catches */
  truv_open_terminal,  /* terminal.c: isatty, terminal_size */
  truv_open_doc,       /* doc.c: documents (views, tables), encode */
  truv_open_docmode,   /* docmode.c: decode */
  truv_open_request,   /* request.c: build, serialize, http1_connect, classify, ops */
  truv_open_http,      /* http.c: the blocking libcurl transport */
  truv_open_http1,     /* http1.c: the HTTP/1.1 response parser */
  truv_open_multi,     /* multi.c: the libcurl multi transport */
  truv_open_journal,   /* journal.c: a batch's journal */
  truv_open_route,     /* route.c: the default routing table */
  truv_open_lists,     /* lists.c: the core's lists and defaults, valid_id */
  truv_open_model,     /* model.c: order models */
  truv_open_quota,     /* quota.c: quota stores and keys */
  truv_open_dedupe,    /* dedupe.c: de-duplication stores */
  truv_open_redis,     /* redis.c: the RESP codec, Redis connections, scripts */
  truv_open_webhook,   /* webhook.c: verify, sign, parse */
  truv_open_listener,  /* listener.c: the webhook listener */
  truv_open_state_dir, /* state_dir.c: private directories, euid */
};

int luaopen_truv_core(lua_State *L) {
  size_t i;
  lua_newtable(L);
  for (i = 0; i < sizeof openers / sizeof openers[0]; i++) openers[i](L);
  lua_pushstring(L, truv_version());
  lua_setfield(L, -2, "_VERSION");
  return 1;
}
