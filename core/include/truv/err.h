/* truv_err: the one result type threaded through libtruv.
 *
 * Every fallible function takes a `truv_err *` and returns 0 on success or
 * the error's kind (non-zero) on failure, so `if ((rc = f(..., err))) goto
 * fail;` works everywhere. A truv_err is a plain value: no heap, nothing to
 * free, safe to copy.
 *
 * Kinds say what the caller should do next:
 *   TRUV_EINVALID       the request breaks an API rule (found locally, nothing
 *                       was sent; or a 400 from Truv). `fields` names them.
 *   TRUV_EAUTH          401/403: the client id or secret is wrong for this call.
 *   TRUV_ENOTFOUND      404: unknown id (or another client's).
 *   TRUV_ETHROTTLED     429: too many requests; `retry_at` says when to resume.
 *   TRUV_EREFRESH_LIMIT Truv refused a refresh: the connection used its 3
 *                       refreshes in 24 h.
 *   TRUV_EQUOTA         the local quota refused a refresh before sending it;
 *                       `retry_at` is the exact instant a slot frees.
 *   TRUV_ESERVER        5xx from Truv.
 *   TRUV_ENETWORK       no usable answer: DNS, connect, TLS, timeout, reset,
 *                       truncated body. `maybe_sent` says whether the request
 *                       may have reached Truv (1) or provably did not (0).
 *   TRUV_EPROTOCOL      an answer that is not what Truv sends: malformed JSON,
 *                       an unexpected status or shape.
 *   TRUV_EAPI           any other error answer (405, 406, 410, 415, ...).
 *   TRUV_EINTERNAL      out of memory, a store that cannot be read or written.
 *   TRUV_EEXPIRED       the connection needs the user again (what is known of
 *                       it says so, or it is older than the caller accepts):
 *                       refused before sending, nothing spent. The Lua
 *                       workflow makes it (truv.refresh); the core does not.
 *   TRUV_EHANDLER       a route handler of the caller's raised (truv.route):
 *                       made by the Lua layer only.
 *
 * This list is the one list of kinds: the Lua layer reads it (truv.core
 * lists) and makes no kind outside it, and the routing table (route.c) has
 * exactly one row per kind.
 * Nothing secret may be stored in a truv_err. Its texts (code, message,
 * request id, field names and field messages) are fixed buffers, filled only
 * through the setters below, and every setter redacts the text first and
 * only then cuts it to fit: a secret straddling a cut leaves nothing of
 * itself. SSN-shaped runs are always redacted; the `_redacted` setters also
 * take a list of secrets. Text copied from an answer (Truv's message, code,
 * field names and messages, X-Request-Id, an error page) is passed with the
 * secrets of the request it answers (truv_request.redact). */
#ifndef TRUV_ERR_H
#define TRUV_ERR_H

#include "truv/common.h"

typedef enum truv_kind {
  TRUV_OK = 0,
  TRUV_EINVALID,
  TRUV_EAUTH,
  TRUV_ENOTFOUND,
  TRUV_ETHROTTLED,
  TRUV_EREFRESH_LIMIT,
  TRUV_EQUOTA,
  TRUV_ESERVER,
  TRUV_ENETWORK,
  TRUV_EPROTOCOL,
  TRUV_EAPI,
  TRUV_EINTERNAL,
  TRUV_EEXPIRED,
  TRUV_EHANDLER,
  TRUV_KIND_COUNT
} truv_kind;

#define TRUV_ERR_MAX_FIELDS 16

typedef struct truv_err_field {
  char field[64]; /* "products", "employers[2].id", ... */
  char message[192];
} truv_err_field;

typedef struct truv_err {
  truv_kind kind;
  int status;      /* HTTP status, 0 when there was no answer */
  int maybe_sent;  /* TRUV_ENETWORK: 1 if the request may have reached Truv */
  double retry_at; /* when trying again makes sense (epoch s), 0 if unknown */
  char code[48];   /* Truv's error.code, or a local code ("timeout", ...) */
  char message[256];
  char request_id[64]; /* from the X-Request-Id response header */
  int nfields;         /* invalid fields recorded (at most TRUV_ERR_MAX_FIELDS) */
  int fields_dropped;  /* invalid fields beyond the array */
  truv_err_field fields[TRUV_ERR_MAX_FIELDS];
} truv_err;

/* Resets *err to "no error". */
TRUV_API void truv_err_clear(truv_err *err);

/* Sets kind, code and a printf-style message; returns kind. A NULL err is
 * allowed (the call then only returns kind). SSN-shaped runs in code and
 * message are redacted (before the cut, like every setter). */
TRUV_API int truv_err_set(truv_err *err, truv_kind kind, const char *code, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

/* truv_err_set that also redacts every one of `secrets` (as truv_redact). */
TRUV_API int truv_err_set_redacted(truv_err *err, const char *const *secrets, size_t nsecrets,
                                   truv_kind kind, const char *code, const char *fmt, ...)
  __attribute__((format(printf, 6, 7)));

/* Records an invalid field (kind becomes TRUV_EINVALID, code
 * "invalid_params"); returns TRUV_EINVALID. The field's name and message are
 * redacted like truv_err_set's texts. */
TRUV_API int truv_err_invalid(truv_err *err, const char *field, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));

/* truv_err_invalid that also redacts every one of `secrets`. */
TRUV_API int truv_err_invalid_redacted(truv_err *err, const char *const *secrets, size_t nsecrets,
                                       const char *field, const char *fmt, ...)
  __attribute__((format(printf, 5, 6)));

/* Sets err->request_id from an answer's X-Request-Id, redacted. */
TRUV_API void truv_err_set_request_id(truv_err *err, const char *const *secrets, size_t nsecrets,
                                      const char *request_id);

/* "invalid", "auth", "not_found", ...: the names the Lua layer uses. */
TRUV_API const char *truv_kind_name(truv_kind kind);

/* One line for logs, e.g.
 * `refresh_limit (HTTP 429, throttled): Refresh limit ... [request 1f2e]`.
 * Always NUL-terminates; returns the length it wanted (like snprintf). */
TRUV_API size_t truv_err_format(const truv_err *err, char *buf, size_t size);

/* An error's facts as texts, for the errors kept outside a truv_err (the
 * Lua layer's, whose texts and fields have no fixed size): the one line
 * above is formatted from these, here and nowhere else. */
typedef struct truv_err_text_field {
  const char *field, *message;
} truv_err_text_field;

typedef struct truv_err_facts {
  const char *kind;                        /* a truv_kind_name; NULL or "": "error" */
  const char *op;                          /* the operation that failed, or NULL: " in <op>" */
  int status;                              /* 0 when nothing was answered */
  const char *code, *message, *request_id; /* NULL or "" when absent */
  int maybe_sent;                          /* said for kind "network" */
  double retry_at;                         /* 0 when unknown */
  const truv_err_text_field *fields;
  size_t nfields;
  int fields_dropped;
} truv_err_facts;

/* truv_err_format over facts: the same line, with " in <op>" after the
 * kind when op is given. Nothing is redacted here (a truv_err's texts were
 * at its setters; other facts are the caller's to redact). */
TRUV_API size_t truv_err_format_facts(const truv_err_facts *facts, char *buf, size_t size);

/* Redacts, in place, every text already in *err (code, message, request id,
 * field names and messages) by the rules of truv_redact. It sees only what
 * fit: text from outside goes in through the setters above instead, which
 * redact before they cut. */
TRUV_API void truv_err_redact(truv_err *err, const char *const *secrets, size_t nsecrets);

/* Replaces every occurrence of each secret (NULL entries and strings shorter
 * than 4 bytes are skipped) and anything shaped like an SSN (ddd-dd-dddd or
 * nine digits in a row) by "[redacted]", in place in a NUL-terminated buffer
 * of capacity `size`; when a replacement does not fit, the text is cut there. */
TRUV_API void truv_redact(char *s, size_t size, const char *const *secrets, size_t nsecrets);

/* Copies src into dst (capacity size): src redacted as truv_redact, then
 * cut to fit at a character boundary. For text built from an answer before
 * it reaches an error. */
TRUV_API void truv_redact_copy(char *dst, size_t size, const char *src, const char *const *secrets,
                               size_t nsecrets);

/* How many bytes of a text decide the first size - 1 bytes of its redacted
 * form (for these secrets): the setters and truv_redact_copy read no more,
 * so that an answer of megabytes costs no more than a short one, and a
 * caller preparing such a text need not prepare more. */
TRUV_API size_t truv_redact_window(size_t size, const char *const *secrets, size_t nsecrets);

#endif
