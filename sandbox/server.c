/* server: see server.h. */
#define _GNU_SOURCE /* accept4 semantics inside MHD, SO_* constants */
#include "server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handler.h"
#include "hex.h"
#include "validate.h"

#define MAX_BODY (1024 * 1024)
#define CONNECTION_LIMIT 20000u
#define IDLE_TIMEOUT_S 120u
#define STALLED_TIMEOUT_S (IDLE_TIMEOUT_S + 1) /* any but IDLE_TIMEOUT_S: see send_fin */

enum phase { PHASE_RECEIVING, PHASE_DELAYED };

struct request {
  struct sandbox *sb;
  struct MHD_Connection *conn;
  const char *url, *method_name;
  enum method method;
  struct route route;
  char *body;
  size_t len, cap;
  bool too_large;
  enum phase phase;
  int64_t started; /* monotonic, for the --verbose request log */
  struct reply reply;
  struct fault_plan plan;
};

/* the content of a truncated or stalled answer (owned by its MHD response) */
struct partial {
  char *body;
  size_t len, limit;
  int stall_ms;
  bool stalled;
  struct MHD_Connection *conn;
  struct timer *timer;
};

/* what handlers read as the body of a request that had none */
static const cJSON NO_BODY = {.type = cJSON_Object};

/* cJSON records parse failures in a global: parse one body at a time */
static pthread_mutex_t parse_mu = PTHREAD_MUTEX_INITIALIZER;

/* ---- small pieces ------------------------------------------------------ */

static const char *header(struct request *rq, const char *name) {
  return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

static bool same_secret(const char *given, const char *expected) {
  size_t n = strlen(expected);
  return given && strlen(given) == n && CRYPTO_memcmp(given, expected, n) == 0;
}

static bool is_json_type(const char *ct) {
  size_t n;
  static const char JSON[] = "application/json";
  if (!ct) return false;
  while (*ct == ' ' || *ct == '\t') ct++;
  n = strcspn(ct, "; \t");
  return n == sizeof JSON - 1 && strncasecmp(ct, JSON, n) == 0;
}

static void request_id(struct sandbox *sb, char out[33]) {
  uint64_t seq = __atomic_fetch_add(&sb->request_seq, 1, __ATOMIC_RELAXED);
  uint64_t a = rng_mix(sb->request_nonce, seq), b = rng_mix(seq, sb->request_nonce);
  uint8_t raw[16];
  memcpy(raw, &a, 8);
  memcpy(raw + 8, &b, 8);
  hex_encode(raw, 16, out);
}

static void add_headers(struct request *rq, struct MHD_Response *resp) {
  char rid[33];
  request_id(rq->sb, rid);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                          rq->reply.content_type ? rq->reply.content_type : "application/json");
  MHD_add_response_header(resp, "X-Request-Id", rid);
  if (rq->reply.location)
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, rq->reply.location);
  if (rq->reply.allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, rq->reply.allow);
  if (rq->reply.retry_after > 0) {
    char ra[16];
    snprintf(ra, sizeof ra, "%d", rq->reply.retry_after);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, ra);
  }
}

/* counts the outcome; with --verbose (and not --quiet) logs one line */
static void count(struct request *rq, enum outcome_slot slot) {
  char status[16];
  const struct sb_options *o = &rq->sb->opt;
  stats_count(&rq->sb->stats, rq->route.ep, rq->method, slot);
  if (!o->verbose || o->quiet) return;
  if (slot == OUT_OTHER || slot < OUT_RESET_BEFORE)
    snprintf(status, sizeof status, "%d", rq->reply.status);
  fprintf(stderr, "truv-sandbox: %s %s %s %.1fms\n", rq->method_name, rq->url,
          slot == OUT_OTHER || slot < OUT_RESET_BEFORE ? status : stats_slot_name(slot),
          (double)(time_mono_us() - rq->started) / 1000.0);
}

/* closes the connection with a TCP reset, answering nothing */
static enum MHD_Result abort_connection(struct request *rq) {
  const union MHD_ConnectionInfo *ci =
    MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  return MHD_NO;
}

/* ---- answering --------------------------------------------------------- */

static enum MHD_Result send_reply(struct request *rq) {
  enum MHD_Result ret;
  struct reply *r = &rq->reply;
  struct MHD_Response *resp;
  if (!r->body) reply_server_error(r);
  if (r->body) resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
  else resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (!resp) return MHD_NO;
  r->body = NULL; /* MHD frees it with the response */
  add_headers(rq, resp);
  ret = MHD_queue_response(rq->conn, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  count(rq, stats_slot_for_status(r->status)); /* r->status survives the hand-over */
  return ret;
}

/* The end of a stall. MHD 0.9.75 leaves a connection whose content reader fails in the turn
 * that resumes it out of its epoll set and its ready list: it is released, and its socket
 * closed, only when MHD next walks its timeout list that far, which any keep-alive connection
 * idling on the same worker puts off (for up to IDLE_TIMEOUT_S). So a stalled connection gets
 * a timeout of its own (STALLED_TIMEOUT_S), which puts it on the list MHD walks in full on
 * every turn: the turn that resumes it releases it. And the reader sends the FIN itself (with
 * MHD_USE_TURBO, MHD shuts nothing down and the FIN waits for close()): the client sees the
 * answer end when the stall does, whatever MHD's bookkeeping. */
static void send_fin(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci =
    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci) shutdown(ci->connect_fd, SHUT_WR);
}

static ssize_t partial_read(void *cls, uint64_t pos, char *buf, size_t max) {
  struct partial *p = cls;
  if (pos < p->limit) {
    size_t n = p->limit - (size_t)pos;
    n = n < max ? n : max;
    memcpy(buf, p->body + pos, n);
    return (ssize_t)n;
  }
  if (p->stall_ms > 0 && !p->stalled) {
    p->stalled = true;
    MHD_set_connection_option(p->conn, MHD_CONNECTION_OPTION_TIMEOUT, STALLED_TIMEOUT_S);
    if (timer_suspend(p->timer, p->conn, (int64_t)p->stall_ms * 1000))
      return 0; /* called again once the timer resumes the connection */
  }
  send_fin(p->conn);
  return MHD_CONTENT_READER_END_WITH_ERROR; /* MHD closes the connection */
}

static void partial_free(void *cls) {
  struct partial *p = cls;
  free(p->body);
  free(p);
}

/* announces the full length, sends half the body, (stalls,) then closes */
static enum MHD_Result send_partial(struct request *rq, bool stall) {
  struct MHD_Response *resp;
  enum MHD_Result ret;
  struct partial *p = calloc(1, sizeof *p);
  if (!p || !rq->reply.body) {
    free(p);
    return abort_connection(rq);
  }
  p->body = rq->reply.body;
  p->len = rq->reply.len;
  p->limit = p->len / 2;
  p->stall_ms = stall ? rq->plan.stall_ms : 0;
  p->conn = rq->conn;
  p->timer = &rq->sb->timer;
  rq->reply.body = NULL;
  resp = MHD_create_response_from_callback(p->len, 4096, partial_read, p, partial_free);
  if (!resp) {
    partial_free(p);
    return MHD_NO;
  }
  add_headers(rq, resp);
  ret = MHD_queue_response(rq->conn, (unsigned)rq->reply.status, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* the answer (or its fault) once any latency has passed */
static enum MHD_Result finish(struct request *rq) {
  switch (rq->plan.kind) {
    case FAULT_RESET_AFTER:
      faults_count(&rq->sb->faults, FAULT_RESET_AFTER);
      count(rq, OUT_RESET_AFTER);
      return abort_connection(rq);
    case FAULT_TRUNCATE:
    case FAULT_STALL:
      faults_count(&rq->sb->faults, rq->plan.kind);
      count(rq, rq->plan.kind == FAULT_STALL ? OUT_STALL : OUT_TRUNCATE);
      return send_partial(rq, rq->plan.kind == FAULT_STALL);
    default: return send_reply(rq);
  }
}

/* ---- the pipeline ------------------------------------------------------ */

static void parse_body(struct request *rq, cJSON **json) {
  cJSON *j;
  const char *end = NULL;
  char msg[160];
  *json = NULL;
  if (!utf8_valid(rq->body, rq->len)) {
    reply_bad_field(&rq->reply, "non_field_errors",
                    "JSON parse error - the body is not valid UTF-8.");
    return;
  }
  pthread_mutex_lock(&parse_mu);
  /* the length covers the NUL that append() keeps after the body: cJSON
   * then rejects trailing garbage */
  j = cJSON_ParseWithLengthOpts(rq->body, rq->len + 1, &end, 1);
  pthread_mutex_unlock(&parse_mu);
  if (!j) {
    size_t at = end && end >= rq->body ? (size_t)(end - rq->body) : 0;
    snprintf(msg, sizeof msg, "JSON parse error - invalid JSON at byte %zu.", at);
    reply_bad_field(&rq->reply, "non_field_errors", msg);
    return;
  }
  if (!cJSON_IsObject(j)) {
    snprintf(msg, sizeof msg, "Invalid data. Expected a dictionary, but got %s.",
             cJSON_IsArray(j) ? "list" : "a scalar");
    reply_bad_field(&rq->reply, "non_field_errors", msg);
    cJSON_Delete(j);
    return;
  }
  *json = j;
}

static void dispatch_v1(struct handler_ctx *x) {
  switch (x->route->ep) {
    case EP_V1_ORDERS: api_create_order(x); break;
    case EP_V1_ORDER:
      if (x->method == M_POST) api_refresh_order(x);
      else api_get_order(x);
      break;
    case EP_V1_ORDER_EVENTS: api_order_events(x); break;
    case EP_V1_REFRESH_TASKS: api_create_refresh_task(x); break;
    case EP_V1_REFRESH_TASK: api_get_refresh_task(x); break;
    case EP_V1_USERS: api_create_user(x); break;
    case EP_V1_USER: api_get_user(x); break;
    case EP_V1_USER_TOKENS: api_user_token(x); break;
    case EP_V1_LINK_TOKENS: api_link_token(x); break;
    case EP_V1_LINK: api_get_link(x); break;
    case EP_V1_LINK_REPORT: api_link_report(x); break;
    case EP_V1_TASKS: api_list_tasks(x); break;
    case EP_V1_TASK: api_get_task(x); break;
    default: reply_not_found(x->reply);
  }
}

/* a body counts only on methods that carry one (a GET's body is ignored) */
static bool has_body(const struct request *rq) {
  return rq->len > 0 && (rq->method == M_POST || rq->method == M_PUT || rq->method == M_PATCH);
}

struct query_buf {
  char *p;
  size_t len, cap;
  unsigned args;
  bool oom;
};

static void query_put(struct query_buf *q, const char *s, bool escape) {
  static const char HEX[] = "0123456789ABCDEF";
  for (; s && *s; s++) {
    unsigned char c = (unsigned char)*s;
    bool plain = !escape || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || strchr("-._~", c);
    if (q->len + 4 > q->cap) {
      size_t cap = q->cap ? q->cap * 2 : 256;
      char *n = realloc(q->p, cap);
      if (!n) {
        q->oom = true;
        return;
      }
      q->p = n;
      q->cap = cap;
    }
    if (plain) {
      q->p[q->len++] = (char)c;
    } else {
      q->p[q->len++] = '%';
      q->p[q->len++] = HEX[c >> 4];
      q->p[q->len++] = HEX[c & 15];
    }
    q->p[q->len] = '\0';
  }
}

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value) {
  struct query_buf *q;
  (void)kind;
  q = cls;
  query_put(q, q->args++ == 0 ? "?" : "&", false);
  query_put(q, key, true);
  if (value) {
    query_put(q, "=", false);
    query_put(q, value, true);
  }
  return MHD_YES;
}

/* Django's CommonMiddleware with APPEND_SLASH: a path that matches only
 * with a final slash is answered 301 to it (query kept), before any view,
 * authentication included. NULL when the path is not such a path. */
static char *slash_location(struct request *rq) {
  struct query_buf q = {0};
  if (rq->sb->opt.strict || !route_wants_slash(rq->url)) return NULL;
  query_put(&q, rq->url, false);
  query_put(&q, "/", false);
  MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, query_arg, &q);
  if (q.oom) {
    free(q.p);
    return NULL;
  }
  return q.p;
}

/* the checks Truv (DRF) makes before a view runs; true when they pass */
static bool v1_gate(struct request *rq) {
  struct sandbox *sb = rq->sb;
  struct reply *r = &rq->reply;
  char *location;
  if (rq->route.ep == EP_V1_UNKNOWN) {
    if ((location = slash_location(rq))) reply_redirect(r, location);
    else reply_not_found(r);
  } else if (!same_secret(header(rq, "X-Access-Client-Id"), sb->opt.client_id) ||
             !same_secret(header(rq, "X-Access-Secret"), sb->opt.secret)) {
    reply_auth_failed(r);
  } else {
    int wait = ratelimit_take(&sb->limiter, time_mono_us());
    if (wait > 0) reply_throttled(r, wait);
    else if (!route_allows(rq->route.ep, rq->method))
      reply_method_not_allowed(r, rq->method_name, route_allow_header(rq->route.ep));
    else if (has_body(rq) && !is_json_type(header(rq, MHD_HTTP_HEADER_CONTENT_TYPE)))
      reply_unsupported_media(r, header(rq, MHD_HTTP_HEADER_CONTENT_TYPE));
    else return true;
  }
  return false;
}

static bool control_gate(struct request *rq) {
  if (rq->route.ep == EP_SB_UNKNOWN || rq->route.ep == EP_OTHER) reply_not_found(&rq->reply);
  else if (!route_allows(rq->route.ep, rq->method))
    reply_method_not_allowed(&rq->reply, rq->method_name, route_allow_header(rq->route.ep));
  else return true;
  return false;
}

static void handle(struct request *rq) {
  struct handler_ctx x;
  const char *host;
  char fallback[64];
  bool v1 = route_is_v1(rq->route.ep);
  cJSON *json = NULL;
  if (rq->too_large) {
    reply_detail(&rq->reply, 413, "Request body is too large.");
    return;
  }
  if (!(v1 ? v1_gate(rq) : control_gate(rq))) return;
  if (has_body(rq) && (parse_body(rq, &json), !json)) return;
  host = header(rq, MHD_HTTP_HEADER_HOST);
  snprintf(fallback, sizeof fallback, "127.0.0.1:%d", rq->sb->port);
  x = (struct handler_ctx){
    .sb = rq->sb,
    .conn = rq->conn,
    .route = &rq->route,
    .method = rq->method == M_HEAD ? M_GET : rq->method,
    .json = json ? json : &NO_BODY,
    .host = host ? host : fallback,
    .now = vclock_now(&rq->sb->clock),
    .reply = &rq->reply,
  };
  if (v1) dispatch_v1(&x);
  else control_handle(&x);
  cJSON_Delete(json);
}

/* the whole request is in: decide, process, answer or delay */
static enum MHD_Result complete(struct request *rq) {
  struct sandbox *sb = rq->sb;
  if (route_is_v1(rq->route.ep)) faults_plan(&sb->faults, rq->method_name, rq->url, &rq->plan);
  if (rq->plan.kind == FAULT_RESET_BEFORE) {
    faults_count(&sb->faults, FAULT_RESET_BEFORE);
    count(rq, OUT_RESET_BEFORE);
    return abort_connection(rq);
  }
  if (rq->plan.kind == FAULT_5XX) {
    faults_count(&sb->faults, FAULT_5XX);
    reply_detail(&rq->reply, rq->plan.status, "Injected server error.");
  } else {
    handle(rq);
  }
  if (rq->plan.delay_ms > 0 &&
      timer_suspend(&sb->timer, rq->conn, (int64_t)rq->plan.delay_ms * 1000)) {
    rq->phase = PHASE_DELAYED;
    return MHD_YES;
  }
  return finish(rq);
}

static void append(struct request *rq, const char *data, size_t n) {
  if (rq->too_large || rq->len + n > MAX_BODY) {
    rq->too_large = true;
    return;
  }
  if (rq->len + n + 1 > rq->cap) {
    char *p;
    size_t cap = rq->cap ? rq->cap * 2 : 1024;
    while (cap < rq->len + n + 1) cap *= 2;
    p = realloc(rq->body, cap);
    if (!p) {
      rq->too_large = true;
      return;
    }
    rq->body = p;
    rq->cap = cap;
  }
  memcpy(rq->body + rq->len, data, n);
  rq->len += n;
  rq->body[rq->len] = '\0';
}

static struct request *request_new(struct sandbox *sb, struct MHD_Connection *conn, const char *url,
                                   const char *method) {
  struct request *rq = calloc(1, sizeof *rq);
  if (!rq) return NULL;
  rq->sb = sb;
  rq->conn = conn;
  rq->url = url;
  rq->method_name = method;
  rq->method = route_method(method);
  rq->started = time_mono_us();
  route_match(url, &rq->route);
  reply_init(&rq->reply);
  return rq;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls) {
  struct request *rq;
  (void)version;
  rq = *con_cls;
  if (!rq) {
    *con_cls = rq = request_new(cls, conn, url, method);
    return rq ? MHD_YES : MHD_NO;
  }
  if (*upload_data_size > 0) {
    append(rq, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (rq->phase == PHASE_DELAYED) return finish(rq);
  return complete(rq);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why) {
  struct request *rq;
  (void)cls, (void)conn, (void)why;
  rq = *con_cls;
  if (!rq) return;
  reply_free(&rq->reply);
  free(rq->body);
  free(rq);
  *con_cls = NULL;
}

/* Counts the connections accepted (stats.h), TLS ones before their handshake. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
  struct sandbox *sb = cls;
  (void)conn, (void)socket_context;
  if (toe == MHD_CONNECTION_NOTIFY_STARTED) stats_count_connection(&sb->stats);
}

/* ---- lifecycle --------------------------------------------------------- */

static int bind_addr(int fd, const char *host, int port, char *err, size_t errlen) {
  struct sockaddr_in v4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
  int rc;
  if (inet_pton(AF_INET, host, &v4.sin_addr) == 1) rc = bind(fd, (struct sockaddr *)&v4, sizeof v4);
  else rc = bind(fd, (struct sockaddr *)&v6, sizeof v6);
  if (rc != 0) snprintf(err, errlen, "cannot bind %s:%d: %s", host, port, strerror(errno));
  return rc;
}

int server_listen(const char *host, int port, int *bound_port, char *err, size_t errlen) {
  struct in6_addr a6;
  int fd;
  struct sockaddr_storage ss;
  int one = 1;
  socklen_t sl = sizeof ss;
  bool v6 = inet_pton(AF_INET6, host, &a6) == 1;
  struct in_addr a4;
  if (!v6 && inet_pton(AF_INET, host, &a4) != 1) {
    snprintf(err, errlen, "--host %s: not an IPv4 or IPv6 address", host);
    return -1;
  }
  fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    snprintf(err, errlen, "socket: %s", strerror(errno));
    return -1;
  }
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind_addr(fd, host, port, err, errlen) != 0) goto fail;
  if (listen(fd, 4096) != 0) {
    snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port, strerror(errno));
    goto fail;
  }
  getsockname(fd, (struct sockaddr *)&ss, &sl);
  *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                               : ((struct sockaddr_in *)&ss)->sin_port);
  return fd;
fail:
  close(fd);
  return -1;
}

struct MHD_Daemon *server_start(struct sandbox *sb, int fd, char *err, size_t errlen) {
  unsigned threads;
  struct MHD_Daemon *d;
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
  struct MHD_OptionItem tls[] = {
    {MHD_OPTION_HTTPS_MEM_KEY, 0, sb->tls.key_pem},
    {MHD_OPTION_HTTPS_MEM_CERT, 0, sb->tls.cert_pem},
    {MHD_OPTION_END, 0, NULL},
  };
  if (sb->opt.verbose && !sb->opt.quiet) flags |= MHD_USE_ERROR_LOG;
  if (sb->opt.tls) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      snprintf(err, errlen, "--tls: this libmicrohttpd is built without TLS");
      return NULL;
    }
    flags |= MHD_USE_TLS;
  } else {
    tls[0].option = MHD_OPTION_END;
  }
  threads = sb->opt.threads > 1 ? (unsigned)sb->opt.threads : 0;
  d = MHD_start_daemon(
    flags, 0, NULL, NULL, on_request, sb, MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
    MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, sb,
    MHD_OPTION_NOTIFY_CONNECTION, on_connection, sb, MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
    MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S, MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
  if (!d) snprintf(err, errlen, "cannot start the HTTP server (libmicrohttpd)");
  return d;
}

void server_stop(struct MHD_Daemon *d) {
  if (d) MHD_stop_daemon(d);
}
