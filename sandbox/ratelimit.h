/* ratelimit: the general API rate limit, N requests per 60 s per secret.
 *
 * A sliding-log window on the MONOTONIC WALL clock, not the virtual clock:
 * the limit is about the physical request rate a client produces (Truv
 * counts real requests per minute), and tests that move the virtual clock by
 * days must not open or close it. Only the configured secret authenticates,
 * so there is one log. A request is recorded only when admitted (a 429 does
 * not extend the wait). ratelimit_take() returns 0 when admitted, else the
 * whole seconds until a slot frees (>= 1). limit 0 = off. Changing the limit
 * clears the log. Thread-safe. */
#ifndef SANDBOX_RATELIMIT_H
#define SANDBOX_RATELIMIT_H

#include <pthread.h>
#include <stdint.h>

#define RATE_LIMIT_MAX 1000000 /* requests per minute */

struct ratelimit {
  pthread_mutex_t mu;
  int limit; /* atomic reads on the fast path */
  int64_t *ring;
  unsigned head, count;
};

void ratelimit_init(struct ratelimit *r, int limit);
void ratelimit_destroy(struct ratelimit *r);
int ratelimit_take(struct ratelimit *r, int64_t mono_us);
/* false when memory runs out (the old limit stays) */
int ratelimit_set(struct ratelimit *r, int limit);
int ratelimit_get(struct ratelimit *r);

#endif
