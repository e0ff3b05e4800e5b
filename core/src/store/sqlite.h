/* The conventions of every SQLite file lua-truv keeps: the file the durable
 * quota and de-duplication stores share (store_file.c) and a renewal
 * journal (journal.c). Internal.
 *
 *   - Opened read-write, created when missing, without SQLite's own mutex
 *     (a handle belongs to one thread at a time), with extended result
 *     codes.
 *   - WAL, so that readers and the one writer proceed together, with
 *     synchronous=NORMAL (a commit survives the death of the process, not a
 *     power cut) or FULL (an fsync per commit) when asked.
 *   - One busy timeout: a lock another connection holds is waited for up to
 *     TRUV_SQLITE_BUSY_TIMEOUT_MS (unless the caller names its own), then
 *     the call fails with code "store_busy", whatever the file.
 *   - A connection belongs to the process that opened it: SQLite's locks
 *     are per process, so a forked child using its parent's connection
 *     would take locks the parent believes it holds (two writers at once),
 *     and closing it could checkpoint and delete the write-ahead log under
 *     the parent.
 * Functions returning an int return SQLite's result code (SQLITE_OK) unless
 * they take a truv_err. */
#ifndef TRUV_STORE_SQLITE_H
#define TRUV_STORE_SQLITE_H

#include <sys/types.h>

#include <sqlite3.h>

#include "truv/err.h"

#define TRUV_SQLITE_BUSY_TIMEOUT_MS 10000
#define TRUV_SQLITE_BUSY_CODE "store_busy"

/* Opens path with the conventions above and the busy timeout (0: the
 * default). *db may be set on failure too (it holds SQLite's message): the
 * caller closes it either way. */
int truv_sqlite_open(const char *path, int busy_timeout_ms, sqlite3 **db);

/* WAL (waiting out another process switching a new file at the same time,
 * as long as the busy timeout: 0, the default) and the synchronous level. */
int truv_sqlite_configure(sqlite3 *db, int busy_timeout_ms, int sync_full);

/* Runs a statement that answers one integer (a PRAGMA, a count); *out is 0
 * when it answers no row. */
int truv_sqlite_pragma_int(sqlite3 *db, const char *sql, long long *out);

/* Prepares a statement kept for the life of the connection. */
int truv_sqlite_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st);

/* SQLite's failure rc as a truv_err: TRUV_EINTERNAL, code "store_busy" when
 * a lock outlasted the busy timeout, "disk_full" when the disk is, `code`
 * for anything else; the message is the formatted context, ": ", and
 * SQLite's own words. err may be NULL. Returns TRUV_EINTERNAL. */
int truv_sqlite_fail(sqlite3 *db, int rc, const char *code, truv_err *err, const char *fmt, ...)
  __attribute__((format(printf, 5, 6)));

/* 0 in the process that opened the connection (`opener`), else
 * TRUV_EINVALID with code "store_forked". */
int truv_sqlite_owned(pid_t opener, truv_err *err);
/* Whether the calling process is `opener` (a forked child closing a handle
 * must free only its memory, never touch the file). */
int truv_sqlite_is_opener(pid_t opener);

#endif
