/* A blocking connection to one Redis server with millisecond deadlines: TCP
 * (optionally TLS through OpenSSL), or a Unix socket. Non-blocking sockets
 * and poll() carry every deadline; the bytes are the codec's
 * (proto/redis_resp.c). See truv/redis.h for the contract. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "truv/redis.h"

#define DEFAULT_MS 1000
#define READ_CHUNK 16384

struct truv_redis_conn {
  char *host, *unix_path, *user, *password, *ca_file, *server_name;
  int port, db, tls, insecure;
  long connect_ms, timeout_ms;
  char name[160];
  int fd;    /* -1 when not connected */
  pid_t pid; /* the process that connected */
  SSL_CTX *ctx;
  SSL *ssl;
  truv_redis_reader *reader;
  unsigned long connects;
};

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char *dup_or_null(const char *s, int *oom) {
  char *d;
  if (!s) return NULL;
  d = strdup(s);
  if (!d) *oom = 1;
  return d;
}

truv_redis_conn *truv_redis_conn_new(const truv_redis_endpoint *ep, truv_err *err) {
  truv_redis_conn *c = NULL;
  int oom = 0;
  truv_err_clear(err);
  if (!ep || (!ep->unix_path && (!ep->host || !*ep->host))) {
    truv_err_set(err, TRUV_EINVALID, "invalid_endpoint", "a Redis host or socket path is needed");
    return NULL;
  }
  if (!ep->unix_path && (ep->port < 1 || ep->port > 65535)) {
    truv_err_set(err, TRUV_EINVALID, "invalid_endpoint", "a Redis port is 1 to 65535");
    return NULL;
  }
  if (ep->unix_path &&
      (strlen(ep->unix_path) >= sizeof(((struct sockaddr_un *)0)->sun_path) || ep->tls)) {
    truv_err_set(err, TRUV_EINVALID, "invalid_endpoint",
                 "a Unix socket path is at most 107 bytes, without TLS");
    return NULL;
  }
  if (ep->db < 0 || ep->connect_timeout_ms < 0 || ep->timeout_ms < 0) {
    truv_err_set(err, TRUV_EINVALID, "invalid_endpoint",
                 "the database and the timeouts are numbers >= 0");
    return NULL;
  }
  c = calloc(1, sizeof *c);
  if (!c) goto oom;
  c->fd = -1;
  c->host = dup_or_null(ep->host, &oom);
  c->unix_path = dup_or_null(ep->unix_path, &oom);
  c->user = dup_or_null(ep->user, &oom);
  c->password = dup_or_null(ep->password, &oom);
  c->ca_file = dup_or_null(ep->ca_file, &oom);
  c->server_name = dup_or_null(ep->server_name, &oom);
  if (oom) goto oom;
  c->port = ep->port;
  c->db = ep->db;
  c->tls = ep->tls;
  c->insecure = ep->insecure;
  c->connect_ms = ep->connect_timeout_ms ? ep->connect_timeout_ms : DEFAULT_MS;
  c->timeout_ms = ep->timeout_ms ? ep->timeout_ms : DEFAULT_MS;
  if (c->unix_path) snprintf(c->name, sizeof c->name, "%s", c->unix_path);
  else snprintf(c->name, sizeof c->name, "%s%s:%d", c->tls ? "tls:" : "", c->host, c->port);
  return c;
oom:
  truv_redis_conn_free(c);
  truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "out of memory");
  return NULL;
}

static void drop(truv_redis_conn *c) {
  if (c->ssl) {
    /* no close_notify: the peer may be gone, and a forked child must not
     * speak on its parent's session */
    SSL_free(c->ssl);
    c->ssl = NULL;
  }
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  truv_redis_reader_free(c->reader);
  c->reader = NULL;
}

void truv_redis_conn_reset(truv_redis_conn *c) {
  if (c) drop(c);
}

void truv_redis_conn_free(truv_redis_conn *c) {
  if (!c) return;
  drop(c);
  if (c->ctx) SSL_CTX_free(c->ctx);
  free(c->host);
  free(c->unix_path);
  free(c->user);
  if (c->password) {
    memset(c->password, 0, strlen(c->password));
    free(c->password);
  }
  free(c->ca_file);
  free(c->server_name);
  free(c);
}

const char *truv_redis_conn_name(const truv_redis_conn *c) {
  return c->name;
}
int truv_redis_conn_connected(const truv_redis_conn *c) {
  return c->fd >= 0 && c->pid == getpid();
}
unsigned long truv_redis_conn_connects(const truv_redis_conn *c) {
  return c->connects;
}

/* 1 ready, 0 deadline passed, -1 error. */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    struct pollfd p;
    long long left = deadline - now_ms();
    int rc;
    if (left <= 0) return 0;
    p.fd = fd;
    p.events = events;
    p.revents = 0;
    rc = poll(&p, 1, left > 1000000 ? 1000000 : (int)left);
    if (rc > 0) return 1;
    if (rc == 0) continue; /* the loop checks the deadline */
    if (errno != EINTR) return -1;
  }
}

static int fail(truv_err *err, const truv_redis_conn *c, const char *code, int maybe_sent,
                const char *what) {
  truv_err_set(err, TRUV_EINTERNAL, code, "Redis at %s: %s", c->name, what);
  if (err) err->maybe_sent = maybe_sent;
  return TRUV_EINTERNAL;
}

static int set_nonblocking(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Connects fd to addr within the deadline: 0, or -1 (errno kept), -2 timeout. */
static int connect_within(int fd, const struct sockaddr *addr, socklen_t len, long long deadline) {
  int soerr = 0, w;
  socklen_t sl = sizeof soerr;
  if (connect(fd, addr, len) == 0) return 0;
  if (errno != EINPROGRESS && errno != EAGAIN) return -1;
  w = wait_fd(fd, POLLOUT, deadline);
  if (w == 0) return -2;
  if (w < 0) return -1;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0) return -1;
  if (soerr) {
    errno = soerr;
    return -1;
  }
  return 0;
}

static int open_socket(truv_redis_conn *c, long long deadline, truv_err *err) {
  char msg[200];
  if (c->unix_path) {
    struct sockaddr_un sa;
    int rc;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, c->unix_path, strlen(c->unix_path) + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || set_nonblocking(c->fd) < 0) goto sys;
    rc = connect_within(c->fd, (struct sockaddr *)&sa, sizeof sa, deadline);
    if (rc == -2) return fail(err, c, "store_unavailable", 0, "connect timed out");
    if (rc < 0) goto sys;
    return 0;
  } else {
    struct addrinfo hints, *res = NULL, *ai;
    char port[16];
    int rc = -1, gai;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof port, "%d", c->port);
    gai = getaddrinfo(c->host, port, &hints, &res);
    if (gai) {
      snprintf(msg, sizeof msg, "cannot resolve the host: %s", gai_strerror(gai));
      return fail(err, c, "store_unavailable", 0, msg);
    }
    for (ai = res; ai; ai = ai->ai_next) {
      int one = 1;
      c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
      if (c->fd < 0) continue;
      if (set_nonblocking(c->fd) == 0 &&
          (rc = connect_within(c->fd, ai->ai_addr, ai->ai_addrlen, deadline)) == 0) {
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        break;
      }
      close(c->fd);
      c->fd = -1;
      if (rc == -2) break;
    }
    freeaddrinfo(res);
    if (c->fd >= 0) return 0;
    if (rc == -2) return fail(err, c, "store_unavailable", 0, "connect timed out");
    goto sys;
  }
sys:
  snprintf(msg, sizeof msg, "cannot connect: %s", strerror(errno));
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  return fail(err, c, "store_unavailable", 0, msg);
}

/* ---- TLS ---- */

static int tls_fail(truv_redis_conn *c, truv_err *err, const char *what) {
  char msg[200], e[120] = "";
  unsigned long code = ERR_get_error();
  if (code) ERR_error_string_n(code, e, sizeof e);
  ERR_clear_error();
  if (c->ssl && SSL_get_verify_result(c->ssl) != X509_V_OK)
    snprintf(e, sizeof e, "certificate: %s",
             X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
  snprintf(msg, sizeof msg, "%s%s%s", what, *e ? ": " : "", e);
  return fail(err, c, "store_unavailable", 0, msg);
}

/* Waits for what OpenSSL asked for: 1 ready, 0 deadline, -1 other error. */
static int tls_wait(truv_redis_conn *c, int rc, long long deadline) {
  int e = SSL_get_error(c->ssl, rc);
  if (e == SSL_ERROR_WANT_READ) return wait_fd(c->fd, POLLIN, deadline);
  if (e == SSL_ERROR_WANT_WRITE) return wait_fd(c->fd, POLLOUT, deadline);
  return -1;
}

static int tls_start(truv_redis_conn *c, long long deadline, truv_err *err) {
  const char *name = c->server_name ? c->server_name : c->host;
  unsigned char ip[16];
  int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;
  if (!c->ctx) {
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (!c->ctx) return tls_fail(c, err, "TLS setup failed");
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    if (!c->insecure) {
      SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
      if ((c->ca_file ? SSL_CTX_load_verify_locations(c->ctx, c->ca_file, NULL)
                      : SSL_CTX_set_default_verify_paths(c->ctx)) != 1)
        return tls_fail(c, err, "cannot load the CA certificates");
    }
  }
  c->ssl = SSL_new(c->ctx);
  if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1) return tls_fail(c, err, "TLS setup failed");
  if (!is_ip) {
    /* OpenSSL's macro casts the name to void *: a copy of our own, not const */
    char host[256];
    snprintf(host, sizeof host, "%s", name);
    SSL_set_tlsext_host_name(c->ssl, host);
  }
  if (!c->insecure) {
    if (is_ip) {
      X509_VERIFY_PARAM *p = SSL_get0_param(c->ssl);
      if (X509_VERIFY_PARAM_set1_ip_asc(p, name) != 1) return tls_fail(c, err, "TLS setup failed");
    } else if (SSL_set1_host(c->ssl, name) != 1) {
      return tls_fail(c, err, "TLS setup failed");
    }
  }
  for (;;) {
    int rc = SSL_connect(c->ssl), w;
    if (rc == 1) return 0;
    w = tls_wait(c, rc, deadline);
    if (w == 0) return fail(err, c, "store_unavailable", 0, "TLS handshake timed out");
    if (w < 0) return tls_fail(c, err, "TLS handshake failed");
  }
}

/* ---- bytes ---- */

/* Writes all of buf: 0, -1 error, -2 deadline. *wrote counts bytes sent. */
static int write_all(truv_redis_conn *c, const char *buf, size_t len, long long deadline,
                     size_t *wrote) {
  while (*wrote < len) {
    int w;
    if (c->ssl) {
      int rc = SSL_write(c->ssl, buf + *wrote, (int)(len - *wrote));
      if (rc > 0) {
        *wrote += (size_t)rc;
        continue;
      }
      w = tls_wait(c, rc, deadline);
    } else {
      ssize_t n = send(c->fd, buf + *wrote, len - *wrote, MSG_NOSIGNAL);
      if (n > 0) {
        *wrote += (size_t)n;
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      w = wait_fd(c->fd, POLLOUT, deadline);
    }
    if (w == 0) return -2;
    if (w < 0) return -1;
  }
  return 0;
}

/* Reads some bytes: n > 0, 0 closed by the peer, -1 error, -2 deadline. */
static long read_some(truv_redis_conn *c, char *buf, size_t cap, long long deadline) {
  for (;;) {
    int w;
    if (c->ssl) {
      int rc = SSL_read(c->ssl, buf, (int)cap);
      if (rc > 0) return rc;
      if (SSL_get_error(c->ssl, rc) == SSL_ERROR_ZERO_RETURN) return 0;
      w = tls_wait(c, rc, deadline);
    } else {
      ssize_t n = recv(c->fd, buf, cap, 0);
      if (n >= 0) return (long)n;
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
      w = wait_fd(c->fd, POLLIN, deadline);
    }
    if (w == 0) return -2;
    if (w < 0) return -1;
  }
}

/* One command and its reply on the open connection. On failure the caller
 * drops the connection. */
static int exchange(truv_redis_conn *c, int argc, const char **argv, const size_t *lens,
                    long long deadline, redisReply **reply, truv_err *err) {
  char *cmd = NULL, buf[READ_CHUNK];
  size_t len = 0, wrote = 0;
  int rc;
  *reply = NULL;
  if ((rc = truv_redis_format(argc, argv, lens, &cmd, &len, err))) return rc;
  rc = write_all(c, cmd, len, deadline, &wrote);
  truv_redis_free_command(cmd);
  if (rc == -2) return fail(err, c, "store_timeout", wrote > 0, "timed out sending a command");
  if (rc < 0) return fail(err, c, "store_unavailable", wrote > 0, "connection lost sending");
  for (;;) {
    long n;
    if ((rc = truv_redis_reader_get(c->reader, reply, err))) {
      err->maybe_sent = 1;
      return rc;
    }
    if (*reply) return 0;
    n = read_some(c, buf, sizeof buf, deadline);
    if (n == -2)
      return fail(err, c, "store_timeout", 1,
                  "no reply in time (the command may have run, or may still run)");
    if (n == 0) return fail(err, c, "store_unavailable", 1, "connection closed by the server");
    if (n < 0) return fail(err, c, "store_unavailable", 1, "connection lost reading");
    if ((rc = truv_redis_reader_feed(c->reader, buf, (size_t)n, err))) return rc;
  }
}

/* AUTH and SELECT on a fresh connection; an error reply fails the connect. */
static int handshake(truv_redis_conn *c, long long deadline, truv_err *err) {
  redisReply *r = NULL;
  int rc = 0;
  char db[16], msg[200];
  if (c->password) {
    const char *argv[3] = {"AUTH", c->user ? c->user : c->password, c->password};
    size_t lens[3] = {4, strlen(argv[1]), strlen(c->password)};
    rc = exchange(c, c->user ? 3 : 2, argv, lens, deadline, &r, err);
    if (rc) return rc;
    if (r->type == REDIS_REPLY_ERROR) {
      snprintf(msg, sizeof msg, "authentication refused: %.120s", r->str);
      freeReplyObject(r);
      truv_err_set(err, TRUV_EINTERNAL, "store_auth", "Redis at %s: %s", c->name, msg);
      return TRUV_EINTERNAL;
    }
    freeReplyObject(r);
  }
  if (c->db > 0) {
    const char *argv[2] = {"SELECT", db};
    size_t lens[2];
    snprintf(db, sizeof db, "%d", c->db);
    lens[0] = 6;
    lens[1] = strlen(db);
    rc = exchange(c, 2, argv, lens, deadline, &r, err);
    if (rc) return rc;
    if (r->type == REDIS_REPLY_ERROR) {
      snprintf(msg, sizeof msg, "SELECT %d refused: %.120s", c->db, r->str);
      freeReplyObject(r);
      truv_err_set(err, TRUV_EINTERNAL, "store_unavailable", "Redis at %s: %s", c->name, msg);
      return TRUV_EINTERNAL;
    }
    freeReplyObject(r);
  }
  return 0;
}

static int connect_now(truv_redis_conn *c, truv_err *err) {
  long long deadline = now_ms() + c->connect_ms;
  int rc;
  c->pid = getpid();
  c->reader = truv_redis_reader_new();
  if (!c->reader) return truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "out of memory");
  if ((rc = open_socket(c, deadline, err))) goto fail;
  if (c->tls && (rc = tls_start(c, deadline, err))) goto fail;
  if ((rc = handshake(c, deadline, err))) goto fail;
  c->connects++;
  return 0;
fail:
  /* nothing of the caller's command was sent */
  if (err) err->maybe_sent = 0;
  if (err && strcmp(err->code, "store_timeout") == 0)
    snprintf(err->code, sizeof err->code, "%s", "store_unavailable");
  drop(c);
  return rc;
}

int truv_redis_conn_call(truv_redis_conn *c, int argc, const char **argv, const size_t *lens,
                         redisReply **reply, truv_err *err) {
  int rc;
  truv_err_clear(err);
  *reply = NULL;
  if (c->fd >= 0 && c->pid != getpid()) drop(c); /* a forked child's copy */
  if (c->fd < 0 && (rc = connect_now(c, err))) return rc;
  rc = exchange(c, argc, argv, lens, now_ms() + c->timeout_ms, reply, err);
  if (rc) drop(c);
  return rc;
}
