/* Internal declarations shared by truv.core's C files.
 *
 * truv.core is assembled from sub-openers, one per concern (LuaSocket's
 * pattern): truv_core.c calls each in turn, and each adds its functions to
 * the module table at the top of the stack. The helpers that several
 * concerns use have files of their own (handle.c, options.c, error.c,
 * doc.c, docmode.c, request.c, http.c, model.c); no concern calls the
 * opener. */
#ifndef TRUV_BINDING_H
#define TRUV_BINDING_H

#include <cjson/cJSON.h>

#include "compat.h"
#include "truv/err.h"
#include "truv/http.h"
#include "truv/json.h"
#include "truv/request.h"

#define TRUV_HIDDEN __attribute__((visibility("hidden")))

/* ------------------------------------------------------- shared helpers */

/* handle.c: registers the metatable `name` of a handle type: `methods`
 * reached through __index (or, when `index` is given, through that function
 * as a closure whose upvalue 1 is the methods table, for types that also
 * answer fields), `close` as both __gc and __close (so `local h <close>`
 * works on every handle), `tostring` as __tostring, and __name. The stack
 * is left as found. */
TRUV_HIDDEN void truv_new_handle_type(lua_State *L, const char *name, const luaL_Reg *methods,
                                      lua_CFunction index, lua_CFunction close,
                                      lua_CFunction tostring);

/* options.c: option tables, read alike by every constructor. A wrong
 * option raises "bad option 'key' to 'fname' (what expected, got ...)";
 * an absent one (or no table) gives the default. Strings stay anchored by
 * the table, which the caller keeps on the stack. */
typedef struct truv_options {
  lua_State *L;
  int t;             /* the table's absolute index; 0: none was given */
  const char *fname; /* the function, as Lua calls it ("http") */
} truv_options;
/* The options at idx: nil, none, or a table (else a bad argument). */
TRUV_HIDDEN truv_options truv_options_at(lua_State *L, int idx, const char *fname);
/* NULL when absent; at most max_len bytes (0: any). */
TRUV_HIDDEN const char *truv_opt_string(const truv_options *o, const char *key, size_t max_len);
/* A number from min to max (`what` says so in the message: "a number of
 * milliseconds from 0 to 1e9"), or def when absent. */
TRUV_HIDDEN double truv_opt_number(const truv_options *o, const char *key, double min, double max,
                                   double def, const char *what);
/* The same, integral. */
TRUV_HIDDEN double truv_opt_integer(const truv_options *o, const char *key, double min, double max,
                                    double def, const char *what);
/* true or false, nothing else (a string "false" or a 0 would be true). */
TRUV_HIDDEN int truv_opt_boolean(const truv_options *o, const char *key, int def);
/* The index of the name given among `names` (NULL-terminated), or def. */
TRUV_HIDDEN int truv_opt_choice(const truv_options *o, const char *key, const char *const *names,
                                int def);
/* Raises the message above with a what of the caller's. */
TRUV_HIDDEN int truv_opt_error(const truv_options *o, const char *key, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* error.c: truv_err -> the Lua error table. */
TRUV_HIDDEN void truv_push_error(lua_State *L, const truv_err *err);
/* Pushes nil, err and returns 2. */
TRUV_HIDDEN int truv_fail(lua_State *L, const truv_err *err);

/* How documents reach Lua: a lazy view, plain tables, or (for orders) only
 * the order model, the document freed at once. */
enum { TRUV_DOC_VIEW = 0, TRUV_DOC_TABLE = 1, TRUV_DOC_MODEL = 2 };
/* The form a document takes when the caller names none: a view where
 * pairs() honours __pairs (the 5.2+ API, LUA_RIDX_MAINTHREAD), plain tables
 * on LuaJIT, where a view could not be walked with pairs(). */
#ifdef LUA_RIDX_MAINTHREAD
#define TRUV_DOC_DEFAULT TRUV_DOC_VIEW
#else
#define TRUV_DOC_DEFAULT TRUV_DOC_TABLE
#endif

/* doc.c: JSON documents <-> Lua values. */
/* Pushes the document (ownership passes to Lua) as a lazy view or as tables. */
TRUV_HIDDEN void truv_push_document(lua_State *L, truv_json *doc, int mode);
/* Converts the Lua value at idx to JSON; raises on values JSON cannot hold. */
TRUV_HIDDEN cJSON *truv_to_json(lua_State *L, int idx);
/* The JSON node behind a document view at idx, or NULL if it is not one. */
TRUV_HIDDEN const cJSON *truv_doc_node(lua_State *L, int idx);

/* docmode.c: the form a caller asks for. */
/* "view", "table" or "model" at idx (nil -> def). */
TRUV_HIDDEN int truv_check_docmode(lua_State *L, int idx, int def);
/* Pushes doc (ownership passes) in that form; returns 0, or, when a model
 * was asked for and the document is no order, an error kind with err
 * filled and nothing pushed. */
TRUV_HIDDEN int truv_push_in_mode(lua_State *L, truv_json *doc, int mode, truv_err *err);

/* model.c: reads the order model from a parsed document and pushes it;
 * returns 0, or an error kind with err filled (nothing pushed). */
TRUV_HIDDEN int truv_push_order_model(lua_State *L, const cJSON *doc, truv_err *err);

/* request.c: requests and their answers. */
TRUV_HIDDEN truv_request *truv_check_request(lua_State *L, int idx);
struct truv_response;
/* Classifies resp for req; pushes doc, meta (returns 2) or nil, err (2). */
TRUV_HIDDEN int truv_push_classified(lua_State *L, const truv_request *req,
                                     const struct truv_response *resp, double now, int mode);

/* http.c: reads the transport options that truv.core.http and
 * truv.core.multi share (connect_timeout_ms, timeout_ms, send_timeout_ms,
 * read_timeout_ms: 0 to 1e9 ms, a user's 0 kept as 1 ms since 0 means
 * "default" in the core; ca_file, ca_path, proxy, no_proxy: strings;
 * insecure: true or false) into *out, which the caller zeroed. */
TRUV_HIDDEN void truv_read_http_options(const truv_options *o, truv_http_options *out);

/* signal.c: whether a signal was caught since core.signals_catch
 * (async-signal-safe to read; the handler only writes it). */
TRUV_HIDDEN int truv_signal_caught(void);

/* ------------------------------------------------------- the sub-openers */

/* error.c: set_error_maker, redact. */
TRUV_HIDDEN void truv_open_error(lua_State *L);

/* clock.c: now, monotonic, sleep (cut short by a signal signal.c caught). */
TRUV_HIDDEN void truv_open_clock(lua_State *L);

/* signal.c: signals a program catches as a flag it polls. */
TRUV_HIDDEN void truv_open_signal(lua_State *L);

/* terminal.c: isatty and the terminal's size. */
TRUV_HIDDEN void truv_open_terminal(lua_State *L);

/* doc.c: document views, encode, totable, release. */
TRUV_HIDDEN void truv_open_doc(lua_State *L);

/* docmode.c: decode, in the form the caller names. */
TRUV_HIDDEN void truv_open_docmode(lua_State *L);

/* request.c: the request builder, the HTTP/1.1 request writer (a
 * request's bytes, a tunnel's CONNECT) and the classifier. */
TRUV_HIDDEN void truv_open_request(lua_State *L);

/* http.c: the blocking libcurl transport. */
TRUV_HIDDEN void truv_open_http(lua_State *L);

/* http1.c: the incremental HTTP/1.1 response parser (byte-pipe
 * transports). */
TRUV_HIDDEN void truv_open_http1(lua_State *L);

/* multi.c: the libcurl multi transport (many requests in flight). */
TRUV_HIDDEN void truv_open_multi(lua_State *L);

/* journal.c: a renewal batch's durable record (SQLite). */
TRUV_HIDDEN void truv_open_journal(lua_State *L);

/* model.c: validated order models. */
TRUV_HIDDEN void truv_open_model(lua_State *L);

/* route.c: the default routing table. */
TRUV_HIDDEN void truv_open_route(lua_State *L);

/* lists.c: the core's lists and defaults (core.lists), core.valid_id. */
TRUV_HIDDEN void truv_open_lists(lua_State *L);

/* quota.c: refresh quota stores (memory, SQLite) and connection keys. */
TRUV_HIDDEN void truv_open_quota(lua_State *L);

/* dedupe.c: webhook de-duplication stores (memory, SQLite). */
TRUV_HIDDEN void truv_open_dedupe(lua_State *L);

/* redis.c: the RESP codec, the blocking Redis connection, the scripts. */
TRUV_HIDDEN void truv_open_redis(lua_State *L);

/* listener.c: the embedded webhook listener (HTTP, on a thread of its own). */
TRUV_HIDDEN void truv_open_listener(lua_State *L);

/* webhook.c: signature verification (with a secret or prepared keys),
 * signing, event parsing. */
TRUV_HIDDEN void truv_open_webhook(lua_State *L);

/* state_dir.c: private directories for durable stores, the effective uid. */
TRUV_HIDDEN void truv_open_state_dir(lua_State *L);

#endif
