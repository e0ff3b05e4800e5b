/* The libcurl transports: move a truv_request's bytes and fill a
 * truv_response. They decide nothing about the answer (truv_classify does).
 *
 * truv_http: one easy handle, one request at a time, blocking. Connections
 * are kept alive and reused across calls of the same truv_http.
 *
 * Connections follow truv_request_connection (truv/request.h): a GET and a
 * refresh_order reuse kept-alive connections (a refresh_order one idle less
 * than billed_reuse_idle_s, and never sent twice: libcurl's silent resend
 * of a request that got no answer on a reused connection is made
 * impossible, and such a loss is "reset" with maybe_sent = 1); every other
 * request goes out on a fresh connection.
 *
 * Failures to exchange are TRUV_ENETWORK with err->code one of "dns",
 * "connect", "tls", "timeout", "reset", "truncated_body", "send", "network", and err->maybe_sent =
 * 0 only when the request provably never left (DNS, connect and TLS-handshake failures, a timeout
 * before sending).
 *
 * Timeouts: a request's own (req->timeouts) win over the options, field by
 * field. connect and total map to CURLOPT_CONNECTTIMEOUT_MS and
 * CURLOPT_TIMEOUT_MS exactly. libcurl has no per-send or per-read timeout:
 * send and read map to its stall detector (CURLOPT_LOW_SPEED_LIMIT 1 byte/s
 * over CURLOPT_LOW_SPEED_TIME), which counts whole seconds and watches both
 * directions with one window: the larger of the two, rounded up to a whole
 * second, bounds a transfer that makes no progress either way. A stall
 * ends as a "timeout" like any other.
 *
 * Threads: a truv_http (and a truv_multi) belongs to one thread at a time. */
#ifndef TRUV_HTTP_H
#define TRUV_HTTP_H

#include "truv/common.h"
#include "truv/err.h"
#include "truv/request.h"
#include "truv/response.h"

/* The timeouts a transport takes when none is given (every transport's:
 * the Lua layer reads them too). */
#define TRUV_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define TRUV_DEFAULT_TIMEOUT_MS 30000L
/* A refresh_order reuses a kept-alive connection idle less than this long:
 * below the shortest keep-alive timeouts servers commonly keep (5 s for
 * Apache httpd and Node.js), so that it rarely meets one the server is
 * closing; libcurl's own bound for other requests is 118 s. */
#define TRUV_DEFAULT_BILLED_REUSE_IDLE_S 4L
#define TRUV_MAX_BILLED_REUSE_IDLE_S 3600L

typedef struct truv_http_options {
  long connect_timeout_ms;  /* 0: TRUV_DEFAULT_CONNECT_TIMEOUT_MS */
  long timeout_ms;          /* whole exchange; 0: TRUV_DEFAULT_TIMEOUT_MS */
  long send_timeout_ms;     /* a stalled send; 0: none but timeout_ms (see below) */
  long read_timeout_ms;     /* a stalled answer; 0: none but timeout_ms (see below) */
  const char *ca_file;      /* PEM bundle, the CAs trusted; NULL: libcurl's built-in one
                               (Debian: /etc/ssl/certs/ca-certificates.crt). Read once per
                               truv_http or truv_multi (libcurl's CA cache, kept 24 h), not
                               per connection, unless ca_path is set */
  const char *ca_path;      /* directory of hashed certificates trusted besides ca_file;
                               NULL: none (libcurl's built-in one only where it has no
                               built-in bundle). With a directory libcurl keeps no CA
                               cache: each new connection reads ca_file again */
  const char *proxy;        /* "http://host:port"; NULL: libcurl's environment rules; "" none */
  const char *no_proxy;     /* "host,.domain,..." that bypass the proxy; NULL: libcurl's
                               environment rules (NO_PROXY) */
  int insecure;             /* 1 turns TLS verification off (never in production) */
  long billed_reuse_idle_s; /* a TRUV_CONN_REUSE_ONCE request (refresh_order) reuses a
                               connection idle less than this many seconds (1..3600);
                               0: TRUV_DEFAULT_BILLED_REUSE_IDLE_S; < 0: never, a
                               fresh connection each (the rule before reuse) */
} truv_http_options;

typedef struct truv_http truv_http;

TRUV_API truv_http *truv_http_new(const truv_http_options *opts, truv_err *err);
TRUV_API void truv_http_free(truv_http *http);

/* Sends req and waits for the whole answer; resp is reset first. */
TRUV_API int truv_http_send(truv_http *http, const truv_request *req, truv_response *resp,
                            truv_err *err);

/* "libcurl/7.88.1 OpenSSL/3.0.x ..." */
TRUV_API const char *truv_http_backend(void);

#endif
