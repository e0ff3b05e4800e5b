/* Internal helpers shared by the quota and de-duplication stores: time in
 * milliseconds, domain-separated 16-byte hashes, and the SQLite file
 * conventions (open, pragmas, the one versioned schema, error mapping). */
#ifndef TRUV_QUOTA_STORE_H
#define TRUV_QUOTA_STORE_H

#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "truv/err.h"
#include "truv/quota.h"

/* Times a store accepts: finite and within +-1e11 s of the epoch (past the
 * year 5000), so that milliseconds fit 48 bits with room for window
 * arithmetic (the memory quota store packs them; see quota_memory.c). */
#define TRUV_STORE_MAX_TIME 1e11

/* Seconds -> whole milliseconds, rounded to nearest. */
int64_t truv_store_ms(double s);
/* 0, or TRUV_EINVALID naming `what` when t is not a usable time. */
int truv_store_check_time(double t, const char *what, truv_err *err);

/* First 16 bytes of SHA-256(prefix || data). A hasher keeps the digest
 * context of one store between calls (several times faster than a one-shot
 * digest on OpenSSL 3); NULL hashes without one. */
typedef struct truv_hasher {
  EVP_MD_CTX *ctx;
  EVP_MD *md;        /* fetched once (OpenSSL 3), NULL before */
} truv_hasher;

int truv_hasher_init(truv_hasher *h, truv_err *err);
void truv_hasher_free(truv_hasher *h);
int truv_hash16(truv_hasher *h, const char *prefix, const void *data, size_t len,
                unsigned char out[16], truv_err *err);

/* 1 if keys[i] equals one of keys[0..i): a key listed twice counts once. */
int truv_quota_key_repeats(const truv_quota_key *keys, size_t i);

/* ---- SQLite ---- */

/* Opens (creating) the file with the store conventions: busy timeout, WAL,
 * synchronous=NORMAL, the schema created or checked. */
int truv_store_db_open(const char *path, sqlite3 **db, truv_err *err);
/* A connection belongs to the process that opened it: SQLite's locks are
 * per process, so a forked child using its parent's connection would take
 * locks the parent believes it holds (two writers at once), and closing it
 * could checkpoint and delete the write-ahead log under the parent.
 * 0 in the opener, else TRUV_EINVALID with code "store_forked". */
int truv_store_db_owned(pid_t opener, truv_err *err);
/* Whether the calling process is `opener` (a forked child closing a handle
 * must free only its memory, never touch the file). */
int truv_store_db_is_opener(pid_t opener);
/* Maps a SQLite failure to TRUV_EINTERNAL ("store_busy" for lock timeouts,
 * "store" otherwise) with `what` in the message; returns TRUV_EINTERNAL. */
int truv_store_db_fail(sqlite3 *db, int rc, const char *what, truv_err *err);
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
