/* doccache: recently rendered order documents.
 *
 * An order document changes only when the store changes (every exclusive
 * lock bumps store->generation) or when the virtual clock crosses one of the
 * order's change points (a task reaching its terminal step, expired_at):
 * docs_order_stable() gives the interval [from, until) around `now` in
 * which the rendering is constant. A cached body is reused for a request
 * whose (generation, now) falls inside its entry; anything else renders
 * again. Direct-mapped by order index over DOCCACHE_SLOTS slots, each with
 * its own mutex; bodies are copied in and out (callers own their copy).
 * Callers hold the store lock (shared suffices). */
#ifndef SANDBOX_DOCCACHE_H
#define SANDBOX_DOCCACHE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "timeutil.h"

#define DOCCACHE_SLOTS 1024
#define DOCCACHE_MAX_BODY (256 * 1024)

struct doccache_slot {
  pthread_mutex_t mu;
  uint32_t order;
  uint64_t generation;
  sb_time from, until;
  char *body;
  size_t len;
};

struct doccache {
  struct doccache_slot slots[DOCCACHE_SLOTS];
};

void doccache_init(struct doccache *c);
void doccache_free(struct doccache *c);
/* a malloc'd copy of the cached body, or NULL on a miss */
char *doccache_get(struct doccache *c, uint32_t order, uint64_t generation, sb_time now,
                   size_t *len);
void doccache_put(struct doccache *c, uint32_t order, uint64_t generation, sb_time from,
                  sb_time until, const char *body, size_t len);

#endif
