/* libFuzzer target: the incremental HTTP/1.1 response parser.
 *
 * Input layout: byte 0 holds flags (bit 0: put a valid status line in front
 * of the bytes, since http-parser itself is not instrumented and the fuzzer
 * would otherwise rarely get past it; bit 1: the peer closes after the last
 * byte; bit 2: tight limits; bit 3: build a well-formed response from the
 * bytes instead, see synthesize()), byte 1 the size of the pieces the bytes
 * are fed in, the rest is the response. Whatever the bytes:
 *   - parsing never crashes or leaks and ends in exactly one verdict
 *     (complete, waiting for more, or an error);
 *   - fed in pieces or in one call, the verdict, status, headers and body
 *     are the same (an input with several faults may report a different one
 *     of them: a limit is checked when a piece is reported, a syntax error
 *     where it is met; both are errors);
 *   - a complete response classifies into a document or a typed error. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "truv/classify.h"
#include "truv/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct verdict {
  int rc, done, keepalive, status;
  size_t nheaders, body_len;
} verdict;

static verdict run(truv_http1 *p, const char *prefix, const uint8_t *data, size_t size, size_t step,
                   int eof) {
  verdict v;
  truv_err err;
  truv_response *r;
  size_t at = 0;
  memset(&v, 0, sizeof v);
  if (prefix) v.rc = truv_http1_feed(p, prefix, strlen(prefix), &err);
  while (!v.rc && at < size) {
    size_t n = size - at < step ? size - at : step;
    v.rc = truv_http1_feed(p, (const char *)data + at, n, &err);
    at += n;
  }
  if (!v.rc && eof) v.rc = truv_http1_eof(p, &err);
  if (v.rc && err.kind != (truv_kind)v.rc) abort();
  v.done = truv_http1_done(p);
  v.keepalive = truv_http1_keepalive(p);
  if (v.rc && (v.done || v.keepalive)) abort();
  if (v.keepalive && !v.done) abort();
  r = truv_http1_response(p);
  v.status = r->status;
  v.nheaders = r->nheaders;
  v.body_len = r->body_len;
  return v;
}

/* A response built from the bytes: status, version, Connection header and
 * framing (Content-Length, a wrong Content-Length, chunked with extensions
 * and a trailer, or the close) picked by the first bytes, the rest the
 * body. Reaches deep into the parser without a seed corpus. Returns the
 * length written into out (at most cap). */
static size_t synthesize(const uint8_t *d, size_t n, char *out, size_t cap) {
  static const char *conn[] = {"", "Connection: close\r\n", "Connection: keep-alive\r\n",
                               "Connection: Upgrade\r\n"};
  size_t len, at = 0, i;
  int status, framing;
  if (n < 4) return 0;
  status = 100 + (d[0] << 8 | d[1]) % 500;
  framing = d[2] % 4;
  len = (size_t)snprintf(out, cap, "HTTP/1.%d %d X\r\nX-Request-Id: r\r\n%s", d[3] & 1, status,
                         conn[(d[3] >> 1) % 4]);
  d += 4, n -= 4;
  if (framing == 0 || framing == 1)
    len += (size_t)snprintf(out + len, cap - len, "Content-Length: %zu\r\n\r\n",
                            framing == 0 ? n : n + 1 - (n & 2));
  else if (framing == 2)
    len += (size_t)snprintf(out + len, cap - len, "Transfer-Encoding: chunked\r\n\r\n");
  else len += (size_t)snprintf(out + len, cap - len, "\r\n");
  if (framing != 2) {
    if (n > cap - len) n = cap - len;
    memcpy(out + len, d, n);
    return len + n;
  }
  while (at < n && len + 64 < cap) {
    size_t chunk = 1 + d[at] % 16;
    if (chunk > n - at) chunk = n - at;
    len += (size_t)snprintf(out + len, cap - len, "%zx%s\r\n", chunk, (d[at] & 16) ? ";e=1" : "");
    for (i = 0; i < chunk && len + 40 < cap; i++) out[len++] = (char)d[at + i];
    memcpy(out + len, "\r\n", 2), len += 2;
    at += chunk;
  }
  len += (size_t)snprintf(out + len, cap - len, "0\r\nX-T: 1\r\n\r\n");
  return len < cap ? len : cap;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char built[8192];
  static const truv_config cfg = {"https://prod.truv.com/v1/", "cid", "secret-xyz", NULL};
  truv_http1_limits tight = {512, 8, 1024};
  const char *prefix;
  truv_http1 *whole, *pieces;
  verdict a, b;
  truv_err err;
  size_t step;
  int eof;

  const uint8_t *bytes;
  size_t nbytes;

  if (size < 2) return 0;
  prefix = (data[0] & 1) ? "HTTP/1.1 200 OK\r\n" : NULL;
  eof = (data[0] & 2) != 0;
  step = 1 + data[1] % 64;
  bytes = data + 2, nbytes = size - 2;
  if (data[0] & 8) {
    nbytes = synthesize(data + 2, size - 2, built, sizeof built);
    bytes = (const uint8_t *)built;
    prefix = NULL;
  }
  whole = truv_http1_new((data[0] & 4) ? &tight : NULL, &err);
  pieces = truv_http1_new((data[0] & 4) ? &tight : NULL, &err);
  if (!whole || !pieces) abort();

  a = run(whole, prefix, bytes, nbytes, nbytes + 1, eof);
  b = run(pieces, prefix, bytes, nbytes, step, eof);
  if ((a.rc != 0) != (b.rc != 0) || a.done != b.done || a.keepalive != b.keepalive) abort();
  if (a.done && (a.status != b.status || a.nheaders != b.nheaders || a.body_len != b.body_len ||
                 memcmp(truv_http1_response(whole)->body, truv_http1_response(pieces)->body,
                        a.body_len) != 0))
    abort();

  if (a.done) {
    truv_request req;
    truv_json *doc = NULL;
    if (truv_request_build(&cfg, TRUV_OP_GET_ORDER, "id1", NULL, NULL, &req, &err)) abort();
    if (truv_classify(&req, truv_http1_response(whole), 1800000000.0, &doc, &err) == 0) {
      if (!doc && a.status != 204) abort();
    } else if (err.kind == TRUV_OK) {
      abort();
    }
    truv_json_free(doc);
    truv_request_free(&req);
  }

  /* a reset parser parses a valid answer */
  truv_http1_reset(whole);
  if (truv_http1_feed(whole, "HTTP/1.1 204 No Content\r\n\r\n", 27, &err) ||
      !truv_http1_done(whole))
    abort();
  truv_http1_free(whole);
  truv_http1_free(pieces);
  return 0;
}
