/* Webhook de-duplication: Truv may deliver one webhook several times, and its
 * signature has no timestamp, so the receiver remembers what it handled.
 *
 * The store contract (every store, C or Lua, has exactly these semantics):
 *
 *  seen(id, now, ttl_s) -> first
 *    Atomic add-if-absent. If `id` is not recorded, or its record expired
 *    (expiry <= now), record it until now + ttl_s and answer first = 1.
 *    Otherwise change nothing and answer first = 0. Two concurrent calls with
 *    one id (for the SQLite store: from any process on the file) never both
 *    answer 1.
 *  last_update(object_key, updated_at) -> is_newer
 *    Atomic compare-and-set, to ignore an event older than the last one seen
 *    for the same object: if nothing is recorded for the object or
 *    updated_at is not older than what is (greater or equal: Truv's retry of
 *    a delivery whose handler failed carries the same updated_at), record
 *    updated_at and answer is_newer = 1; otherwise change nothing and
 *    answer 0.
 *  forget(id)
 *    Removes the record of `id` (the handler failed: Truv's retry must be
 *    handled again). Forgetting an unknown id is a no-op success.
 *  close()
 *    Frees the store.
 *
 * Ids and object keys are byte strings (any bytes, any length); times are
 * seconds since the epoch as doubles, kept to the millisecond for expiries.
 * Expired ids are pruned lazily. Ordering records are kept for
 * TRUV_DEDUPE_ORDER_RETENTION_S after their updated_at, measured against the
 * newest updated_at the handle has recorded (the events' own clock); an event
 * older than that is far beyond any redelivery Truv makes.
 *
 * The memory store keeps a 16-byte hash (SHA-256 with a domain prefix) of
 * each id and object key, not the strings; the SQLite store keeps the
 * strings, in the same file conventions as the quota store (truv/quota.h):
 * WAL, a 10 s lock wait, one schema with the quota tables under PRAGMA
 * user_version, so one file may hold both.
 *
 * Errors: TRUV_EINVALID for a misuse (a time or ttl that is not finite, a
 * negative ttl), TRUV_EINTERNAL for a store that cannot be read or written.
 * Threads: as for quota stores, one thread at a time per handle. */
#ifndef TRUV_DEDUPE_H
#define TRUV_DEDUPE_H

#include "truv/common.h"
#include "truv/err.h"

#define TRUV_DEDUPE_ORDER_RETENTION_S (30 * 86400.0)

typedef struct truv_dedupe_store truv_dedupe_store;

/* The vtable a store implements; the dispatchers below check arguments. */
typedef struct truv_dedupe_ops {
  int (*seen)(truv_dedupe_store *s, const char *id, size_t len, double now, double ttl_s,
              int *first, truv_err *err);
  int (*last_update)(truv_dedupe_store *s, const char *object_key, size_t len, double updated_at,
                     int *is_newer, truv_err *err);
  int (*forget)(truv_dedupe_store *s, const char *id, size_t len, truv_err *err);
  void (*close)(truv_dedupe_store *s);
} truv_dedupe_ops;

/* Every store starts with this header. */
struct truv_dedupe_store {
  const truv_dedupe_ops *ops;
};

/* In-process store: open-addressing maps of 24-byte slots (hash, expiry or
 * updated_at), grown at 0.7 load, dropping expired records when they grow.
 * `expected` ids (0: small) sizes the first table. */
TRUV_API truv_dedupe_store *truv_dedupe_memory(size_t expected, truv_err *err);

/* Durable store in a SQLite file (see the quota store for the conventions). */
TRUV_API truv_dedupe_store *truv_dedupe_sqlite(const char *path, truv_err *err);

TRUV_API int truv_dedupe_seen(truv_dedupe_store *s, const char *id, size_t len, double now,
                              double ttl_s, int *first, truv_err *err);
TRUV_API int truv_dedupe_last_update(truv_dedupe_store *s, const char *object_key, size_t len,
                                     double updated_at, int *is_newer, truv_err *err);
TRUV_API int truv_dedupe_forget(truv_dedupe_store *s, const char *id, size_t len, truv_err *err);
/* NULL is allowed. */
TRUV_API void truv_dedupe_close(truv_dedupe_store *s);

#endif
