/* faults: injected latency and failures for /v1/ requests.
 *
 * A request matches when "METHOD /path" starts with `match` (empty: every
 * /v1/ request), or equals it without its final '$' when it ends with one
 * ("POST /v1/orders/$": order creation, not refreshes); /_sandbox/ requests
 * never match. For a matching request
 * faults_plan() draws at most one fault, with one uniform draw against the
 * cumulative probabilities in this order (a sum above 1 is clamped):
 *   reset_before  close without processing or answering (RST)
 *   5xx           answer 500, 502 or 503 (uniformly), without processing
 *   reset_after   process fully (state changes stay), then close unanswered
 *   truncate      process, answer with a Content-Length larger than the
 *                 bytes sent, then close
 *   stall         process, send the headers and part of the body, send
 *                 nothing for stall_ms, then close
 * and the latency (latency_ms plus uniform 0..jitter_ms) applied before the
 * answer (or the close) to matching requests. Thread-safe: a mutex guards the
 * configuration and the generator; `active` lets the hot path skip it. */
#ifndef SANDBOX_FAULTS_H
#define SANDBOX_FAULTS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "json_writer.h"
#include "rng.h"

#define FAULT_MATCH_MAX 128
#define FAULT_MS_MAX 600000 /* latency, jitter and stall, milliseconds */

struct fault_config {
  int latency_ms, jitter_ms, stall_ms;
  double p5xx, reset_before, reset_after, truncate, stall;
  char match[FAULT_MATCH_MAX];
};

enum fault_kind {
  FAULT_NONE,
  FAULT_RESET_BEFORE,
  FAULT_5XX,
  FAULT_RESET_AFTER,
  FAULT_TRUNCATE,
  FAULT_STALL,
  FAULT__COUNT
};

struct fault_plan {
  enum fault_kind kind;
  int status;   /* for FAULT_5XX */
  int delay_ms; /* latency before answering */
  int stall_ms;
};

struct faults {
  pthread_mutex_t mu;
  struct fault_config cfg;
  struct rng rng;
  int active; /* atomic: any fault or latency configured */
  uint64_t counts[FAULT__COUNT];
};

void faults_defaults(struct fault_config *cfg);
void faults_init(struct faults *f, const struct fault_config *cfg, uint64_t seed);
void faults_destroy(struct faults *f);
/* method and path of a /v1/ request; fills *plan (kind NONE, delay 0 when
 * nothing applies) */
void faults_plan(struct faults *f, const char *method, const char *path, struct fault_plan *plan);
void faults_get(struct faults *f, struct fault_config *out);
void faults_set(struct faults *f, const struct fault_config *cfg);
void faults_count(struct faults *f, enum fault_kind kind);
void faults_reset_counts(struct faults *f);
/* the configuration as a JSON object */
void faults_render_config(struct jw *w, const struct fault_config *cfg);
/* members "reset_before":n,... of the stats "faults" object */
void faults_render_counts(struct jw *w, struct faults *f);

#endif
