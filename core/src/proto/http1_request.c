/* Writing HTTP/1.1 requests (see truv/http1.h). A request's own values
 * were checked when it was built (truv_request_build); what comes from the
 * transport (a proxy's authorization, a tunnel's host) is checked here. */
#include "truv/http1.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct wire {
  char *s;
  size_t len, cap;
  int failed;
} wire;

static void put(wire *w, const char *s, size_t n) {
  if (w->failed) return;
  if (w->len + n + 1 > w->cap) {
    size_t cap = w->cap ? w->cap : 512;
    char *grown;
    while (cap < w->len + n + 1) cap *= 2;
    if (!(grown = realloc(w->s, cap))) {
      w->failed = 1;
      return;
    }
    w->s = grown;
    w->cap = cap;
  }
  memcpy(w->s + w->len, s, n);
  w->len += n;
  w->s[w->len] = '\0';
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

static int has_ctl(const char *s) {
  for (; s && *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
  return 0;
}

/* The proxy's header, after checking that it cannot end the head early. */
static int check_proxy(const truv_http1_proxy *proxy, truv_err *err) {
  if (proxy && has_ctl(proxy->authorization))
    return truv_err_set(err, TRUV_EINVALID, "header",
                        "the proxy's authorization holds a control character");
  return 0;
}

static char *finish(wire *w, size_t *len, truv_err *err) {
  if (w->failed) {
    free(w->s);
    truv_err_set(err, TRUV_EINTERNAL, "nomem", "out of memory writing a request");
    return NULL;
  }
  *len = w->len;
  return w->s;
}

char *truv_http1_request(const truv_request *req, const truv_http1_proxy *proxy, size_t *len,
                         truv_err *err) {
  wire w = {NULL, 0, 0, 0};
  char length[32];
  size_t i;
  if (!req->method || !req->target || !req->host) {
    truv_err_set(err, TRUV_EINVALID, "request", "an empty request (not built)");
    return NULL;
  }
  if (check_proxy(proxy, err)) return NULL;
  put_str(&w, req->method);
  put(&w, " ", 1);
  put_str(&w, proxy ? req->url : req->target);   /* absolute form to a proxy */
  put_str(&w, " HTTP/1.1\r\n");
  put_header(&w, "Host", req->host);
  if (truv_request_fresh(req)) put_header(&w, "Connection", "close");
  if (proxy && proxy->authorization) put_header(&w, "Proxy-Authorization", proxy->authorization);
  for (i = 0; i < req->nheaders; i++) {
    put_str(&w, req->headers[i]);
    put(&w, "\r\n", 2);
  }
  if (req->body) {
    snprintf(length, sizeof length, "%zu", req->body_len);
    put_header(&w, "Content-Length", length);
  }
  put(&w, "\r\n", 2);
  if (req->body) put(&w, req->body, req->body_len);
  return finish(&w, len, err);
}

char *truv_http1_connect(const char *host, int port, const truv_http1_proxy *proxy,
                         size_t *len, truv_err *err) {
  wire w = {NULL, 0, 0, 0};
  char target[320];
  if (!host || !host[0] || has_ctl(host) || strpbrk(host, " /[]@") || port < 1 || port > 65535) {
    truv_err_set(err, TRUV_EINVALID, "header", "a tunnel needs a host name and a port");
    return NULL;
  }
  if (check_proxy(proxy, err)) return NULL;
  if ((size_t)snprintf(target, sizeof target, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                       port) >= sizeof target) {
    truv_err_set(err, TRUV_EINVALID, "header", "the tunnel's host name is too long");
    return NULL;
  }
  put_str(&w, "CONNECT ");
  put_str(&w, target);
  put_str(&w, " HTTP/1.1\r\n");
  put_header(&w, "Host", target);
  if (proxy && proxy->authorization) put_header(&w, "Proxy-Authorization", proxy->authorization);
  put(&w, "\r\n", 2);
  return finish(&w, len, err);
}
