/* The libcurl multi transport (see truv/multi.h).
 *
 * Layout: one array of max_in_flight slots, allocated once, so that a
 * slot's address never changes (libcurl writes into slot->resp through the
 * pointer given at prepare time). A slot is one transfer's worth of state
 * and moves FREE -> BUSY (inside libcurl's multi) -> DONE (finished, queued
 * for next()) -> HANDED (out to the caller until its next call) -> FREE.
 * Free slots form a stack, so the most recently used easy handle (and its
 * warm buffers) is reused first; finished slots form a FIFO queue. A slot's
 * easy handle is made on first use and kept until the multi is freed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "curl_glue.h"
#include "truv/multi.h"

#define IDLE_BODY_MAX (16u << 10)   /* an idle slot keeps at most this much body buffer */
#define MIN_BUFFER 1024L
#define MAX_BUFFER (512L << 10)
#define POLL_MAX_MS 60000.0         /* one poll at most; the loop goes on after it */

enum { SLOT_FREE, SLOT_BUSY, SLOT_DONE, SLOT_HANDED };

typedef struct slot {
  CURL *easy;
  struct curl_slist *headers;  /* the request's header list, freed when the slot is */
  const truv_request *req;
  void *tag;
  struct slot *next;           /* in the free stack or the done queue */
  CURLcode result;
  int state;
  truv_response resp;
  char errbuf[CURL_ERROR_SIZE];
} slot;

struct truv_multi {
  CURLM *multi;
  truv_http_options opts;
  char *ca_file, *ca_path, *proxy;   /* owned copies of the option strings */
  long buffer_size;
  slot *slots;
  size_t nslots;
  slot *free_top;
  slot *done_head, *done_tail;
  slot *handed;                      /* the one next() gave out last, or NULL */
  size_t pending;                    /* BUSY + DONE */
  size_t ndone;                      /* DONE */
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
  if (e.kind && err) *err = e;
  return e.kind;
}

static int setup_multi(truv_multi *m, long host_max) {
  long total = (long)m->nslots;
  return curl_multi_setopt(m->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_NOTHING) ||
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
  m->opts = opts->http;
  m->nslots = opts->max_in_flight ? (size_t)opts->max_in_flight : TRUV_MULTI_DEFAULT_IN_FLIGHT;
  m->buffer_size = opts->buffer_size ? opts->buffer_size : TRUV_MULTI_DEFAULT_BUFFER;
  if (copy_opt(&m->ca_file, opts->http.ca_file) || copy_opt(&m->ca_path, opts->http.ca_path) ||
      copy_opt(&m->proxy, opts->http.proxy) || !(m->slots = calloc(m->nslots, sizeof *m->slots)) ||
      !(m->multi = curl_multi_init()))
    goto nomem;
  m->opts.ca_file = m->ca_file;
  m->opts.ca_path = m->ca_path;
  m->opts.proxy = m->proxy;
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
  if ((rc = truv_curl_prepare(easy, &m->opts, req, &s->resp, &s->headers, err))) return rc;
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
    s->result = msg->data.result;   /* msg dies with remove_handle */
    curl_multi_remove_handle(m->multi, s->easy);
    curl_easy_getinfo(s->easy, CURLINFO_NUM_CONNECTS, &connects);
    m->stats.transfers++;
    m->stats.connects += (unsigned long long)connects;
    if (s->result == CURLE_OK) truv_curl_finish(s->easy, &s->resp);
    enqueue_done(m, s);
  }
}

static double monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int curl_failed(CURLMcode mc, truv_err *err) {
  return truv_err_set(err, TRUV_EINTERNAL, "curl_multi", "libcurl multi: %s",
                      curl_multi_strerror(mc));
}

int truv_multi_run(truv_multi *m, long timeout_ms, size_t *ready, truv_err *err) {
  double deadline = monotonic_ms() + (double)(timeout_ms > 0 ? timeout_ms : 0);
  int running = 0;
  CURLMcode mc;
  truv_err_clear(err);
  release_handed(m);
  for (;;) {
    double left;
    if ((mc = curl_multi_perform(m->multi, &running)) != CURLM_OK) goto fail;
    collect(m);
    left = deadline - monotonic_ms();
    if (m->ndone || m->pending == 0 || left <= 0) break;
    if (left > POLL_MAX_MS) left = POLL_MAX_MS;
    /* wakes on socket activity or libcurl's own next timeout, whichever first */
    if ((mc = curl_multi_poll(m->multi, NULL, 0, left < 1 ? 1 : (int)left, NULL)) != CURLM_OK)
      goto fail;
  }
  if (ready) *ready = m->ndone;
  return 0;

fail:
  if (ready) *ready = 0;
  return curl_failed(mc, err);
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
    truv_curl_error(s->easy, s->result, s->errbuf, s->req, &done->err);
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
  for (i = 0; m->slots && i < m->nslots; i++)
    if (m->slots[i].easy) curl_easy_cleanup(m->slots[i].easy);
  free(m->slots);
  free(m->ca_file);
  free(m->ca_path);
  free(m->proxy);
  free(m);
}
