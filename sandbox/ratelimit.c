/* ratelimit: see ratelimit.h. */
#include "ratelimit.h"

#include <stdlib.h>

#define WINDOW_US (60LL * 1000000LL)

void ratelimit_init(struct ratelimit *r, int limit) {
  pthread_mutex_init(&r->mu, NULL);
  r->limit = 0;
  r->ring = NULL;
  r->head = r->count = 0;
  ratelimit_set(r, limit);
}

void ratelimit_destroy(struct ratelimit *r) {
  free(r->ring);
  pthread_mutex_destroy(&r->mu);
}

int ratelimit_set(struct ratelimit *r, int limit) {
  int64_t *ring = NULL;
  if (limit > 0 && !(ring = calloc((size_t)limit, sizeof *ring))) return 0;
  pthread_mutex_lock(&r->mu);
  free(r->ring);
  r->ring = ring;
  r->head = r->count = 0;
  __atomic_store_n(&r->limit, limit > 0 ? limit : 0, __ATOMIC_RELEASE);
  pthread_mutex_unlock(&r->mu);
  return 1;
}

int ratelimit_get(struct ratelimit *r) {
  return __atomic_load_n(&r->limit, __ATOMIC_ACQUIRE);
}

int ratelimit_take(struct ratelimit *r, int64_t now) {
  int wait = 0;
  unsigned cap;
  if (ratelimit_get(r) == 0) return 0;
  pthread_mutex_lock(&r->mu);
  cap = (unsigned)r->limit;
  while (r->count > 0 && now - r->ring[r->head] >= WINDOW_US) {
    r->head = (r->head + 1) % cap;
    r->count--;
  }
  if (cap == 0) {
    wait = 0;
  } else if (r->count < cap) {
    r->ring[(r->head + r->count) % cap] = now;
    r->count++;
  } else {
    int64_t left = r->ring[r->head] + WINDOW_US - now;
    wait = (int)((left + 999999) / 1000000);
    if (wait < 1) wait = 1;
  }
  pthread_mutex_unlock(&r->mu);
  return wait;
}
