/* The libcurl multi transport (see truv/multi.h).
 *
 * Layout: one array of max_in_flight slots, allocated once, so that a
 * slot's address never changes (libcurl writes into slot->resp through the
 * pointer given at prepare time). A slot is one transfer's worth of state
 * and moves FREE -> BUSY (inside libcurl's multi) -> DONE (finished, queued
 * for next()) -> HANDED (out to the caller until its next call) -> FREE.
 * Free slots form a stack, so the most recently used easy handle (and its
 * warm buffers) is reused first; finished slots form a FIFO queue. A slot's
 * easy handle is made on first use and kept until the multi is freed.
 *
 * Driving: libcurl's socket interface over an epoll set, not
 * curl_multi_perform/curl_multi_poll, which walk every transfer and poll
 * every socket on each wakeup: with hundreds in flight that is most of the
 * CPU a request costs. libcurl tells us which sockets to watch (on_socket)
 * and when its next timeout is due (on_timer); run() waits on epoll and
 * hands libcurl only the sockets that are ready. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "transfer.h"
#include "truv/multi.h"

#define IDLE_BODY_MAX (16u << 10) /* an idle slot keeps at most this much body buffer */
#define MIN_BUFFER 1024L
#define MAX_BUFFER (512L << 10)
#define POLL_MAX_MS 60000.0 /* one wait at most; the loop goes on after it */
#define EVENTS 256          /* ready sockets taken per epoll_wait */

enum { SLOT_FREE, SLOT_BUSY, SLOT_DONE, SLOT_HANDED };

typedef struct slot {
  CURL *easy;
  struct curl_slist *headers; /* the request's header list, freed when the slot is */
  const truv_request *req;
  void *tag;
  struct slot *next; /* in the free stack or the done queue */
  CURLcode result;
  int state;
  truv_response resp;
  truv_transfer_once once; /* a refresh_order's body, read by libcurl */
  char errbuf[CURL_ERROR_SIZE];
} slot;

struct truv_multi {
  CURLM *multi;
  int epfd;        /* the sockets libcurl wants watched */
  double timer_at; /* libcurl's next timeout (monotonic ms), < 0: none */
  truv_http_options opts;
  char *ca_file, *ca_path, *proxy, *no_proxy; /* owned copies of the option strings */
  long buffer_size;
  slot *slots;
  size_t nslots;
  slot *free_top;
  slot *done_head, *done_tail;
  slot *handed;   /* the one next() gave out last, or NULL */
  size_t pending; /* BUSY + DONE */
  size_t ndone;   /* DONE */
  truv_multi_stats stats;
};

/* ------------------------------------------------------------ creation */

static int copy_opt(char **dst, const char *src) {
  *dst = NULL;
  return src && !(*dst = strdup(src)) ? -1 : 0;
}

static int check_options(const truv_multi_options *o, truv_err *err) {
  truv_err e;
  truv_err_clear(&e);
  if (o->max_in_flight < 0 || o->max_in_flight > TRUV_MULTI_MAX_IN_FLIGHT)
    truv_err_invalid(&e, "max_in_flight", "must be between 1 and %d", TRUV_MULTI_MAX_IN_FLIGHT);
  if (o->max_host_connections < 0 || o->max_host_connections > TRUV_MULTI_MAX_IN_FLIGHT)
    truv_err_invalid(&e, "max_host_connections", "must be between 1 and %d",
                     TRUV_MULTI_MAX_IN_FLIGHT);
  if (o->buffer_size && (o->buffer_size < MIN_BUFFER || o->buffer_size > MAX_BUFFER))
    truv_err_invalid(&e, "buffer_size", "must be between %ld and %ld bytes", MIN_BUFFER,
                     MAX_BUFFER);
  if (o->http.billed_reuse_idle_s > TRUV_MAX_BILLED_REUSE_IDLE_S)
    truv_err_invalid(&e, "billed_reuse_idle_s", "must be at most %ld seconds",
                     TRUV_MAX_BILLED_REUSE_IDLE_S);
  if (e.kind && err) *err = e;
  return e.kind;
}

static double monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* libcurl: watch socket s for `what` (or stop watching it). */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
  truv_multi *m = userp;
  struct epoll_event ev;
  (void)easy, (void)socketp;
  if (what == CURL_POLL_REMOVE) {
    epoll_ctl(m->epfd, EPOLL_CTL_DEL, s, NULL);
    return 0;
  }
  memset(&ev, 0, sizeof ev);
  ev.data.fd = s;
  ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0u) | (what & CURL_POLL_OUT ? EPOLLOUT : 0u);
  /* a socket number may come back for a new connection: modify or add */
  if (epoll_ctl(m->epfd, EPOLL_CTL_MOD, s, &ev) == 0) return 0;
  return errno == ENOENT && epoll_ctl(m->epfd, EPOLL_CTL_ADD, s, &ev) == 0 ? 0 : -1;
}

/* libcurl: call back (with CURL_SOCKET_TIMEOUT) in timeout_ms, or never (-1). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
  truv_multi *m = userp;
  (void)multi;
  m->timer_at = timeout_ms < 0 ? -1 : monotonic_ms() + (double)timeout_ms;
  return 0;
}

static int setup_multi(truv_multi *m, long host_max) {
  long total = (long)m->nslots;
  return curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket) ||
         curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, (void *)m) ||
         curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer) ||
         curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, (void *)m) ||
         curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING) ||
         curl_multi_setopt(m->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total) ||
         curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, host_max) ||
         /* keep as many idle connections as can be busy, for keep-alive */
         curl_multi_setopt(m->multi, CURLMOPT_MAXCONNECTS, total);
}

truv_multi *truv_multi_new(const truv_multi_options *opts, truv_err *err) {
  truv_multi_options none;
  truv_multi *m = NULL;
  size_t i;
  truv_err_clear(err);
  if (!opts) {
    memset(&none, 0, sizeof none);
    opts = &none;
  }
  if (check_options(opts, err) || truv_curl_global(err)) return NULL;
  if (!(m = calloc(1, sizeof *m))) goto nomem;
  m->epfd = -1;
  m->timer_at = -1;
  m->opts = opts->http;
  m->nslots = opts->max_in_flight ? (size_t)opts->max_in_flight : TRUV_MULTI_DEFAULT_IN_FLIGHT;
  m->buffer_size = opts->buffer_size ? opts->buffer_size : TRUV_MULTI_DEFAULT_BUFFER;
  if (copy_opt(&m->ca_file, opts->http.ca_file) || copy_opt(&m->ca_path, opts->http.ca_path) ||
      copy_opt(&m->proxy, opts->http.proxy) || copy_opt(&m->no_proxy, opts->http.no_proxy) ||
      !(m->slots = calloc(m->nslots, sizeof *m->slots)) ||
      (m->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 || !(m->multi = curl_multi_init()))
    goto nomem;
  m->opts.ca_file = m->ca_file;
  m->opts.ca_path = m->ca_path;
  m->opts.proxy = m->proxy;
  m->opts.no_proxy = m->no_proxy;
  if (setup_multi(m, opts->max_host_connections ? opts->max_host_connections : (long)m->nslots))
    goto nomem;
  for (i = m->nslots; i-- > 0;) {
    truv_response_init(&m->slots[i].resp);
    m->slots[i].next = m->free_top;
    m->free_top = &m->slots[i];
  }
  return m;

nomem:
  truv_multi_free(m);
  truv_err_set(err, TRUV_EINTERNAL, "nomem", "out of memory creating a multi transport");
  return NULL;
}

/* ------------------------------------------------------------ slots */

/* Back to the free stack: the request and its header list are let go, the
 * response buffer kept unless it grew large (an idle pool must stay small). */
static void slot_release(truv_multi *m, slot *s) {
  if (s->easy) curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(s->headers);
  s->headers = NULL;
  s->req = NULL;
  s->tag = NULL;
  if (s->resp.body_cap > IDLE_BODY_MAX) truv_response_free(&s->resp);
  else truv_response_reset(&s->resp);
  s->state = SLOT_FREE;
  s->next = m->free_top;
  m->free_top = s;
}

static void release_handed(truv_multi *m) {
  if (m->handed) slot_release(m, m->handed);
  m->handed = NULL;
}

/* The easy handle of a slot, made once with what never changes. */
static CURL *slot_easy(truv_multi *m, slot *s) {
  if (s->easy) return s->easy;
  if (!(s->easy = curl_easy_init())) return NULL;
  curl_easy_setopt(s->easy, CURLOPT_PRIVATE, (void *)s);
  curl_easy_setopt(s->easy, CURLOPT_BUFFERSIZE, m->buffer_size);
  curl_easy_setopt(s->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(s->easy, CURLOPT_ERRORBUFFER, s->errbuf);
  return s->easy;
}

static slot *find_tag(truv_multi *m, void *tag) {
  size_t i;
  for (i = 0; i < m->nslots; i++)
    if ((m->slots[i].state == SLOT_BUSY || m->slots[i].state == SLOT_DONE) &&
        m->slots[i].tag == tag)
      return &m->slots[i];
  return NULL;
}

/* ------------------------------------------------------------ transfers */

int truv_multi_add(truv_multi *m, const truv_request *req, void *tag, truv_err *err) {
  slot *s = m->free_top;
  CURL *easy;
  int rc;
  truv_err_clear(err);
  if (find_tag(m, tag))
    return truv_err_set(err, TRUV_EINVALID, "duplicate_tag", "this tag names a transfer in flight");
  if (!s)
    return truv_err_set(err, TRUV_EINTERNAL, "full", "%zu transfers are already in flight",
                        m->nslots);
  if (!(easy = slot_easy(m, s)))
    return truv_err_set(err, TRUV_EINTERNAL, "nomem", "out of memory starting a transfer");
  /* a pooled handle may carry the previous request's custom method */
  curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, NULL);
  if ((rc = truv_transfer_prepare(easy, &m->opts, req, &s->resp, &s->once, &s->headers, err)))
    return rc;
  s->errbuf[0] = '\0';
  if (curl_multi_add_handle(m->multi, easy) != CURLM_OK) {
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(s->headers);
    s->headers = NULL;
    return truv_err_set(err, TRUV_EINTERNAL, "nomem", "libcurl refused a transfer");
  }
  m->free_top = s->next;
  s->next = NULL;
  s->req = req;
  s->tag = tag;
  s->state = SLOT_BUSY;
  m->pending++;
  return 0;
}

static void enqueue_done(truv_multi *m, slot *s) {
  s->state = SLOT_DONE;
  s->next = NULL;
  m->ndone++;
  if (m->done_tail) m->done_tail->next = s;
  else m->done_head = s;
  m->done_tail = s;
}

/* Moves every transfer libcurl reports finished to the done queue. The
 * handle leaves the multi at once, so its connection goes back to the
 * cache before the caller even looks at the answer. */
static void collect(truv_multi *m) {
  CURLMsg *msg;
  int left;
  while ((msg = curl_multi_info_read(m->multi, &left))) {
    void *p = NULL;
    slot *s;
    long connects = 0;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
    s = p;
    s->result = msg->data.result; /* msg dies with remove_handle */
    curl_multi_remove_handle(m->multi, s->easy);
    curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &connects);
    m->stats.transfers++;
    m->stats.connects += (unsigned long long)connects;
    if (s->result == CURLE_OK) truv_transfer_finish(s->easy, &s->resp);
    enqueue_done(m, s);
  }
}

static int curl_failed(CURLMcode mc, truv_err *err) {
  return truv_err_set(err, TRUV_EINTERNAL, "curl_multi", "libcurl multi: %s",
                      curl_multi_strerror(mc));
}

/* How long to wait for sockets: until libcurl's timer or the deadline. */
static int wait_ms(truv_multi *m, double now, double deadline) {
  double until = deadline;
  if (m->timer_at >= 0 && m->timer_at < until) until = m->timer_at;
  if (until <= now) return 0;
  if (until - now > POLL_MAX_MS) return (int)POLL_MAX_MS;
  return (int)(until - now) + 1; /* rounded up: waking early would spin */
}

/* One wait for ready sockets, and libcurl told about each, then about its
 * timer if it is due. *interrupted is set when a signal cut the wait short. */
static CURLMcode step(truv_multi *m, double deadline, int *interrupted) {
  struct epoll_event ev[EVENTS];
  int n, i, running;
  CURLMcode mc = CURLM_OK;
  n = epoll_wait(m->epfd, ev, EVENTS, wait_ms(m, monotonic_ms(), deadline));
  *interrupted = n < 0 && errno == EINTR;
  for (i = 0; i < n && mc == CURLM_OK; i++) {
    int flags = (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
    mc = curl_multi_socket_action(m->multi, ev[i].data.fd, flags, &running);
  }
  if (mc == CURLM_OK && m->timer_at >= 0 && m->timer_at <= monotonic_ms()) {
    m->timer_at = -1; /* libcurl sets the next one during the call */
    mc = curl_multi_socket_action(m->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  }
  return mc;
}

int truv_multi_run(truv_multi *m, long timeout_ms, size_t *ready, truv_err *err) {
  double deadline = monotonic_ms() + (double)(timeout_ms > 0 ? timeout_ms : 0);
  CURLMcode mc = CURLM_OK;
  truv_err_clear(err);
  release_handed(m);
  if (ready) *ready = 0;
  while (m->pending > m->ndone) {
    int interrupted;
    if ((mc = step(m, deadline, &interrupted)) != CURLM_OK) return curl_failed(mc, err);
    collect(m);
    if (m->ndone || interrupted || monotonic_ms() >= deadline) break;
  }
  if (ready) *ready = m->ndone;
  return 0;
}

int truv_multi_next(truv_multi *m, truv_multi_done *done) {
  slot *s = m->done_head;
  release_handed(m);
  if (!s) return 0;
  m->done_head = s->next;
  if (!m->done_head) m->done_tail = NULL;
  m->ndone--;
  s->next = NULL;
  s->state = SLOT_HANDED;
  m->handed = s;
  m->pending--;
  done->tag = s->tag;
  done->req = s->req;
  truv_err_clear(&done->err);
  if (s->result == CURLE_OK) {
    done->resp = &s->resp;
  } else {
    done->resp = NULL;
    truv_transfer_error(s->easy, s->result, s->errbuf, s->req, &done->err);
  }
  return 1;
}

static void unlink_done(truv_multi *m, slot *s) {
  slot **pp = &m->done_head, *prev = NULL;
  while (*pp && *pp != s) prev = *pp, pp = &(*pp)->next;
  if (!*pp) return;
  *pp = s->next;
  if (m->done_tail == s) m->done_tail = prev;
  m->ndone--;
}

int truv_multi_cancel(truv_multi *m, void *tag) {
  slot *s = find_tag(m, tag);
  if (!s) return 0;
  /* removing a transfer that is still running closes its connection */
  if (s->state == SLOT_BUSY) curl_multi_remove_handle(m->multi, s->easy);
  else unlink_done(m, s);
  m->pending--;
  m->stats.cancelled++;
  slot_release(m, s);
  return 1;
}

size_t truv_multi_pending(const truv_multi *m) {
  return m->pending;
}

void truv_multi_get_stats(const truv_multi *m, truv_multi_stats *stats) {
  *stats = m->stats;
}

void truv_multi_free(truv_multi *m) {
  size_t i;
  if (!m) return;
  for (i = 0; m->slots && i < m->nslots; i++) {
    slot *s = &m->slots[i];
    if (s->state == SLOT_BUSY) curl_multi_remove_handle(m->multi, s->easy);
    if (s->state == SLOT_BUSY || s->state == SLOT_DONE) m->stats.cancelled++;
    curl_slist_free_all(s->headers);
    truv_response_free(&s->resp);
  }
  /* the connection cache belongs to the multi: it closes them */
  if (m->multi) curl_multi_cleanup(m->multi);
  if (m->epfd >= 0) close(m->epfd);
  for (i = 0; m->slots && i < m->nslots; i++)
    if (m->slots[i].easy) curl_easy_cleanup(m->slots[i].easy);
  free(m->slots);
  free(m->ca_file);
  free(m->ca_path);
  free(m->proxy);
  free(m->no_proxy);
  free(m);
}
