/* json_writer: see json_writer.h. */
#include "json_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"

static const char HEX[] = "0123456789abcdef";

void jw_init(struct jw *w, size_t cap) {
  memset(w, 0, sizeof *w);
  w->cap = cap < 64 ? 64 : cap;
  w->buf = malloc(w->cap);
  w->oom = w->buf == NULL;
  if (w->oom) w->cap = 0;
  w->first[0] = true;
}

void jw_free(struct jw *w) {
  free(w->buf);
  w->buf = NULL;
}

char *jw_finish(struct jw *w, size_t *len) {
  char *out;
  if (w->oom) {
    jw_free(w);
    return NULL;
  }
  w->buf[w->len] = '\0';
  if (len) *len = w->len;
  out = w->buf;
  w->buf = NULL;
  return out;
}

static bool grow(struct jw *w, size_t n) {
  size_t cap;
  char *p;
  if (w->oom) return false;
  cap = w->cap * 2;
  while (cap < w->len + n + 1) cap *= 2;
  p = realloc(w->buf, cap);
  if (!p) {
    w->oom = true;
    w->len = w->cap = 0; /* every later reserve() fails */
    return false;
  }
  w->buf = p;
  w->cap = cap;
  return true;
}

/* room for n more bytes plus the final NUL (never true after OOM: cap 0) */
static inline bool reserve(struct jw *w, size_t n) {
  if (__builtin_expect(w->len + n + 1 <= w->cap, 1)) return true;
  return grow(w, n);
}

static inline void put(struct jw *w, const char *s, size_t n) {
  if (!reserve(w, n)) return;
  memcpy(w->buf + w->len, s, n);
  w->len += n;
}

static inline void putc1(struct jw *w, char c) {
  if (!reserve(w, 1)) return;
  w->buf[w->len++] = c;
}

void jw_text(struct jw *w, const char *s, size_t n) {
  put(w, s, n);
}

/* the separator before a value or key at the current level */
static inline void sep(struct jw *w) {
  if (w->after_key) {
    w->after_key = false;
    return;
  }
  if (!w->first[w->depth]) putc1(w, ',');
  w->first[w->depth] = false;
}

static void open(struct jw *w, char c) {
  sep(w);
  putc1(w, c);
  if (w->depth + 1 < JW_MAX_DEPTH) w->depth++;
  w->first[w->depth] = true;
}

static void close_(struct jw *w, char c) {
  if (w->depth > 0) w->depth--;
  putc1(w, c);
}

void jw_obj(struct jw *w) {
  open(w, '{');
}
void jw_obj_end(struct jw *w) {
  close_(w, '}');
}
void jw_arr(struct jw *w) {
  open(w, '[');
}
void jw_arr_end(struct jw *w) {
  close_(w, ']');
}

/* writes "s" escaped; reserves the worst case once, then fills in place */
static void escaped(struct jw *w, const char *s, size_t n) {
  char *p;
  if (!reserve(w, n * 6 + 2)) return;
  p = w->buf + w->len;
  *p++ = '"';
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') {
      *p++ = (char)c;
      continue;
    }
    *p++ = '\\';
    switch (c) {
      case '"': *p++ = '"'; break;
      case '\\': *p++ = '\\'; break;
      case '\n': *p++ = 'n'; break;
      case '\r': *p++ = 'r'; break;
      case '\t': *p++ = 't'; break;
      case '\b': *p++ = 'b'; break;
      case '\f': *p++ = 'f'; break;
      default:
        memcpy(p, "u00", 3);
        p[3] = HEX[c >> 4];
        p[4] = HEX[c & 15];
        p += 5;
    }
  }
  *p++ = '"';
  w->len = (size_t)(p - w->buf);
}

/* keys are literals of the sandbox: plain ASCII needing no escapes */
void jw_key(struct jw *w, const char *key) {
  char *p;
  size_t n = strlen(key);
  sep(w);
  if (!reserve(w, n + 3)) return;
  p = w->buf + w->len;
  p[0] = '"';
  memcpy(p + 1, key, n);
  p[n + 1] = '"';
  p[n + 2] = ':';
  w->len += n + 3;
  w->after_key = true;
}

void jw_strn(struct jw *w, const char *s, size_t n) {
  sep(w);
  escaped(w, s, n);
}

void jw_str(struct jw *w, const char *s) {
  if (!s) jw_null(w);
  else jw_strn(w, s, strlen(s));
}

void jw_hex(struct jw *w, const uint8_t *bytes, size_t n) {
  char *p;
  if (!bytes) {
    jw_null(w);
    return;
  }
  sep(w);
  if (!reserve(w, 2 * n + 2)) return;
  p = w->buf + w->len;
  p[0] = '"';
  hex_encode(bytes, n, p + 1);
  p[2 * n + 1] = '"';
  w->len += 2 * n + 2;
}

static size_t fmt_u64(unsigned long long v, char *end) {
  char *p = end;
  do {
    *--p = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  return (size_t)(end - p);
}

void jw_int(struct jw *w, long long v) {
  char tmp[24];
  char *end = tmp + sizeof tmp;
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
  size_t n = fmt_u64(u, end);
  if (v < 0) tmp[sizeof tmp - ++n] = '-';
  sep(w);
  put(w, end - n, n);
}

void jw_uint_str(struct jw *w, unsigned long long v) {
  char tmp[24];
  size_t n;
  char *end = tmp + sizeof tmp - 1;
  *end = '"';
  n = fmt_u64(v, end);
  *(end - n - 1) = '"';
  sep(w);
  put(w, end - n - 1, n + 2);
}

void jw_double(struct jw *w, double v, int decimals) {
  char tmp[64];
  int n = snprintf(tmp, sizeof tmp, "%.*f", decimals, v);
  sep(w);
  put(w, tmp, n > 0 ? (size_t)n : 0);
}

void jw_bool(struct jw *w, bool v) {
  sep(w);
  if (v) put(w, "true", 4);
  else put(w, "false", 5);
}

void jw_null(struct jw *w) {
  sep(w);
  put(w, "null", 4);
}

void jw_money(struct jw *w, int64_t cents) {
  char tmp[32];
  char *end = tmp + sizeof tmp - 1;
  unsigned long long u = cents < 0 ? 0ULL - (unsigned long long)cents : (unsigned long long)cents;
  char *p = end;
  *p = '"';
  *--p = (char)('0' + u % 10);
  *--p = (char)('0' + u / 10 % 10);
  *--p = '.';
  p -= fmt_u64(u / 100, p);
  if (cents < 0) *--p = '-';
  *--p = '"';
  sep(w);
  put(w, p, (size_t)(end - p) + 1);
}

/* a time or a date (sb_time and days are both int64_t) in quotes */
static void stamp(struct jw *w, int64_t v, size_t (*fmt)(int64_t, char *)) {
  size_t n;
  char tmp[TIME_ISO_LEN + 2];
  tmp[0] = '"';
  n = fmt(v, tmp + 1);
  tmp[n + 1] = '"';
  sep(w);
  put(w, tmp, n + 2);
}

void jw_time(struct jw *w, sb_time t) {
  stamp(w, t, time_iso);
}

void jw_time_offset(struct jw *w, sb_time t) {
  stamp(w, t, time_iso_offset);
}

void jw_time_or_null(struct jw *w, sb_time t, bool present) {
  if (present) jw_time(w, t);
  else jw_null(w);
}

void jw_date(struct jw *w, int64_t days) {
  stamp(w, days, time_date);
}

void jw_raw(struct jw *w, const char *json, size_t n) {
  sep(w);
  put(w, json, n);
}

void jw_kstr(struct jw *w, const char *key, const char *s) {
  jw_key(w, key);
  jw_str(w, s);
}
void jw_khex(struct jw *w, const char *key, const uint8_t *b, size_t n) {
  jw_key(w, key);
  jw_hex(w, b, n);
}
void jw_kint(struct jw *w, const char *key, long long v) {
  jw_key(w, key);
  jw_int(w, v);
}
void jw_kbool(struct jw *w, const char *key, bool v) {
  jw_key(w, key);
  jw_bool(w, v);
}
void jw_knull(struct jw *w, const char *key) {
  jw_key(w, key);
  jw_null(w);
}
void jw_kmoney(struct jw *w, const char *key, int64_t c) {
  jw_key(w, key);
  jw_money(w, c);
}
void jw_ktime(struct jw *w, const char *key, sb_time t) {
  jw_key(w, key);
  jw_time(w, t);
}
void jw_ktime_offset(struct jw *w, const char *key, sb_time t) {
  jw_key(w, key);
  jw_time_offset(w, t);
}
void jw_kdate(struct jw *w, const char *key, int64_t d) {
  jw_key(w, key);
  jw_date(w, d);
}
