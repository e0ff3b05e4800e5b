/* json_writer: a streaming JSON writer into a growable buffer (struct jw,
 * functions jw_*).
 *
 * The sandbox renders every response with it: no intermediate tree, output
 * in a fixed key order (byte-identical for identical input), commas handled
 * by a nesting stack (JW_MAX_DEPTH levels). Keys and string values are
 * escaped as JSON requires; other bytes (UTF-8) pass through. An allocation
 * failure latches `oom`: later calls do nothing and jw_finish() returns NULL.
 * Money is integer cents rendered as a string with two decimals ("70000.00"),
 * times are sb_time rendered as ISO 8601 UTC with microseconds. */
#ifndef SANDBOX_JSON_WRITER_H
#define SANDBOX_JSON_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "timeutil.h"

#define JW_MAX_DEPTH 32

struct jw {
  char *buf;
  size_t len, cap;
  bool oom;
  bool after_key;
  unsigned depth;
  bool first[JW_MAX_DEPTH];
};

void jw_init(struct jw *w, size_t cap);
void jw_free(struct jw *w);
/* hands the NUL-terminated buffer to the caller (free() it); NULL on OOM */
char *jw_finish(struct jw *w, size_t *len);

void jw_obj(struct jw *w);
void jw_obj_end(struct jw *w);
void jw_arr(struct jw *w);
void jw_arr_end(struct jw *w);
/* key: a literal needing no escapes (the sandbox's own field names) */
void jw_key(struct jw *w, const char *key);

void jw_str(struct jw *w, const char *s); /* NULL writes null */
void jw_strn(struct jw *w, const char *s, size_t n);
void jw_hex(struct jw *w, const uint8_t *bytes, size_t n); /* NULL writes null */
void jw_int(struct jw *w, long long v);
void jw_uint_str(struct jw *w, unsigned long long v); /* a number as a string */
void jw_double(struct jw *w, double v, int decimals);
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
void jw_money(struct jw *w, int64_t cents);
void jw_time(struct jw *w, sb_time t);
void jw_time_or_null(struct jw *w, sb_time t, bool present);
void jw_time_offset(struct jw *w, sb_time t); /* "...T...+00:00" */
void jw_date(struct jw *w, int64_t days);
void jw_raw(struct jw *w, const char *json, size_t n); /* an already valid value */

/* key + value shorthands */
void jw_kstr(struct jw *w, const char *key, const char *s);
void jw_khex(struct jw *w, const char *key, const uint8_t *bytes, size_t n);
void jw_kint(struct jw *w, const char *key, long long v);
void jw_kbool(struct jw *w, const char *key, bool v);
void jw_knull(struct jw *w, const char *key);
void jw_kmoney(struct jw *w, const char *key, int64_t cents);
void jw_ktime(struct jw *w, const char *key, sb_time t);
void jw_ktime_offset(struct jw *w, const char *key, sb_time t);
void jw_kdate(struct jw *w, const char *key, int64_t days);

/* raw text appended as is (no comma logic): for CSV and other formats */
void jw_text(struct jw *w, const char *s, size_t n);

#endif
