/* idmap: see idmap.h. */
#include "idmap.h"

#include <stdlib.h>
#include <string.h>

void idmap_init(struct idmap *m) {
  memset(m, 0, sizeof *m);
}

void idmap_free(struct idmap *m) {
  free(m->slots);
  memset(m, 0, sizeof *m);
}

uint32_t idmap_get(const struct idmap *m, uint32_t hash, idmap_eq_fn eq, const void *ctx,
                   const void *key) {
  if (!m->slots) return IDMAP_NONE;
  for (uint32_t i = hash & m->mask;; i = (i + 1) & m->mask) {
    const struct idmap_slot *s = &m->slots[i];
    if (s->entity1 == 0) return IDMAP_NONE;
    if (s->hash == hash && eq(ctx, s->entity1 - 1, key)) return s->entity1 - 1;
  }
}

static void place(struct idmap_slot *slots, uint32_t mask, struct idmap_slot s) {
  uint32_t i = s.hash & mask;
  while (slots[i].entity1 != 0) i = (i + 1) & mask;
  slots[i] = s;
}

static bool grow(struct idmap *m) {
  uint32_t cap = m->slots ? (m->mask + 1) * 2 : 1024;
  struct idmap_slot *slots = calloc(cap, sizeof *slots);
  if (!slots) return false;
  for (uint32_t i = 0; m->slots && i <= m->mask; i++)
    if (m->slots[i].entity1) place(slots, cap - 1, m->slots[i]);
  free(m->slots);
  m->slots = slots;
  m->mask = cap - 1;
  return true;
}

bool idmap_put(struct idmap *m, uint32_t hash, uint32_t entity) {
  /* keep the load factor at or below 1/2: probes stay short */
  if ((!m->slots || (uint64_t)(m->count + 1) * 2 > (uint64_t)m->mask + 1) && !grow(m)) return false;
  place(m->slots, m->mask, (struct idmap_slot){entity + 1, hash});
  m->count++;
  return true;
}

uint32_t idmap_hash_id(const uint8_t id[16]) {
  uint32_t a, b;
  memcpy(&a, id, 4);
  memcpy(&b, id + 8, 4);
  return (a ^ (b * 0x9e3779b1u)) * 0x85ebca6bu;
}

uint32_t idmap_hash_str(const char *s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  h ^= h >> 29;
  return (uint32_t)(h ^ (h >> 32));
}
