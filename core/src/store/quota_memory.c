/* The in-process quota store (see truv/quota.h).
 *
 * Layout. One open-addressing table of records, `stride` bytes each:
 *
 *   [16-byte key][limit x uint64 stamp]          40 bytes at limit 3
 *
 * A stamp is one entry: (ms + 2^47) << 16 | tag, the time in milliseconds
 * (biased so that every accepted time is positive) above a 16-bit tag. Stamps
 * sort by time; unused ones hold STAMP_EMPTY (all ones) and sort last, so a
 * record's used entries come first, oldest first. A reservation's ticket is
 * its stamp (tag >= 1); record_limit's entries carry tag 0, which no ticket
 * has. A free slot has stamp 0 in its first entry, which no entry has.
 *
 * Why this shape: a reserve on one of a million connections costs one cache
 * miss when the record sits in the table itself, where an index pointing to
 * a separate record array costs two dependent misses (measured here: 2 M/s
 * against the 5 M/s target). Inline records must be small for the table to
 * stay under 64 bytes per connection, hence stamps of 8 bytes for both the
 * time and the ticket, and a high load: Robin Hood linear probing keeps
 * probes short at 0.8 load. The slot for a key is found by the key's first 4
 * bytes scaled to the table size (the key is a SHA-256 prefix: uniform), so
 * sizes need not be powers of two.
 *
 * Growth. Records are never removed one by one (no tombstones, no backward
 * shifts). When a new record would pass 0.8 load, the table is rebuilt
 * without the records whose entries all left the window, at the size that
 * puts the rest at 0.65 load: 40 / 0.8 = 50 to 40 / 0.65 = 62 bytes per
 * connection at limit 3, and at least 0.15 of the table is inserted between
 * two rebuilds, so their cost is amortised O(1).
 *
 * Tags come from a 16-bit counter per store, skipping any value whose stamp
 * one of the reserved keys already holds, so a ticket names exactly one
 * reservation on its keys. A ticket can only repeat (and a second release of
 * the older one then hit the newer) if 65535 reservations share one
 * millisecond, which takes an injected frozen clock.
 *
 * Connection facts (note/facts) live in a second table, apart from the
 * records above so that those stay as small: linear probing over records of
 * a key, one instant per fact and the reason, grown (pruned of the keys
 * whose latest instant is older than the retention) at 0.7 load. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* madvise(MADV_HUGEPAGE): see big_table() */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "store.h"
#include "truv/quota.h"

#define KEY_LEN TRUV_QUOTA_KEY_LEN
#define MS_BIAS ((int64_t)1 << 47)
#define STAMP_EMPTY UINT64_MAX
#define SLOT_FREE ((uint64_t)0)
#define MIN_SIZE ((size_t)16)
#define MAX_SIZE ((size_t)UINT32_MAX) /* slots are found from 32 bits of the key */
#define FOUND_MAX 8                   /* reserve() remembers this many records */

/* One connection's facts (see the top). */
typedef struct fact_rec {
  unsigned char key[KEY_LEN];
  int64_t at_ms[TRUV_FACT_COUNT];
  unsigned char seen; /* 0: a free slot */
  char reason[TRUV_QUOTA_REASON_MAX];
} fact_rec;

typedef struct memstore {
  truv_quota_store base; /* first: the store header */
  int limit;
  int64_t window_ms;
  size_t stride; /* 16 + 8 * limit */
  unsigned char *slots;
  size_t size, used, max_used;
  unsigned char *carry, *spare, *fresh; /* stride-sized scratch records */
  uint16_t last_tag;
  fact_rec *facts;     /* the facts table (NULL until a first note) */
  size_t fsize, fused; /* slots (a power of two), records */
} memstore;

/* ---- stamps ---- */

static uint64_t stamp_of(int64_t ms, uint16_t tag) {
  return (uint64_t)(ms + MS_BIAS) << 16 | tag;
}

static int64_t stamp_ms(uint64_t stamp) {
  return (int64_t)(stamp >> 16) - MS_BIAS;
}

/* ---- records ---- */

static uint64_t rec_get(const unsigned char *rec, int i) {
  uint64_t v;
  memcpy(&v, rec + KEY_LEN + 8 * (size_t)i, sizeof v);
  return v;
}

static void rec_put(unsigned char *rec, int i, uint64_t v) {
  memcpy(rec + KEY_LEN + 8 * (size_t)i, &v, sizeof v);
}

static int rec_count(const memstore *m, const unsigned char *rec) {
  int n = 0;
  while (n < m->limit && rec_get(rec, n) != STAMP_EMPTY) n++;
  return n;
}

/* Removes `gone` entries from i on, keeping the order; count is the number
 * used. (Loops, not memmove: a few entries, on the hot path.) */
static void rec_remove_n(unsigned char *rec, int i, int gone, int count) {
  for (; i + gone < count; i++) rec_put(rec, i, rec_get(rec, i + gone));
  for (; i < count; i++) rec_put(rec, i, STAMP_EMPTY);
}

static void rec_remove(unsigned char *rec, int i, int count) {
  rec_remove_n(rec, i, 1, count);
}

/* Drops the entries that left the window at now_ms (a prefix: they are
 * sorted); returns how many remain. */
static int rec_prune(const memstore *m, unsigned char *rec, int64_t now_ms) {
  uint64_t keep_from = stamp_of(now_ms - m->window_ms + 1, 0); /* t <= now - window left */
  int count = rec_count(m, rec), gone = 0;
  while (gone < count && rec_get(rec, gone) < keep_from) gone++;
  if (gone) rec_remove_n(rec, 0, gone, count);
  return count - gone;
}

/* Inserts a stamp in order; count < limit. */
static void rec_add(unsigned char *rec, int count, uint64_t stamp) {
  int i = count;
  for (; i > 0 && rec_get(rec, i - 1) > stamp; i--) rec_put(rec, i, rec_get(rec, i - 1));
  rec_put(rec, i, stamp);
}

static int rec_holds(const unsigned char *rec, int count, uint64_t stamp) {
  int i;
  for (i = 0; i < count; i++)
    if (rec_get(rec, i) == stamp) return 1;
  return 0;
}

/* When a full record (count >= limit) has room again: its limit-th newest
 * entry leaves the window. */
static int64_t rec_frees_at(const memstore *m, const unsigned char *rec, int count) {
  return stamp_ms(rec_get(rec, count - m->limit)) + m->window_ms;
}

/* ---- the table ---- */

static unsigned char *slot_at(const memstore *m, size_t i) {
  return m->slots + i * m->stride;
}

static int slot_free(const unsigned char *rec) {
  return rec_get(rec, 0) == SLOT_FREE;
}

static size_t home_of(const memstore *m, const unsigned char *key) {
  uint32_t h;
  memcpy(&h, key, sizeof h);
  return (size_t)(((uint64_t)h * m->size) >> 32);
}

/* How far slot i is from the home of the record in it. */
static size_t distance(const memstore *m, size_t i, const unsigned char *rec) {
  size_t home = home_of(m, rec);
  return i >= home ? i - home : i + m->size - home;
}

static int same_key(const unsigned char *a, const unsigned char *b) {
  uint64_t a0, a1, b0, b1;
  memcpy(&a0, a, 8);
  memcpy(&a1, a + 8, 8);
  memcpy(&b0, b, 8);
  memcpy(&b1, b + 8, 8);
  return a0 == b0 && a1 == b1;
}

static unsigned char *find(const memstore *m, const unsigned char *key) {
  size_t i = home_of(m, key), d;
  for (d = 0;; d++) {
    unsigned char *rec = slot_at(m, i);
    if (slot_free(rec)) return NULL;
    if (same_key(rec, key)) return rec;
    if (distance(m, i, rec) < d) return NULL; /* it would have displaced this one */
    if (++i == m->size) i = 0;
  }
}

/* Robin Hood insertion of a record whose key is absent; room was made.
 * Returns where that record landed. */
static unsigned char *place(memstore *m, const unsigned char *record) {
  unsigned char *landed = NULL;
  size_t i, d = 0;
  memcpy(m->carry, record, m->stride);
  for (i = home_of(m, record);; d++) {
    unsigned char *rec = slot_at(m, i);
    size_t e;
    if (slot_free(rec)) {
      memcpy(rec, m->carry, m->stride);
      m->used++;
      return landed ? landed : rec;
    }
    if ((e = distance(m, i, rec)) < d) { /* the richer record moves on */
      memcpy(m->spare, rec, m->stride);
      memcpy(rec, m->carry, m->stride);
      memcpy(m->carry, m->spare, m->stride);
      if (!landed) landed = rec;
      d = e;
    }
    if (++i == m->size) i = 0;
  }
}

/* Adds an empty record for a key that is absent; room was made. */
static unsigned char *add(memstore *m, const truv_quota_key *key) {
  memcpy(m->fresh, key->bytes, KEY_LEN);
  memset(m->fresh + KEY_LEN, 0xff, m->stride - KEY_LEN);
  return place(m, m->fresh);
}

static unsigned char *find_or_add(memstore *m, const truv_quota_key *key) {
  unsigned char *rec = find(m, key->bytes);
  return rec ? rec : add(m, key);
}

/* 80% (the growth point) and 65% (after a rebuild) of n, without overflow. */
static size_t percent(size_t n, size_t p) {
  return n / 100 * p + n % 100 * p / 100;
}

/* A zeroed table of n bytes. A big one is backed by huge pages where Linux
 * offers them on request: a reserve is one random access into the table,
 * and with 4 KB pages its TLB miss costs about as much again as the cache
 * miss itself (measured here: 213 against 166 ns a random load). */
static unsigned char *big_table(size_t n) {
  unsigned char *p = calloc(n, 1);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const size_t huge = (size_t)2 << 20;
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  if (p && n >= 2 * huge && page > 0) {
    uintptr_t from = ((uintptr_t)p + page - 1) / page * page;
    uintptr_t to = ((uintptr_t)p + n) / page * page;
    madvise((void *)from, to - from, MADV_HUGEPAGE); /* advice: failure is harmless */
  }
#endif
  return p;
}

/* Rebuilds at `size` slots: allocates first (so a failure changes nothing),
 * then moves over the records that still have an entry in the window. */
static int rebuild(memstore *m, size_t size, int64_t now_ms, truv_err *err) {
  unsigned char *old = m->slots, *slots = big_table(size * m->stride);
  size_t old_size = m->size, i;
  if (!slots)
    return truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "quota store: out of memory");
  m->slots = slots;
  m->size = size;
  m->used = 0;
  m->max_used = percent(size, 80);
  for (i = 0; i < old_size; i++) {
    unsigned char *rec = old + i * m->stride;
    if (!slot_free(rec) && rec_prune(m, rec, now_ms) > 0) place(m, rec);
  }
  free(old);
  return 0;
}

/* Makes room for `more` new records (see Growth above). */
static int make_room(memstore *m, size_t more, int64_t now_ms, truv_err *err) {
  size_t live = 0, need, size, i;
  if (more <= m->max_used - m->used) return 0;
  for (i = 0; i < m->size; i++) {
    const unsigned char *rec = slot_at(m, i);
    int c = slot_free(rec) ? 0 : rec_count(m, rec);
    live += c > 0 && stamp_ms(rec_get(rec, c - 1)) > now_ms - m->window_ms;
  }
  if (more > percent(MAX_SIZE, 65) || live > percent(MAX_SIZE, 65) - more) goto full;
  need = live + more;
  size = need / 65 * 100 + need % 65 * 100 / 65 + 1;
  if (size < MIN_SIZE) size = MIN_SIZE;
  if (size > SIZE_MAX / m->stride) goto full;
  return rebuild(m, size, now_ms, err);
full:
  return truv_err_set(err, TRUV_EINTERNAL, "quota_store_full",
                      "quota store: too many connections for one memory store");
}

static uint16_t next_tag(memstore *m) {
  if (++m->last_tag == 0) m->last_tag = 1;
  return m->last_tag;
}

/* A tag whose stamp at now_ms none of the keys holds (see the top). */
static uint16_t fresh_tag(memstore *m, const truv_quota_key *keys, size_t n, int64_t now_ms) {
  size_t i;
  uint16_t tag;
  do {
    tag = next_tag(m);
    for (i = 0; i < n; i++) {
      const unsigned char *rec = find(m, keys[i].bytes);
      if (rec && rec_holds(rec, rec_count(m, rec), stamp_of(now_ms, tag))) break;
    }
  } while (i < n);
  return tag;
}

/* ---- the contract ---- */

static int mem_reserve(truv_quota_store *s, const truv_quota_key *keys, size_t n, double now,
                       truv_quota_ticket *ticket, double *not_before, unsigned char *spent,
                       truv_err *err) {
  memstore *m = (memstore *)s;
  int64_t now_ms = truv_store_ms(now), latest = INT64_MIN;
  unsigned char *found[FOUND_MAX]; /* phase 1's records, valid until an add */
  uint64_t stamp;
  int same_ms = 0, moved = 0, rc;
  size_t i;
  if ((rc = make_room(m, n, now_ms, err))) return rc;
  for (i = 0; i < n; i++) {
    unsigned char *rec = find(m, keys[i].bytes);
    int c = rec ? rec_prune(m, rec, now_ms) : 0;
    int64_t frees_at;
    if (i < FOUND_MAX) found[i] = rec;
    if (c > 0 && stamp_ms(rec_get(rec, c - 1)) >= now_ms) same_ms = 1;
    if (c < m->limit) continue;
    if (spent) spent[i] = 1;
    if ((frees_at = rec_frees_at(m, rec, c)) > latest) latest = frees_at;
  }
  if (latest != INT64_MIN) {
    *not_before = (double)latest / 1000.0;
    return TRUV_EQUOTA;
  }
  /* only an entry at now_ms can share the stamp: look for a free tag then */
  stamp = stamp_of(now_ms, same_ms ? fresh_tag(m, keys, n, now_ms) : next_tag(m));
  for (i = 0; i < n; i++) {
    unsigned char *rec = i < FOUND_MAX && !moved ? found[i] : NULL;
    if (truv_quota_key_repeats(keys, i)) continue;
    if (!rec && !(rec = find(m, keys[i].bytes))) {
      rec = add(m, &keys[i]);
      moved = 1; /* Robin Hood may have shifted the records found */
    }
    rec_add(rec, rec_count(m, rec), stamp);
  }
  *ticket = stamp;
  return 0;
}

static int mem_release(truv_quota_store *s, const truv_quota_key *keys, size_t n,
                       truv_quota_ticket ticket, truv_err *err) {
  memstore *m = (memstore *)s;
  size_t i;
  (void)err;
  if ((ticket & 0xffff) == 0) return 0; /* not a ticket: record_limit's entries */
  for (i = 0; i < n; i++) {
    unsigned char *rec = find(m, keys[i].bytes);
    int c = rec ? rec_count(m, rec) : 0, j = 0;
    while (j < c) {
      if (rec_get(rec, j) == ticket) rec_remove(rec, j, c--);
      else j++;
    }
  }
  return 0;
}

static int mem_record_limit(truv_quota_store *s, const truv_quota_key *key, double now,
                            truv_err *err) {
  memstore *m = (memstore *)s;
  int64_t now_ms = truv_store_ms(now);
  unsigned char *rec;
  int c, rc;
  if ((rc = make_room(m, 1, now_ms, err))) return rc;
  rec = find_or_add(m, key);
  c = rec_prune(m, rec, now_ms);
  while (c > 0 && stamp_ms(rec_get(rec, 0)) < now_ms) rec_remove(rec, 0, c--);
  while (c < m->limit) rec_add(rec, c++, stamp_of(now_ms, 0));
  return 0;
}

/* times: in the window, oldest first, at most limit (the dispatcher's). */
static int mem_record_count(truv_quota_store *s, const truv_quota_key *key, const double *times,
                            size_t n, double now, truv_err *err) {
  memstore *m = (memstore *)s;
  int64_t now_ms = truv_store_ms(now);
  unsigned char *rec;
  int c, rc;
  size_t i;
  if ((rc = make_room(m, 1, now_ms, err))) return rc;
  rec = find_or_add(m, key);
  c = rec_prune(m, rec, now_ms);
  for (i = 0; c < (int)n; i++) rec_add(rec, c++, stamp_of(truv_store_ms(times[i]), 0));
  return 0;
}

static int mem_usage(truv_quota_store *s, const truv_quota_key *key, double now, int *used,
                     double *next_free, truv_err *err) {
  memstore *m = (memstore *)s;
  unsigned char *rec = find(m, key->bytes);
  int c = rec ? rec_prune(m, rec, truv_store_ms(now)) : 0;
  (void)err;
  *used = c;
  *next_free = c >= m->limit ? (double)rec_frees_at(m, rec, c) / 1000.0 : 0;
  return 0;
}

/* ---- connection facts ---- */

static size_t fact_home(const memstore *m, const unsigned char *key) {
  uint64_t h;
  memcpy(&h, key, sizeof h);
  return (size_t)(h & (m->fsize - 1));
}

/* The record of `key`, or the free slot where it would go (NULL when the
 * table is empty). */
static fact_rec *fact_slot(const memstore *m, const unsigned char *key) {
  size_t i;
  if (!m->fsize) return NULL;
  for (i = fact_home(m, key);; i = (i + 1) & (m->fsize - 1)) {
    fact_rec *r = &m->facts[i];
    if (!r->seen || memcmp(r->key, key, KEY_LEN) == 0) return r;
  }
}

static int64_t fact_latest(const fact_rec *r) {
  int64_t latest = INT64_MIN;
  int f;
  for (f = 0; f < TRUV_FACT_COUNT; f++)
    if ((r->seen & (1u << f)) && r->at_ms[f] > latest) latest = r->at_ms[f];
  return latest;
}

/* Rebuilds the facts table with room for one more record, without the
 * records whose latest instant is older than the retention at now_ms. */
static int facts_grow(memstore *m, int64_t now_ms, truv_err *err) {
  int64_t keep_from = now_ms - truv_store_ms(TRUV_QUOTA_FACT_RETENTION_S);
  fact_rec *old = m->facts;
  size_t old_size = m->fsize, live = 0, size = 16, i;
  for (i = 0; i < old_size; i++) live += old[i].seen && fact_latest(&old[i]) >= keep_from;
  while (size / 10 * 7 <= live + 1) {
    if (size > SIZE_MAX / 2 / sizeof *old) goto oom;
    size *= 2;
  }
  if (!(m->facts = calloc(size, sizeof *old))) {
    m->facts = old;
    goto oom;
  }
  m->fsize = size;
  m->fused = 0;
  for (i = 0; i < old_size; i++) {
    if (old[i].seen && fact_latest(&old[i]) >= keep_from) {
      *fact_slot(m, old[i].key) = old[i];
      m->fused++;
    }
  }
  free(old);
  return 0;
oom:
  return truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "quota store: out of memory");
}

static int mem_note(truv_quota_store *s, const truv_quota_key *key, truv_quota_fact fact, double at,
                    const char *reason, truv_err *err) {
  memstore *m = (memstore *)s;
  int64_t at_ms = truv_store_ms(at);
  fact_rec *r = fact_slot(m, key->bytes);
  int rc;
  if (!r || (!r->seen && m->fused + 1 > m->fsize / 10 * 7)) {
    if ((rc = facts_grow(m, at_ms, err))) return rc;
    r = fact_slot(m, key->bytes);
  }
  if (!r->seen) {
    memset(r, 0, sizeof *r);
    memcpy(r->key, key->bytes, KEY_LEN);
    m->fused++;
  }
  if ((r->seen & (1u << fact)) && r->at_ms[fact] > at_ms) return 0; /* an older sighting */
  r->seen |= (unsigned char)(1u << fact);
  r->at_ms[fact] = at_ms;
  if (fact == TRUV_FACT_DEAD) snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "");
  return 0;
}

static int mem_facts(truv_quota_store *s, const truv_quota_key *key, truv_quota_facts *out,
                     truv_err *err) {
  memstore *m = (memstore *)s;
  const fact_rec *r = fact_slot(m, key->bytes);
  (void)err;
  if (!r || !r->seen) return 0;
  out->seen = r->seen;
  if (r->seen & (1u << TRUV_FACT_DEAD)) out->dead_at = (double)r->at_ms[TRUV_FACT_DEAD] / 1000.0;
  if (r->seen & (1u << TRUV_FACT_ALIVE)) out->alive_at = (double)r->at_ms[TRUV_FACT_ALIVE] / 1000.0;
  if (r->seen & (1u << TRUV_FACT_AUTH)) out->auth_at = (double)r->at_ms[TRUV_FACT_AUTH] / 1000.0;
  memcpy(out->dead_reason, r->reason, sizeof out->dead_reason);
  return 0;
}

static void mem_close(truv_quota_store *s) {
  memstore *m = (memstore *)s;
  free(m->facts);
  free(m->slots);
  free(m->carry);
  free(m);
}

static const truv_quota_ops memory_ops = {
  mem_reserve, mem_release,      mem_record_limit, mem_usage,
  mem_close,   mem_record_count, mem_note,         mem_facts,
};

truv_quota_store *truv_quota_memory(const truv_quota_policy *policy, size_t expected_connections,
                                    truv_err *err) {
  truv_quota_policy p = policy ? *policy : truv_quota_policy_default();
  size_t size = MIN_SIZE;
  memstore *m;
  if (truv_quota_policy_check(&p, err)) return NULL; /* clears err */
  if (expected_connections > percent(MAX_SIZE, 75)) expected_connections = percent(MAX_SIZE, 75);
  if (expected_connections / 3 * 4 > size) size = expected_connections / 3 * 4 + 1;
  if (!(m = calloc(1, sizeof *m))) goto oom;
  m->base.ops = &memory_ops;
  m->base.policy = p;
  m->limit = p.limit;
  m->window_ms = truv_store_ms(p.window_s);
  m->stride = KEY_LEN + 8 * (size_t)p.limit;
  if (!(m->carry = malloc(3 * m->stride))) goto oom;
  m->spare = m->carry + m->stride;
  m->fresh = m->spare + m->stride;
  if (rebuild(m, size, 0, err)) goto fail;
  return &m->base;
oom:
  truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "quota store: out of memory");
fail:
  if (m) mem_close(&m->base);
  return NULL;
}
