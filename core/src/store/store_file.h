/* The SQLite file the durable quota and de-duplication stores share (one
 * file may hold both): its schema, and the statement helpers both stores
 * use, whose failures read "SQLite store: ...". Internal; the conventions
 * of the connection (WAL, the busy timeout and code, fork) are sqlite.h's. */
#ifndef TRUV_STORE_FILE_H
#define TRUV_STORE_FILE_H

#include "sqlite.h"

/* Opens (creating) the file: the conventions of sqlite.h, the schema
 * created or checked. */
int truv_store_file_open(const char *path, sqlite3 **db, truv_err *err);

/* A failed SQLite call on the file, with `what` in the message (code
 * "store_busy", "disk_full" or "store"); returns TRUV_EINTERNAL. */
int truv_store_fail(sqlite3 *db, int rc, const char *what, truv_err *err);
int truv_store_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, truv_err *err);
/* Steps a statement that returns no row, then resets it. */
int truv_store_exec(sqlite3 *db, sqlite3_stmt *st, const char *what, truv_err *err);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK on prepared statements. */
typedef struct truv_store_tx {
  sqlite3_stmt *begin, *commit, *rollback;
} truv_store_tx;
int truv_store_tx_prepare(sqlite3 *db, truv_store_tx *tx, truv_err *err);
void truv_store_tx_finalize(truv_store_tx *tx);
int truv_store_begin(sqlite3 *db, truv_store_tx *tx, truv_err *err);
int truv_store_commit(sqlite3 *db, truv_store_tx *tx, truv_err *err);
void truv_store_rollback(sqlite3 *db, truv_store_tx *tx);

#endif
