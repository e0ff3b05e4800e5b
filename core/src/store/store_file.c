/* The SQLite file the durable quota and de-duplication stores share (see
 * store_file.h, truv/quota.h, truv/dedupe.h).
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
 * file at the same time create it once. The connection follows sqlite.h:
 * WAL with synchronous=NORMAL (no fsync per commit, and still no commit
 * lost when a process dies, only on a power cut).
 *
 * Processes. Every write takes the file's write lock (BEGIN IMMEDIATE, or
 * one statement), waiting up to the busy timeout for another process's
 * transaction, then fails with "store_busy". A process killed inside a
 * transaction leaves nothing of it: its lock goes with it (the kernel drops
 * its file locks), its uncommitted pages are ignored, and the next
 * connection carries on, counting only what was committed. A connection
 * never crosses fork() (truv_sqlite_owned). */
#include "store_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SCHEMA_VERSION 2

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

int truv_store_fail(sqlite3 *db, int rc, const char *what, truv_err *err) {
  return truv_sqlite_fail(db, rc, "store", err, "SQLite store: %s", what);
}

int truv_store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, truv_err *err) {
  int rc = truv_sqlite_prepare(db, sql, st);
  return rc == SQLITE_OK ? 0 : truv_store_fail(db, rc, "preparing a statement", err);
}

int truv_store_exec(sqlite3 *db, sqlite3_stmt *st, const char *what, truv_err *err) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) return 0;
  return truv_store_fail(db, rc, what, err);
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

/* Creates the schema, or checks that the file's is one this code knows. */
static int migrate(sqlite3 *db, truv_err *err) {
  long long version = 0;
  int rc;
  if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)))
    return truv_store_fail(db, rc, "taking the write lock", err);
  if ((rc = truv_sqlite_pragma_int(db, "PRAGMA user_version", &version))) goto fail;
  if (version > SCHEMA_VERSION) {
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return truv_err_set(err, TRUV_EINTERNAL, "store_schema",
                        "SQLite store: the file has schema version %lld, newer than this "
                        "libtruv's %d",
                        version, SCHEMA_VERSION);
  }
  if (version < SCHEMA_VERSION && (rc = sqlite3_exec(db, schema, NULL, NULL, NULL))) goto fail;
  if ((rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL))) goto fail;
  return 0;
fail:
  truv_store_fail(db, rc, "creating the schema", err);
  sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return TRUV_EINTERNAL;
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

int truv_store_file_open(const char *path, sqlite3 **out, truv_err *err) {
  sqlite3 *db = NULL;
  char what[96];
  int rc;
  *out = NULL;
  create_private(path);
  if ((rc = truv_sqlite_open(path, 0, &db)) != SQLITE_OK) {
    snprintf(what, sizeof what, "opening %.60s", path);
    truv_store_fail(db, rc, what, err);
    goto fail;
  }
  if ((rc = truv_sqlite_configure(db, 0, 0)) != SQLITE_OK) {
    truv_store_fail(db, rc, "setting WAL mode", err);
    goto fail;
  }
  if (migrate(db, err)) goto fail;
  *out = db;
  return 0;
fail:
  sqlite3_close(db);
  return TRUV_EINTERNAL;
}
