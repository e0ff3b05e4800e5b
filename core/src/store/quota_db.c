/* The SQLite file conventions shared by the durable quota and
 * de-duplication stores (see truv/quota.h, truv/dedupe.h).
 *
 * One schema for both, so that one file may hold both; PRAGMA user_version
 * says which version wrote it. Version 2 (version 1 without the facts
 * table; a version 1 file is brought up to date when opened):
 *
 *   truv_quota_entry(key BLOB, t_ms INTEGER, ticket INTEGER)
 *     one row per refresh counted against a connection: key is the 16-byte
 *     connection key (a hash, never the token), t_ms the time in ms, ticket
 *     the reservation (0: recorded from Truv's refusal). Indexed by (key,
 *     t_ms) for reserve and by t_ms for pruning.
 *   truv_store_counter(name, value)
 *     'quota_ticket': the last ticket issued, shared by every process.
 *   truv_dedupe_seen(id TEXT PRIMARY KEY, expires_ms INTEGER)
 *   truv_dedupe_last(object TEXT PRIMARY KEY, updated_at REAL)
 *   truv_quota_fact(key BLOB PRIMARY KEY, dead_ms, dead_reason, alive_ms,
 *                   auth_ms, latest_ms)
 *     a connection's facts (truv/quota.h): the latest instant of each (NULL:
 *     never noted), the cause of the latest failure, and the latest of the
 *     three, indexed for pruning.
 *
 * The schema is created inside BEGIN IMMEDIATE, so processes opening a new
 * file at the same time create it once. WAL lets readers and the one writer
 * proceed together; synchronous=NORMAL commits without an fsync each time and
 * still never loses a commit when a process dies (only on a power cut).
 *
 * Processes. Every write takes the file's write lock (BEGIN IMMEDIATE, or
 * one statement), waiting up to BUSY_TIMEOUT_MS for another process's
 * transaction, then fails with "store_busy". A process killed inside a
 * transaction leaves nothing of it: its lock goes with it (the kernel drops
 * its file locks), its uncommitted pages are ignored, and the next
 * connection carries on, counting only what was committed. A connection
 * never crosses fork() (truv_store_db_owned). */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "quota_store.h"

#define SCHEMA_VERSION 2
#define BUSY_TIMEOUT_MS 10000

/* Every statement is idempotent: the script brings any older file (or a
 * new one) to this version. */
static const char schema[] =
  "CREATE TABLE IF NOT EXISTS truv_quota_entry ("
  " key BLOB NOT NULL, t_ms INTEGER NOT NULL, ticket INTEGER NOT NULL);"
  "CREATE INDEX IF NOT EXISTS truv_quota_entry_by_key ON truv_quota_entry(key, t_ms);"
  "CREATE INDEX IF NOT EXISTS truv_quota_entry_by_time ON truv_quota_entry(t_ms);"
  "CREATE TABLE IF NOT EXISTS truv_store_counter ("
  " name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
  "INSERT OR IGNORE INTO truv_store_counter(name, value) VALUES ('quota_ticket', 0);"
  "CREATE TABLE IF NOT EXISTS truv_dedupe_seen ("
  " id TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL) WITHOUT ROWID;"
  "CREATE INDEX IF NOT EXISTS truv_dedupe_seen_by_expiry ON truv_dedupe_seen(expires_ms);"
  "CREATE TABLE IF NOT EXISTS truv_dedupe_last ("
  " object TEXT PRIMARY KEY, updated_at REAL NOT NULL) WITHOUT ROWID;"
  "CREATE INDEX IF NOT EXISTS truv_dedupe_last_by_time ON truv_dedupe_last(updated_at);"
  "CREATE TABLE IF NOT EXISTS truv_quota_fact ("
  " key BLOB PRIMARY KEY, dead_ms INTEGER, dead_reason TEXT, alive_ms INTEGER,"
  " auth_ms INTEGER, latest_ms INTEGER NOT NULL) WITHOUT ROWID;"
  "CREATE INDEX IF NOT EXISTS truv_quota_fact_by_time ON truv_quota_fact(latest_ms);"
  "PRAGMA user_version = 2;";

int truv_store_db_fail(sqlite3 *db, int rc, const char *what, truv_err *err) {
  const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  int busy = (rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED;
  return truv_err_set(err, TRUV_EINTERNAL, busy ? "store_busy" : "store",
                      "SQLite store: %s: %s", what, msg);
}

int truv_store_db_is_opener(pid_t opener) {
  return getpid() == opener;
}

int truv_store_db_owned(pid_t opener, truv_err *err) {
  pid_t me = getpid();
  if (me == opener) return 0;
  return truv_err_set(err, TRUV_EINVALID, "store_forked",
                      "SQLite store: opened by process %ld and used by process %ld (a "
                      "connection cannot cross fork(): open the store in each process, "
                      "inside nginx in init_worker_by_lua)", (long)opener, (long)me);
}

int truv_store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, truv_err *err) {
  int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
  return rc == SQLITE_OK ? 0 : truv_store_db_fail(db, rc, "preparing a statement", err);
}

int truv_store_exec(sqlite3 *db, sqlite3_stmt *st, const char *what, truv_err *err) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
  return truv_store_db_fail(db, rc, what, err);
}

int truv_store_tx_prepare(sqlite3 *db, truv_store_tx *tx, truv_err *err) {
  int rc;
  if ((rc = truv_store_prepare(db, "BEGIN IMMEDIATE", &tx->begin, err)) ||
      (rc = truv_store_prepare(db, "COMMIT", &tx->commit, err)) ||
      (rc = truv_store_prepare(db, "ROLLBACK", &tx->rollback, err)))
    return rc;
  return 0;
}

void truv_store_tx_finalize(truv_store_tx *tx) {
  sqlite3_finalize(tx->begin);
  sqlite3_finalize(tx->commit);
  sqlite3_finalize(tx->rollback);
  tx->begin = tx->commit = tx->rollback = NULL;
}

int truv_store_begin(sqlite3 *db, truv_store_tx *tx, truv_err *err) {
  return truv_store_exec(db, tx->begin, "taking the write lock", err);
}

int truv_store_commit(sqlite3 *db, truv_store_tx *tx, truv_err *err) {
  return truv_store_exec(db, tx->commit, "committing", err);
}

void truv_store_rollback(sqlite3 *db, truv_store_tx *tx) {
  if (!sqlite3_get_autocommit(db)) truv_store_exec(db, tx->rollback, "rolling back", NULL);
}

static int user_version(sqlite3 *db, int *version) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    *version = sqlite3_column_int(st, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc;
}

/* Creates the schema, or checks that the file's is one this code knows. */
static int migrate(sqlite3 *db, truv_err *err) {
  int rc, version = 0;
  if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)))
    return truv_store_db_fail(db, rc, "taking the write lock", err);
  if ((rc = user_version(db, &version))) goto fail;
  if (version > SCHEMA_VERSION) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return truv_err_set(err, TRUV_EINTERNAL, "store_schema",
                        "SQLite store: the file has schema version %d, newer than this "
                        "libtruv's %d", version, SCHEMA_VERSION);
  }
  if (version < SCHEMA_VERSION && (rc = sqlite3_exec(db, schema, NULL, NULL, NULL)))
    goto fail;
  if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL))) goto fail;
  return 0;
fail:
  truv_store_db_fail(db, rc, "creating the schema", err);
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return TRUV_EINTERNAL;
}

/* Switching a new file to WAL needs a lock that SQLite does not wait for
 * (processes opening a new file together get SQLITE_BUSY at once), so wait
 * here, as long as the busy timeout. */
static int set_wal(sqlite3 *db) {
  int rc, waited = 0, slept;
  while ((rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL)) != SQLITE_OK &&
         (rc & 0xff) == SQLITE_BUSY && waited < BUSY_TIMEOUT_MS) {
    slept = sqlite3_sleep(5);
    waited += slept > 0 ? slept : 5;
  }
  return rc;
}

/* A new file is made readable by its owner only (SQLite gives its -wal and
 * -shm files the database's mode): what it holds is the owner's business,
 * and a file another user could write would let them reset the quota. An
 * existing file keeps its mode (an administrator may share it with a
 * group). ":memory:" and URI names are left to SQLite. */
static void create_private(const char *path) {
  int fd;
  if (path[0] == '\0' || path[0] == ':' || strncmp(path, "file:", 5) == 0) return;
  if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0) close(fd);
}

int truv_store_db_open(const char *path, sqlite3 **out, truv_err *err) {
  sqlite3 *db = NULL;
  char what[96];
  int rc;
  *out = NULL;
  create_private(path);
  rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                       SQLITE_OPEN_NOMUTEX, NULL);
  if (rc != SQLITE_OK) {
    snprintf(what, sizeof what, "opening %.60s", path);
    truv_store_db_fail(db, rc, what, err);
    goto fail;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
  if ((rc = set_wal(db)) == SQLITE_OK)
    rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    truv_store_db_fail(db, rc, "setting WAL mode", err);
    goto fail;
  }
  if (migrate(db, err)) goto fail;
  *out = db;
  return 0;
fail:
  sqlite3_close(db);
  return TRUV_EINTERNAL;
}
