/* The durable de-duplication store: ids and ordering records in a SQLite
 * file (see truv/dedupe.h; the file and its schema are store_file.c's).
 *
 * Each answer is one UPSERT whose WHERE clause is the contract's condition,
 * and sqlite3_changes() says whether it wrote: a single statement is atomic
 * under the file's write lock, so two processes never both see an id first.
 * Dead records are deleted every PRUNE_EVERY writes of a handle, before the
 * write: a failed prune fails the call having recorded nothing (an id
 * recorded by a call that then reported an error would make the retry of
 * that webhook a duplicate, never handled). A handle works only in the
 * process that opened it (see truv_sqlite_owned). */
#include <stdlib.h>
#include <unistd.h>

#include "store.h"
#include "store_file.h"
#include "truv/dedupe.h"

#define PRUNE_EVERY 256

typedef struct sqldedupe {
  truv_dedupe_store base; /* first: the store header */
  sqlite3 *db;
  sqlite3_stmt *seen, *last, *forget, *prune_seen, *prune_last;
  double newest; /* newest updated_at this handle recorded */
  unsigned writes;
  pid_t opener;
} sqldedupe;

static const char q_seen[] = "INSERT INTO truv_dedupe_seen(id, expires_ms) VALUES (?1, ?2) "
                             "ON CONFLICT(id) DO UPDATE SET expires_ms = excluded.expires_ms "
                             "WHERE truv_dedupe_seen.expires_ms <= ?3";
static const char q_last[] = "INSERT INTO truv_dedupe_last(object, updated_at) VALUES (?1, ?2) "
                             "ON CONFLICT(object) DO UPDATE SET updated_at = excluded.updated_at "
                             "WHERE excluded.updated_at >= truv_dedupe_last.updated_at";
static const char q_forget[] = "DELETE FROM truv_dedupe_seen WHERE id = ?1";
static const char q_prune_seen[] = "DELETE FROM truv_dedupe_seen WHERE expires_ms <= ?1";
static const char q_prune_last[] = "DELETE FROM truv_dedupe_last WHERE updated_at < ?1";

/* Steps a bound write; *changed says whether it wrote a row. */
static int write_row(sqldedupe *d, sqlite3_stmt *st, const char *what, int *changed,
                     truv_err *err) {
  int rc = truv_store_exec(d->db, st, what, err);
  if (changed) *changed = !rc && sqlite3_changes(d->db) > 0;
  return rc;
}

static int maybe_prune(sqldedupe *d, int64_t now_ms, truv_err *err) {
  int rc;
  if (d->writes++ % PRUNE_EVERY != 0) return 0;
  sqlite3_bind_int64(d->prune_seen, 1, now_ms);
  if ((rc = write_row(d, d->prune_seen, "pruning", NULL, err))) return rc;
  sqlite3_bind_double(d->prune_last, 1, d->newest - TRUV_DEDUPE_ORDER_RETENTION_S);
  return write_row(d, d->prune_last, "pruning", NULL, err);
}

static int sql_seen(truv_dedupe_store *s, const char *id, size_t len, double now, double ttl_s,
                    int *first, truv_err *err) {
  sqldedupe *d = (sqldedupe *)s;
  int64_t now_ms = truv_store_ms(now);
  int rc;
  if ((rc = truv_sqlite_owned(d->opener, err)) || (rc = maybe_prune(d, now_ms, err))) return rc;
  sqlite3_bind_text(d->seen, 1, id, (int)len, SQLITE_STATIC);
  sqlite3_bind_int64(d->seen, 2, now_ms + truv_store_ms(ttl_s));
  sqlite3_bind_int64(d->seen, 3, now_ms);
  return write_row(d, d->seen, "recording a webhook id", first, err);
}

static int sql_last_update(truv_dedupe_store *s, const char *object_key, size_t len,
                           double updated_at, int *is_newer, truv_err *err) {
  sqldedupe *d = (sqldedupe *)s;
  int rc;
  if ((rc = truv_sqlite_owned(d->opener, err))) return rc;
  sqlite3_bind_text(d->last, 1, object_key, (int)len, SQLITE_STATIC);
  sqlite3_bind_double(d->last, 2, updated_at);
  if ((rc = write_row(d, d->last, "recording an update", is_newer, err))) return rc;
  if (updated_at > d->newest) d->newest = updated_at;
  return 0;
}

static int sql_forget(truv_dedupe_store *s, const char *id, size_t len, truv_err *err) {
  sqldedupe *d = (sqldedupe *)s;
  int rc;
  if ((rc = truv_sqlite_owned(d->opener, err))) return rc;
  sqlite3_bind_text(d->forget, 1, id, (int)len, SQLITE_STATIC);
  return write_row(d, d->forget, "forgetting a webhook id", NULL, err);
}

static void sql_close(truv_dedupe_store *s) {
  sqldedupe *d = (sqldedupe *)s;
  /* in a forked child the connection is the parent's: leave it alone */
  if (truv_sqlite_is_opener(d->opener)) {
    sqlite3_finalize(d->seen);
    sqlite3_finalize(d->last);
    sqlite3_finalize(d->forget);
    sqlite3_finalize(d->prune_seen);
    sqlite3_finalize(d->prune_last);
    sqlite3_close(d->db);
  }
  free(d);
}

static const truv_dedupe_ops sqlite_ops = {sql_seen, sql_last_update, sql_forget, sql_close};

truv_dedupe_store *truv_dedupe_sqlite(const char *path, truv_err *err) {
  sqldedupe *d;
  truv_err_clear(err);
  if (!path) {
    truv_err_set(err, TRUV_EINVALID, "invalid_path", "a SQLite file path is needed");
    return NULL;
  }
  if (!(d = calloc(1, sizeof *d))) {
    truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "dedupe store: out of memory");
    return NULL;
  }
  d->base.ops = &sqlite_ops;
  d->newest = -TRUV_STORE_MAX_TIME;
  d->opener = getpid();
  if (truv_store_file_open(path, &d->db, err) || truv_store_prepare(d->db, q_seen, &d->seen, err) ||
      truv_store_prepare(d->db, q_last, &d->last, err) ||
      truv_store_prepare(d->db, q_forget, &d->forget, err) ||
      truv_store_prepare(d->db, q_prune_seen, &d->prune_seen, err) ||
      truv_store_prepare(d->db, q_prune_last, &d->prune_last, err))
    goto fail;
  return &d->base;
fail:
  sql_close(&d->base);
  return NULL;
}
