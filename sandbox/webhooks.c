/* webhooks: see webhooks.h. */
#include "webhooks.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hex.h"
#include "timeutil.h"

#define MAX_BACKOFF_MS 30000
#define TIMEOUT_MS 10000L

struct webhook_event {
  struct webhook_event *next;
  char *body;
  size_t len;
  char id[33];
  char type[32];
};

static void event_free(struct webhook_event *e) {
  if (e) {
    free(e->body);
    free(e);
  }
}

void webhooks_sign(const char *secret, const char *body, size_t len, char out[68]) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, mac, &mac_len);
  memcpy(out, "v1=", 3);
  hex_encode(mac, mac_len, out + 3);
}

static size_t discard(char *ptr, size_t size, size_t n, void *ud) {
  (void)ptr;
  (void)ud;
  return size * n;
}

/* aborts a transfer in flight when the sandbox stops */
static int progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
  struct webhooks *h;
  bool stop;
  (void)a, (void)b, (void)c, (void)d;
  h = ud;
  pthread_mutex_lock(&h->mu);
  stop = h->stop;
  pthread_mutex_unlock(&h->mu);
  return stop ? 1 : 0;
}

/* one POST; returns the HTTP status or 0 on a transport failure */
static int post(struct webhooks *h, CURL *curl, const char *url, const struct webhook_event *e) {
  struct curl_slist *hdr = NULL, *tmp;
  char sign[68 + 16] = "X-WEBHOOK-SIGN: ";
  const char *lines[] = {"Content-Type: application/json", "User-Agent: Truv-Webhook-Service/2.0",
                         "Expect:", sign};
  long status = 0;
  webhooks_sign(h->secret, e->body, e->len, sign + 16);
  for (unsigned i = 0; i < 4; i++) {
    if (!(tmp = curl_slist_append(hdr, lines[i]))) goto done;
    hdr = tmp;
  }
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdr);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, e->body);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)e->len);
  if (curl_easy_perform(curl) == CURLE_OK) curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
done:
  curl_slist_free_all(hdr);
  return (int)status;
}

static CURL *make_curl(struct webhooks *h) {
  CURL *curl = curl_easy_init();
  if (!curl) return NULL;
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, TIMEOUT_MS);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, h);
  return curl;
}

static void log_delivery(struct webhooks *h, const struct webhook_event *e, int status,
                         int attempts, bool duplicate) {
  struct webhook_log_entry *l = &h->log[h->log_next];
  memcpy(l->id, e->id, sizeof l->id);
  memcpy(l->type, e->type, sizeof l->type);
  l->status = status;
  l->attempts = attempts;
  l->duplicate = duplicate;
  h->log_next = (h->log_next + 1) % WEBHOOK_LOG_MAX;
  if (h->log_count < WEBHOOK_LOG_MAX) h->log_count++;
}

/* sleeps (mutex held) until the deadline or stop; false when stopping */
static bool backoff(struct webhooks *h, int attempt) {
  int64_t due;
  int64_t ms = (int64_t)h->cfg.backoff_ms << (attempt < 20 ? attempt : 20);
  if (ms > MAX_BACKOFF_MS) ms = MAX_BACKOFF_MS;
  due = time_mono_us() + ms * 1000;
  while (!h->stop && time_mono_us() < due) {
    struct timespec ts = {.tv_sec = (time_t)(due / 1000000),
                          .tv_nsec = (long)(due % 1000000) * 1000};
    pthread_cond_timedwait(&h->cv, &h->mu, &ts);
  }
  return !h->stop;
}

/* delivers e with retries (mutex held on entry and exit, released while sending) */
static void deliver(struct webhooks *h, CURL *curl, struct webhook_event *e) {
  bool ok;
  int status = 0, attempt = 0;
  for (;;) {
    char url[sizeof h->cfg.url];
    memcpy(url, h->cfg.url, sizeof url);
    if (url[0] == '\0') break;
    h->attempts++;
    pthread_mutex_unlock(&h->mu);
    status = post(h, curl, url, e);
    pthread_mutex_lock(&h->mu);
    attempt++;
    if ((status >= 200 && status < 300) || attempt > h->cfg.retries || !backoff(h, attempt - 1))
      break;
  }
  ok = status >= 200 && status < 300;
  ok ? h->delivered++ : h->failed++;
  log_delivery(h, e, status, attempt, false);
  if (ok && !h->stop && h->cfg.duplicates > 0 && rng_unit(&h->rng) < h->cfg.duplicates) {
    char url[sizeof h->cfg.url];
    memcpy(url, h->cfg.url, sizeof url);
    h->duplicates++;
    h->attempts++;
    pthread_mutex_unlock(&h->mu);
    status = post(h, curl, url, e);
    pthread_mutex_lock(&h->mu);
    log_delivery(h, e, status, 1, true);
  }
}

static void *run(void *arg) {
  struct webhooks *h = arg;
  CURL *curl = make_curl(h);
  pthread_mutex_lock(&h->mu);
  while (!h->stop) {
    struct webhook_event *e;
    if (!h->head) {
      pthread_cond_wait(&h->cv, &h->mu);
      continue;
    }
    e = h->head;
    h->head = e->next;
    if (!h->head) h->tail = NULL;
    h->queued--;
    if (curl) deliver(h, curl, e);
    else h->failed++;
    event_free(e);
  }
  pthread_mutex_unlock(&h->mu);
  if (curl) curl_easy_cleanup(curl);
  return NULL;
}

bool webhooks_start(struct webhooks *h, const char *secret, const struct webhook_config *cfg,
                    uint64_t seed) {
  pthread_condattr_t attr; /* backoff deadlines are on the monotonic clock */
  memset(h, 0, sizeof *h);
  pthread_mutex_init(&h->mu, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&h->cv, &attr);
  pthread_condattr_destroy(&attr);
  h->cfg = *cfg;
  rng_seed(&h->rng, seed ^ 0x776562686f6f6bULL);
  if (!(h->secret = strdup(secret))) return false;
  h->started = pthread_create(&h->thread, NULL, run, h) == 0;
  return h->started;
}

void webhooks_stop(struct webhooks *h) {
  pthread_mutex_lock(&h->mu);
  h->stop = true;
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
  if (h->started) pthread_join(h->thread, NULL);
  h->started = false;
  while (h->head) {
    struct webhook_event *next = h->head->next;
    event_free(h->head);
    h->head = next;
  }
  h->tail = NULL;
  free(h->secret);
  h->secret = NULL;
  pthread_cond_destroy(&h->cv);
  pthread_mutex_destroy(&h->mu);
}

bool webhooks_active(struct webhooks *h) {
  bool active;
  pthread_mutex_lock(&h->mu);
  active = h->cfg.url[0] != '\0' && !h->stop;
  pthread_mutex_unlock(&h->mu);
  return active;
}

void webhooks_push(struct webhooks *h, char *body, size_t len, const char *id, const char *type) {
  struct webhook_event *e = calloc(1, sizeof *e);
  pthread_mutex_lock(&h->mu);
  if (!e || h->stop || h->queued >= WEBHOOK_QUEUE_MAX || h->cfg.url[0] == '\0') {
    h->dropped++;
    pthread_mutex_unlock(&h->mu);
    free(body);
    free(e);
    return;
  }
  e->body = body;
  e->len = len;
  snprintf(e->id, sizeof e->id, "%s", id);
  snprintf(e->type, sizeof e->type, "%s", type);
  if (h->tail) h->tail->next = e;
  else h->head = e;
  h->tail = e;
  h->queued++;
  h->sent++;
  pthread_cond_signal(&h->cv);
  pthread_mutex_unlock(&h->mu);
}

bool webhooks_url_valid(const char *url) {
  return strlen(url) < WEBHOOK_URL_MAX &&
         (strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0);
}

void webhooks_get_config(struct webhooks *h, struct webhook_config *out) {
  pthread_mutex_lock(&h->mu);
  *out = h->cfg;
  pthread_mutex_unlock(&h->mu);
}

void webhooks_set_config(struct webhooks *h, const struct webhook_config *cfg) {
  pthread_mutex_lock(&h->mu);
  h->cfg = *cfg;
  h->cfg.url[sizeof h->cfg.url - 1] = '\0';
  pthread_cond_broadcast(&h->cv);
  pthread_mutex_unlock(&h->mu);
}

void webhooks_reset_stats(struct webhooks *h) {
  pthread_mutex_lock(&h->mu);
  h->sent = h->attempts = h->delivered = h->failed = h->duplicates = h->dropped = 0;
  h->log_next = h->log_count = 0;
  pthread_mutex_unlock(&h->mu);
}

void webhooks_render_stats(struct jw *w, struct webhooks *h) {
  pthread_mutex_lock(&h->mu);
  jw_kint(w, "sent", (long long)h->sent);
  jw_kint(w, "delivered", (long long)h->delivered);
  jw_kint(w, "failed", (long long)h->failed);
  jw_kint(w, "duplicates", (long long)h->duplicates);
  jw_kint(w, "attempts", (long long)h->attempts);
  jw_kint(w, "dropped", (long long)h->dropped);
  jw_kint(w, "queued", (long long)h->queued);
  pthread_mutex_unlock(&h->mu);
}

void webhooks_render_log(struct jw *w, struct webhooks *h) {
  unsigned first;
  pthread_mutex_lock(&h->mu);
  first = (h->log_next + WEBHOOK_LOG_MAX - h->log_count) % WEBHOOK_LOG_MAX;
  jw_obj(w);
  jw_key(w, "deliveries");
  jw_arr(w);
  for (unsigned i = 0; i < h->log_count; i++) {
    const struct webhook_log_entry *l = &h->log[(first + i) % WEBHOOK_LOG_MAX];
    jw_obj(w);
    jw_kstr(w, "webhook_id", l->id);
    jw_kstr(w, "event_type", l->type);
    jw_kint(w, "status", l->status);
    jw_kint(w, "attempts", l->attempts);
    jw_kbool(w, "duplicate", l->duplicate);
    jw_obj_end(w);
  }
  jw_arr_end(w);
  jw_obj_end(w);
  pthread_mutex_unlock(&h->mu);
}
