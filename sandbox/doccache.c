/* doccache: see doccache.h. */
#include "doccache.h"

#include <stdlib.h>
#include <string.h>

void doccache_init(struct doccache *c) {
  for (unsigned i = 0; i < DOCCACHE_SLOTS; i++) {
    struct doccache_slot *s = &c->slots[i];
    pthread_mutex_init(&s->mu, NULL);
    s->order = UINT32_MAX;
    s->body = NULL;
    s->len = 0;
  }
}

void doccache_free(struct doccache *c) {
  for (unsigned i = 0; i < DOCCACHE_SLOTS; i++) {
    free(c->slots[i].body);
    c->slots[i].body = NULL;
    pthread_mutex_destroy(&c->slots[i].mu);
  }
}

char *doccache_get(struct doccache *c, uint32_t order, uint64_t generation, sb_time now,
                   size_t *len) {
  struct doccache_slot *s = &c->slots[order % DOCCACHE_SLOTS];
  char *copy = NULL;
  pthread_mutex_lock(&s->mu);
  if (s->body && s->order == order && s->generation == generation && now >= s->from &&
      now < s->until && (copy = malloc(s->len + 1))) {
    memcpy(copy, s->body, s->len + 1);
    *len = s->len;
  }
  pthread_mutex_unlock(&s->mu);
  return copy;
}

void doccache_put(struct doccache *c, uint32_t order, uint64_t generation, sb_time from,
                  sb_time until, const char *body, size_t len) {
  char *copy;
  struct doccache_slot *s = &c->slots[order % DOCCACHE_SLOTS];
  if (len > DOCCACHE_MAX_BODY || from >= until) return;
  copy = malloc(len + 1);
  if (!copy) return;
  memcpy(copy, body, len + 1);
  pthread_mutex_lock(&s->mu);
  free(s->body);
  s->body = copy;
  s->len = len;
  s->order = order;
  s->generation = generation;
  s->from = from;
  s->until = until;
  pthread_mutex_unlock(&s->mu);
}
