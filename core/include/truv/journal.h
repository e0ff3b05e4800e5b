/* truv_journal: the durable record of a renewal batch (one SQLite file).
 *
 * A batch re-verifies thousands of cases and every refresh is billed. A run
 * killed at any instant and started again with the same journal must lose
 * no case, send no refresh twice, and leave routed cases alone; the journal
 * is the state that makes this possible. One row per case, keyed by the
 * caller's case id, kept in insertion order; a few run-level facts (input
 * hash, options, started_at) in a key/value table.
 *
 * States of a case (the `state` field; put() refuses any other):
 *   new       read from the input, nothing done yet
 *   planned   the original order was read; the refresh is decided
 *   sending   written and committed BEFORE the refresh POST is handed to the
 *             transport (the write-ahead): on restart, a case found here
 *             may or may not have reached Truv and is reconciled, never
 *             blindly re-sent (sent_at and baseline_refresh_order say how)
 *   sent      the POST was answered: refresh_order_id is known
 *   waiting   waiting for the refresh result (polling or webhook)
 *   linking   written and committed BEFORE the request that makes the new
 *             verification link (an order or bridge tokens): on restart a
 *             link found here may or may not exist
 *   scheduled retry or defer: to be picked up again at retry_at / not_before;
 *             what the case already did that the next run must continue
 *             from (a refresh that may exist, one that does, a link to
 *             make) is the caller's, in the case's fields
 *   routed    final: route and reason are set
 *   failed    final: a bad input row; error says why
 *
 * Fields. A case is a set of named scalar values (text, integer, real,
 * boolean); setting a field to TRUV_JNULL removes it. These names are
 * columns (indexed where filters need them): state, route, reason,
 * order_id, original_order_id, refresh_order_id, baseline_refresh_order,
 * reverify_order_id, sent_at, retry_at, not_before, updated_at, share_url,
 * attempts, error, input (JSON text), result (JSON text), line,
 * quota_ticket, quota_keys. Any other name is kept in a JSON object in the
 * row (`extra`), with the same types. Values come back with the type they
 * were stored with (booleans included).
 *
 * Durability. The file is in WAL mode with synchronous=NORMAL: a commit is
 * durable against the death of the process (kill -9, a crash) as soon as
 * it returns, because the WAL has been written to the operating system;
 * only a power loss or a kernel crash can undo the last commits (never
 * corrupt the file). That is the requirement for a batch; `sync_full`
 * makes every commit fsync as well, for power-loss durability at the cost
 * of a disk flush per commit.
 *
 * Group commit. put() outside begin()/commit() commits by itself (one disk
 * write each). A scheduler instead writes the "sending" state of every case
 * of a tick between begin() and commit(), commits ONCE, then sends: the
 * commit is the write-ahead for all of them. commit() without begin() does
 * nothing; close() commits an open group.
 *
 * Schema. PRAGMA user_version holds the schema version and application_id
 * marks the file as a journal: open() creates a new file, reads one of
 * this version, and refuses a newer schema or a file that is not a journal
 * with TRUV_EINTERNAL ("schema_newer", "not_a_journal") and a message that
 * says which.
 *
 * Failures of the file are TRUV_EINTERNAL: "store_busy" when another
 * connection held its lock past the busy timeout (the one every SQLite file
 * of lua-truv waits: the quota and de-duplication stores' too), "disk_full",
 * or "journal".
 *
 * Threads and coroutines: a truv_journal (and its cursors) belongs to one
 * thread at a time; every coroutine of that thread may use it. Another
 * process may read the file while a run writes it (WAL); two processes
 * writing one journal would defeat the "never twice" guarantee: `exclusive`
 * refuses (TRUV_EINTERNAL "busy") to open a journal that another process, or
 * another handle of this one, holds open exclusively, by whatever path
 * (symlink, hard link) it was opened: an flock(2) on the database file
 * itself, released when the process dies. An exclusive open also refuses a
 * journal it cannot write ("read_only"), so that a run stops before its
 * first refresh rather than at its first write.
 *
 * Strings and values handed out (truv_jcase, truv_jvalue) stay valid until
 * the next call on the same journal or any of its cursors. */
#ifndef TRUV_JOURNAL_H
#define TRUV_JOURNAL_H

#include "truv/common.h"
#include "truv/err.h"

#define TRUV_JOURNAL_SCHEMA 1

typedef struct truv_journal truv_journal;
typedef struct truv_jcursor truv_jcursor;

typedef struct truv_journal_options {
  int sync_full;       /* 1: synchronous=FULL (fsync per commit) */
  int busy_timeout_ms; /* waiting for another connection's lock; 0: 10 000 */
  int exclusive;       /* 1: fail if another process holds it exclusively */
} truv_journal_options;

typedef enum truv_jtype {
  TRUV_JNULL = 0, /* absent: as a put() value, removes the field */
  TRUV_JINT,
  TRUV_JREAL,
  TRUV_JTEXT,
  TRUV_JBOOL
} truv_jtype;

typedef struct truv_jvalue {
  truv_jtype type;
  long long i;   /* TRUV_JINT; TRUV_JBOOL: 0 or 1 */
  double r;      /* TRUV_JREAL */
  const char *s; /* TRUV_JTEXT: s[0..len) (NUL-terminated when handed out) */
  size_t len;
} truv_jvalue;

typedef struct truv_jfield {
  const char *name;
  truv_jvalue value;
} truv_jfield;

/* One case as read back: its id, its position in insertion order, and its
 * fields that have a value (columns first, then the others by name). */
typedef struct truv_jcase {
  const char *case_id;
  long long seq;
  const truv_jfield *fields;
  size_t nfields;
} truv_jcase;

/* Which cases each() visits: every non-empty list must match (state IN
 * states, state NOT IN not_states, route IN routes); NULL: every case. */
typedef struct truv_jfilter {
  const char *const *states;
  size_t nstates;
  const char *const *not_states;
  size_t nnot_states;
  const char *const *routes;
  size_t nroutes;
} truv_jfilter;

/* Opens (creating if needed) the journal at path. NULL opts: defaults. */
TRUV_API int truv_journal_open(const char *path, const truv_journal_options *opts,
                               truv_journal **out, truv_err *err);

/* Commits an open group, finalizes any cursor still open (their next()
 * then fails) and closes the file. Returns the commit's error, if any; the
 * journal is released either way. NULL is allowed. */
TRUV_API int truv_journal_close(truv_journal *j, truv_err *err);

TRUV_API const char *truv_journal_path(const truv_journal *j);

/* Run-level facts. A missing key reads as TRUV_JNULL; setting TRUV_JNULL
 * (or a NULL value) deletes the key. */
TRUV_API int truv_journal_meta_get(truv_journal *j, const char *key, truv_jvalue *out,
                                   truv_err *err);
TRUV_API int truv_journal_meta_set(truv_journal *j, const char *key, const truv_jvalue *value,
                                   truv_err *err);

/* Upserts case_id with the given fields; fields not named keep their
 * values. A new case without a state starts as "new". TRUV_EINVALID, and
 * nothing written, for an empty case id; a field without a name, with one
 * over 128 bytes, named twice, or named case_id or seq; an unknown or
 * cleared state; a state or route that is not text; a number that is not
 * finite; text with a NUL byte in a field that is not a column. */
TRUV_API int truv_journal_put(truv_journal *j, const char *case_id, const truv_jfield *fields,
                              size_t nfields, truv_err *err);

/* Removes a case (no-op if unknown): for records derived from the input
 * alone, such as bad rows, that a new reading of the input replaces. */
TRUV_API int truv_journal_delete(truv_journal *j, const char *case_id, truv_err *err);

/* *found = 0 (and *out untouched) when there is no such case. */
TRUV_API int truv_journal_get(truv_journal *j, const char *case_id, truv_jcase *out, int *found,
                              truv_err *err);

/* The explicit group commit (see above). begin() inside an open group is
 * TRUV_EINVALID "group_open". rollback() undoes the open group. */
TRUV_API int truv_journal_begin(truv_journal *j, truv_err *err);
TRUV_API int truv_journal_commit(truv_journal *j, truv_err *err);
TRUV_API int truv_journal_rollback(truv_journal *j, truv_err *err);
TRUV_API int truv_journal_in_group(const truv_journal *j);

/* Cases matching filter (NULL: all), in insertion order. A cursor holds no
 * lock between next() calls, so the caller may put() while iterating: a
 * case is visited at most once, and cases added meanwhile are visited if
 * they match. */
TRUV_API int truv_journal_each(truv_journal *j, const truv_jfilter *filter, truv_jcursor **out,
                               truv_err *err);
/* *found = 0 at the end. */
TRUV_API int truv_jcursor_next(truv_jcursor *c, truv_jcase *out, int *found, truv_err *err);
TRUV_API void truv_jcursor_free(truv_jcursor *c);

/* Number of cases per state (by_route = 0) or per route (1, cases with a
 * route only): calls fn once per distinct value. */
typedef void (*truv_jcount_fn)(void *ud, const char *key, long long n);
TRUV_API int truv_journal_counts(truv_journal *j, int by_route, truv_jcount_fn fn, void *ud,
                                 truv_err *err);

/* Is s one of the states above? */
TRUV_API int truv_journal_state_valid(const char *s);

#endif
