/* idmap: an index from keys to entity numbers (uint32).
 *
 * Open addressing with linear probing over 8-byte slots {entity+1, hash}.
 * The map stores no keys: the caller passes the key's 32-bit hash and an
 * equality callback that compares a key with the key of entity `index`, so
 * an entity table is the single owner of its ids. No deletion (the sandbox
 * never forgets an entity). Not thread-safe: the store's lock protects it.
 * idmap_put() fails (false) only when memory runs out. */
#ifndef SANDBOX_IDMAP_H
#define SANDBOX_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IDMAP_NONE UINT32_MAX

typedef bool (*idmap_eq_fn)(const void *ctx, uint32_t index, const void *key);

struct idmap_slot {
  uint32_t entity1; /* entity + 1; 0 = empty */
  uint32_t hash;
};

struct idmap {
  struct idmap_slot *slots;
  uint32_t mask, count;
};

void idmap_init(struct idmap *m);
void idmap_free(struct idmap *m);
uint32_t idmap_get(const struct idmap *m, uint32_t hash, idmap_eq_fn eq, const void *ctx,
                   const void *key);
/* adds entity under hash (the caller checked it is absent) */
bool idmap_put(struct idmap *m, uint32_t hash, uint32_t entity);

uint32_t idmap_hash_id(const uint8_t id[16]);
uint32_t idmap_hash_str(const char *s);

#endif
