/* The in-process de-duplication store (see truv/dedupe.h).
 *
 * Layout. Two open-addressing tables (linear probing, power-of-two size) of
 * 24-byte slots { 16-byte hash, int64 value }:
 *   seen: hash of a webhook id -> when its record expires, in ms;
 *   last: hash of an object key -> its newest updated_at (a double's bits).
 * Hashes are SHA-256 prefixes, one domain prefix per table. An all-zero hash
 * marks an empty slot, so a real one (probability 2^-128) is nudged.
 *
 * forget() shifts the rest of the cluster back instead of leaving a
 * tombstone. A table that would pass 0.7 load is rebuilt without its dead
 * slots (expired ids; ordering records past the retention), doubled until
 * the live ones fill at most half of it, so rebuilds are amortised O(1). */
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "truv/dedupe.h"

#define HASH_LEN 16
#define MIN_SIZE ((size_t)16)
#define MAX_SIZE ((size_t)1 << 40)
#define SEEN_PREFIX "truv-dedupe-id-v1:"
#define LAST_PREFIX "truv-dedupe-object-v1:"

typedef struct slot {
  unsigned char hash[HASH_LEN];
  int64_t value;
} slot;

typedef struct table {
  slot *slots;
  size_t mask, used;
} table;

/* Whether a slot survives a rebuild. */
typedef int (*keep_fn)(const slot *s, const void *ctx);

typedef struct dedupe_mem {
  truv_dedupe_store base; /* first: the store header */
  truv_hasher hasher;
  table seen, last;
  double newest; /* newest updated_at recorded: the retention's clock */
} dedupe_mem;

static const unsigned char zero_hash[HASH_LEN];

/* ---- tables ---- */

static int is_empty(const slot *s) {
  return memcmp(s->hash, zero_hash, HASH_LEN) == 0;
}

/* The slot holding hash, or the empty slot where it would go. */
static size_t probe(const table *t, const unsigned char *hash) {
  uint64_t h;
  size_t i;
  memcpy(&h, hash, sizeof h);
  for (i = (size_t)h & t->mask; !is_empty(&t->slots[i]); i = (i + 1) & t->mask)
    if (memcmp(t->slots[i].hash, hash, HASH_LEN) == 0) break;
  return i;
}

static int table_init(table *t, size_t size) {
  t->slots = calloc(size, sizeof *t->slots);
  t->mask = size - 1;
  t->used = 0;
  return t->slots ? 0 : -1;
}

/* Rebuilds t keeping the slots `keep` accepts (see the layout comment). */
static int rebuild(table *t, keep_fn keep, const void *ctx, truv_err *err) {
  size_t live = 0, size = t->mask + 1, i;
  table n;
  for (i = 0; i <= t->mask; i++) live += !is_empty(&t->slots[i]) && keep(&t->slots[i], ctx);
  while ((live + 1) * 2 > size && size < MAX_SIZE) size *= 2;
  if ((live + 1) * 2 > size || table_init(&n, size))
    return truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "dedupe store: out of memory");
  for (i = 0; i <= t->mask; i++) {
    const slot *s = &t->slots[i];
    if (!is_empty(s) && keep(s, ctx)) n.slots[probe(&n, s->hash)] = *s;
  }
  n.used = live;
  free(t->slots);
  *t = n;
  return 0;
}

/* The slot for hash, claimed (empty, value 0) if it was not there; *found
 * says which. Rebuilds first when a new slot would pass 0.7 load. */
static int claim(table *t, const unsigned char *hash, keep_fn keep, const void *ctx, slot **out,
                 int *found, truv_err *err) {
  size_t i = probe(t, hash);
  int rc;
  *found = !is_empty(&t->slots[i]);
  if (!*found) {
    if ((t->used + 1) * 10 > (t->mask + 1) * 7) {
      if ((rc = rebuild(t, keep, ctx, err))) return rc;
      i = probe(t, hash);
    }
    memcpy(t->slots[i].hash, hash, HASH_LEN);
    t->slots[i].value = 0;
    t->used++;
  }
  *out = &t->slots[i];
  return 0;
}

/* Empties slot i and moves back the slots after it that probed past it. */
static void table_delete(table *t, size_t i) {
  size_t j = i;
  for (;;) {
    uint64_t h;
    size_t home;
    j = (j + 1) & t->mask;
    if (is_empty(&t->slots[j])) break;
    memcpy(&h, t->slots[j].hash, sizeof h);
    home = (size_t)h & t->mask;
    /* j may fill the hole at i unless its home lies cyclically in (i, j] */
    if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
      t->slots[i] = t->slots[j];
      i = j;
    }
  }
  memset(&t->slots[i], 0, sizeof t->slots[i]);
  t->used--;
}

/* ---- the contract ---- */

static int hash_of(dedupe_mem *m, const char *prefix, const char *s, size_t len,
                   unsigned char *hash, truv_err *err) {
  int rc = truv_hash16(&m->hasher, prefix, s, len, hash, err);
  if (!rc && memcmp(hash, zero_hash, HASH_LEN) == 0) hash[HASH_LEN - 1] = 1;
  return rc;
}

static int unexpired(const slot *s, const void *now_ms) {
  return s->value > *(const int64_t *)now_ms;
}

static int mem_seen(truv_dedupe_store *st, const char *id, size_t len, double now, double ttl_s,
                    int *first, truv_err *err) {
  dedupe_mem *m = (dedupe_mem *)st;
  unsigned char hash[HASH_LEN];
  int64_t now_ms = truv_store_ms(now);
  slot *s;
  int found, rc;
  if ((rc = hash_of(m, SEEN_PREFIX, id, len, hash, err)) ||
      (rc = claim(&m->seen, hash, unexpired, &now_ms, &s, &found, err)))
    return rc;
  *first = !found || s->value <= now_ms;
  if (*first) s->value = now_ms + truv_store_ms(ttl_s);
  return 0;
}

static double as_double(int64_t bits) {
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

static int within_retention(const slot *s, const void *oldest) {
  return as_double(s->value) >= *(const double *)oldest;
}

static int mem_last_update(truv_dedupe_store *st, const char *object_key, size_t len,
                           double updated_at, int *is_newer, truv_err *err) {
  dedupe_mem *m = (dedupe_mem *)st;
  unsigned char hash[HASH_LEN];
  double oldest = m->newest - TRUV_DEDUPE_ORDER_RETENTION_S;
  slot *s;
  int found, rc;
  if ((rc = hash_of(m, LAST_PREFIX, object_key, len, hash, err)) ||
      (rc = claim(&m->last, hash, within_retention, &oldest, &s, &found, err)))
    return rc;
  *is_newer = !found || updated_at >= as_double(s->value);
  if (*is_newer) memcpy(&s->value, &updated_at, sizeof s->value);
  if (updated_at > m->newest) m->newest = updated_at;
  return 0;
}

static int mem_forget(truv_dedupe_store *st, const char *id, size_t len, truv_err *err) {
  dedupe_mem *m = (dedupe_mem *)st;
  unsigned char hash[HASH_LEN];
  size_t i;
  int rc;
  if ((rc = hash_of(m, SEEN_PREFIX, id, len, hash, err))) return rc;
  i = probe(&m->seen, hash);
  if (!is_empty(&m->seen.slots[i])) table_delete(&m->seen, i);
  return 0;
}

static void mem_close(truv_dedupe_store *st) {
  dedupe_mem *m = (dedupe_mem *)st;
  truv_hasher_free(&m->hasher);
  free(m->seen.slots);
  free(m->last.slots);
  free(m);
}

static const truv_dedupe_ops memory_ops = {mem_seen, mem_last_update, mem_forget, mem_close};

truv_dedupe_store *truv_dedupe_memory(size_t expected, truv_err *err) {
  size_t size = MIN_SIZE;
  dedupe_mem *m = calloc(1, sizeof *m);
  truv_err_clear(err);
  while (size < MAX_SIZE && size / 10 * 7 < expected) size *= 2;
  if (!m) goto oom;
  m->base.ops = &memory_ops;
  m->newest = -TRUV_STORE_MAX_TIME;
  if (truv_hasher_init(&m->hasher, err)) goto fail;
  if (table_init(&m->seen, size) || table_init(&m->last, MIN_SIZE)) goto oom;
  return &m->base;
oom:
  truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "dedupe store: out of memory");
fail:
  if (m) mem_close(&m->base);
  return NULL;
}
