/* The SQLite conventions of every file lua-truv keeps (see sqlite.h). */
#include "sqlite.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static int busy_ms(int busy_timeout_ms) {
  return busy_timeout_ms > 0 ? busy_timeout_ms : TRUV_SQLITE_BUSY_TIMEOUT_MS;
}

int truv_sqlite_open(const char *path, int busy_timeout_ms, sqlite3 **db) {
  int rc;
  *db = NULL;
  rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                       NULL);
  if (rc != SQLITE_OK) return rc;
  sqlite3_extended_result_codes(*db, 1);
  return sqlite3_busy_timeout(*db, busy_ms(busy_timeout_ms));
}

/* Switching a new file to WAL needs a lock that SQLite does not wait for
 * (processes opening a new file together get SQLITE_BUSY at once), so wait
 * here, as long as the busy timeout. */
static int set_wal(sqlite3 *db, int busy_timeout_ms) {
  int rc, waited = 0, slept;
  while ((rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL)) != SQLITE_OK &&
         (rc & 0xff) == SQLITE_BUSY && waited < busy_timeout_ms) {
    slept = sqlite3_sleep(5);
    waited += slept > 0 ? slept : 5;
  }
  return rc;
}

int truv_sqlite_configure(sqlite3 *db, int busy_timeout_ms, int sync_full) {
  int rc = set_wal(db, busy_ms(busy_timeout_ms));
  if (rc != SQLITE_OK) return rc;
  return sqlite3_exec(db, sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", NULL,
                      NULL, NULL);
}

int truv_sqlite_pragma_int(sqlite3 *db, const char *sql, long long *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  *out = 0;
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) *out = sqlite3_column_int64(st, 0);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
  sqlite3_finalize(st);
  return rc;
}

int truv_sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
}

int truv_sqlite_fail(sqlite3 *db, int rc, const char *code, truv_err *err, const char *fmt, ...) {
  char context[256];
  va_list ap;
  int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) code = TRUV_SQLITE_BUSY_CODE;
  else if (primary == SQLITE_FULL) code = "disk_full";
  va_start(ap, fmt);
  if (vsnprintf(context, sizeof context, fmt, ap) < 0) context[0] = '\0';
  va_end(ap);
  return truv_err_set(err, TRUV_EINTERNAL, code, "%s: %s", context,
                      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

int truv_sqlite_is_opener(pid_t opener) {
  return getpid() == opener;
}

int truv_sqlite_owned(pid_t opener, truv_err *err) {
  pid_t me = getpid();
  if (me == opener) return 0;
  return truv_err_set(err, TRUV_EINVALID, "store_forked",
                      "SQLite store: opened by process %ld and used by process %ld (a "
                      "connection cannot cross fork(): open the store in each process, "
                      "inside nginx in init_worker_by_lua)",
                      (long)opener, (long)me);
}
