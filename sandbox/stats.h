/* stats: request counters by endpoint, method and outcome.
 *
 * A fixed table of relaxed atomic counters: counting never takes a lock and
 * never allocates. Outcomes are HTTP statuses or, for faulted requests, the
 * fault that ate the answer ("reset_before", "reset_after", "truncate",
 * "stall"); a status outside the table counts as "other". `total` counts
 * /v1/ requests only; /_sandbox/ requests appear in by_endpoint under their
 * own keys. `connections` counts the TCP connections accepted (with --tls,
 * each a TLS handshake), whatever they then carry: the requests a client
 * sent per connection it opened show how much keep-alive it got. The
 * refresh counters live in the store beside the entities they describe
 * (billing.c counts them), the fault and webhook counters in their modules;
 * api_control.c assembles the whole GET /_sandbox/stats document. */
#ifndef SANDBOX_STATS_H
#define SANDBOX_STATS_H

#include <stdint.h>

#include "json_writer.h"
#include "router.h"

enum outcome_slot {
  OUT_200,
  OUT_201,
  OUT_301,
  OUT_400,
  OUT_401,
  OUT_404,
  OUT_405,
  OUT_410,
  OUT_413,
  OUT_415,
  OUT_429,
  OUT_500,
  OUT_502,
  OUT_503,
  OUT_OTHER,
  OUT_RESET_BEFORE,
  OUT_RESET_AFTER,
  OUT_TRUNCATE,
  OUT_STALL,
  OUT__COUNT
};

struct stats {
  uint64_t counts[EP__COUNT][M__COUNT][OUT__COUNT];
  uint64_t connections; /* accepted */
};

void stats_init(struct stats *st);
enum outcome_slot stats_slot_for_status(int status);
const char *stats_slot_name(enum outcome_slot slot);
void stats_count(struct stats *st, enum endpoint ep, enum method m, enum outcome_slot slot);
void stats_count_connection(struct stats *st);
void stats_reset(struct stats *st);
/* writes "total":N,"by_endpoint":{...} as members of the current object */
void stats_render_requests(struct jw *w, struct stats *st);
/* writes "accepted":N as a member of the current object */
void stats_render_connections(struct jw *w, struct stats *st);

/* relaxed atomic helpers shared by the counter owners */
static inline void counter_add(uint64_t *c, uint64_t n) {
  __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}
static inline uint64_t counter_get(const uint64_t *c) {
  return __atomic_load_n(c, __ATOMIC_RELAXED);
}
static inline void counter_zero(uint64_t *c) {
  __atomic_store_n(c, 0, __ATOMIC_RELAXED);
}

#endif
