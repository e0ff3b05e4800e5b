/* The in-process quota store (see truv/quota.h).
 *
 * Layout. Per-connection records sit in one dense array, `stride` bytes each:
 *
 *   [16-byte key][limit x int64 time in ms][limit x uint32 ticket]
 *
 * 52 bytes at limit 3. A record's times are sorted ascending; unused entries
 * hold EMPTY_MS (INT64_MAX), so they sort last and the used ones come first.
 * Strides need not be multiples of 8, so entries are read with memcpy.
 *
 * The index is an open-addressing table (linear probing, power-of-two size) of
 * uint32 record numbers + 1, 0 marking an empty slot, hashed by the key's
 * first 8 bytes (the key is a SHA-256 prefix: uniform already). Keeping the
 * records out of the table lets it run at 0.35 to 0.7 load for 4 bytes a
 * slot instead of 52: about 60 bytes per connection in all, where slots
 * holding whole records would need 75 to 150.
 *
 * Records are never removed one by one, so the index needs no tombstones. A
 * record whose entries all left the window stays until the index would pass
 * 0.7 load; then records are compacted (dropping those) and the index rebuilt,
 * doubled until the live records fill at most half of it, so rebuilds are
 * amortised O(1) per new connection.
 *
 * Tickets come from a 32-bit counter (wrapping, skipping 0): a release could
 * only hit another reservation's entries after 2^32 reservations on one
 * store, and then only on the keys it names. */
#include <stdlib.h>
#include <string.h>

#include "quota_store.h"
#include "truv/quota.h"

#define EMPTY_MS INT64_MAX
#define KEY_LEN TRUV_QUOTA_KEY_LEN
#define MIN_INDEX ((size_t)16)
#define MAX_INDEX ((size_t)1 << 31)   /* record numbers must fit a uint32 */

typedef struct memstore {
  truv_quota_store base;   /* first: the store header */
  int limit;
  int64_t window_ms;
  size_t stride;
  unsigned char *records;  /* nrec used, room for rec_cap */
  size_t nrec, rec_cap;    /* rec_cap = 7/10 of the index size: the growth point */
  uint32_t *index;
  size_t mask;             /* index size - 1 */
  uint32_t last_ticket;
} memstore;

/* ---- records ---- */

static unsigned char *rec_at(const memstore *m, size_t i) {
  return m->records + i * m->stride;
}

static int64_t rec_ms(const memstore *m, const unsigned char *rec, int i) {
  int64_t v;
  (void)m;   /* uniform with the other accessors */
  memcpy(&v, rec + KEY_LEN + 8 * (size_t)i, sizeof v);
  return v;
}

static uint32_t rec_ticket(const memstore *m, const unsigned char *rec, int i) {
  uint32_t v;
  memcpy(&v, rec + KEY_LEN + 8 * (size_t)m->limit + 4 * (size_t)i, sizeof v);
  return v;
}

static void rec_set(const memstore *m, unsigned char *rec, int i, int64_t ms, uint32_t ticket) {
  memcpy(rec + KEY_LEN + 8 * (size_t)i, &ms, sizeof ms);
  memcpy(rec + KEY_LEN + 8 * (size_t)m->limit + 4 * (size_t)i, &ticket, sizeof ticket);
}

static int rec_count(const memstore *m, const unsigned char *rec) {
  int n = 0;
  while (n < m->limit && rec_ms(m, rec, n) != EMPTY_MS) n++;
  return n;
}

/* Removes entry i, keeping the order; count is the number used. */
static void rec_remove(const memstore *m, unsigned char *rec, int i, int count) {
  for (; i + 1 < count; i++) rec_set(m, rec, i, rec_ms(m, rec, i + 1), rec_ticket(m, rec, i + 1));
  rec_set(m, rec, count - 1, EMPTY_MS, 0);
}

/* Drops the entries that left the window at now_ms (a prefix, as times are
 * sorted); returns how many remain. */
static int rec_prune(const memstore *m, unsigned char *rec, int64_t now_ms) {
  int64_t gone_before = now_ms - m->window_ms;   /* t <= this has left */
  int count = rec_count(m, rec);
  while (count > 0 && rec_ms(m, rec, 0) <= gone_before) rec_remove(m, rec, 0, count--);
  return count;
}

/* Inserts an entry in time order; count < limit. */
static void rec_add(const memstore *m, unsigned char *rec, int count, int64_t ms,
                    uint32_t ticket) {
  int i = count;
  for (; i > 0 && rec_ms(m, rec, i - 1) > ms; i--)
    rec_set(m, rec, i, rec_ms(m, rec, i - 1), rec_ticket(m, rec, i - 1));
  rec_set(m, rec, i, ms, ticket);
}

/* When a full record (count >= limit) has room again: its limit-th newest
 * entry leaves the window. */
static int64_t rec_frees_at(const memstore *m, const unsigned char *rec, int count) {
  return rec_ms(m, rec, count - m->limit) + m->window_ms;
}

/* ---- index ---- */

static size_t home_of(const memstore *m, const unsigned char *key) {
  uint64_t h;
  memcpy(&h, key, sizeof h);
  return (size_t)h & m->mask;
}

/* The index slot holding key, or the empty slot where it would go. */
static size_t slot_of(const memstore *m, const unsigned char *key) {
  size_t i = home_of(m, key);
  uint32_t r;
  while ((r = m->index[i]) != 0 && memcmp(rec_at(m, r - 1), key, KEY_LEN) != 0)
    i = (i + 1) & m->mask;
  return i;
}

static unsigned char *find(const memstore *m, const truv_quota_key *key) {
  uint32_t r = m->index[slot_of(m, key->bytes)];
  return r ? rec_at(m, r - 1) : NULL;
}

/* The record of key, added empty if missing: make_room() ran before. */
static unsigned char *find_or_add(memstore *m, const truv_quota_key *key) {
  size_t i = slot_of(m, key->bytes);
  unsigned char *rec;
  int j;
  if (m->index[i]) return rec_at(m, m->index[i] - 1);
  rec = rec_at(m, m->nrec);
  memcpy(rec, key->bytes, KEY_LEN);
  for (j = 0; j < m->limit; j++) rec_set(m, rec, j, EMPTY_MS, 0);
  m->index[i] = (uint32_t)++m->nrec;
  return rec;
}

/* 7/10 of an index size, without overflow. */
static size_t growth_point(size_t size) {
  return size / 10 * 7 + size % 10 * 7 / 10;
}

/* Rebuilds with an index of `size` slots: allocates first (so a failure
 * changes nothing), then compacts the live records and re-indexes them. */
static int rebuild(memstore *m, size_t size, int64_t now_ms, truv_err *err) {
  size_t cap = growth_point(size), i, w = 0;
  uint32_t *index = calloc(size, sizeof *index);
  if (!index) goto oom;
  if (cap > m->rec_cap) {
    unsigned char *records = realloc(m->records, cap * m->stride);
    if (!records) goto oom;
    m->records = records;
    m->rec_cap = cap;
  }
  for (i = 0; i < m->nrec; i++) {
    unsigned char *rec = rec_at(m, i);
    if (rec_prune(m, rec, now_ms) == 0) continue;
    if (w != i) memmove(rec_at(m, w), rec, m->stride);
    w++;
  }
  free(m->index);
  m->index = index;
  m->mask = size - 1;
  m->nrec = w;
  for (i = 0; i < w; i++) index[slot_of(m, rec_at(m, i))] = (uint32_t)(i + 1);
  return 0;
oom:
  free(index);
  return truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "quota store: out of memory");
}

/* Makes room for `more` new records (see the layout comment). */
static int make_room(memstore *m, size_t more, int64_t now_ms, truv_err *err) {
  size_t live = 0, size = m->mask + 1, i;
  if (more <= m->rec_cap && m->nrec <= m->rec_cap - more) return 0;
  for (i = 0; i < m->nrec; i++) {
    const unsigned char *rec = rec_at(m, i);
    int c = rec_count(m, rec);
    live += c > 0 && rec_ms(m, rec, c - 1) > now_ms - m->window_ms;
  }
  if (live > MAX_INDEX / 2 || more > MAX_INDEX / 2 - live) goto full;
  while ((live + more) * 2 > size) size *= 2;
  if (size > MAX_INDEX || growth_point(size) > SIZE_MAX / m->stride) goto full;
  return rebuild(m, size, now_ms, err);
full:
  return truv_err_set(err, TRUV_EINTERNAL, "quota_store_full",
                      "quota store: too many connections for one memory store");
}

static uint32_t next_ticket(memstore *m) {
  if (++m->last_ticket == 0) m->last_ticket = 1;
  return m->last_ticket;
}

/* ---- the contract ---- */

static int mem_reserve(truv_quota_store *s, const truv_quota_key *keys, size_t n, double now,
                       truv_quota_ticket *ticket, double *not_before, unsigned char *spent,
                       truv_err *err) {
  memstore *m = (memstore *)s;
  int64_t now_ms = truv_store_ms(now), latest = INT64_MIN;
  size_t i;
  uint32_t t;
  int rc;
  if ((rc = make_room(m, n, now_ms, err))) return rc;
  for (i = 0; i < n; i++) {
    unsigned char *rec = find(m, &keys[i]);
    int c = rec ? rec_prune(m, rec, now_ms) : 0;
    int64_t frees_at;
    if (c < m->limit) continue;
    if (spent) spent[i] = 1;
    if ((frees_at = rec_frees_at(m, rec, c)) > latest) latest = frees_at;
  }
  if (latest != INT64_MIN) {
    *not_before = (double)latest / 1000.0;
    return TRUV_EQUOTA;
  }
  t = next_ticket(m);
  for (i = 0; i < n; i++) {
    unsigned char *rec;
    if (truv_quota_key_repeats(keys, i)) continue;
    rec = find_or_add(m, &keys[i]);
    rec_add(m, rec, rec_count(m, rec), now_ms, t);
  }
  *ticket = t;
  return 0;
}

static int mem_release(truv_quota_store *s, const truv_quota_key *keys, size_t n,
                       truv_quota_ticket ticket, truv_err *err) {
  memstore *m = (memstore *)s;
  size_t i;
  (void)err;
  if (ticket > UINT32_MAX) return 0;   /* never issued here */
  for (i = 0; i < n; i++) {
    unsigned char *rec = find(m, &keys[i]);
    int c = rec ? rec_count(m, rec) : 0, j = 0;
    while (j < c) {
      if (rec_ticket(m, rec, j) == (uint32_t)ticket) rec_remove(m, rec, j, c--);
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
  while (c > 0 && rec_ms(m, rec, 0) < now_ms) rec_remove(m, rec, 0, c--);
  while (c < m->limit) rec_add(m, rec, c++, now_ms, 0);
  return 0;
}

static int mem_usage(truv_quota_store *s, const truv_quota_key *key, double now, int *used,
                     double *next_free, truv_err *err) {
  memstore *m = (memstore *)s;
  unsigned char *rec = find(m, key);
  int c = rec ? rec_prune(m, rec, truv_store_ms(now)) : 0;
  (void)err;
  *used = c;
  *next_free = c >= m->limit ? (double)rec_frees_at(m, rec, c) / 1000.0 : 0;
  return 0;
}

static void mem_close(truv_quota_store *s) {
  memstore *m = (memstore *)s;
  free(m->records);
  free(m->index);
  free(m);
}

static const truv_quota_ops memory_ops = {
  mem_reserve, mem_release, mem_record_limit, mem_usage, mem_close,
};

truv_quota_store *truv_quota_memory(const truv_quota_policy *policy,
                                    size_t expected_connections, truv_err *err) {
  truv_quota_policy p = policy ? *policy : truv_quota_policy_default();
  size_t size = MIN_INDEX;
  memstore *m;
  if (truv_quota_policy_check(&p, err)) return NULL;   /* clears err */
  while (size < MAX_INDEX && growth_point(size) < expected_connections) size *= 2;
  if (!(m = calloc(1, sizeof *m))) goto oom;
  m->base.ops = &memory_ops;
  m->base.policy = p;
  m->limit = p.limit;
  m->window_ms = truv_store_ms(p.window_s);
  m->stride = KEY_LEN + 12 * (size_t)p.limit;
  if (rebuild(m, size, 0, err)) goto fail;
  return &m->base;
oom:
  truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "quota store: out of memory");
fail:
  if (m) mem_close(&m->base);
  return NULL;
}
