/* The webhook listener (see truv/listener.h): libmicrohttpd on one thread
 * of its own, a mutex-guarded FIFO of verified deliveries in between.
 *
 * A request is screened from its head (path, method, Content-Length)
 * before any body byte is read: a request that can only be refused is
 * answered at once, and MHD discards the rest of it. An acceptable one has
 * its body collected into a buffer (sized once from Content-Length, grown
 * for chunked bodies, never past max_body: a chunked body that outgrows it
 * has its connection closed); when the body is complete the signature is
 * checked and the delivery queued. The queue's lock is held
 * only to link or unlink deliveries, never while verifying or copying. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "truv/listener.h"
#include "truv/webhook.h"

#define CONNECTION_LIMIT 256
#define IDLE_TIMEOUT_S 15 /* Truv gives up on an answer after 10 s */
#define LISTEN_BACKLOG 256
#define HTTP_TOO_LARGE 413 /* MHD renamed its constant between versions */

struct truv_listener {
  struct MHD_Daemon *daemon;
  truv_webhook_keys *keys; /* used by the daemon's thread alone */
  char *path;
  size_t max_queue, max_body;
  int port;
  pthread_mutex_t lock; /* guards the queue and the counters below */
  truv_delivery *head, *tail;
  truv_listener_stats stats;
};

/* One request in progress: status is the answer decided for it, or 0
 * while it may still be accepted. */
typedef struct exchange {
  int status;
  char *body;
  size_t len, cap;
} exchange;

/* ---- answers ---- */

/* The bodies of the answers. libmicrohttpd takes a body as void * (a
 * PERSISTENT one it only reads), hence arrays rather than literals. */
static char body_ok[] = "{\"ok\":true}";
static char body_unauthorized[] = "{\"detail\":\"Bad or missing X-WEBHOOK-SIGN.\"}";
static char body_not_found[] = "{\"detail\":\"Not Found.\"}";
static char body_bad_method[] = "{\"detail\":\"Method not allowed.\"}";
static char body_too_large[] = "{\"detail\":\"Request body is too large.\"}";
static char body_busy[] = "{\"detail\":\"Busy, try again later.\"}";

static char *reason_of(int status) {
  switch (status) {
    case MHD_HTTP_OK: return body_ok;
    case MHD_HTTP_UNAUTHORIZED: return body_unauthorized;
    case MHD_HTTP_NOT_FOUND: return body_not_found;
    case MHD_HTTP_METHOD_NOT_ALLOWED: return body_bad_method;
    case HTTP_TOO_LARGE: return body_too_large;
    default: return body_busy;
  }
}

static void count(truv_listener *l, int status) {
  pthread_mutex_lock(&l->lock);
  switch (status) {
    case MHD_HTTP_OK: l->stats.accepted++; break;
    case MHD_HTTP_UNAUTHORIZED: l->stats.unauthorized++; break;
    case MHD_HTTP_NOT_FOUND: l->stats.not_found++; break;
    case MHD_HTTP_METHOD_NOT_ALLOWED: l->stats.bad_method++; break;
    case HTTP_TOO_LARGE: l->stats.too_large++; break;
    default: l->stats.full++; break;
  }
  pthread_mutex_unlock(&l->lock);
}

static enum MHD_Result reply(truv_listener *l, struct MHD_Connection *conn, int status) {
  char *text = reason_of(status);
  struct MHD_Response *resp =
    MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_PERSISTENT);
  enum MHD_Result rc;
  if (!resp) return MHD_NO;
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "POST");
  if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
  rc = MHD_queue_response(conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  if (status != MHD_HTTP_OK) count(l, status); /* 200s are counted when queued */
  return rc;
}

/* ---- the request ---- */

static const char *header(struct MHD_Connection *conn, const char *name) {
  return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* The answer a request gets from its head alone, or 0 to read its body.
 * A Content-Length over the limit is refused before the body is read;
 * buffer space for an acceptable one is taken once, here. */
static int screen(truv_listener *l, struct MHD_Connection *conn, const char *url,
                  const char *method, exchange *x) {
  const char *cl;
  if (strcmp(url, l->path) != 0) return MHD_HTTP_NOT_FOUND;
  if (strcmp(method, MHD_HTTP_METHOD_POST) != 0) return MHD_HTTP_METHOD_NOT_ALLOWED;
  if ((cl = header(conn, MHD_HTTP_HEADER_CONTENT_LENGTH))) {
    char *end;
    unsigned long long n;
    errno = 0;
    n = strtoull(cl, &end, 10);
    if (errno || end == cl || n > l->max_body) return HTTP_TOO_LARGE;
    x->cap = (size_t)n + 1;
    if (!(x->body = malloc(x->cap))) return MHD_HTTP_SERVICE_UNAVAILABLE;
  }
  return 0;
}

/* Appends a piece of the body; returns the answer it forces, or 0. */
static int take(truv_listener *l, exchange *x, const char *data, size_t n) {
  if (n > l->max_body - x->len) return HTTP_TOO_LARGE;
  if (x->len + n + 1 > x->cap) {
    size_t cap = x->cap ? x->cap : 4096;
    char *p;
    while (cap < x->len + n + 1) cap *= 2;
    if (cap > l->max_body + 1) cap = l->max_body + 1;
    if (!(p = realloc(x->body, cap))) return MHD_HTTP_SERVICE_UNAVAILABLE;
    x->body = p;
    x->cap = cap;
  }
  memcpy(x->body + x->len, data, n);
  x->len += n;
  return 0;
}

static double epoch_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t span(const char *s) {
  return s ? strlen(s) + 1 : 0;
}

/* Copies s into the delivery's block at *at; returns the copy or NULL. */
static const char *place(char **at, const char *s) {
  char *copy;
  if (!s) return NULL;
  copy = *at;
  memcpy(copy, s, strlen(s) + 1);
  *at += strlen(s) + 1;
  return copy;
}

/* A delivery holding the body and the headers, in one block. */
static truv_delivery *delivery_new(const exchange *x, const char *sign, const char *type,
                                   const char *agent) {
  size_t size = sizeof(truv_delivery) + x->len + 1 + span(sign) + span(type) + span(agent);
  truv_delivery *d = malloc(size);
  char *at;
  if (!d) return NULL;
  at = (char *)(d + 1);
  d->next = NULL;
  d->body = at;
  if (x->len) memcpy(at, x->body, x->len);
  at[x->len] = '\0';
  at += x->len + 1;
  d->len = x->len;
  d->signature = place(&at, sign);
  d->content_type = place(&at, type);
  d->user_agent = place(&at, agent);
  d->received_at = epoch_now();
  return d;
}

/* Links d at the tail, unless the queue is full; returns the answer. */
static int enqueue(truv_listener *l, truv_delivery *d) {
  int status = MHD_HTTP_OK;
  pthread_mutex_lock(&l->lock);
  if (l->stats.queued >= l->max_queue) {
    status = MHD_HTTP_SERVICE_UNAVAILABLE;
  } else {
    if (l->tail) l->tail->next = d;
    else l->head = d;
    l->tail = d;
    l->stats.queued++;
    l->stats.accepted++;
  }
  pthread_mutex_unlock(&l->lock);
  return status;
}

/* The whole body is in: verify, then queue. Returns the answer. */
static int accept_delivery(truv_listener *l, struct MHD_Connection *conn, const exchange *x) {
  const char *sign = header(conn, TRUV_WEBHOOK_HEADER);
  truv_delivery *d;
  truv_err err;
  int status;
  if (truv_webhook_verify_keys(l->keys, x->body ? x->body : "", x->len, sign, &err))
    return err.kind == TRUV_EAUTH ? MHD_HTTP_UNAUTHORIZED : MHD_HTTP_SERVICE_UNAVAILABLE;
  d = delivery_new(x, sign, header(conn, MHD_HTTP_HEADER_CONTENT_TYPE),
                   header(conn, MHD_HTTP_HEADER_USER_AGENT));
  if (!d) return MHD_HTTP_SERVICE_UNAVAILABLE;
  if ((status = enqueue(l, d)) != MHD_HTTP_OK) free(d);
  return status;
}

static void exchange_free(exchange *x) {
  if (!x) return;
  free(x->body);
  free(x);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state) {
  truv_listener *l = cls;
  exchange *x = *state;
  (void)version;
  if (!x) { /* the head only */
    if (!(x = calloc(1, sizeof *x))) return MHD_NO;
    *state = x;
    x->status = screen(l, conn, url, method, x);
    return x->status ? reply(l, conn, x->status) : MHD_YES;
  }
  if (*upload_size) {
    /* no answer can be queued while the body is coming in (MHD's rule):
     * a body that outgrows the limit has its connection closed instead,
     * rather than being read on for as long as the sender cares to send */
    if ((x->status = take(l, x, upload, *upload_size))) {
      count(l, x->status);
      return MHD_NO;
    }
    *upload_size = 0;
    return MHD_YES;
  }
  x->status = accept_delivery(l, conn, x);
  return reply(l, conn, x->status);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **state,
                         enum MHD_RequestTerminationCode why) {
  (void)cls, (void)conn, (void)why;
  exchange_free(*state);
  *state = NULL;
}

/* ---- the socket ---- */

/* A listening socket on host:port, or -1 with err set. */
static int listen_on(const char *host, int port, int *bound, truv_err *err) {
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  int fd, one = 1, is_v6;
  memset(&v4, 0, sizeof v4);
  memset(&v6, 0, sizeof v6);
  v4.sin_family = AF_INET;
  v4.sin_port = htons((uint16_t)port);
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) is_v6 = 0;
  else if (inet_pton(AF_INET6, host, &v6.sin6_addr) == 1) is_v6 = 1;
  else {
    truv_err_set(err, TRUV_EINVALID, "invalid_option",
                 "listener host: '%.64s' is not an IPv4 or IPv6 address", host);
    return -1;
  }
  if ((fd = socket(is_v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) <
      0) {
    truv_err_set(err, TRUV_EINTERNAL, "socket", "socket: %s", strerror(errno));
    return -1;
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if ((is_v6 ? bind(fd, (struct sockaddr *)&v6, sizeof v6)
             : bind(fd, (struct sockaddr *)&v4, sizeof v4)) != 0 ||
      listen(fd, LISTEN_BACKLOG) != 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
    truv_err_set(err, TRUV_ENETWORK, "bind", "cannot listen on %.64s port %d: %s", host, port,
                 strerror(errno));
    close(fd);
    return -1;
  }
  *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
  return fd;
}

/* ---- lifecycle ---- */

static int check_options(const truv_listener_options *o, truv_err *err) {
  if (o->port < 0 || o->port > 65535)
    return truv_err_set(err, TRUV_EINVALID, "invalid_option",
                        "listener port: %d is not in 0..65535", o->port);
  if (o->path && o->path[0] != '/')
    return truv_err_set(err, TRUV_EINVALID, "invalid_option",
                        "listener path: it must start with '/'");
  if (o->max_queue > TRUV_LISTENER_MAX_QUEUE)
    return truv_err_set(err, TRUV_EINVALID, "invalid_option", "listener max_queue: at most %d",
                        TRUV_LISTENER_MAX_QUEUE);
  if (o->max_body > TRUV_LISTENER_MAX_BODY)
    return truv_err_set(err, TRUV_EINVALID, "invalid_option", "listener max_body: at most %d bytes",
                        TRUV_LISTENER_MAX_BODY);
  return 0;
}

int truv_listener_new(const truv_listener_options *opts, truv_listener **out, truv_err *err) {
  static const truv_listener_options defaults;
  const truv_listener_options *o = opts ? opts : &defaults;
  const char *path = o->path ? o->path : TRUV_LISTENER_DEFAULT_PATH;
  truv_listener *l = NULL;
  int rc, fd = -1;
  *out = NULL;
  if ((rc = check_options(o, err))) return rc;
  if (!(l = calloc(1, sizeof *l))) goto oom;
  if (pthread_mutex_init(&l->lock, NULL) != 0) {
    free(l);
    l = NULL;
    goto oom;
  }
  l->max_queue = o->max_queue ? o->max_queue : TRUV_LISTENER_DEFAULT_QUEUE;
  l->max_body = o->max_body ? o->max_body : TRUV_LISTENER_DEFAULT_BODY;
  if ((rc = truv_webhook_keys_new(o->secrets, o->nsecrets, &l->keys, err))) goto fail;
  if (!(l->path = malloc(strlen(path) + 1))) goto oom;
  memcpy(l->path, path, strlen(path) + 1);
  fd = listen_on(o->host ? o->host : TRUV_LISTENER_DEFAULT_HOST, o->port, &l->port, err);
  if (fd < 0) {
    rc = err->kind;
    goto fail;
  }
  l->daemon =
    MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD, 0, NULL, NULL, on_request, l,
                     MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_NOTIFY_COMPLETED,
                     on_completed, l, MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_END);
  if (!l->daemon) {
    close(fd);
    rc = truv_err_set(err, TRUV_EINTERNAL, "http_server",
                      "the webhook listener's HTTP server (libmicrohttpd) did not start");
    goto fail;
  }
  *out = l;
  return 0;
oom:
  rc = truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "out of memory");
fail:
  truv_listener_free(l);
  return rc;
}

void truv_listener_free(truv_listener *l) {
  if (!l) return;
  if (l->daemon) MHD_stop_daemon(l->daemon); /* joins its thread, closes the socket */
  truv_deliveries_free(l->head);
  truv_webhook_keys_free(l->keys);
  pthread_mutex_destroy(&l->lock);
  free(l->path);
  free(l);
}

int truv_listener_port(const truv_listener *l) {
  return l->port;
}

size_t truv_listener_drain(truv_listener *l, size_t max, truv_delivery **list) {
  truv_delivery *head, *last;
  size_t n = 0;
  pthread_mutex_lock(&l->lock);
  head = last = l->head;
  if (head) {
    n = 1;
    while (last->next && (max == 0 || n < max)) {
      last = last->next;
      n++;
    }
    l->head = last->next;
    if (!l->head) l->tail = NULL;
    last->next = NULL;
    l->stats.queued -= n;
  }
  pthread_mutex_unlock(&l->lock);
  *list = head;
  return n;
}

void truv_deliveries_free(truv_delivery *list) {
  while (list) {
    truv_delivery *next = list->next;
    free(list);
    list = next;
  }
}

void truv_listener_get_stats(truv_listener *l, truv_listener_stats *stats) {
  pthread_mutex_lock(&l->lock);
  *stats = l->stats;
  pthread_mutex_unlock(&l->lock);
}
