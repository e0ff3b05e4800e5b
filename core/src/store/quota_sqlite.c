/* The durable quota store: the sliding log in a SQLite file (see
 * truv/quota.h; the file and its schema are store_file.c's).
 *
 * Every write (reserve, release, record_limit, record_count) runs in BEGIN
 * IMMEDIATE: it takes the file's write lock before reading, so the counts it
 * decides on cannot change under it, from this process or another. A refusal rolls back
 * and writes nothing.
 *
 * A key is full when it has a limit-th newest entry in the window, and that
 * entry is the one whose leaving frees it (the k-th oldest of the contract,
 * k = count - limit + 1): one indexed query answers both. Entries that left
 * the window are deleted every PRUNE_EVERY writes of a handle, inside the
 * write's transaction. A handle works only in the process that opened it
 * (see truv_sqlite_owned).
 *
 * Connection facts are one row per key in truv_quota_fact, written by an
 * upsert that keeps the latest instant of each fact; keys whose latest
 * instant is older than the retention are deleted every PRUNE_EVERY notes. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store.h"
#include "store_file.h"
#include "truv/quota.h"

#define PRUNE_EVERY 256

typedef struct sqlstore {
  truv_quota_store base; /* first: the store header */
  sqlite3 *db;
  truv_store_tx tx;
  sqlite3_stmt *nth_newest, *count, *insert, *remove, *bump, *ticket, *prune;
  sqlite3_stmt *note[TRUV_FACT_COUNT], *facts, *fact_prune;
  int64_t window_ms;
  unsigned writes, notes;
  pid_t opener;
} sqlstore;

static const char sql_nth_newest[] =
  "SELECT t_ms FROM truv_quota_entry WHERE key = ?1 AND t_ms > ?2 "
  "ORDER BY t_ms DESC LIMIT 1 OFFSET ?3";
static const char sql_count[] =
  "SELECT count(*) FROM truv_quota_entry WHERE key = ?1 AND t_ms > ?2";
static const char sql_insert[] =
  "INSERT INTO truv_quota_entry(key, t_ms, ticket) VALUES (?1, ?2, ?3)";
static const char sql_remove[] =
  "DELETE FROM truv_quota_entry WHERE key = ?1 AND (ticket = ?2 OR t_ms < ?3)";
static const char sql_bump[] =
  "UPDATE truv_store_counter SET value = value + 1 WHERE name = 'quota_ticket'";
static const char sql_ticket[] = "SELECT value FROM truv_store_counter WHERE name = 'quota_ticket'";
static const char sql_prune[] = "DELETE FROM truv_quota_entry WHERE t_ms <= ?1";

/* One upsert per fact: the latest instant of each is kept, and a dead
 * fact's reason goes with its instant. (In an UPDATE every expression reads
 * the row as it was.) */
static const char *const sql_note[TRUV_FACT_COUNT] = {
  "INSERT INTO truv_quota_fact(key, dead_ms, dead_reason, latest_ms) VALUES (?1, ?2, ?3, ?2) "
  "ON CONFLICT(key) DO UPDATE SET "
  "dead_reason = CASE WHEN dead_ms IS NULL OR excluded.dead_ms >= dead_ms "
  "THEN excluded.dead_reason ELSE dead_reason END, "
  "dead_ms = max(coalesce(dead_ms, excluded.dead_ms), excluded.dead_ms), "
  "latest_ms = max(latest_ms, excluded.latest_ms)",
  "INSERT INTO truv_quota_fact(key, alive_ms, latest_ms) VALUES (?1, ?2, ?2) "
  "ON CONFLICT(key) DO UPDATE SET "
  "alive_ms = max(coalesce(alive_ms, excluded.alive_ms), excluded.alive_ms), "
  "latest_ms = max(latest_ms, excluded.latest_ms)",
  "INSERT INTO truv_quota_fact(key, auth_ms, latest_ms) VALUES (?1, ?2, ?2) "
  "ON CONFLICT(key) DO UPDATE SET "
  "auth_ms = max(coalesce(auth_ms, excluded.auth_ms), excluded.auth_ms), "
  "latest_ms = max(latest_ms, excluded.latest_ms)",
};
static const char sql_facts[] =
  "SELECT dead_ms, dead_reason, alive_ms, auth_ms FROM truv_quota_fact WHERE key = ?1";
static const char sql_fact_prune[] = "DELETE FROM truv_quota_fact WHERE latest_ms < ?1";

static int fail(sqlstore *q, int rc, const char *what, truv_err *err) {
  return truv_store_fail(q->db, rc, what, err);
}

/* Runs a one-value query (bound by the caller) and resets it: *found says
 * whether a row came back. */
static int one_value(sqlstore *q, sqlite3_stmt *st, int64_t *value, int *found, truv_err *err) {
  int rc = sqlite3_step(st);
  *found = rc == SQLITE_ROW;
  if (*found) *value = sqlite3_column_int64(st, 0);
  sqlite3_reset(st);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) return 0;
  return fail(q, rc, "reading the quota", err);
}

/* Whether the key is full (*full) and when it has room again (*at): when its
 * limit-th newest in-window entry leaves. */
static int frees_at(sqlstore *q, const truv_quota_key *key, int64_t now_ms, int *full, int64_t *at,
                    truv_err *err) {
  int64_t t = 0;
  int rc;
  sqlite3_bind_blob(q->nth_newest, 1, key->bytes, TRUV_QUOTA_KEY_LEN, SQLITE_STATIC);
  sqlite3_bind_int64(q->nth_newest, 2, now_ms - q->window_ms);
  sqlite3_bind_int(q->nth_newest, 3, q->base.policy.limit - 1);
  if ((rc = one_value(q, q->nth_newest, &t, full, err))) return rc;
  *at = t + q->window_ms;
  return 0;
}

static int insert(sqlstore *q, const truv_quota_key *key, int64_t ms, int64_t ticket,
                  truv_err *err) {
  sqlite3_bind_blob(q->insert, 1, key->bytes, TRUV_QUOTA_KEY_LEN, SQLITE_STATIC);
  sqlite3_bind_int64(q->insert, 2, ms);
  sqlite3_bind_int64(q->insert, 3, ticket);
  return truv_store_exec(q->db, q->insert, "recording a refresh", err);
}

/* Deletes the key's entries of `ticket` and those before `before_ms`. */
static int remove_entries(sqlstore *q, const truv_quota_key *key, int64_t ticket, int64_t before_ms,
                          truv_err *err) {
  sqlite3_bind_blob(q->remove, 1, key->bytes, TRUV_QUOTA_KEY_LEN, SQLITE_STATIC);
  sqlite3_bind_int64(q->remove, 2, ticket);
  sqlite3_bind_int64(q->remove, 3, before_ms);
  return truv_store_exec(q->db, q->remove, "removing refreshes", err);
}

static int new_ticket(sqlstore *q, int64_t *ticket, truv_err *err) {
  int found, rc;
  if ((rc = truv_store_exec(q->db, q->bump, "issuing a ticket", err)) ||
      (rc = one_value(q, q->ticket, ticket, &found, err)))
    return rc;
  return found ? 0 : truv_err_set(err, TRUV_EINTERNAL, "store", "SQLite store: no ticket counter");
}

/* Deletes, now and then, the entries of every key that left the window. */
static int maybe_prune(sqlstore *q, int64_t now_ms, truv_err *err) {
  if (q->writes++ % PRUNE_EVERY != 0) return 0;
  sqlite3_bind_int64(q->prune, 1, now_ms - q->window_ms);
  return truv_store_exec(q->db, q->prune, "pruning", err);
}

/* Reads whether any key is full: *latest = the latest instant a full key
 * frees, INT64_MIN if none is full. */
static int check_room(sqlstore *q, const truv_quota_key *keys, size_t n, int64_t now_ms,
                      unsigned char *spent, int64_t *latest, truv_err *err) {
  size_t i;
  int rc, full;
  *latest = INT64_MIN;
  for (i = 0; i < n; i++) {
    int64_t at;
    if ((rc = frees_at(q, &keys[i], now_ms, &full, &at, err))) return rc;
    if (!full) continue;
    if (spent) spent[i] = 1;
    if (at > *latest) *latest = at;
  }
  return 0;
}

static int sql_reserve(truv_quota_store *s, const truv_quota_key *keys, size_t n, double now,
                       truv_quota_ticket *ticket, double *not_before, unsigned char *spent,
                       truv_err *err) {
  sqlstore *q = (sqlstore *)s;
  int64_t now_ms = truv_store_ms(now), latest, t = 0;
  size_t i;
  int rc;
  if ((rc = truv_sqlite_owned(q->opener, err)) || (rc = truv_store_begin(q->db, &q->tx, err)))
    return rc;
  if ((rc = check_room(q, keys, n, now_ms, spent, &latest, err))) goto fail;
  if (latest != INT64_MIN) {
    truv_store_rollback(q->db, &q->tx);
    *not_before = (double)latest / 1000.0;
    return TRUV_EQUOTA;
  }
  if ((rc = new_ticket(q, &t, err))) goto fail;
  for (i = 0; i < n; i++)
    if (!truv_quota_key_repeats(keys, i) && (rc = insert(q, &keys[i], now_ms, t, err))) goto fail;
  if ((rc = maybe_prune(q, now_ms, err)) || (rc = truv_store_commit(q->db, &q->tx, err))) goto fail;
  *ticket = (truv_quota_ticket)t;
  return 0;
fail:
  truv_store_rollback(q->db, &q->tx);
  return rc;
}

static int sql_release(truv_quota_store *s, const truv_quota_key *keys, size_t n,
                       truv_quota_ticket ticket, truv_err *err) {
  sqlstore *q = (sqlstore *)s;
  size_t i;
  int rc;
  if ((rc = truv_sqlite_owned(q->opener, err))) return rc;
  if (ticket > INT64_MAX) return 0; /* never issued here */
  if ((rc = truv_store_begin(q->db, &q->tx, err))) return rc;
  for (i = 0; i < n; i++)
    if ((rc = remove_entries(q, &keys[i], (int64_t)ticket, INT64_MIN, err))) goto fail;
  if ((rc = truv_store_commit(q->db, &q->tx, err))) goto fail;
  return 0;
fail:
  truv_store_rollback(q->db, &q->tx);
  return rc;
}

/* Entries of key at or after now_ms (after record_limit dropped the older). */
static int count_from(sqlstore *q, const truv_quota_key *key, int64_t from_ms, int64_t *count,
                      truv_err *err) {
  int found;
  sqlite3_bind_blob(q->count, 1, key->bytes, TRUV_QUOTA_KEY_LEN, SQLITE_STATIC);
  sqlite3_bind_int64(q->count, 2, from_ms);
  return one_value(q, q->count, count, &found, err);
}

static int sql_record_limit(truv_quota_store *s, const truv_quota_key *key, double now,
                            truv_err *err) {
  sqlstore *q = (sqlstore *)s;
  int64_t now_ms = truv_store_ms(now), have = 0;
  int rc;
  if ((rc = truv_sqlite_owned(q->opener, err)) || (rc = truv_store_begin(q->db, &q->tx, err)))
    return rc;
  /* ticket -1 matches nothing: only the entries before now go */
  if ((rc = remove_entries(q, key, -1, now_ms, err)) ||
      (rc = count_from(q, key, now_ms - 1, &have, err)))
    goto fail;
  for (; have < q->base.policy.limit; have++)
    if ((rc = insert(q, key, now_ms, 0, err))) goto fail;
  if ((rc = maybe_prune(q, now_ms, err)) || (rc = truv_store_commit(q->db, &q->tx, err))) goto fail;
  return 0;
fail:
  truv_store_rollback(q->db, &q->tx);
  return rc;
}

/* times: in the window, oldest first, at most limit (the dispatcher's). */
static int sql_record_count(truv_quota_store *s, const truv_quota_key *key, const double *times,
                            size_t n, double now, truv_err *err) {
  sqlstore *q = (sqlstore *)s;
  int64_t now_ms = truv_store_ms(now), have = 0;
  size_t i;
  int rc;
  if ((rc = truv_sqlite_owned(q->opener, err)) || (rc = truv_store_begin(q->db, &q->tx, err)))
    return rc;
  if ((rc = count_from(q, key, now_ms - q->window_ms, &have, err))) goto fail;
  for (i = 0; have < (int64_t)n; i++, have++)
    if ((rc = insert(q, key, truv_store_ms(times[i]), 0, err))) goto fail;
  if ((rc = maybe_prune(q, now_ms, err)) || (rc = truv_store_commit(q->db, &q->tx, err))) goto fail;
  return 0;
fail:
  truv_store_rollback(q->db, &q->tx);
  return rc;
}

static int sql_usage(truv_quota_store *s, const truv_quota_key *key, double now, int *used,
                     double *next_free, truv_err *err) {
  sqlstore *q = (sqlstore *)s;
  int64_t now_ms = truv_store_ms(now), count = 0, at = 0;
  int rc, full = 0;
  if ((rc = truv_sqlite_owned(q->opener, err))) return rc;
  /* one read transaction, so that both answers come from one snapshot */
  if ((rc = sqlite3_exec(q->db, "BEGIN", NULL, NULL, NULL)))
    return fail(q, rc, "reading the quota", err);
  if ((rc = count_from(q, key, now_ms - q->window_ms, &count, err)) ||
      (rc = frees_at(q, key, now_ms, &full, &at, err))) {
    truv_store_rollback(q->db, &q->tx);
    return rc;
  }
  truv_store_rollback(q->db, &q->tx);
  *used = count > INT32_MAX ? INT32_MAX : (int)count;
  *next_free = full ? (double)at / 1000.0 : 0;
  return 0;
}

/* ---- connection facts ---- */

static int sqlite_note(truv_quota_store *s, const truv_quota_key *key, truv_quota_fact fact,
                       double at, const char *reason, truv_err *err) {
  sqlstore *q = (sqlstore *)s;
  sqlite3_stmt *st = q->note[fact];
  int64_t at_ms = truv_store_ms(at);
  int rc;
  if ((rc = truv_sqlite_owned(q->opener, err)) || (rc = truv_store_begin(q->db, &q->tx, err)))
    return rc;
  sqlite3_bind_blob(st, 1, key->bytes, TRUV_QUOTA_KEY_LEN, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, at_ms);
  if (fact == TRUV_FACT_DEAD) {
    if (reason) sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 3);
  }
  if ((rc = truv_store_exec(q->db, st, "noting a connection fact", err))) goto fail;
  if (q->notes++ % PRUNE_EVERY == 0) {
    sqlite3_bind_int64(q->fact_prune, 1, at_ms - truv_store_ms(TRUV_QUOTA_FACT_RETENTION_S));
    if ((rc = truv_store_exec(q->db, q->fact_prune, "pruning facts", err))) goto fail;
  }
  if ((rc = truv_store_commit(q->db, &q->tx, err))) goto fail;
  return 0;
fail:
  truv_store_rollback(q->db, &q->tx);
  return rc;
}

static void column_time(sqlite3_stmt *st, int col, truv_quota_fact fact, double *at,
                        truv_quota_facts *out) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return;
  out->seen |= 1u << fact;
  *at = (double)sqlite3_column_int64(st, col) / 1000.0;
}

static int sqlite_facts(truv_quota_store *s, const truv_quota_key *key, truv_quota_facts *out,
                        truv_err *err) {
  sqlstore *q = (sqlstore *)s;
  int rc;
  if ((rc = truv_sqlite_owned(q->opener, err))) return rc;
  sqlite3_bind_blob(q->facts, 1, key->bytes, TRUV_QUOTA_KEY_LEN, SQLITE_STATIC);
  rc = sqlite3_step(q->facts);
  if (rc == SQLITE_ROW) {
    const unsigned char *reason = sqlite3_column_text(q->facts, 1);
    column_time(q->facts, 0, TRUV_FACT_DEAD, &out->dead_at, out);
    column_time(q->facts, 2, TRUV_FACT_ALIVE, &out->alive_at, out);
    column_time(q->facts, 3, TRUV_FACT_AUTH, &out->auth_at, out);
    if (reason) snprintf(out->dead_reason, sizeof out->dead_reason, "%s", (const char *)reason);
  }
  sqlite3_reset(q->facts);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) return 0;
  return fail(q, rc, "reading connection facts", err);
}

static void sql_close(truv_quota_store *s) {
  sqlstore *q = (sqlstore *)s;
  sqlite3_stmt **stmts[] = {&q->nth_newest, &q->count,   &q->insert, &q->remove,
                            &q->bump,       &q->ticket,  &q->prune,  &q->note[0],
                            &q->note[1],    &q->note[2], &q->facts,  &q->fact_prune};
  size_t i;
  /* in a forked child the connection is the parent's: leave it alone */
  if (truv_sqlite_is_opener(q->opener)) {
    for (i = 0; i < sizeof stmts / sizeof *stmts; i++) sqlite3_finalize(*stmts[i]);
    truv_store_tx_finalize(&q->tx);
    sqlite3_close(q->db);
  }
  free(q);
}

static const truv_quota_ops sqlite_ops = {
  sql_reserve, sql_release,      sql_record_limit, sql_usage,
  sql_close,   sql_record_count, sqlite_note,      sqlite_facts,
};

truv_quota_store *truv_quota_sqlite(const char *path, const truv_quota_policy *policy,
                                    truv_err *err) {
  truv_quota_policy p = policy ? *policy : truv_quota_policy_default();
  sqlstore *q;
  if (truv_quota_policy_check(&p, err)) return NULL; /* clears err */
  if (!path) {
    truv_err_set(err, TRUV_EINVALID, "invalid_path", "a SQLite file path is needed");
    return NULL;
  }
  if (!(q = calloc(1, sizeof *q))) {
    truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "quota store: out of memory");
    return NULL;
  }
  q->base.ops = &sqlite_ops;
  q->base.policy = p;
  q->window_ms = truv_store_ms(p.window_s);
  q->opener = getpid();
  if (truv_store_file_open(path, &q->db, err) || truv_store_tx_prepare(q->db, &q->tx, err) ||
      truv_store_prepare(q->db, sql_nth_newest, &q->nth_newest, err) ||
      truv_store_prepare(q->db, sql_count, &q->count, err) ||
      truv_store_prepare(q->db, sql_insert, &q->insert, err) ||
      truv_store_prepare(q->db, sql_remove, &q->remove, err) ||
      truv_store_prepare(q->db, sql_bump, &q->bump, err) ||
      truv_store_prepare(q->db, sql_ticket, &q->ticket, err) ||
      truv_store_prepare(q->db, sql_prune, &q->prune, err) ||
      truv_store_prepare(q->db, sql_note[TRUV_FACT_DEAD], &q->note[TRUV_FACT_DEAD], err) ||
      truv_store_prepare(q->db, sql_note[TRUV_FACT_ALIVE], &q->note[TRUV_FACT_ALIVE], err) ||
      truv_store_prepare(q->db, sql_note[TRUV_FACT_AUTH], &q->note[TRUV_FACT_AUTH], err) ||
      truv_store_prepare(q->db, sql_facts, &q->facts, err) ||
      truv_store_prepare(q->db, sql_fact_prune, &q->fact_prune, err))
    goto fail;
  return &q->base;
fail:
  sql_close(&q->base);
  return NULL;
}
