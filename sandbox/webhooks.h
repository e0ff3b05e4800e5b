/* webhooks: signed delivery of events to the configured URL.
 *
 * Producers (request handlers, the ticker, clock moves) render an event body
 * and hand it to webhooks_push(); one delivery thread sends events strictly
 * in push order with libcurl, so events about one object arrive in the order
 * they happened. Each POST carries Content-Type: application/json,
 * User-Agent: Truv-Webhook-Service/2.0 and X-WEBHOOK-SIGN: v1=<lowercase hex
 * HMAC-SHA256(key = the access secret, message = the exact body bytes)>. A
 * non-2xx answer or a transport failure is retried `retries` times, waiting
 * backoff_ms * 2^attempt (wall time, capped at 30 s) in between; while an
 * event is retried later events wait (order first). With probability
 * `duplicates` a delivered event is sent once more, byte-identical.
 *
 * The queue holds at most WEBHOOK_QUEUE_MAX events; more are dropped and
 * counted. Nothing is queued while no URL is set. On stop, pending events
 * are dropped and an ongoing transfer is aborted. Thread-safe. */
#ifndef SANDBOX_WEBHOOKS_H
#define SANDBOX_WEBHOOKS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "json_writer.h"
#include "rng.h"

#define WEBHOOK_QUEUE_MAX 200000
#define WEBHOOK_LOG_MAX 1000
#define WEBHOOK_URL_MAX 1024 /* bytes, the final NUL included */
#define WEBHOOK_RETRIES_MAX 100
#define WEBHOOK_BACKOFF_MAX_MS 600000

struct webhook_event;

struct webhook_config {
  char url[WEBHOOK_URL_MAX];
  int retries, backoff_ms;
  double duplicates;
};

struct webhook_log_entry {
  char id[33];
  char type[32];
  int status, attempts;
  bool duplicate;
};

struct webhooks {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  bool started, stop;
  char *secret;
  struct webhook_config cfg;
  struct rng rng;
  struct webhook_event *head, *tail;
  unsigned queued;
  struct webhook_log_entry log[WEBHOOK_LOG_MAX];
  unsigned log_next, log_count;
  uint64_t sent, attempts, delivered, failed, duplicates, dropped;
};

bool webhooks_start(struct webhooks *h, const char *secret, const struct webhook_config *cfg,
                    uint64_t seed);
void webhooks_stop(struct webhooks *h);
/* whether events should be rendered at all (a URL is set) */
bool webhooks_active(struct webhooks *h);
/* takes ownership of body (malloc'd); id is the webhook_id (32 hex) */
void webhooks_push(struct webhooks *h, char *body, size_t len, const char *id, const char *type);
/* whether url can be the webhook URL: http:// or https://, and it fits */
bool webhooks_url_valid(const char *url);
void webhooks_get_config(struct webhooks *h, struct webhook_config *out);
void webhooks_set_config(struct webhooks *h, const struct webhook_config *cfg);
void webhooks_reset_stats(struct webhooks *h);
/* members "sent":n,... of the stats "webhooks" object */
void webhooks_render_stats(struct jw *w, struct webhooks *h);
/* {"deliveries":[...]} oldest first */
void webhooks_render_log(struct jw *w, struct webhooks *h);
/* "v1=" + hex HMAC-SHA256(secret, body): out holds 68 bytes */
void webhooks_sign(const char *secret, const char *body, size_t len, char out[68]);

#endif
