/* The incremental HTTP/1.1 response parser (see truv/http1.h), over
 * http-parser (nodejs/http-parser, Debian's libhttp-parser).
 *
 * http-parser does the framing (status line, header syntax, Content-Length,
 * chunked coding, end-of-message rules) and reports pieces through
 * callbacks; a piece may arrive in several calls when the bytes were split.
 * A header field is collected in `field` as name bytes then value bytes
 * (name_len marks the boundary) and added to the response when the next
 * field starts or the head ends. Completion pauses the parser, so that
 * http_parser_execute() returns exactly the bytes that belonged to the
 * response. */
#include <http_parser.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "truv/http1.h"

#define DEFAULT_MAX_HEADER_BYTES 65536u
#define DEFAULT_MAX_HEADERS 256u
#define MAX_INTERIM 16         /* 1xx answers skipped before the final one */
#define RESERVE_MAX (1u << 20) /* a Content-Length sizes the body buffer up to this */

/* Why a callback stopped the parser. */
enum { CB_OK = 0, CB_NOMEM, CB_HEADERS, CB_BODY, CB_UPGRADE, CB_INTERIM };

struct truv_http1 {
  http_parser parser;
  truv_http1_limits limits;
  truv_response resp;
  char *field; /* name bytes, then value bytes */
  size_t field_len, field_cap, name_len;
  int in_value;      /* the last piece was a value */
  size_t head_bytes; /* status line + fields (trailers included) */
  size_t nfields;
  size_t received; /* bytes fed since the reset */
  size_t trailing; /* bytes fed after completion */
  int interim;     /* the message being parsed is a 1xx */
  int ninterim;
  int head_done; /* the final response's head is complete */
  int done;
  int keepalive;
  int cb_error; /* CB_* */
  int failed;   /* an error was returned: `error` repeats it */
  truv_err error;
};

static int fail(truv_http1 *p, truv_err *err, truv_kind kind, const char *code, const char *msg,
                const char *detail) {
  truv_err_set(&p->error, kind, code, "%s%s%s", msg, detail ? ": " : "", detail ? detail : "");
  p->error.maybe_sent = kind == TRUV_ENETWORK;
  p->failed = 1;
  if (err) *err = p->error;
  return kind;
}

/* ------------------------------------------------------------- callbacks */

static int grow_field(truv_http1 *p, size_t more) {
  size_t cap = p->field_cap ? p->field_cap : 256;
  char *grown;
  if (p->field_len + more <= p->field_cap) return 0;
  while (cap < p->field_len + more) cap *= 2;
  if (!(grown = realloc(p->field, cap))) return -1;
  p->field = grown;
  p->field_cap = cap;
  return 0;
}

/* Counts head bytes against the limit. */
static int count_head(truv_http1 *p, size_t len) {
  p->head_bytes += len;
  if (p->head_bytes > p->limits.max_header_bytes) {
    p->cb_error = CB_HEADERS;
    return -1;
  }
  return 0;
}

/* Adds the collected field to the response (trailers are dropped). */
static int flush_field(truv_http1 *p) {
  int rc = 0;
  if (!p->in_value && p->field_len == 0) return 0;
  if (!p->head_done &&
      truv_response_add_header(&p->resp, p->field, p->name_len, p->field + p->name_len,
                               p->field_len - p->name_len)) {
    p->cb_error = CB_NOMEM;
    rc = -1;
  }
  p->field_len = p->name_len = 0;
  p->in_value = 0;
  return rc;
}

static int on_message_begin(http_parser *hp) {
  truv_http1 *p = hp->data;
  truv_response_reset(&p->resp);
  p->field_len = p->name_len = 0;
  p->in_value = 0;
  p->head_bytes = p->nfields = 0;
  return 0;
}

static int on_status(http_parser *hp, const char *at, size_t len) {
  (void)at;
  return count_head(hp->data, len);
}

/* Appends a piece of a header's name or value to the field being read,
 * within the head's size limit. */
static int append_field(truv_http1 *p, const char *at, size_t len) {
  if (count_head(p, len)) return -1;
  if (grow_field(p, len)) {
    p->cb_error = CB_NOMEM;
    return -1;
  }
  memcpy(p->field + p->field_len, at, len);
  p->field_len += len;
  return 0;
}

static int on_header_field(http_parser *hp, const char *at, size_t len) {
  truv_http1 *p = hp->data;
  if (p->in_value && flush_field(p)) return -1;
  if (p->field_len == 0 && ++p->nfields > p->limits.max_headers) { /* a new field */
    p->cb_error = CB_HEADERS;
    return -1;
  }
  if (append_field(p, at, len)) return -1;
  p->name_len = p->field_len;
  return 0;
}

static int on_header_value(http_parser *hp, const char *at, size_t len) {
  truv_http1 *p = hp->data;
  if (append_field(p, at, len)) return -1;
  p->in_value = 1;
  return 0;
}

/* A Content-Length known in advance sizes the body buffer once (bounded:
 * the header is only the peer's word). */
static void reserve_body(truv_response *resp, unsigned long long want) {
  char *grown;
  want += 1;
  if (want <= resp->body_cap || want > RESERVE_MAX) return;
  if ((grown = realloc(resp->body, (size_t)want))) {
    grown[0] = '\0';
    resp->body = grown;
    resp->body_cap = (size_t)want;
  }
}

static int on_headers_complete(http_parser *hp) {
  truv_http1 *p = hp->data;
  int has_length = !(hp->flags & F_CHUNKED) && hp->content_length != ULLONG_MAX;
  if (flush_field(p)) return -1;
  p->resp.status = (int)hp->status_code;
  if (hp->status_code == 101) {
    p->cb_error = CB_UPGRADE;
    return -1;
  }
  if (hp->status_code / 100 == 1) {
    if (++p->ninterim > MAX_INTERIM) {
      p->cb_error = CB_INTERIM;
      return -1;
    }
    p->interim = 1;
    return 0;
  }
  p->head_done = 1;
  if (has_length && hp->content_length > p->limits.max_body) {
    p->cb_error = CB_BODY;
    return -1;
  }
  if (has_length) reserve_body(&p->resp, hp->content_length);
  return 0;
}

static int on_body(http_parser *hp, const char *at, size_t len) {
  truv_http1 *p = hp->data;
  if (len > p->limits.max_body - p->resp.body_len) {
    p->cb_error = CB_BODY;
    return -1;
  }
  if (truv_response_append(&p->resp, at, len)) {
    p->cb_error = CB_NOMEM;
    return -1;
  }
  return 0;
}

static int on_message_complete(http_parser *hp) {
  truv_http1 *p = hp->data;
  if (p->interim) { /* the final response follows */
    p->interim = 0;
    return 0;
  }
  p->done = 1;
  p->keepalive = http_should_keep_alive(hp);
  http_parser_pause(hp, 1);
  return 0;
}

static const http_parser_settings SETTINGS = {
  .on_message_begin = on_message_begin,
  .on_status = on_status,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_headers_complete = on_headers_complete,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

/* ------------------------------------------------------------------ API */

truv_http1 *truv_http1_new(const truv_http1_limits *limits, truv_err *err) {
  truv_http1 *p = calloc(1, sizeof *p);
  if (!p) {
    truv_err_set(err, TRUV_EINTERNAL, "nomem", "out of memory for an HTTP parser");
    return NULL;
  }
  if (limits) p->limits = *limits;
  if (!p->limits.max_header_bytes) p->limits.max_header_bytes = DEFAULT_MAX_HEADER_BYTES;
  if (!p->limits.max_headers) p->limits.max_headers = DEFAULT_MAX_HEADERS;
  if (!p->limits.max_body || p->limits.max_body > TRUV_MAX_BODY) p->limits.max_body = TRUV_MAX_BODY;
  truv_response_init(&p->resp);
  truv_http1_reset(p);
  return p;
}

void truv_http1_free(truv_http1 *p) {
  if (!p) return;
  truv_response_free(&p->resp);
  free(p->field);
  free(p);
}

void truv_http1_reset(truv_http1 *p) {
  http_parser_init(&p->parser, HTTP_RESPONSE);
  p->parser.data = p;
  truv_response_reset(&p->resp);
  p->field_len = p->name_len = 0;
  p->in_value = 0;
  p->head_bytes = p->nfields = p->received = p->trailing = 0;
  p->interim = p->ninterim = p->head_done = p->done = p->keepalive = 0;
  p->cb_error = CB_OK;
  p->failed = 0;
  truv_err_clear(&p->error);
}

/* Turns a stopped parser into an error. */
static int parse_error(truv_http1 *p, truv_err *err) {
  enum http_errno e = HTTP_PARSER_ERRNO(&p->parser);
  switch (p->cb_error) {
    case CB_NOMEM:
      return fail(p, err, TRUV_EINTERNAL, "nomem", "out of memory parsing a response", NULL);
    case CB_HEADERS:
      return fail(p, err, TRUV_EPROTOCOL, "headers_too_large",
                  "the response's header exceeds the parser's limits", NULL);
    case CB_BODY:
      return fail(p, err, TRUV_EPROTOCOL, "body_too_large",
                  "the response body exceeds the parser's limit", NULL);
    case CB_UPGRADE:
      return fail(p, err, TRUV_ENETWORK, "network", "malformed HTTP response",
                  "unexpected 101 Switching Protocols");
    case CB_INTERIM:
      return fail(p, err, TRUV_ENETWORK, "network", "malformed HTTP response",
                  "too many interim (1xx) answers");
    default: break;
  }
  if (e == HPE_HEADER_OVERFLOW)
    return fail(p, err, TRUV_EPROTOCOL, "headers_too_large",
                "the response's header exceeds the parser's limits", NULL);
  return fail(p, err, TRUV_ENETWORK, "network", "malformed HTTP response",
              http_errno_description(e));
}

int truv_http1_feed(truv_http1 *p, const char *data, size_t len, truv_err *err) {
  size_t used;
  if (p->failed) {
    if (err) *err = p->error;
    return p->error.kind;
  }
  p->received += len;
  if (p->done) {
    p->trailing += len;
    return 0;
  }
  if (len == 0) return 0; /* http-parser would read an empty feed as the end */
  used = http_parser_execute(&p->parser, &SETTINGS, data, len);
  if (p->done) {
    p->trailing += len - used;
    return 0;
  }
  if (HTTP_PARSER_ERRNO(&p->parser) != HPE_OK || used != len) return parse_error(p, err);
  return 0;
}

int truv_http1_eof(truv_http1 *p, truv_err *err) {
  if (p->failed) {
    if (err) *err = p->error;
    return p->error.kind;
  }
  if (p->done) return 0;
  if (p->received == 0)
    return fail(p, err, TRUV_ENETWORK, "reset", "the connection closed without an answer", NULL);
  http_parser_execute(&p->parser, &SETTINGS, NULL, 0);
  if (p->done) {
    p->keepalive = 0; /* framed by the close */
    return 0;
  }
  if (p->cb_error != CB_OK) return parse_error(p, err);
  if (p->head_done)
    return fail(p, err, TRUV_ENETWORK, "truncated_body",
                "the connection closed before the whole response body arrived", NULL);
  return fail(p, err, TRUV_ENETWORK, "reset",
              "the connection closed before the response's header was complete", NULL);
}

int truv_http1_done(const truv_http1 *p) {
  return p->done && !p->failed;
}

int truv_http1_keepalive(const truv_http1 *p) {
  return p->done && !p->failed && p->keepalive && p->trailing == 0;
}

size_t truv_http1_received(const truv_http1 *p) {
  return p->received;
}

truv_response *truv_http1_response(truv_http1 *p) {
  return &p->resp;
}
