/* truv_err: setting, formatting and redacting errors (see truv/err.h). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "truv/err.h"

static const char *const kind_names[TRUV_KIND_COUNT] = {
  "ok",     "invalid", "auth",     "not_found", "throttled", "refresh_limit", "quota",
  "server", "network", "protocol", "api",       "internal",  "expired",       "handler",
};

const char *truv_kind_name(truv_kind kind) {
  if ((int)kind < 0 || kind >= TRUV_KIND_COUNT) return "internal";
  return kind_names[kind];
}

void truv_err_clear(truv_err *err) {
  if (!err) return;
  err->kind = TRUV_OK;
  err->status = 0;
  err->maybe_sent = 0;
  err->retry_at = 0;
  err->code[0] = err->message[0] = err->request_id[0] = '\0';
  err->nfields = 0;
  err->fields_dropped = 0;
}

/* ------------------------------------------------------------- the doors */

/* Copies src into dst (capacity size), cut to fit at a UTF-8 character
 * boundary. src has been redacted whole; the cut can still make a new
 * SSN-shaped run (ten digits cut to nine), so the copy is scanned again. */
static void cut_into(char *dst, size_t size, const char *src) {
  size_t n = strlen(src);
  if (!size) return;
  if (n >= size) {
    n = size - 1;
    while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
  }
  memcpy(dst, src, n);
  dst[n] = '\0';
  truv_redact(dst, size, NULL, 0);
}

size_t truv_redact_window(size_t size, const char *const *secrets, size_t nsecrets) {
  size_t longest = 11, i, n; /* an SSN: ddd-dd-dddd */
  for (i = 0; i < nsecrets; i++)
    if (secrets[i] && (n = strlen(secrets[i])) > longest) longest = n;
  /* The first size - 1 bytes of a redacted text hold at most size / 10 + 1
   * marks; each stands for at most `longest` bytes of the text. Past this,
   * nothing (not even a match cut in two by the window) can come before
   * byte size of the redacted text. */
  return size + (size / 10 + 2) * (longest + 11);
}

/* Formats fmt into dst: the text redacted first, then cut to fit. Only the
 * window of the text that can reach dst is formatted (a large answer costs
 * no more than a small one); the scratch space has room for every match
 * growing into "[redacted]" (10 bytes for at least 4). */
__attribute__((format(printf, 5, 0))) static void put_redacted(char *dst, size_t size,
                                                               const char *const *secrets,
                                                               size_t nsecrets, const char *fmt,
                                                               va_list ap) {
  char local[8192];
  char *buf = local;
  size_t window = truv_redact_window(size, secrets, nsecrets);
  size_t cap = window * 3 + 16;
  if (cap > sizeof local && !(buf = malloc(cap))) {
    cut_into(dst, size, "(text withheld: out of memory)");
    return;
  }
  if (vsnprintf(buf, window + 1, fmt, ap) < 0) buf[0] = '\0';
  truv_redact(buf, cap, secrets, nsecrets);
  cut_into(dst, size, buf);
  if (buf != local) free(buf);
}

static void put_text(char *dst, size_t size, const char *const *secrets, size_t nsecrets,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void put_text(char *dst, size_t size, const char *const *secrets, size_t nsecrets,
                     const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  put_redacted(dst, size, secrets, nsecrets, fmt, ap);
  va_end(ap);
}

__attribute__((format(printf, 6, 0))) static int set_v(truv_err *err, const char *const *secrets,
                                                       size_t nsecrets, truv_kind kind,
                                                       const char *code, const char *fmt,
                                                       va_list ap) {
  if (!err) return (int)kind;
  err->kind = kind;
  put_text(err->code, sizeof err->code, secrets, nsecrets, "%s", code ? code : "");
  put_redacted(err->message, sizeof err->message, secrets, nsecrets, fmt, ap);
  return (int)kind;
}

__attribute__((format(printf, 5, 0))) static int invalid_v(truv_err *err,
                                                           const char *const *secrets,
                                                           size_t nsecrets, const char *field,
                                                           const char *fmt, va_list ap) {
  truv_err_field *f;
  if (!err) return TRUV_EINVALID;
  if (err->kind != TRUV_EINVALID) {
    err->kind = TRUV_EINVALID;
    snprintf(err->code, sizeof err->code, "invalid_params");
    snprintf(err->message, sizeof err->message, "invalid parameters");
  }
  if (err->nfields >= TRUV_ERR_MAX_FIELDS) {
    err->fields_dropped++;
    return TRUV_EINVALID;
  }
  f = &err->fields[err->nfields++];
  put_text(f->field, sizeof f->field, secrets, nsecrets, "%s", field ? field : "");
  put_redacted(f->message, sizeof f->message, secrets, nsecrets, fmt, ap);
  return TRUV_EINVALID;
}

int truv_err_set(truv_err *err, truv_kind kind, const char *code, const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = set_v(err, NULL, 0, kind, code, fmt, ap);
  va_end(ap);
  return rc;
}

int truv_err_set_redacted(truv_err *err, const char *const *secrets, size_t nsecrets,
                          truv_kind kind, const char *code, const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = set_v(err, secrets, nsecrets, kind, code, fmt, ap);
  va_end(ap);
  return rc;
}

int truv_err_invalid(truv_err *err, const char *field, const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = invalid_v(err, NULL, 0, field, fmt, ap);
  va_end(ap);
  return rc;
}

int truv_err_invalid_redacted(truv_err *err, const char *const *secrets, size_t nsecrets,
                              const char *field, const char *fmt, ...) {
  va_list ap;
  int rc;
  va_start(ap, fmt);
  rc = invalid_v(err, secrets, nsecrets, field, fmt, ap);
  va_end(ap);
  return rc;
}

void truv_err_set_request_id(truv_err *err, const char *const *secrets, size_t nsecrets,
                             const char *request_id) {
  if (!err) return;
  put_text(err->request_id, sizeof err->request_id, secrets, nsecrets, "%s",
           request_id ? request_id : "");
}

void truv_redact_copy(char *dst, size_t size, const char *src, const char *const *secrets,
                      size_t nsecrets) {
  put_text(dst, size, secrets, nsecrets, "%s", src ? src : "");
}

size_t truv_err_format_facts(const truv_err_facts *f, char *buf, size_t size) {
  size_t n = 0, i;
  int w;
  const char *kind = f->kind && f->kind[0] ? f->kind : "error";
  int has_code = f->code && f->code[0];
#define APPEND(...)                                                                \
  do {                                                                             \
    w = snprintf(size > n ? buf + n : NULL, size > n ? size - n : 0, __VA_ARGS__); \
    if (w > 0) n += (size_t)w;                                                     \
  } while (0)
  if (size) buf[0] = '\0';
  APPEND("%s", kind);
  if (f->op && f->op[0]) APPEND(" in %s", f->op);
  if (f->status && has_code) APPEND(" (HTTP %d, %s)", f->status, f->code);
  else if (f->status) APPEND(" (HTTP %d)", f->status);
  else if (has_code) APPEND(" (%s)", f->code);
  if (f->message && f->message[0]) APPEND(": %s", f->message);
  for (i = 0; i < f->nfields; i++)
    APPEND("%s%s: %s", i ? "; " : " [", f->fields[i].field, f->fields[i].message);
  if (f->fields_dropped) APPEND("; and %d more", f->fields_dropped);
  if (f->nfields) APPEND("]");
  if (strcmp(kind, truv_kind_name(TRUV_ENETWORK)) == 0)
    APPEND(f->maybe_sent ? " (the request may have reached Truv)"
                         : " (the request did not reach Truv)");
  if (f->retry_at > 0) {
    char when[32];
    time_t t = (time_t)f->retry_at;
    struct tm tm;
    if (gmtime_r(&t, &tm) && strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm))
      APPEND("; retry at %s", when);
  }
  if (f->request_id && f->request_id[0]) APPEND(" [request %s]", f->request_id);
#undef APPEND
  return n;
}

size_t truv_err_format(const truv_err *err, char *buf, size_t size) {
  truv_err_text_field fields[TRUV_ERR_MAX_FIELDS];
  truv_err_facts f;
  int i;
  for (i = 0; i < err->nfields; i++) {
    fields[i].field = err->fields[i].field;
    fields[i].message = err->fields[i].message;
  }
  memset(&f, 0, sizeof f);
  f.kind = truv_kind_name(err->kind);
  f.status = err->status;
  f.code = err->code;
  f.message = err->message;
  f.request_id = err->request_id;
  f.maybe_sent = err->maybe_sent;
  f.retry_at = err->retry_at;
  f.fields = fields;
  f.nfields = (size_t)err->nfields;
  f.fields_dropped = err->fields_dropped;
  return truv_err_format_facts(&f, buf, size);
}

/* Replaces [at, at+len) of s by "[redacted]" if it fits in size; returns the
 * index just past the replacement. */
static size_t splice(char *s, size_t size, size_t at, size_t len) {
  static const char mark[] = "[redacted]";
  const size_t mlen = sizeof mark - 1;
  size_t tail = strlen(s + at + len);
  if (at + mlen + tail + 1 > size) { /* no room: cut the rest off */
    if (at + mlen + 1 <= size) {
      memcpy(s + at, mark, mlen);
      s[at + mlen] = '\0';
      return at + mlen;
    }
    s[at] = '\0';
    return at;
  }
  memmove(s + at + mlen, s + at + len, tail + 1);
  memcpy(s + at, mark, mlen);
  return at + mlen;
}

/* Length of an SSN-shaped token at s (ddd-dd-dddd, or exactly nine digits
 * not touching other digits), 0 otherwise. `prev` is the char before s. */
static size_t ssn_at(const char *s, char prev) {
  size_t i;
  if (isdigit((unsigned char)prev)) return 0;
  for (i = 0; i < 9 && isdigit((unsigned char)s[i]); i++) {
  }
  if (i == 9 && !isdigit((unsigned char)s[9])) return 9;
  if (isdigit((unsigned char)s[0]) && isdigit((unsigned char)s[1]) &&
      isdigit((unsigned char)s[2]) && s[3] == '-' && isdigit((unsigned char)s[4]) &&
      isdigit((unsigned char)s[5]) && s[6] == '-' && isdigit((unsigned char)s[7]) &&
      isdigit((unsigned char)s[8]) && isdigit((unsigned char)s[9]) &&
      isdigit((unsigned char)s[10]) && !isdigit((unsigned char)s[11]))
    return 11;
  return 0;
}

void truv_redact(char *s, size_t size, const char *const *secrets, size_t nsecrets) {
  size_t i, at;
  if (!s || !size) return;
  for (i = 0; i < nsecrets; i++) {
    const char *sec = secrets[i];
    size_t slen;
    char *hit;
    if (!sec || (slen = strlen(sec)) < 4) continue;
    at = 0;
    while ((hit = strstr(s + at, sec)) != NULL) at = splice(s, size, (size_t)(hit - s), slen);
  }
  for (at = 0; s[at];) {
    size_t len = ssn_at(s + at, at ? s[at - 1] : '\0');
    at = len ? splice(s, size, at, len) : at + 1;
  }
}

void truv_err_redact(truv_err *err, const char *const *secrets, size_t nsecrets) {
  int i;
  if (!err) return;
  truv_redact(err->code, sizeof err->code, secrets, nsecrets);
  truv_redact(err->message, sizeof err->message, secrets, nsecrets);
  truv_redact(err->request_id, sizeof err->request_id, secrets, nsecrets);
  for (i = 0; i < err->nfields; i++) {
    truv_redact(err->fields[i].field, sizeof err->fields[i].field, secrets, nsecrets);
    truv_redact(err->fields[i].message, sizeof err->fields[i].message, secrets, nsecrets);
  }
}
