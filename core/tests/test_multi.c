/* The multi transport against a small HTTP/1.1 server running in a thread
 * of this test: it answers JSON, delays, hangs, closes or resets after
 * reading a request, truncates bodies, and counts the connections it
 * accepted, so that keep-alive and fresh connections are seen from the
 * server's side rather than from libcurl's own statistics.
 *
 * The server decides what to do from the order id in the path
 * (/v1/orders/<action>-<param>-<n>/): ok, slow (param ms), hang, close (no
 * answer, FIN), rst (no answer, RST), trunc (short body), big (param KB),
 * slowbig (param KB, after 500 ms). */
#define _DEFAULT_SOURCE /* mallinfo2, usleep, strncasecmp */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "truv/multi.h"

/* ================================================================ server */

/* The server runs in a child process (forked before the tests start), so
 * that what this process allocates and keeps resident is the client's
 * alone: the memory test measures it. Its counters live in a shared
 * mapping, updated atomically. */

#define MAX_CONNS 4096
#define INBUF 8192

/* bye: answers as if the connection stayed open (no "Connection: close"),
 * then closes it, as a server whose keep-alive timeout ran out does */
enum { A_OK, A_SLOW, A_HANG, A_CLOSE, A_RST, A_TRUNC, A_BIG, A_SLOWBIG, A_BYE, A_COUNT };
static const char *const action_names[A_COUNT] = {"ok",    "slow", "hang",    "close", "rst",
                                                  "trunc", "big",  "slowbig", "bye"};

typedef struct counts {
  int accepted, requests, posts, eofs, open_now, max_open;
  int by_action[A_COUNT];
} counts;

typedef struct conn {
  int fd;
  char in[INBUF];
  size_t inlen;
  char *out;
  size_t outlen, outoff;
  double respond_at; /* > 0: an answer is due then */
  int action, param, close_after;
  char id[64];
  char method[8];
} conn;

typedef struct server {
  int lfd, port, wake[2];
  pid_t pid;
  counts *sh; /* shared with the child */
  conn *conns[MAX_CONNS];
  int nconns;
} server;

#define BUMP(s, field) __atomic_add_fetch(&(s)->sh->field, 1, __ATOMIC_SEQ_CST)

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void conn_close(server *s, int i, int rst) {
  conn *c = s->conns[i];
  if (rst) {
    struct linger l = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(c->fd);
  free(c->out);
  free(c);
  s->conns[i] = s->conns[--s->nconns];
  __atomic_sub_fetch(&s->sh->open_now, 1, __ATOMIC_SEQ_CST);
}

/* Builds the answer for a parsed request. */
static void answer(conn *c) {
  char head[256], *body;
  size_t blen, hlen;
  if (c->action == A_BIG || c->action == A_SLOWBIG) {
    body = malloc((size_t)c->param * 1024 + 64);
    blen = (size_t)snprintf(body, 64, "{\"id\":\"%s\",\"pad\":\"", c->id);
    while (blen < (size_t)c->param * 1024 - 2) body[blen++] = 'x';
    body[blen++] = '"', body[blen++] = '}';
  } else {
    body = malloc(128);
    blen = (size_t)snprintf(body, 128, "{\"id\":\"%s\",\"method\":\"%s\"}", c->id, c->method);
  }
  hlen = (size_t)snprintf(head, sizeof head,
                          "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          "X-Request-Id: rq-%s\r\nContent-Length: %zu\r\n\r\n",
                          c->id, c->action == A_TRUNC ? blen + 100 : blen);
  c->out = realloc(c->out, hlen + blen);
  memcpy(c->out, head, hlen);
  memcpy(c->out + hlen, body, blen);
  c->outlen = hlen + blen;
  c->outoff = 0;
  c->close_after = c->action == A_TRUNC || c->action == A_BYE;
  free(body);
}

static int parse_action(conn *c, const char *path) {
  const char *p = strstr(path, "/orders/");
  char name[16];
  int i;
  if (!p || sscanf(p + 8, "%63[A-Za-z0-9_-]", c->id) != 1) return -1;
  if (sscanf(c->id, "%15[a-z]-%d", name, &c->param) != 2) return -1;
  for (i = 0; i < A_COUNT; i++)
    if (strcmp(name, action_names[i]) == 0) return c->action = i;
  return -1;
}

static size_t content_length(const char *head, const char *end) {
  const char *p;
  for (p = head; p < end; p++)
    if (strncasecmp(p, "\r\nContent-Length:", 17) == 0) return strtoul(p + 17, NULL, 10);
  return 0;
}

/* A whole request is in c->in: decide what to do with it. */
static int on_request(server *s, int i) {
  conn *c = s->conns[i];
  char path[256];
  char *end = strstr(c->in, "\r\n\r\n");
  size_t need;
  if (!end) return 0;
  need = (size_t)(end + 4 - c->in) + content_length(c->in, end);
  if (c->inlen < need) return 0;
  if (sscanf(c->in, "%7s %255s", c->method, path) != 2 || parse_action(c, path) < 0)
    c->action = A_CLOSE;
  memmove(c->in, c->in + need, c->inlen - need);
  c->inlen -= need;
  c->in[c->inlen] = '\0';
  BUMP(s, requests);
  if (strcmp(c->method, "POST") == 0) BUMP(s, posts);
  BUMP(s, by_action[c->action]);
  switch (c->action) {
    case A_HANG: return 0;
    case A_CLOSE: conn_close(s, i, 0); return 1;
    case A_RST: conn_close(s, i, 1); return 1;
    case A_SLOW: c->respond_at = now_ms() + c->param; return 0;
    case A_SLOWBIG: c->respond_at = now_ms() + 500; return 0;
    default: answer(c); return 0;
  }
}

static int on_readable(server *s, int i) {
  conn *c = s->conns[i];
  ssize_t n = read(c->fd, c->in + c->inlen, INBUF - 1 - c->inlen);
  if (n <= 0) {
    BUMP(s, eofs);
    conn_close(s, i, 0);
    return 1;
  }
  c->inlen += (size_t)n;
  c->in[c->inlen] = '\0';
  return on_request(s, i);
}

static int on_writable(server *s, int i) {
  conn *c = s->conns[i];
  ssize_t n = write(c->fd, c->out + c->outoff, c->outlen - c->outoff);
  if (n < 0) return errno == EAGAIN ? 0 : (conn_close(s, i, 0), 1);
  c->outoff += (size_t)n;
  if (c->outoff < c->outlen) return 0;
  c->outlen = c->outoff = 0;
  if (c->close_after) {
    conn_close(s, i, 0);
    return 1;
  }
  return c->inlen ? on_request(s, i) : 0;
}

static void on_accept(server *s) {
  int fd;
  conn *c;
  while ((fd = accept(s->lfd, NULL, NULL)) >= 0) {
    if (s->nconns == MAX_CONNS) {
      close(fd);
      continue;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    c = calloc(1, sizeof *c);
    c->fd = fd;
    s->conns[s->nconns++] = c;
    BUMP(s, accepted);
    if (BUMP(s, open_now) > s->sh->max_open) s->sh->max_open = s->sh->open_now;
  }
}

static void serve(server *s) {
  static struct pollfd fds[MAX_CONNS + 2];
  for (;;) {
    int i, n = s->nconns, timeout = 50;
    double t = now_ms();
    for (i = 0; i < n; i++) {
      conn *c = s->conns[i];
      if (c->respond_at > 0 && c->respond_at <= t) {
        c->respond_at = 0;
        answer(c);
      }
      if (c->respond_at > 0 && c->respond_at - t < timeout) timeout = (int)(c->respond_at - t) + 1;
      fds[i].fd = c->fd;
      fds[i].events = (short)(c->outlen ? POLLOUT : POLLIN);
      fds[i].revents = 0;
    }
    fds[n].fd = s->lfd, fds[n].events = POLLIN, fds[n].revents = 0;
    fds[n + 1].fd = s->wake[0], fds[n + 1].events = POLLIN, fds[n + 1].revents = 0;
    if (poll(fds, (nfds_t)n + 2, timeout) < 0) continue;
    if (fds[n + 1].revents) break;
    /* backwards: closing a connection moves the last one into its place */
    for (i = n - 1; i >= 0; i--) {
      if (fds[i].revents & POLLOUT) on_writable(s, i);
      else if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) on_readable(s, i);
    }
    if (fds[n].revents) on_accept(s);
  }
  while (s->nconns) conn_close(s, s->nconns - 1, 0);
}

static server *server_start(void) {
  server *s = calloc(1, sizeof *s);
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int one = 1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s->lfd = socket(AF_INET, SOCK_STREAM, 0);
  s->sh = mmap(NULL, sizeof *s->sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (s->sh == MAP_FAILED || bind(s->lfd, (struct sockaddr *)&a, sizeof a) ||
      listen(s->lfd, 1024) || getsockname(s->lfd, (struct sockaddr *)&a, &len) || pipe(s->wake)) {
    perror("server");
    exit(2);
  }
  memset(s->sh, 0, sizeof *s->sh);
  fcntl(s->lfd, F_SETFL, O_NONBLOCK);
  s->port = ntohs(a.sin_port);
  fflush(NULL);
  if ((s->pid = fork()) == 0) {
    close(s->wake[1]);
    serve(s);
    _exit(0);
  }
  close(s->wake[0]);
  close(s->lfd);
  return s;
}

static void server_stop(server *s) {
  if (write(s->wake[1], "x", 1) != 1) perror("wake");
  waitpid(s->pid, NULL, 0);
  close(s->wake[1]);
  munmap(s->sh, sizeof *s->sh);
  free(s);
}

static counts server_counts(server *s) {
  counts c;
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
  memcpy(&c, s->sh, sizeof c);
  return c;
}

/* Waits (bounded) until the server has seen `n` EOFs from clients. */
static int wait_eofs(server *s, int n) {
  double until = now_ms() + 3000;
  while (server_counts(s).eofs < n && now_ms() < until) usleep(2000);
  return server_counts(s).eofs;
}

/* ================================================================ client helpers */

static long rss_kb(void) {
  char line[256];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
  if (f) fclose(f);
  return kb;
}

static server *srv;
static char base_url[64];
static int under_tool; /* valgrind or a sanitizer: slow, and its own allocator */

static truv_request *build(truv_op op, const char *id) {
  truv_request *req = calloc(1, sizeof *req);
  truv_config cfg = {base_url, "client-id", "secret-value", NULL};
  cJSON *params = op == TRUV_OP_REFRESH_ORDER ? cJSON_Parse("{\"products\":[\"income\"]}") : NULL;
  truv_err err;
  if (truv_request_build(&cfg, op, id, params, NULL, req, &err)) {
    fprintf(stderr, "build %s: %s\n", id, err.message);
    exit(2);
  }
  cJSON_Delete(params);
  return req;
}

static truv_request *get(const char *action, int param, int n) {
  char id[64];
  snprintf(id, sizeof id, "%s-%d-%d", action, param, n);
  return build(TRUV_OP_GET_ORDER, id);
}

static truv_request *refresh(const char *action, int param, int n) {
  char id[64];
  snprintf(id, sizeof id, "%s-%d-%d", action, param, n);
  return build(TRUV_OP_REFRESH_ORDER, id);
}

static void drop(truv_request *req) {
  truv_request_free(req);
  free(req);
}

static truv_multi *multi(int in_flight, int host, long timeout_ms) {
  truv_multi_options o;
  truv_err err;
  truv_multi *m;
  memset(&o, 0, sizeof o);
  o.max_in_flight = in_flight;
  o.max_host_connections = host;
  o.http.timeout_ms = timeout_ms;
  o.http.proxy = ""; /* never a proxy from the environment in tests */
  if (!(m = truv_multi_new(&o, &err))) {
    fprintf(stderr, "multi: %s\n", err.message);
    exit(2);
  }
  return m;
}

/* What a test keeps of one finished transfer. */
typedef struct outcome {
  int seen;
  int status;
  truv_err err;
  char body[128];
  char request_id[64];
} outcome;

/* Runs m until nothing is pending (or 20 s pass); each transfer's tag is a
 * pointer into `out`, where its outcome is recorded. Returns the number of
 * transfers handed out. */
static int drain(truv_multi *m, outcome *out, size_t nout) {
  truv_multi_done d;
  truv_err err;
  size_t ready;
  int n = 0;
  double until = now_ms() + 20000;
  while (truv_multi_pending(m) && now_ms() < until) {
    CHECK_INT(truv_multi_run(m, 200, &ready, &err), 0);
    while (truv_multi_next(m, &d)) {
      outcome *o = d.tag;
      const char *rid;
      CHECK(o >= out && o < out + nout);
      if (!(o >= out && o < out + nout)) continue;
      o->seen++;
      o->err = d.err;
      if (d.resp) {
        o->status = d.resp->status;
        snprintf(o->body, sizeof o->body, "%s", d.resp->body ? d.resp->body : "");
        rid = truv_response_header(d.resp, "X-Request-Id");
        snprintf(o->request_id, sizeof o->request_id, "%s", rid ? rid : "");
      }
      n++;
    }
  }
  return n;
}

/* ================================================================ tests */

static void test_many_concurrent_requests_complete_with_their_tags(void) {
  enum { N = 200 };
  truv_multi *m = multi(N, N, 10000);
  truv_request *reqs[N];
  static outcome out[N];
  truv_err err;
  counts before = server_counts(srv), after;
  int i, ok = 1;
  memset(out, 0, sizeof out);
  for (i = 0; i < N; i++) {
    reqs[i] = get("slow", 300, i);
    CHECK_INT(truv_multi_add(m, reqs[i], &out[i], &err), 0);
  }
  CHECK_INT(truv_multi_pending(m), N);
  CHECK_INT(drain(m, out, N), N);
  for (i = 0; i < N; i++) {
    char want[64];
    snprintf(want, sizeof want, "\"id\":\"slow-300-%d\"", i);
    ok &= out[i].seen == 1 && out[i].status == 200 && strstr(out[i].body, want) != NULL;
    drop(reqs[i]);
  }
  CHECK(ok);
  CHECK_STR(out[17].request_id, "rq-slow-300-17");
  after = server_counts(srv);
  CHECK_INT(after.requests - before.requests, N);
  /* all of them were in flight at once: one connection each */
  if (!under_tool) CHECK_INT(after.accepted - before.accepted, N);
  CHECK(after.accepted - before.accepted <= N);
  CHECK_INT(truv_multi_pending(m), 0);
  truv_multi_free(m);
}

static void test_connections_are_kept_alive_and_reused(void) {
  enum { N = 120, K = 8 };
  truv_multi *m = multi(K, K, 10000);
  truv_request *reqs[N];
  static outcome out[N];
  truv_multi_stats st;
  truv_err err;
  counts before = server_counts(srv), after;
  int i, round;
  memset(out, 0, sizeof out);
  for (i = 0; i < N; i++) reqs[i] = get("ok", 0, i);
  /* batches of K: the pool never needs more than K connections */
  for (round = 0; round < N / K; round++) {
    for (i = round * K; i < (round + 1) * K; i++)
      CHECK_INT(truv_multi_add(m, reqs[i], &out[i], &err), 0);
    drain(m, out, N);
  }
  after = server_counts(srv);
  for (i = 0; i < N; i++) {
    CHECK_INT(out[i].status, 200);
    drop(reqs[i]);
  }
  CHECK_INT(after.requests - before.requests, N);
  CHECK(after.accepted - before.accepted <= K);
  truv_multi_get_stats(m, &st);
  CHECK_INT(st.transfers, N);
  CHECK_INT(st.connects, after.accepted - before.accepted);
  truv_multi_free(m);
}

static truv_multi *multi_idle(int in_flight, long idle_s) {
  truv_multi_options o;
  truv_err err;
  truv_multi *m;
  memset(&o, 0, sizeof o);
  o.max_in_flight = o.max_host_connections = in_flight;
  o.http.timeout_ms = 10000;
  o.http.proxy = "";
  o.http.billed_reuse_idle_s = idle_s;
  if (!(m = truv_multi_new(&o, &err))) {
    fprintf(stderr, "multi: %s\n", err.message);
    exit(2);
  }
  return m;
}

/* A refresh_order (TRUV_CONN_REUSE_ONCE) rides the kept-alive connections
 * the GETs opened: B refreshes, no new connection, each POST once. With
 * billed_reuse_idle_s < 0 each takes a fresh connection (the old rule). */
static void test_refreshes_reuse_kept_alive_connections(void) {
  enum { K = 4, B = 10 };
  long idle[2] = {0, -1};
  int v;
  for (v = 0; v < 2; v++) {
    truv_multi *m = multi_idle(K, idle[v]);
    truv_request *warm[K], *bill[B];
    static outcome out[K + B];
    truv_err err;
    counts before, after;
    int i;
    memset(out, 0, sizeof out);
    for (i = 0; i < K; i++) {
      warm[i] = get("ok", 0, 1000 + i);
      CHECK_INT(truv_multi_add(m, warm[i], &out[i], &err), 0);
    }
    drain(m, out, K + B);
    before = server_counts(srv);
    for (i = 0; i < B; i++) {
      bill[i] = refresh("ok", 0, i);
      CHECK(bill[i]->flags & TRUV_REQ_BILLED);
      CHECK_INT(truv_multi_add(m, bill[i], &out[K + i], &err), 0);
      drain(m, out, K + B); /* one at a time: idle kept-alive connections are there to take */
    }
    after = server_counts(srv);
    CHECK_INT(after.posts - before.posts, B);
    CHECK_INT(after.accepted - before.accepted, v == 0 ? 0 : B);
    for (i = 0; i < B; i++) {
      CHECK_INT(out[K + i].status, 200);
      CHECK_CONTAINS(out[K + i].body, "\"method\":\"POST\"");
      drop(bill[i]);
    }
    for (i = 0; i < K; i++) drop(warm[i]);
    truv_multi_free(m);
  }
}

/* libcurl re-sends a request that got no answer on a reused connection. A
 * GET is re-sent (harmless); a refresh_order, sent on the kept-alive
 * connection and read whole by a server that closes without answering,
 * reaches the server exactly once and is reported maybe sent. (With the
 * body given as CURLOPT_POSTFIELDS, libcurl sends it twice here.) */
static void test_billed_request_unanswered_is_never_resent(void) {
  truv_multi *m = multi(1, 1, 10000);
  truv_request *warm = get("ok", 0, 1), *g = get("close", 0, 1), *p = refresh("close", 0, 2);
  static outcome out[3];
  truv_err err;
  counts before, after;
  memset(out, 0, sizeof out);
  CHECK_INT(truv_multi_add(m, warm, &out[0], &err), 0);
  drain(m, out, 3);
  before = server_counts(srv);
  CHECK_INT(truv_multi_add(m, g, &out[1], &err), 0);
  drain(m, out, 3);
  after = server_counts(srv);
  CHECK_INT(after.by_action[A_CLOSE] - before.by_action[A_CLOSE], 2);
  CHECK_INT(out[1].err.kind, TRUV_ENETWORK);

  CHECK_INT(truv_multi_add(m, warm, &out[0], &err), 0); /* warm the pool again */
  drain(m, out, 3);
  before = server_counts(srv);
  CHECK_INT(truv_multi_add(m, p, &out[2], &err), 0);
  drain(m, out, 3);
  after = server_counts(srv);
  /* it went out on the kept-alive connection; libcurl opened one more for
   * its resend, found it could not rewind the body and wrote nothing there */
  CHECK(after.accepted - before.accepted <= 1);
  CHECK_INT(after.requests - before.requests, 1);
  CHECK_INT(after.posts - before.posts, 1);
  CHECK_INT(after.by_action[A_CLOSE] - before.by_action[A_CLOSE], 1);
  CHECK_INT(out[2].err.kind, TRUV_ENETWORK);
  CHECK_STR(out[2].err.code, "reset");
  CHECK_INT(out[2].err.maybe_sent, 1);
  drop(warm), drop(g), drop(p);
  truv_multi_free(m);
}

/* The server closes the kept-alive connection after answering (its idle
 * timeout): the next refresh is sent exactly once, on a new connection,
 * and answered. */
static void test_refresh_after_the_server_closed_the_idle_connection(void) {
  enum { B = 5 };
  truv_multi *m = multi(1, 1, 10000);
  truv_request *bye[B], *p[B];
  static outcome out[2 * B];
  truv_err err;
  counts before, after;
  int i;
  memset(out, 0, sizeof out);
  for (i = 0; i < B; i++) {
    bye[i] = get("bye", 0, i);
    p[i] = refresh("ok", 1, i);
    CHECK_INT(truv_multi_add(m, bye[i], &out[2 * i], &err), 0);
    drain(m, out, 2 * B);
    CHECK_INT(out[2 * i].status, 200);
    usleep(20000); /* the server's FIN reaches the client's socket */
    before = server_counts(srv);
    CHECK_INT(truv_multi_add(m, p[i], &out[2 * i + 1], &err), 0);
    drain(m, out, 2 * B);
    after = server_counts(srv);
    CHECK_INT(after.posts - before.posts, 1);
    CHECK_INT(after.accepted - before.accepted, 1);
    CHECK_INT(out[2 * i + 1].status, 200);
  }
  for (i = 0; i < B; i++) drop(bye[i]), drop(p[i]);
  truv_multi_free(m);
}

static void test_connect_refused_was_not_sent(void) {
  truv_multi *m = multi(4, 4, 5000);
  truv_config cfg = {NULL, "client-id", "secret-value", NULL};
  char url[64];
  truv_request req;
  static outcome out[1];
  truv_err err;
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&a, 0, sizeof a);
  memset(out, 0, sizeof out);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* a port that was free a moment ago and has no listener */
  CHECK_INT(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  CHECK_INT(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/", ntohs(a.sin_port));
  cfg.base_url = url;
  CHECK_INT(truv_request_build(&cfg, TRUV_OP_REFRESH_ORDER, "o1", NULL, NULL, &req, &err),
            TRUV_EINVALID); /* (no products) */
  {
    cJSON *params = cJSON_Parse("{\"products\":[\"income\"]}");
    CHECK_INT(truv_request_build(&cfg, TRUV_OP_REFRESH_ORDER, "o1", params, NULL, &req, &err), 0);
    cJSON_Delete(params);
  }
  CHECK_INT(truv_multi_add(m, &req, &out[0], &err), 0);
  CHECK_INT(drain(m, out, 1), 1);
  CHECK_INT(out[0].err.kind, TRUV_ENETWORK);
  CHECK_STR(out[0].err.code, "connect");
  CHECK_INT(out[0].err.maybe_sent, 0);
  truv_request_free(&req);
  truv_multi_free(m);
}

static void test_errors_map_like_the_easy_transport(void) {
  truv_multi *m = multi(8, 8, 400);
  truv_request *rst = get("rst", 0, 1), *cls = refresh("close", 0, 3), *tr = get("trunc", 0, 1),
               *hang = refresh("hang", 0, 1);
  static outcome out[4];
  truv_err err;
  memset(out, 0, sizeof out);
  CHECK_INT(truv_multi_add(m, rst, &out[0], &err), 0);
  CHECK_INT(truv_multi_add(m, cls, &out[1], &err), 0);
  CHECK_INT(truv_multi_add(m, tr, &out[2], &err), 0);
  CHECK_INT(truv_multi_add(m, hang, &out[3], &err), 0);
  CHECK_INT(drain(m, out, 4), 4);
  /* reset after the request was read: it may have been acted on */
  CHECK_INT(out[0].err.kind, TRUV_ENETWORK);
  CHECK(strcmp(out[0].err.code, "recv") == 0 || strcmp(out[0].err.code, "reset") == 0);
  CHECK_INT(out[0].err.maybe_sent, 1);
  CHECK_STR(out[1].err.code, "reset");
  CHECK_INT(out[1].err.maybe_sent, 1);
  CHECK_STR(out[2].err.code, "truncated_body");
  CHECK_INT(out[2].err.maybe_sent, 1);
  /* timed out waiting for the answer of a sent request */
  CHECK_STR(out[3].err.code, "timeout");
  CHECK_INT(out[3].err.maybe_sent, 1);
  /* nothing secret in what reaches the caller */
  CHECK_NOT_CONTAINS(out[3].err.message, "secret-value");
  drop(rst), drop(cls), drop(tr), drop(hang);
  truv_multi_free(m);
}

/* With one connection per host, the second transfer waits behind a hung
 * one and times out without ever being written: provably not sent. Its
 * own timeout (the request's) ends well before the hung one frees the
 * connection: with equal timeouts, a loaded machine could hand it the
 * freed connection a moment before its deadline, and it was sent (seen
 * once in 9 runs of three valgrind copies at once). */
static void test_timeout_while_queued_was_not_sent(void) {
  truv_multi *m = multi(4, 1, 1000);
  truv_request *hang = get("hang", 0, 2), *queued = refresh("ok", 0, 99);
  static outcome out[2];
  truv_err err;
  counts before = server_counts(srv), after;
  queued->timeouts.total_ms = 200;
  memset(out, 0, sizeof out);
  CHECK_INT(truv_multi_add(m, hang, &out[0], &err), 0);
  CHECK_INT(truv_multi_add(m, queued, &out[1], &err), 0);
  CHECK_INT(drain(m, out, 2), 2);
  after = server_counts(srv);
  CHECK_STR(out[0].err.code, "timeout");
  CHECK_INT(out[0].err.maybe_sent, 1);
  CHECK_STR(out[1].err.code, "timeout");
  CHECK_INT(out[1].err.maybe_sent, 0);
  CHECK_INT(after.posts - before.posts, 0);
  drop(hang), drop(queued);
  truv_multi_free(m);
}

static void test_cancel_removes_a_transfer_and_its_report(void) {
  truv_multi *m = multi(8, 8, 600);
  truv_request *a = get("hang", 0, 10), *b = get("hang", 0, 11), *c = get("hang", 0, 12),
               *d = get("ok", 0, 13);
  static outcome out[4];
  truv_multi_stats st;
  truv_multi_done done;
  truv_err err;
  size_t ready = 0;
  int eofs;
  memset(out, 0, sizeof out);
  CHECK_INT(truv_multi_add(m, a, &out[0], &err), 0);
  CHECK_INT(truv_multi_add(m, b, &out[1], &err), 0);
  CHECK_INT(truv_multi_add(m, c, &out[2], &err), 0);
  /* let the requests reach the server */
  CHECK_INT(truv_multi_run(m, 100, &ready, &err), 0);
  CHECK_INT(ready, 0);
  eofs = server_counts(srv).eofs;
  CHECK_INT(truv_multi_cancel(m, &out[1]), 1);
  CHECK_INT(truv_multi_cancel(m, &out[1]), 0);
  CHECK_INT(truv_multi_pending(m), 2);
  /* its connection was closed, not left to time out */
  CHECK(wait_eofs(srv, eofs + 1) >= eofs + 1);

  /* a transfer that finished but was not handed out yet */
  CHECK_INT(truv_multi_add(m, d, &out[3], &err), 0);
  while (!ready) CHECK_INT(truv_multi_run(m, 100, &ready, &err), 0);
  CHECK_INT(truv_multi_cancel(m, &out[3]), 1);
  CHECK_INT(drain(m, out, 4), 2);
  CHECK_INT(out[0].seen, 1);
  CHECK_INT(out[1].seen, 0);
  CHECK_INT(out[2].seen, 1);
  CHECK_INT(out[3].seen, 0);
  CHECK_INT(truv_multi_next(m, &done), 0);
  truv_multi_get_stats(m, &st);
  CHECK_INT(st.cancelled, 2);
  /* the tag is free again once its transfer is gone */
  CHECK_INT(truv_multi_add(m, d, &out[1], &err), 0);
  CHECK_INT(drain(m, out, 4), 1);
  CHECK_INT(out[1].status, 200);
  drop(a), drop(b), drop(c), drop(d);
  truv_multi_free(m);
}

static void test_full_and_duplicate_tags_are_refused(void) {
  truv_multi *m = multi(2, 2, 2000);
  truv_request *a = get("ok", 0, 20), *b = get("ok", 0, 21), *c = get("ok", 0, 22);
  static outcome out[3];
  truv_err err;
  memset(out, 0, sizeof out);
  CHECK_INT(truv_multi_add(m, a, &out[0], &err), 0);
  CHECK_INT(truv_multi_add(m, b, &out[0], &err), TRUV_EINVALID);
  CHECK_STR(err.code, "duplicate_tag");
  CHECK_INT(truv_multi_add(m, b, &out[1], &err), 0);
  CHECK_INT(truv_multi_add(m, c, &out[2], &err), TRUV_EINTERNAL);
  CHECK_STR(err.code, "full");
  CHECK_INT(truv_multi_pending(m), 2);
  CHECK_INT(drain(m, out, 3), 2);
  CHECK_INT(truv_multi_add(m, c, &out[2], &err), 0);
  CHECK_INT(drain(m, out, 3), 1);
  CHECK_INT(out[2].status, 200);
  drop(a), drop(b), drop(c);
  truv_multi_free(m);
}

static void test_bad_options_are_refused(void) {
  truv_multi_options o;
  truv_err err;
  memset(&o, 0, sizeof o);
  o.max_in_flight = -1;
  o.buffer_size = 10;
  CHECK(truv_multi_new(&o, &err) == NULL);
  CHECK_INT(err.kind, TRUV_EINVALID);
  CHECK_INT(err.nfields, 2);
  CHECK_STR(err.fields[0].field, "max_in_flight");
  CHECK_STR(err.fields[1].field, "buffer_size");
}

static void test_run_with_nothing_in_flight_returns_at_once(void) {
  truv_multi *m = multi(2, 2, 1000);
  truv_err err;
  size_t ready = 7;
  double t0 = now_ms();
  /* not a timing bound: a run that waited would take the whole minute */
  CHECK_INT(truv_multi_run(m, 60000, &ready, &err), 0);
  CHECK_INT(ready, 0);
  CHECK(now_ms() - t0 < 30000);
  truv_multi_free(m);
}

static void test_run_returns_early_when_one_finishes(void) {
  /* not a timing bound: the slow answer comes after a minute, and a run
   * that did not return with the fast one would wait for it */
  truv_multi *m = multi(4, 4, 120000);
  truv_request *fast = get("slow", 30, 50), *slow = get("slow", 60000, 51);
  static outcome out[2];
  truv_err err;
  size_t ready = 0;
  double t0 = now_ms();
  memset(out, 0, sizeof out);
  CHECK_INT(truv_multi_add(m, fast, &out[0], &err), 0);
  CHECK_INT(truv_multi_add(m, slow, &out[1], &err), 0);
  while (!ready && now_ms() - t0 < 30000) CHECK_INT(truv_multi_run(m, 90000, &ready, &err), 0);
  CHECK_INT(ready, 1);
  CHECK(now_ms() - t0 < 30000);
  CHECK_INT(truv_multi_pending(m), 2); /* finished but not handed out yet */
  truv_multi_free(m);                  /* aborts the slow one */
  drop(fast), drop(slow);
}

static void test_free_with_transfers_in_flight_aborts_them(void) {
  truv_multi *m = multi(16, 16, 5000);
  truv_request *reqs[10];
  static outcome out[10];
  truv_err err;
  size_t ready;
  int i, eofs = server_counts(srv).eofs;
  for (i = 0; i < 10; i++) {
    reqs[i] = i % 2 ? get("hang", 0, 100 + i) : refresh("hang", 0, 100 + i);
    CHECK_INT(truv_multi_add(m, reqs[i], &out[i], &err), 0);
  }
  CHECK_INT(truv_multi_run(m, 100, &ready, &err), 0);
  truv_multi_free(m);
  CHECK(wait_eofs(srv, eofs + 10) >= eofs + 10);
  for (i = 0; i < 10; i++) drop(reqs[i]);
}

/* Many cycles through one multi, with answers of every size: pooled
 * handles and buffers are reused and nothing leaks (valgrind runs this). */
static void test_many_cycles_reuse_the_pool(void) {
  enum { K = 16 };
  int rounds = under_tool ? 20 : 150, r, i;
  truv_multi *m = multi(K, K, 5000);
  static outcome out[K];
  truv_request *reqs[K];
  truv_multi_stats st;
  truv_err err;
  int bad = 0;
  for (r = 0; r < rounds; r++) {
    memset(out, 0, sizeof out);
    for (i = 0; i < K; i++) {
      if (i == 0 && r % 5 == 0) reqs[i] = get("big", 200, r);
      else if (i == 1 && r % 7 == 0) reqs[i] = get("trunc", 0, r);
      else if (i == 2 && r % 3 == 0) reqs[i] = refresh("ok", 0, r);
      else reqs[i] = get("ok", 0, r * K + i);
      CHECK_INT(truv_multi_add(m, reqs[i], &out[i], &err), 0);
    }
    drain(m, out, K);
    for (i = 0; i < K; i++) {
      bad += out[i].seen != 1;
      drop(reqs[i]);
    }
  }
  CHECK_INT(bad, 0);
  truv_multi_get_stats(m, &st);
  CHECK_INT(st.transfers, (unsigned long long)rounds * K);
  truv_multi_free(m);
}

/* Heap bytes per transfer in flight, from the allocator's own count
 * (mallinfo2): slots, libcurl's per-transfer state and receive buffers,
 * header lists, response buffers, connections. Not meaningful under
 * valgrind or a sanitizer (their allocators), so only reported there. */
static void test_memory_per_transfer_in_flight_is_small(void) {
  enum { N = 500 };
  static outcome out[N];
  truv_request *reqs[N];
  struct mallinfo2 before, during;
  long rss0, rss1;
  truv_multi *m;
  truv_err err;
  size_t ready = 0;
  double per, t0;
  int i, seen = server_counts(srv).requests;
  /* answers late enough that all N are still waiting once written, even
   * under valgrind on a loaded machine */
  for (i = 0; i < N; i++) reqs[i] = get("slow", under_tool ? 12000 : 3000, 5000 + i);
  memset(out, 0, sizeof out);
  before = mallinfo2();
  rss0 = rss_kb();
  m = multi(N, N, 60000);
  for (i = 0; i < N; i++) CHECK_INT(truv_multi_add(m, reqs[i], &out[i], &err), 0);
  /* until every request has been written and is waiting for its answer */
  t0 = now_ms();
  while (server_counts(srv).requests < seen + N && now_ms() - t0 < 10000)
    CHECK_INT(truv_multi_run(m, 20, &ready, &err), 0);
  CHECK_INT(server_counts(srv).requests, seen + N);
  CHECK_INT(ready, 0);
  during = mallinfo2();
  rss1 = rss_kb();
  per = (double)(during.uordblks - before.uordblks) / N;
  printf("memory: %.0f heap bytes, %.0f resident bytes per transfer in flight "
         "(%d in flight, receive buffer %d)\n",
         per, (double)(rss1 - rss0) * 1024 / N, N, TRUV_MULTI_DEFAULT_BUFFER);
  if (!under_tool) CHECK(per <= 32 * 1024);
  CHECK_INT(drain(m, out, N), N);
  for (i = 0; i < N; i++) CHECK_INT(out[i].status, 200);
  for (i = 0; i < N; i++) drop(reqs[i]);

  /* answers of an order's median size (18 KB) all received, none handed
   * out yet: the peak, response buffers included */
  memset(out, 0, sizeof out);
  for (i = 0; i < N; i++) {
    reqs[i] = get("slowbig", 18, 7000 + i);
    CHECK_INT(truv_multi_add(m, reqs[i], &out[i], &err), 0);
  }
  t0 = now_ms();
  while (ready < N && now_ms() - t0 < 10000) CHECK_INT(truv_multi_run(m, 50, &ready, &err), 0);
  CHECK_INT(ready, N);
  during = mallinfo2();
  per = (double)(during.uordblks - before.uordblks) / N;
  CHECK_INT(drain(m, out, N), N);
  for (i = 0; i < N; i++) CHECK_INT(out[i].status, 200);
  during = mallinfo2();
  printf("memory: %.0f heap bytes per transfer with its 18 KB answer received; "
         "%.0f per idle slot after\n",
         per, (double)(during.uordblks - before.uordblks) / N);
  if (!under_tool) CHECK(per <= 32 * 1024);
  if (!under_tool) CHECK((double)(during.uordblks - before.uordblks) / N <= 24 * 1024);
  truv_multi_free(m);
  for (i = 0; i < N; i++) drop(reqs[i]);
}

int main(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
    rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  under_tool = getenv("TRUV_UNDER_VALGRIND") != NULL;
#if defined(__SANITIZE_ADDRESS__)
  under_tool = 1;
#endif
  srv = server_start();
  snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d/v1/", srv->port);
  RUN(test_bad_options_are_refused);
  RUN(test_run_with_nothing_in_flight_returns_at_once);
  RUN(test_many_concurrent_requests_complete_with_their_tags);
  RUN(test_connections_are_kept_alive_and_reused);
  RUN(test_refreshes_reuse_kept_alive_connections);
  RUN(test_billed_request_unanswered_is_never_resent);
  RUN(test_refresh_after_the_server_closed_the_idle_connection);
  RUN(test_connect_refused_was_not_sent);
  RUN(test_errors_map_like_the_easy_transport);
  RUN(test_timeout_while_queued_was_not_sent);
  RUN(test_cancel_removes_a_transfer_and_its_report);
  RUN(test_full_and_duplicate_tags_are_refused);
  RUN(test_run_returns_early_when_one_finishes);
  RUN(test_free_with_transfers_in_flight_aborts_them);
  RUN(test_many_cycles_reuse_the_pool);
  RUN(test_memory_per_transfer_in_flight_is_small);
  server_stop(srv);
  curl_global_cleanup();
  return CHECK_DONE();
}
