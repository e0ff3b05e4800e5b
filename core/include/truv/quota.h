/* Refresh quota: a sliding log per connection, so that the client never sends
 * a refresh Truv would refuse (truv-api.md §8: 3 refreshes per access_token
 * per rolling 24 h).
 *
 * Keys. A connection is named by truv_quota_key_of(access_token): the first
 * 16 bytes of SHA-256("truv-quota-v1:" || token). Stores never see the token;
 * the text form (32 lowercase hex characters) is what Lua stores use.
 *
 * Time. Every `now` is seconds since the epoch as a double, and stores keep it
 * as whole milliseconds (rounded to nearest), so an instant a store returns
 * is exact to the millisecond. An entry recorded at t is in the window at
 * `now` iff t > now - window_s: at now = t + window_s it has left.
 *
 * The store contract (every store, C or Lua, has exactly these semantics):
 *
 *  reserve(keys[0..n), now) -> ticket | TRUV_EQUOTA(not_before, spent[])
 *    Atomic across all n keys: all get an entry or none does, and no other
 *    reserve, release, record_limit or record_count on the same store (for
 *    the SQLite store: on the same file, from any process) interleaves with
 *    it. For each key,
 *    count its entries in the window. If every count is < limit, append one
 *    entry at `now` to each key, all tagged with one fresh ticket (never 0),
 *    and succeed. Otherwise change nothing and refuse: spent[i] = 1 for each
 *    full key (0 for the others), and not_before = the instant every full key
 *    has room again. For a full key whose in-window entries sorted by time are
 *    t1 <= t2 <= ... <= tc, k = c - limit + 1 of them must leave, the k-th
 *    oldest leaves at tk + window_s; not_before is the maximum over the full
 *    keys. A reserve at exactly not_before succeeds (if nothing else was
 *    recorded meanwhile). A key listed twice counts once and gets one entry.
 *  release(keys[0..n), ticket)
 *    Removes the entries tagged `ticket` from those keys, and only them. For
 *    a request that provably never reached Truv (DNS or connect failure);
 *    never after a timeout. An unknown, already released or 0 ticket is a
 *    no-op success.
 *  record_limit(key, now)
 *    Truv answered "Refresh limit for the access_token exceeded": it counts
 *    refreshes this store never saw, and its answer supersedes what the store
 *    knew. The key's entries before `now` are dropped and entries at `now`
 *    without a ticket are added until it holds `limit`, so that reserve
 *    refuses it until exactly now + window_s (when Truv's own window has
 *    passed too) and then finds the whole limit free.
 *  record_count(key, times[0..n), now)
 *    Truv shows refreshes of the key at `times` (the refresh orders it lists
 *    for a connection: those of another host, tool or run, and this store's
 *    own): its count supersedes ours when it is larger. Of the times in the
 *    window at `now`, the newest `limit` count (more cannot matter: the key
 *    is full with limit). When the key holds fewer entries in the window
 *    than that count c, entries without a ticket are added at the oldest of
 *    those times until it holds c; nothing is ever removed. The store cannot
 *    tell which of its entries are which of Truv's refreshes, so it keeps
 *    the larger count, not the sum: calling it again with the same times
 *    changes nothing, and a refresh it reserved itself is not counted twice.
 *    n may be 0 (nothing to do).
 *  usage(key, now) -> used, next_free
 *    The key's entries in the window, and when one frees if the key is full
 *    (the not_before reserve would answer for it alone), else 0.
 *  close()
 *    Frees the store. The entries of a durable store stay in its file.
 *
 * Connection facts (an optional capability of the contract: note and
 * facts may be NULL in a store's vtable; every store shipped here has them).
 * Besides its refresh log, a store may keep, per key, what the client knows
 * for sure about the connection, each as the latest instant it was seen:
 *   TRUV_FACT_DEAD   it failed in a way only the user can fix (a login_error,
 *                    mfa_error, account_locked or unable_to_reset task, a
 *                    link-disconnected event), with that cause (`reason`)
 *   TRUV_FACT_ALIVE  a refresh of it completed
 *   TRUV_FACT_AUTH   the user authenticated it again (a task of its link that
 *                    finished done after a failure, a link-connected event)
 *  note(key, fact, at, reason)
 *    Records that `fact` was seen at `at`, keeping the latest instant per
 *    fact: an `at` older than the one kept changes nothing. For
 *    TRUV_FACT_DEAD, `reason` (NULL, or at most TRUV_QUOTA_REASON_MAX - 1
 *    bytes of [a-z0-9_-]) goes with the instant it was noted at; other facts
 *    take no reason (TRUV_EINVALID).
 *  facts(key) -> truv_quota_facts
 *    What is kept for the key: `seen` has the bit (1 << fact) of each fact
 *    ever noted, and its instant is in dead_at / alive_at / auth_at (0
 *    otherwise); dead_reason is "" without one.
 * The facts of a key are kept at least TRUV_QUOTA_FACT_RETENTION_S after the
 * latest of its instants, then pruned lazily (when newer facts are noted).
 * They are independent of the refresh log: neither reserve nor record_limit
 * touches them, and a key's facts cost a store nothing per quota entry
 * (they live in a table of their own).
 *
 * Entries that left the window are pruned lazily; that is invisible to
 * callers. A store applies the policy it was opened with; every handle on one
 * SQLite file must use the same policy.
 *
 * Tickets are opaque numbers, meaningful only to the store (or the file)
 * that issued them.
 *
 * Errors: TRUV_EQUOTA is the refusal above (err->retry_at = not_before);
 * TRUV_EINVALID a misuse (no keys, a time that is not finite or further than
 * 1e11 s from the epoch); TRUV_EINTERNAL
 * a store that cannot be read or written (out of memory, SQLite failure or
 * lock timeout). After TRUV_EINTERNAL nothing was changed.
 *
 * Threads. A store handle is like a libcurl easy handle: use it from one
 * thread at a time (one store per thread, or a lock around every call), and
 * never across fork(). SQLite handles in several threads or processes may
 * share one file; they see one another's entries. */
#ifndef TRUV_QUOTA_H
#define TRUV_QUOTA_H

#include <stdint.h>

#include "truv/common.h"
#include "truv/err.h"

#define TRUV_QUOTA_KEY_LEN 16
#define TRUV_QUOTA_HEX_LEN 32

#define TRUV_QUOTA_DEFAULT_LIMIT 3
#define TRUV_QUOTA_DEFAULT_WINDOW_S 86400.0
#define TRUV_QUOTA_MAX_LIMIT 1000 /* a larger limit is refused (TRUV_EINVALID) */

typedef struct truv_quota_key {
  unsigned char bytes[TRUV_QUOTA_KEY_LEN];
} truv_quota_key;

typedef struct truv_quota_policy {
  int limit;       /* refreshes per connection per window (default 3) */
  double window_s; /* the rolling window in seconds (default 86400) */
} truv_quota_policy;

/* Connection facts (see the contract above). */
typedef enum truv_quota_fact {
  TRUV_FACT_DEAD,
  TRUV_FACT_ALIVE,
  TRUV_FACT_AUTH,
  TRUV_FACT_COUNT
} truv_quota_fact;

#define TRUV_QUOTA_REASON_MAX 32
#define TRUV_QUOTA_FACT_RETENTION_S (400 * 86400.0)

typedef struct truv_quota_facts {
  unsigned seen; /* bit (1 << fact) for each fact noted */
  double dead_at, alive_at, auth_at;
  char dead_reason[TRUV_QUOTA_REASON_MAX];
} truv_quota_facts;

/* 0 means "no ticket" (entries added by record_limit). */
typedef uint64_t truv_quota_ticket;

typedef struct truv_quota_store truv_quota_store;

/* The vtable a store implements; see the contract above. The dispatchers
 * below check arguments before calling it, so an implementation may assume
 * n >= 1, non-NULL keys and outputs, times within +-1e11 s and a non-zero
 * ticket; only `spent` may be NULL (else it has n elements, zeroed). */
typedef struct truv_quota_ops {
  int (*reserve)(truv_quota_store *s, const truv_quota_key *keys, size_t n, double now,
                 truv_quota_ticket *ticket, double *not_before, unsigned char *spent,
                 truv_err *err);
  int (*release)(truv_quota_store *s, const truv_quota_key *keys, size_t n,
                 truv_quota_ticket ticket, truv_err *err);
  int (*record_limit)(truv_quota_store *s, const truv_quota_key *key, double now, truv_err *err);
  int (*usage)(truv_quota_store *s, const truv_quota_key *key, double now, int *used,
               double *next_free, truv_err *err);
  void (*close)(truv_quota_store *s);
  int (*record_count)(truv_quota_store *s, const truv_quota_key *key, const double *times, size_t n,
                      double now, truv_err *err);
  /* Optional (NULL: the store keeps no facts). The dispatchers check the
   * fact, the time and the reason first; `out` is zeroed. */
  int (*note)(truv_quota_store *s, const truv_quota_key *key, truv_quota_fact fact, double at,
              const char *reason, truv_err *err);
  int (*facts)(truv_quota_store *s, const truv_quota_key *key, truv_quota_facts *out,
               truv_err *err);
} truv_quota_ops;

/* Every store starts with this header (a store embeds it as its first
 * member and casts). */
struct truv_quota_store {
  const truv_quota_ops *ops;
  truv_quota_policy policy;
};

/* ---- keys ---- */

/* The connection key of an access token (NUL-terminated). Returns 0, or
 * TRUV_EINTERNAL if the digest could not run (out of memory). */
TRUV_API int truv_quota_key_of(const char *access_token, truv_quota_key *out);
/* The same for a token of `len` bytes. */
TRUV_API int truv_quota_key_of_len(const char *access_token, size_t len, truv_quota_key *out);
/* The text form: 32 lowercase hex characters and a NUL. */
TRUV_API void truv_quota_key_hex(const truv_quota_key *key, char out[TRUV_QUOTA_HEX_LEN + 1]);
/* Parses exactly 32 hex characters (either case); returns 0 or TRUV_EINVALID. */
TRUV_API int truv_quota_key_parse(const char *hex, size_t len, truv_quota_key *out, truv_err *err);

/* ---- policy ---- */

/* { 3, 86400 }. */
TRUV_API truv_quota_policy truv_quota_policy_default(void);
/* 0, or TRUV_EINVALID unless 1 <= limit <= TRUV_QUOTA_MAX_LIMIT and window_s
 * is finite, >= 0.001 and at most 10 years. */
TRUV_API int truv_quota_policy_check(const truv_quota_policy *policy, truv_err *err);

/* ---- stores ---- */

/* In-process store: one open-addressing table (Robin Hood probing) of
 * per-connection records, the 16-byte key and one 8-byte stamp (time in ms
 * and ticket) per entry: 40 bytes at limit 3, 50 to 62 bytes per connection
 * with the table's slack. Sized for `expected_connections` (0: small), grown
 * at 0.8 load; records whose entries have all left the window are dropped
 * when it grows. Its tickets are stamps: unique unless 65535 reservations
 * share one millisecond. Connection facts live in a second, smaller table
 * of their own (the key, three instants and the reason: 80 bytes per
 * connection whose facts were noted), so the quota records above do not
 * grow. policy NULL means the default. Returns NULL and fills err on
 * failure. */
TRUV_API truv_quota_store *truv_quota_memory(const truv_quota_policy *policy,
                                             size_t expected_connections, truv_err *err);

/* Durable store in a SQLite file (created if missing; ":memory:" gives a
 * private in-memory database). WAL journal, synchronous=NORMAL: a process
 * killed at any instant loses nothing committed (a power cut may lose the last
 * transactions, which at worst lets Truv refuse one refresh, and that is
 * recorded). Writers take the file's write lock with BEGIN IMMEDIATE and wait
 * up to 10 s for it (then TRUV_EINTERNAL, code "store_busy"). The file may
 * also hold the de-duplication tables (truv/dedupe.h): one schema, versioned
 * by PRAGMA user_version; a file written by a newer schema is refused, an
 * older one is brought up to date. Connection facts are a table of their
 * own in the same file. */
TRUV_API truv_quota_store *truv_quota_sqlite(const char *path, const truv_quota_policy *policy,
                                             truv_err *err);

/* ---- calls through the vtable, with argument checks ---- */

/* spent may be NULL; otherwise it has n elements. */
TRUV_API int truv_quota_reserve(truv_quota_store *s, const truv_quota_key *keys, size_t n,
                                double now, truv_quota_ticket *ticket, double *not_before,
                                unsigned char *spent, truv_err *err);
TRUV_API int truv_quota_release(truv_quota_store *s, const truv_quota_key *keys, size_t n,
                                truv_quota_ticket ticket, truv_err *err);
TRUV_API int truv_quota_record_limit(truv_quota_store *s, const truv_quota_key *key, double now,
                                     truv_err *err);
/* times has n elements (n may be 0), each a valid time, in any order; the
 * dispatcher hands the store only those in the window, oldest first, at
 * most `limit` of them (the newest). */
TRUV_API int truv_quota_record_count(truv_quota_store *s, const truv_quota_key *key,
                                     const double *times, size_t n, double now, truv_err *err);
TRUV_API int truv_quota_usage(truv_quota_store *s, const truv_quota_key *key, double now, int *used,
                              double *next_free, truv_err *err);
/* NULL is allowed. */
TRUV_API void truv_quota_close(truv_quota_store *s);

/* Whether the store keeps connection facts. */
TRUV_API int truv_quota_has_facts(const truv_quota_store *s);
/* TRUV_EINVALID ("facts_unsupported") for a store without them. */
TRUV_API int truv_quota_note(truv_quota_store *s, const truv_quota_key *key, truv_quota_fact fact,
                             double at, const char *reason, truv_err *err);
TRUV_API int truv_quota_facts_read(truv_quota_store *s, const truv_quota_key *key,
                                   truv_quota_facts *out, truv_err *err);
/* "dead", "alive", "auth"; and back (-1 if unknown). */
TRUV_API const char *truv_quota_fact_name(truv_quota_fact fact);
TRUV_API int truv_quota_fact_of(const char *name);

#endif
