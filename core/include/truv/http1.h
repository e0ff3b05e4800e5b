/* HTTP/1.1 on the wire, for transports that only move bytes (OpenResty
 * cosockets, tests): a request's bytes out, and an incremental response
 * parser: bytes in, a truv_response out.
 *
 *   bytes = truv_http1_request(req, NULL, &len, &err);   // send them
 *
 *   truv_http1 *p = truv_http1_new(NULL, &err);
 *   while (!truv_http1_done(p)) {
 *     n = read(fd, buf, sizeof buf);
 *     rc = n > 0 ? truv_http1_feed(p, buf, n, &err) : truv_http1_eof(p, &err);
 *     if (rc) goto fail;                        // err says why (see below)
 *   }
 *   truv_classify(req, truv_http1_response(p), now, &doc, &err);
 *   reuse = !truv_request_fresh(req) && truv_http1_keepalive(p);   // else close it
 *   truv_http1_reset(p);                        // ready for the next response
 *
 * What the parser guarantees:
 *   - Bytes may be split anywhere: feeding a response in one call or one byte
 *     at a time gives the same result.
 *   - Bodies framed by Content-Length, by chunked transfer coding (chunk
 *     extensions ignored, trailers read and dropped: they never replace a
 *     header), or by the end of the connection (then only truv_http1_eof()
 *     completes them). 204, 304 and 1xx answers have no body. Interim 1xx
 *     answers (100 Continue, 103 Early Hints) are skipped: the response is
 *     the final one. 101 Switching Protocols is refused.
 *   - Completion stops parsing: bytes after the end of the response are not
 *     consumed, and a connection that delivered any is not kept alive.
 *   - Keep-alive follows HTTP/1.1: a complete response, framed by its length
 *     (not by the close), HTTP/1.1 without "Connection: close" or HTTP/1.0
 *     with "Connection: keep-alive", and nothing after it.
 *   - Limits: the status line and header fields (trailers included) together
 *     at most limits.max_header_bytes, at most limits.max_headers fields, a
 *     body of at most limits.max_body bytes (a Content-Length announcing more
 *     is refused as soon as the headers end).
 *
 * Errors (the response is then unusable; close the connection):
 *   TRUV_ENETWORK "truncated_body"  the peer closed inside the body
 *   TRUV_ENETWORK "reset"           the peer closed before a whole head arrived
 *   TRUV_ENETWORK "network"         malformed HTTP (the message names the
 *                                   parser's complaint), or bytes fed after
 *                                   an error
 *   TRUV_EPROTOCOL "headers_too_large", "body_too_large"   a limit was hit
 *   TRUV_EINTERNAL "nomem"          out of memory
 * Network errors have maybe_sent = 1: a transport parses only after sending.
 * Messages never quote the response's bytes.
 *
 * Writing a request: truv_http1_request() gives the request line, Host,
 * "Connection: close" when the request must go out on a fresh connection
 * (truv_request_fresh: every request but a GET and a refresh_order, see
 * truv_request_connection; the server then closes it too, so nothing can
 * ever follow it on that connection), the request's
 * own headers, Content-Length when there is a body, a blank line and the
 * body. Through a plain-HTTP proxy (proxy given) the request-target is in
 * absolute form and Proxy-Authorization is added when the proxy has one;
 * an https:// request goes through a tunnel instead (truv_http1_connect,
 * then the request as if straight to the origin: proxy NULL). The bytes
 * are malloc'd, *len long and NUL-terminated; the caller frees them. NULL
 * with TRUV_EINVALID "header" when a value would break the framing (a
 * control character in the authorization or the host), TRUV_EINTERNAL
 * "nomem" when out of memory.
 *
 * Threads: a parser belongs to one thread at a time; parsers are independent. */
#ifndef TRUV_HTTP1_H
#define TRUV_HTTP1_H

#include "truv/common.h"
#include "truv/err.h"
#include "truv/request.h"
#include "truv/response.h"

/* A plain-HTTP proxy between the transport and Truv. */
typedef struct truv_http1_proxy {
  const char *authorization; /* Proxy-Authorization's value ("Basic ..."), or NULL */
} truv_http1_proxy;

/* The bytes of req as an HTTP/1.1 request (see above); proxy NULL: sent to
 * the origin itself (or through a tunnel). */
TRUV_API char *truv_http1_request(const truv_request *req, const truv_http1_proxy *proxy,
                                  size_t *len, truv_err *err);

/* The CONNECT request that asks proxy for a tunnel to host:port (an IPv6
 * address without its brackets). */
TRUV_API char *truv_http1_connect(const char *host, int port, const truv_http1_proxy *proxy,
                                  size_t *len, truv_err *err);

typedef struct truv_http1_limits {
  size_t max_header_bytes; /* 0: 65 536 */
  size_t max_headers;      /* 0: 256 */
  size_t max_body;         /* 0: TRUV_MAX_BODY */
} truv_http1_limits;

typedef struct truv_http1 truv_http1;

/* A parser ready for a response; limits NULL for the defaults. */
TRUV_API truv_http1 *truv_http1_new(const truv_http1_limits *limits, truv_err *err);
TRUV_API void truv_http1_free(truv_http1 *p);

/* Forgets the response (keeping its buffers) for the next one. */
TRUV_API void truv_http1_reset(truv_http1 *p);

/* Parses len more bytes. Returns 0 (check truv_http1_done) or the error's
 * kind. Bytes fed once the response is complete are counted as trailing
 * garbage (the connection is then not kept alive) and otherwise ignored. */
TRUV_API int truv_http1_feed(truv_http1 *p, const char *data, size_t len, truv_err *err);

/* The peer closed the connection. Completes a body framed by the close;
 * anything else unfinished is an error. A no-op on a complete response. */
TRUV_API int truv_http1_eof(truv_http1 *p, truv_err *err);

/* 1 once the whole final response has been parsed. */
TRUV_API int truv_http1_done(const truv_http1 *p);

/* 1 when the connection may carry another request (see above). */
TRUV_API int truv_http1_keepalive(const truv_http1 *p);

/* Bytes fed since the last reset (all of them, consumed or not). */
TRUV_API size_t truv_http1_received(const truv_http1 *p);

/* The response so far: status and headers once the head is complete, the
 * body as it arrives. Owned by the parser; valid until reset or free. */
TRUV_API truv_response *truv_http1_response(truv_http1 *p);

#endif
