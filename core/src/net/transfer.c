/* One libcurl transfer of a truv_request (see transfer.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "transfer.h"

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void) {
  global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int truv_curl_global(truv_err *err) {
  pthread_once(&global_once, global_init);
  if (global_rc != CURLE_OK)
    return truv_err_set(err, TRUV_EINTERNAL, "curl_init", "libcurl failed to initialise: %s",
                        curl_easy_strerror(global_rc));
  return 0;
}

const char *truv_http_backend(void) {
  static char version[128];
  curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  if (!version[0])
    snprintf(version, sizeof version, "libcurl/%s %s", v->version,
             v->ssl_version ? v->ssl_version : "");
  return version;
}

static size_t on_body(char *data, size_t size, size_t n, void *userp) {
  truv_response *resp = userp;
  return truv_response_append(resp, data, size * n) ? 0 : size * n;
}

#define RESERVE_MAX (1u << 20)

/* A Content-Length known in advance sizes the body buffer once, instead of
 * doubling it up to twice the answer's size: a transfer in flight then
 * holds about the answer itself. Bounded, since the header is only the
 * peer's word; a compressed answer still grows as usual past it. */
static void reserve_body(truv_response *resp, const char *value, size_t vlen) {
  char digits[16];
  unsigned long want;
  char *grown;
  while (vlen && (*value == ' ' || *value == '\t')) value++, vlen--;
  if (!vlen || vlen >= sizeof digits || resp->body_len) return;
  memcpy(digits, value, vlen);
  digits[vlen] = '\0';
  want = strtoul(digits, NULL, 10) + 1;
  if (want <= resp->body_cap || want > RESERVE_MAX) return;
  if ((grown = realloc(resp->body, want))) {
    grown[0] = '\0';
    resp->body = grown;
    resp->body_cap = want;
  }
}

/* Header lines arrive one by one; a status line starts a new block (after a
 * 100 Continue or a redirect), so earlier headers are dropped. */
static size_t on_header(char *line, size_t size, size_t n, void *userp) {
  truv_response *resp = userp;
  size_t len = size * n;
  const char *colon = memchr(line, ':', len);
  if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
    truv_response_reset(resp);
    return len;
  }
  if (!colon) return len;
  if (colon - line == 14 && strncasecmp(line, "Content-Length", 14) == 0)
    reserve_body(resp, colon + 1, len - 15);
  if (truv_response_add_header(resp, line, (size_t)(colon - line), colon + 1,
                               len - (size_t)(colon - line) - 1))
    return 0;
  return len;
}

/* The request's timeouts over the transport's, field by field (see
 * truv/http.h for the stall window that stands for send and read). */
static long pick(long own, long transport, long fallback) {
  return own > 0 ? own : transport > 0 ? transport : fallback;
}

static void set_timeouts(CURL *easy, const truv_http_options *opts,
                         const truv_request_timeouts *t) {
  long send = pick(t->send_ms, opts->send_timeout_ms, 0);
  long read = pick(t->read_ms, opts->read_timeout_ms, 0);
  long stall = send > read ? send : read;
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   pick(t->connect_ms, opts->connect_timeout_ms, TRUV_DEFAULT_CONNECT_TIMEOUT_MS));
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                   pick(t->total_ms, opts->timeout_ms, TRUV_DEFAULT_TIMEOUT_MS));
  /* the handle is reused: a request without a stall window turns it off */
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, stall > 0 ? 1L : 0L);
  curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, stall > 0 ? (stall + 999) / 1000 : 0L);
}

/* A request sent at most once on a kept-alive connection
 * (TRUV_CONN_REUSE_ONCE), against libcurl 7.88's retry (lib/transfer.c
 * Curl_retry_request, lib/multi.c). When a transfer on a reused connection
 * ends with not a byte of answer (the server closed it: EOF, a reset while
 * reading, a failed send of the request head), libcurl closes that
 * connection and starts the same request over on a new one, by itself.
 * Two things would have to happen for that second attempt to leave:
 *   - if any byte of the body was written (writebytecount > 0), the body
 *     must be rewound first (readrewind, before the new attempt's DO):
 *     with CURLOPT_POSTFIELDS that is a no-op and the body simply goes
 *     again; with a CURLOPT_READFUNCTION body libcurl calls the
 *     CURLOPT_SEEKFUNCTION, which here refuses (CURL_SEEKFUNC_CANTSEEK),
 *     and the transfer fails with CURLE_SEND_FAIL_REWIND;
 *   - if only the head had left (the server got the headers and no body,
 *     writebytecount 0: a read-callback body is never packed with the head
 *     as a small POSTFIELDS one is), no rewind is asked and the new attempt
 *     would go ahead: the CURLOPT_PREREQFUNCTION, which libcurl calls on
 *     each attempt once its connection is ready and before a byte of the
 *     request is written, lets only the first one through
 *     (CURLE_ABORTED_BY_CALLBACK; the same covers any other path to a
 *     second attempt, an HTTP/2 refused stream included).
 * Either failure is a "reset" with maybe_sent = 1 (truv_transfer_error).
 * libcurl has opened the new connection by then (a TCP connect, over TLS a
 * handshake); not a byte of the request is written on it.
 * CURLOPT_POSTFIELDSIZE_LARGE gives the length for Content-Length, so the
 * body is never chunked and a short read cannot pass for its end. */
static size_t once_read(char *buf, size_t size, size_t n, void *userp) {
  truv_transfer_once *once = userp;
  size_t left = once->len - once->off, take = size * n < left ? size * n : left;
  memcpy(buf, once->body + once->off, take);
  once->off += take;
  return take;
}

static int once_seek(void *userp, curl_off_t offset, int origin) {
  (void)userp, (void)offset, (void)origin;
  return CURL_SEEKFUNC_CANTSEEK;
}

static int once_prereq(void *userp, char *primary_ip, char *local_ip, int primary_port,
                       int local_port) {
  truv_transfer_once *once = userp;
  (void)primary_ip, (void)local_ip, (void)primary_port, (void)local_port;
  return ++once->attempts == 1 ? CURL_PREREQFUNC_OK : CURL_PREREQFUNC_ABORT;
}

/* The connection a request may use (truv_request_connection, and the
 * transport's billed_reuse_idle_s) and, for a POST, how libcurl gets its
 * body. The handle is reused: every option is set either way. */
static void set_connection(CURL *easy, const truv_http_options *opts, const truv_request *req,
                           truv_transfer_once *once) {
  truv_conn_rule rule = truv_request_connection(req);
  long idle =
    opts->billed_reuse_idle_s ? opts->billed_reuse_idle_s : TRUV_DEFAULT_BILLED_REUSE_IDLE_S;
  int post = strcmp(req->method, "GET") != 0;
  if (rule == TRUV_CONN_REUSE_ONCE && idle < 0) rule = TRUV_CONN_FRESH;
  if (idle > TRUV_MAX_BILLED_REUSE_IDLE_S) idle = TRUV_MAX_BILLED_REUSE_IDLE_S;
  curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, rule == TRUV_CONN_FRESH ? 1L : 0L);
  /* libcurl reuses a connection idle for at most MAXAGE_CONN whole seconds
   * (it compares truncated seconds with '>'): idle - 1 keeps it under
   * idle seconds; 118 is libcurl's default */
  curl_easy_setopt(easy, CURLOPT_MAXAGE_CONN, rule == TRUV_CONN_REUSE_ONCE ? idle - 1 : 118L);
  if (!post) {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (rule == TRUV_CONN_REUSE_ONCE) {
    once->body = req->body ? req->body : "";
    once->len = req->body_len;
    once->off = 0;
    once->attempts = 0;
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, NULL);
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, once_read);
    curl_easy_setopt(easy, CURLOPT_READDATA, once);
    curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, once_seek);
    curl_easy_setopt(easy, CURLOPT_SEEKDATA, once);
    curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, once_prereq);
    curl_easy_setopt(easy, CURLOPT_PREREQDATA, once);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
  } else {
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
  }
  if (rule != TRUV_CONN_REUSE_ONCE) {
    /* a pooled handle may carry the previous request's callbacks */
    curl_easy_setopt(easy, CURLOPT_READFUNCTION, NULL);
    curl_easy_setopt(easy, CURLOPT_SEEKFUNCTION, NULL);
    curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, NULL);
  }
  if (post && strcmp(req->method, "POST") != 0)
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
}

/* Is there a CA file when none is given: libcurl's built-in bundle? */
static int default_ca_file(void) {
  curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  return v->age >= CURLVERSION_NINTH && v->cainfo;
}

/* The CAs a connection trusts: ca_file (or libcurl's built-in bundle), and
 * a directory only when ca_path names one. libcurl 7.88 with OpenSSL
 * (lib/vtls/openssl.c Curl_ssl_setup_x509_store) keeps the store it built
 * from a CA file in the multi handle (a truv_multi's, or the one
 * curl_easy_perform keeps in a truv_http's easy handle) and gives it to
 * each new connection, for CURLOPT_CA_CACHE_TIMEOUT (24 h), but only when
 * no CA directory is set. Debian's libcurl has a built-in directory
 * (--with-ca-path=/etc/ssl/certs) beside its bundle, so every handle had
 * one, and every new connection read and parsed the whole CA file again:
 * with OpenSSL 3 about 19 ms of CPU for Debian's bundle of 144 CAs. Without
 * the directory the file is read once per client or pool. The built-in
 * directory stays only where libcurl has no built-in bundle. */
static void set_ca(CURL *easy, const truv_http_options *opts) {
  if (opts->ca_file) curl_easy_setopt(easy, CURLOPT_CAINFO, opts->ca_file);
  if (opts->ca_path) curl_easy_setopt(easy, CURLOPT_CAPATH, opts->ca_path);
  else if (opts->ca_file || default_ca_file()) curl_easy_setopt(easy, CURLOPT_CAPATH, NULL);
}

int truv_transfer_prepare(CURL *easy, const truv_http_options *opts, const truv_request *req,
                          truv_response *resp, truv_transfer_once *once,
                          struct curl_slist **headers, truv_err *err) {
  struct curl_slist *list = NULL, *grown;
  size_t i;

  for (i = 0; i < req->nheaders; i++) {
    if (!(grown = curl_slist_append(list, req->headers[i]))) goto nomem;
    list = grown;
  }
  /* no "Expect: 100-continue" round trip */
  if (!(grown = curl_slist_append(list, "Expect:"))) goto nomem;
  list = grown;
  *headers = list;

  curl_easy_setopt(easy, CURLOPT_URL, req->url);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, list);
  set_timeouts(easy, opts, &req->timeouts);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, opts->insecure ? 0L : 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, opts->insecure ? 0L : 2L);
  set_ca(easy, opts);
  if (opts->proxy) curl_easy_setopt(easy, CURLOPT_PROXY, opts->proxy);
  if (opts->no_proxy) curl_easy_setopt(easy, CURLOPT_NOPROXY, opts->no_proxy);
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, resp);
  curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(easy, CURLOPT_HEADERDATA, resp);
  set_connection(easy, opts, req, once);
  truv_response_reset(resp);
  return 0;

nomem:
  curl_slist_free_all(list);
  return truv_err_set(err, TRUV_EINTERNAL, "nomem", "out of memory preparing a request");
}

void truv_transfer_finish(CURL *easy, truv_response *resp) {
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  resp->status = (int)status;
}

/* Did any byte of the request leave? Before the pre-transfer phase ends the
 * request has not been written to the socket. */
static int request_left(CURL *easy) {
  curl_off_t pretransfer = 0;
  long sent = 0;
  curl_easy_getinfo(easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
  curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &sent);
  return pretransfer > 0 || sent > 0;
}

int truv_transfer_error(CURL *easy, CURLcode rc, const char *errbuf, const truv_request *req,
                        truv_err *err) {
  const char *code = "network";
  int maybe_sent = 1;
  const char *detail = errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc);
  long tunnel = 0;
  /* a proxy that refused the CONNECT tunnel: the request never left (libcurl
   * reports a receive error, which would otherwise read as maybe sent) */
  curl_easy_getinfo(easy, CURLINFO_HTTP_CONNECTCODE, &tunnel);
  if (tunnel && (tunnel < 200 || tunnel > 299)) {
    truv_err_set_redacted(err, (const char *const *)req->redact, req->nredact, TRUV_ENETWORK,
                          "connect", "the proxy refused the tunnel (HTTP %ld): %s", tunnel, detail);
    err->maybe_sent = 0;
    return err->kind;
  }
  switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY: code = "dns", maybe_sent = 0; break;
    case CURLE_COULDNT_CONNECT: code = "connect", maybe_sent = 0; break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ISSUER_ERROR: code = "tls", maybe_sent = request_left(easy); break;
    case CURLE_OPERATION_TIMEDOUT: code = "timeout", maybe_sent = request_left(easy); break;
    case CURLE_GOT_NOTHING: /* closed with no answer */
    case CURLE_RECV_ERROR: /* reset while waiting for the answer */ code = "reset"; break;
    case CURLE_PARTIAL_FILE: code = "truncated_body"; break;
    case CURLE_SEND_FAIL_REWIND:    /* a request sent once: no rewind for a resend */
    case CURLE_ABORTED_BY_CALLBACK: /* nor a second attempt (see once_prereq) */
      truv_err_set_redacted(err, (const char *const *)req->redact, req->nredact, TRUV_ENETWORK,
                            "reset",
                            "the kept-alive connection was lost with no answer; the request "
                            "may have been processed and is not sent again");
      err->maybe_sent = 1;
      return err->kind;
    case CURLE_SEND_ERROR: code = "send", maybe_sent = request_left(easy); break;
    case CURLE_WRITE_ERROR:
      return truv_err_set(err, TRUV_EPROTOCOL, "body_too_large",
                          "the response body exceeds %u bytes", TRUV_MAX_BODY);
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
      return truv_err_set_redacted(err, (const char *const *)req->redact, req->nredact,
                                   TRUV_EINVALID, "base_url", "cannot send to this URL: %s",
                                   detail);
    default: break;
  }
  truv_err_set_redacted(err, (const char *const *)req->redact, req->nredact, TRUV_ENETWORK, code,
                        "%s", detail);
  err->maybe_sent = maybe_sent;
  return err->kind;
}
