/* Writing HTTP/1.1 requests (see truv/http1.h). A request's own values
 * were checked when it was built (truv_request_build); what comes from the
 * transport (a proxy's authorization, a tunnel's host) is checked here. */
#include "truv/http1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fields.h"

/* Where the bytes go. A message is written twice: to measure it (s NULL),
 * then into a buffer of exactly that size. */
typedef struct wire {
  char *s;
  size_t len;
} wire;

static void put(wire *w, const char *s, size_t n) {
  if (w->s) memcpy(w->s + w->len, s, n);
  w->len += n;
}

static void put_str(wire *w, const char *s) {
  put(w, s, strlen(s));
}

static void put_header(wire *w, const char *name, const char *value) {
  put_str(w, name);
  put(w, ": ", 2);
  put_str(w, value);
  put(w, "\r\n", 2);
}

/* The proxy's header, after checking that it cannot end the head early. */
static int check_proxy(const truv_http1_proxy *proxy, truv_err *err) {
  if (proxy && truv_has_ctl(proxy->authorization))
    return truv_err_set(err, TRUV_EINVALID, "header",
                        "the proxy's authorization holds a control character");
  return 0;
}

static void put_proxy(wire *w, const truv_http1_proxy *proxy) {
  if (proxy && proxy->authorization) put_header(w, "Proxy-Authorization", proxy->authorization);
}

/* A request (what: the truv_request), in absolute form to a proxy. */
static void write_request(wire *w, const void *what, const truv_http1_proxy *proxy) {
  const truv_request *req = what;
  char length[32];
  size_t i;
  put_str(w, req->method);
  put(w, " ", 1);
  put_str(w, proxy ? req->url : req->target);
  put_str(w, " HTTP/1.1\r\n");
  put_header(w, "Host", req->host);
  if (truv_request_fresh(req)) put_header(w, "Connection", "close");
  put_proxy(w, proxy);
  for (i = 0; i < req->nheaders; i++) {
    put_str(w, req->headers[i]);
    put(w, "\r\n", 2);
  }
  if (req->body) {
    snprintf(length, sizeof length, "%zu", req->body_len);
    put_header(w, "Content-Length", length);
  }
  put(w, "\r\n", 2);
  if (req->body) put(w, req->body, req->body_len);
}

/* A tunnel's CONNECT (what: "host:port"). */
static void write_connect(wire *w, const void *what, const truv_http1_proxy *proxy) {
  put_str(w, "CONNECT ");
  put_str(w, what);
  put_str(w, " HTTP/1.1\r\n");
  put_header(w, "Host", what);
  put_proxy(w, proxy);
  put(w, "\r\n", 2);
}

typedef void writer(wire *w, const void *what, const truv_http1_proxy *proxy);

static char *written(writer *write, const void *what, const truv_http1_proxy *proxy, size_t *len,
                     truv_err *err) {
  wire w = {NULL, 0};
  write(&w, what, proxy);
  if (!(w.s = malloc(w.len + 1))) {
    truv_err_set(err, TRUV_EINTERNAL, "nomem", "out of memory writing a request");
    return NULL;
  }
  w.len = 0;
  write(&w, what, proxy);
  w.s[w.len] = '\0';
  *len = w.len;
  return w.s;
}

char *truv_http1_request(const truv_request *req, const truv_http1_proxy *proxy, size_t *len,
                         truv_err *err) {
  if (!req->method || !req->target || !req->host) {
    truv_err_set(err, TRUV_EINVALID, "request", "an empty request (not built)");
    return NULL;
  }
  if (check_proxy(proxy, err)) return NULL;
  return written(write_request, req, proxy, len, err);
}

char *truv_http1_connect(const char *host, int port, const truv_http1_proxy *proxy, size_t *len,
                         truv_err *err) {
  char target[320];
  if (!host || !host[0] || truv_has_ctl(host) || strpbrk(host, " /[]@") || port < 1 ||
      port > 65535) {
    truv_err_set(err, TRUV_EINVALID, "header", "a tunnel needs a host name and a port");
    return NULL;
  }
  if (check_proxy(proxy, err)) return NULL;
  if ((size_t)snprintf(target, sizeof target, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                       port) >= sizeof target) {
    truv_err_set(err, TRUV_EINVALID, "header", "the tunnel's host name is too long");
    return NULL;
  }
  return written(write_connect, target, proxy, len, err);
}
