/* The journal of a renewal batch (see truv/journal.h).
 *
 * Representation. One row per case in `cases`: seq (the rowid, insertion
 * order), case_id (unique), one column per well-known field (no declared
 * type, so SQLite keeps each value's own type), `bools` (bit i set: column
 * i holds a boolean stored as 0/1) and `extra` (a JSON object with every
 * other field, NULL when empty). Run-level facts live in `meta`.
 *
 * A put is ONE statement, whatever fields it names: an upsert whose UPDATE
 * keeps each column unless its bit is set in a mask parameter, and merges
 * the other fields into `extra` with json_patch (RFC 7396: a null in the
 * patch removes the key). No read-modify-write, so a put costs one b-tree
 * write however many fields the row has.
 *
 * Returned cases live in a scratch area of the journal (a field array, a
 * string buffer, the parsed `extra`), reused by the next call. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../proto/buffer.h"
#include "sqlite.h"
#include "truv/journal.h"

#define APPLICATION_ID 0x74727576 /* "truv" */
#define MAX_NAME 128

/* The well-known fields, in column order. At most 63 (a bit each in a mask). */
static const char *const COLUMNS[] = {"state",
                                      "route",
                                      "reason",
                                      "order_id",
                                      "original_order_id",
                                      "refresh_order_id",
                                      "baseline_refresh_order",
                                      "reverify_order_id",
                                      "sent_at",
                                      "retry_at",
                                      "not_before",
                                      "updated_at",
                                      "share_url",
                                      "attempts",
                                      "error",
                                      "input",
                                      "result",
                                      "line",
                                      "quota_ticket",
                                      "quota_keys"};
#define NCOLS ((int)(sizeof COLUMNS / sizeof *COLUMNS))
enum { COL_STATE = 0, COL_ROUTE = 1 };

static const char *const STATES[] = {"new",     "planned",   "sending", "sent",   "waiting",
                                     "linking", "scheduled", "routed",  "failed", NULL};

/* The columns of a case as SELECTed: seq, case_id, the fields, bools, extra. */
#define SEL_FIELDS 2
#define SEL_BOOLS (2 + NCOLS)
#define SEL_EXTRA (3 + NCOLS)

struct truv_journal {
  sqlite3 *db;
  char *path;
  int lock_fd;
  sqlite3_stmt *put, *get, *del, *meta_get, *meta_set, *meta_del;
  truv_jcursor *cursors; /* open cursors: finalized by close */
  /* scratch for what is handed out */
  truv_jfield *fields;
  size_t fcap;
  char *buf;
  size_t bcap;
  cJSON *extra;
  char *patch; /* the JSON patch a put builds */
  size_t plen, pcap;
};

struct truv_jcursor {
  truv_journal *j; /* NULL once the journal was closed */
  sqlite3_stmt *stmt;
  long long last_seq;
  truv_jcursor *next, **prevp;
};

/* ------------------------------------------------------------ errors */

static int db_fail(truv_journal *j, const char *what, truv_err *err) {
  return truv_sqlite_fail(j->db, sqlite3_errcode(j->db), "journal", err, "journal %s: %s", j->path,
                          what);
}

static int nomem(truv_err *err) {
  return truv_err_set(err, TRUV_EINTERNAL, "nomem", "journal: out of memory");
}

int truv_journal_state_valid(const char *s) {
  const char *const *p;
  for (p = STATES; s && *p; p++)
    if (strcmp(s, *p) == 0) return 1;
  return 0;
}

const char *truv_journal_path(const truv_journal *j) {
  return j->path;
}

/* ------------------------------------------------------------ schema */

static int exec(truv_journal *j, const char *sql, truv_err *err) {
  if (sqlite3_exec(j->db, sql, NULL, NULL, NULL) != SQLITE_OK) return db_fail(j, sql, err);
  return 0;
}

static int pragma_int(truv_journal *j, const char *sql, long long *out, truv_err *err) {
  return truv_sqlite_pragma_int(j->db, sql, out) == SQLITE_OK ? 0 : db_fail(j, sql, err);
}

static char *cases_ddl(void) {
  size_t cap = 1024, len;
  char *sql = malloc(cap);
  int i;
  if (!sql) return NULL;
  len = (size_t)snprintf(sql, cap,
                         "CREATE TABLE cases (seq INTEGER PRIMARY KEY, case_id TEXT NOT NULL "
                         "UNIQUE, state NOT NULL DEFAULT 'new'");
  for (i = 1; i < NCOLS; i++) len += (size_t)snprintf(sql + len, cap - len, ", %s", COLUMNS[i]);
  snprintf(sql + len, cap - len, ", bools INTEGER NOT NULL DEFAULT 0, extra TEXT)");
  return sql;
}

/* Creates the schema in a new file; inside one transaction so that a
 * process killed half-way leaves an empty file, not half a schema. */
static int create_schema(truv_journal *j, truv_err *err) {
  char *ddl = cases_ddl(), pragmas[128];
  int rc = 0;
  long long version;
  if (!ddl) return nomem(err);
  if ((rc = exec(j, "BEGIN IMMEDIATE", err))) goto done;
  /* another process may have created it while we waited for the lock */
  if ((rc = pragma_int(j, "PRAGMA user_version", &version, err)) || version) goto commit;
  snprintf(pragmas, sizeof pragmas, "PRAGMA user_version = %d; PRAGMA application_id = %d",
           TRUV_JOURNAL_SCHEMA, APPLICATION_ID);
  if ((rc = exec(j, ddl, err)) ||
      (rc = exec(j,
                 "CREATE INDEX cases_state ON cases(state);"
                 "CREATE INDEX cases_route ON cases(route) WHERE route IS NOT NULL;"
                 "CREATE TABLE meta (key TEXT PRIMARY KEY, value, "
                 "is_bool INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
                 err)) ||
      (rc = exec(j, pragmas, err)))
    goto rollback;
commit:
  if (!rc) rc = exec(j, "COMMIT", err);
  goto done;
rollback:
  sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
done:
  free(ddl);
  return rc;
}

/* Reads the version and the mark; creates the schema in an empty file. */
static int check_schema(truv_journal *j, truv_err *err) {
  long long version, app, tables;
  int rc;
  if ((rc = pragma_int(j, "PRAGMA user_version", &version, err)) ||
      (rc = pragma_int(j, "PRAGMA application_id", &app, err)) ||
      (rc = pragma_int(j, "SELECT count(*) FROM sqlite_master", &tables, err)))
    return rc;
  if ((app && app != APPLICATION_ID) || (!app && tables))
    return truv_err_set(err, TRUV_EINTERNAL, "not_a_journal",
                        "%s is an SQLite file but not a lua-truv journal", j->path);
  if (version > TRUV_JOURNAL_SCHEMA)
    return truv_err_set(err, TRUV_EINTERNAL, "schema_newer",
                        "journal %s has schema version %lld; this lua-truv reads versions up "
                        "to %d: use a newer lua-truv",
                        j->path, version, TRUV_JOURNAL_SCHEMA);
  return version ? 0 : create_schema(j, err);
}

/* ------------------------------------------------------------ statements */

/* INSERT ... ON CONFLICT(case_id) DO UPDATE, parameters:
 *   ?1 case_id, ?(2+i) column i, ?(NCOLS+2) boolean mask, ?(NCOLS+3) set
 *   mask, ?(NCOLS+4) the JSON patch for extra (NULL: none). */
static char *upsert_sql(void) {
  size_t cap = 8192, len = 0;
  char *sql = malloc(cap);
  int i, b = NCOLS + 2, m = NCOLS + 3, p = NCOLS + 4;
  if (!sql) return NULL;
  len += (size_t)snprintf(sql + len, cap - len, "INSERT INTO cases (case_id");
  for (i = 0; i < NCOLS; i++) len += (size_t)snprintf(sql + len, cap - len, ", %s", COLUMNS[i]);
  len += (size_t)snprintf(sql + len, cap - len, ", bools, extra) VALUES (?1, coalesce(?2, 'new')");
  for (i = 1; i < NCOLS; i++) len += (size_t)snprintf(sql + len, cap - len, ", ?%d", i + 2);
  len += (size_t)snprintf(sql + len, cap - len,
                          ", ?%d, CASE WHEN ?%d IS NULL THEN NULL ELSE "
                          "nullif(json_patch('{}', ?%d), '{}') END) "
                          "ON CONFLICT(case_id) DO UPDATE SET ",
                          b, p, p);
  for (i = 0; i < NCOLS; i++)
    len += (size_t)snprintf(sql + len, cap - len,
                            "%s = CASE WHEN ?%d & %lld THEN excluded.%s ELSE %s END, ", COLUMNS[i],
                            m, 1LL << i, COLUMNS[i], COLUMNS[i]);
  snprintf(sql + len, cap - len,
           "bools = (bools & ~?%d) | ?%d, extra = CASE WHEN ?%d IS NULL THEN extra ELSE "
           "nullif(json_patch(coalesce(extra, '{}'), ?%d), '{}') END",
           m, b, p, p);
  return sql;
}

static char *select_sql(const char *where, const char *tail) {
  size_t cap = 1024 + strlen(where) + strlen(tail), len = 0;
  char *sql = malloc(cap);
  int i;
  if (!sql) return NULL;
  len += (size_t)snprintf(sql + len, cap - len, "SELECT seq, case_id");
  for (i = 0; i < NCOLS; i++) len += (size_t)snprintf(sql + len, cap - len, ", %s", COLUMNS[i]);
  snprintf(sql + len, cap - len, ", bools, extra FROM cases %s%s", where, tail);
  return sql;
}

static int prepare(truv_journal *j, const char *sql, sqlite3_stmt **st, truv_err *err) {
  if (!sql) return nomem(err);
  if (truv_sqlite_prepare(j->db, sql, st) != SQLITE_OK) return db_fail(j, "prepare", err);
  return 0;
}

static int prepare_all(truv_journal *j, truv_err *err) {
  char *put = upsert_sql(), *get = select_sql("WHERE case_id = ?1", "");
  int rc;
  rc = prepare(j, put, &j->put, err);
  if (!rc) rc = prepare(j, get, &j->get, err);
  if (!rc) rc = prepare(j, "DELETE FROM cases WHERE case_id = ?1", &j->del, err);
  if (!rc) rc = prepare(j, "SELECT value, is_bool FROM meta WHERE key = ?1", &j->meta_get, err);
  if (!rc)
    rc = prepare(j,
                 "INSERT INTO meta (key, value, is_bool) VALUES (?1, ?2, ?3) ON CONFLICT(key) "
                 "DO UPDATE SET value = excluded.value, is_bool = excluded.is_bool",
                 &j->meta_set, err);
  if (!rc) rc = prepare(j, "DELETE FROM meta WHERE key = ?1", &j->meta_del, err);
  free(put);
  free(get);
  return rc;
}

/* ------------------------------------------------------------ open, close */

/* The exclusive lock: flock(2) on a descriptor of the database file itself,
 * held while the journal is open and released by the kernel when the
 * process dies.
 *
 * Why the file and not a name: the journal is one inode whatever path
 * reaches it (a symlink, a hard link, "dir/./x", a bind mount). A lock file
 * named after the path ("<path>-lock") is a different file for each name,
 * so two runs on one journal through two names both got "their" lock and
 * refreshed the same cases. A lock file derived from the resolved path
 * still misses hard links and bind mounts; one derived from the inode needs
 * a directory both runs agree on. The inode's own lock needs nothing.
 *
 * Why flock and not fcntl: SQLite locks the same file with fcntl(2) byte
 * ranges, and POSIX locks belong to the process, so ours would merge with
 * SQLite's and a close() of either descriptor would drop both. On Linux,
 * flock locks are a separate kind attached to the open file description:
 * they neither conflict nor merge with SQLite's (a reader in another
 * process, such as a report, still opens the journal), and a second open()
 * in the same process is refused like another process. On NFS the kernel
 * emulates flock with fcntl, but a WAL journal cannot live there anyway
 * (WAL needs shared memory between its processes, so local files only).
 * The descriptor is closed only after SQLite has closed its own, since the
 * close of any descriptor of the file drops the process's fcntl locks. */
static int take_lock(truv_journal *j, truv_err *err) {
  j->lock_fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (j->lock_fd < 0) {
    int e = errno;
    return truv_err_set(err, TRUV_EINTERNAL,
                        e == EROFS || e == EACCES || e == EPERM ? "read_only" : "journal",
                        "journal %s cannot be opened for writing: %s", j->path, strerror(e));
  }
  if (flock(j->lock_fd, LOCK_EX | LOCK_NB) == 0) return 0;
  if (errno == EWOULDBLOCK)
    return truv_err_set(err, TRUV_EINTERNAL, "busy",
                        "journal %s is in use by another process (opened exclusively)", j->path);
  return truv_err_set(err, TRUV_EINTERNAL, "journal", "journal %s cannot be locked: %s", j->path,
                      strerror(errno));
}

static int configure(truv_journal *j, const truv_journal_options *o, truv_err *err) {
  /* WAL first: it cannot be switched inside the schema's transaction */
  if (truv_sqlite_configure(j->db, o->busy_timeout_ms, o->sync_full) != SQLITE_OK)
    return db_fail(j, "setting WAL mode", err);
  return 0;
}

int truv_journal_open(const char *path, const truv_journal_options *opts, truv_journal **out,
                      truv_err *err) {
  truv_journal_options none;
  truv_journal *j;
  int rc;
  truv_err_clear(err);
  *out = NULL;
  if (!opts) {
    memset(&none, 0, sizeof none);
    opts = &none;
  }
  if (!path || !*path) return truv_err_invalid(err, "path", "a journal needs a file path");
  if (!(j = calloc(1, sizeof *j)) || !(j->path = strdup(path))) {
    free(j);
    return nomem(err);
  }
  j->lock_fd = -1;
  if (opts->exclusive && (rc = take_lock(j, err))) goto fail;
  if (truv_sqlite_open(path, opts->busy_timeout_ms, &j->db) != SQLITE_OK) {
    rc = j->db ? db_fail(j, "open", err) : nomem(err);
    goto fail;
  }
  /* SQLite falls back to reading a file it cannot write: a run would then
   * fail at its first write, after it may have sent a refresh */
  if (opts->exclusive && sqlite3_db_readonly(j->db, "main") == 1) {
    rc = truv_err_set(err, TRUV_EINTERNAL, "read_only", "journal %s is read-only", path);
    goto fail;
  }
  if ((rc = configure(j, opts, err)) || (rc = check_schema(j, err)) || (rc = prepare_all(j, err)))
    goto fail;
  *out = j;
  return 0;

fail:
  truv_journal_close(j, NULL);
  return rc;
}

int truv_journal_close(truv_journal *j, truv_err *err) {
  truv_jcursor *c;
  int rc = 0;
  if (!j) return 0;
  if (j->db && !sqlite3_get_autocommit(j->db)) rc = truv_journal_commit(j, err);
  for (c = j->cursors; c; c = c->next) {
    sqlite3_finalize(c->stmt);
    c->stmt = NULL;
    c->j = NULL;
    c->prevp = NULL;
  }
  sqlite3_finalize(j->put);
  sqlite3_finalize(j->get);
  sqlite3_finalize(j->del);
  sqlite3_finalize(j->meta_get);
  sqlite3_finalize(j->meta_set);
  sqlite3_finalize(j->meta_del);
  sqlite3_close_v2(j->db); /* also if a commit failed: WAL rolls an open group back */
  if (j->lock_fd >= 0) close(j->lock_fd);
  cJSON_Delete(j->extra);
  free(j->fields);
  free(j->buf);
  free(j->patch);
  free(j->path);
  free(j);
  return rc;
}

/* ------------------------------------------------------------ groups */

int truv_journal_in_group(const truv_journal *j) {
  return !sqlite3_get_autocommit(j->db);
}

int truv_journal_begin(truv_journal *j, truv_err *err) {
  truv_err_clear(err);
  if (truv_journal_in_group(j))
    return truv_err_set(err, TRUV_EINVALID, "group_open", "journal: begin() inside an open group");
  /* IMMEDIATE: take the write lock now, not half-way through the group */
  return exec(j, "BEGIN IMMEDIATE", err);
}

int truv_journal_commit(truv_journal *j, truv_err *err) {
  truv_err_clear(err);
  return truv_journal_in_group(j) ? exec(j, "COMMIT", err) : 0;
}

int truv_journal_rollback(truv_journal *j, truv_err *err) {
  truv_err_clear(err);
  return truv_journal_in_group(j) ? exec(j, "ROLLBACK", err) : 0;
}

/* ------------------------------------------------------------ put */

static int column_of(const char *name) {
  int i;
  for (i = 0; i < NCOLS; i++)
    if (strcmp(name, COLUMNS[i]) == 0) return i;
  return -1;
}

static int patch_add(truv_journal *j, const char *s, size_t len) {
  return truv_buffer_append(&j->patch, &j->plen, &j->pcap, 256, s, len);
}

/* Appends s as a JSON string. */
static int patch_string(truv_journal *j, const char *s, size_t len) {
  char esc[8];
  size_t i, run = 0;
  if (patch_add(j, "\"", 1)) return -1;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if (patch_add(j, s + run, i - run)) return -1;
    snprintf(esc, sizeof esc, c == '"' ? "\\\"" : c == '\\' ? "\\\\" : "\\u%04x", c);
    if (patch_add(j, esc, strlen(esc))) return -1;
    run = i + 1;
  }
  return patch_add(j, s + run, len - run) || patch_add(j, "\"", 1) ? -1 : 0;
}

static int patch_value(truv_journal *j, const truv_jvalue *v) {
  char num[40];
  switch (v->type) {
    case TRUV_JNULL: return patch_add(j, "null", 4);
    case TRUV_JBOOL: return v->i ? patch_add(j, "true", 4) : patch_add(j, "false", 5);
    case TRUV_JINT: snprintf(num, sizeof num, "%lld", v->i); break;
    case TRUV_JREAL: snprintf(num, sizeof num, "%.17g", v->r); break;
    case TRUV_JTEXT: return patch_string(j, v->s, v->len);
  }
  return patch_add(j, num, strlen(num));
}

static int check_field(const truv_jfield *f, int col, truv_err *err) {
  const truv_jvalue *v = &f->value;
  if (!f->name || !*f->name || strlen(f->name) > MAX_NAME)
    return truv_err_invalid(err, "fields", "a field needs a name of 1 to %d bytes", MAX_NAME);
  if (strcmp(f->name, "case_id") == 0 || strcmp(f->name, "seq") == 0)
    return truv_err_invalid(err, f->name, "is the case's key, not a field");
  if (v->type == TRUV_JREAL && !isfinite(v->r))
    return truv_err_invalid(err, f->name, "must be a finite number");
  if (col < 0 && v->type == TRUV_JTEXT && memchr(v->s, '\0', v->len))
    return truv_err_invalid(err, f->name, "text with a NUL byte can only go in a column");
  if (col == COL_STATE && v->type == TRUV_JNULL)
    return truv_err_invalid(err, "state", "cannot be cleared");
  if (col == COL_STATE &&
      (v->type != TRUV_JTEXT || strlen(v->s) != v->len || !truv_journal_state_valid(v->s)))
    return truv_err_invalid(err, "state",
                            "must be one of new, planned, sending, sent, waiting, "
                            "linking, scheduled, routed, failed");
  if (col == COL_ROUTE && v->type != TRUV_JTEXT && v->type != TRUV_JNULL)
    return truv_err_invalid(err, "route", "must be text");
  return 0;
}

static int duplicate_name(const truv_jfield *fields, size_t i) {
  size_t k;
  for (k = 0; k < i; k++)
    if (strcmp(fields[k].name, fields[i].name) == 0) return 1;
  return 0;
}

static void bind_value(sqlite3_stmt *st, int idx, const truv_jvalue *v) {
  switch (v ? v->type : TRUV_JNULL) {
    case TRUV_JINT:
    case TRUV_JBOOL: sqlite3_bind_int64(st, idx, v->i); break;
    case TRUV_JREAL: sqlite3_bind_double(st, idx, v->r); break;
    case TRUV_JTEXT: sqlite3_bind_text(st, idx, v->s, (int)v->len, SQLITE_STATIC); break;
    default: sqlite3_bind_null(st, idx); break;
  }
}

/* Sorts the fields into columns (with the masks) and the extra patch. */
static int split_fields(truv_journal *j, const truv_jfield *fields, size_t n,
                        const truv_jvalue **cols, long long *set, long long *bools, truv_err *err) {
  size_t i;
  int nextra = 0;
  j->plen = 0;
  if (patch_add(j, "{", 1)) return nomem(err);
  for (i = 0; i < n; i++) {
    const truv_jfield *f = &fields[i];
    int col = f->name ? column_of(f->name) : -1;
    if (check_field(f, col, err)) return err->kind;
    if (duplicate_name(fields, i)) return truv_err_invalid(err, f->name, "is given twice");
    if (col >= 0) {
      cols[col] = &f->value;
      *set |= 1LL << col;
      if (f->value.type == TRUV_JBOOL) *bools |= 1LL << col;
      continue;
    }
    if ((nextra++ && patch_add(j, ",", 1)) || patch_string(j, f->name, strlen(f->name)) ||
        patch_add(j, ":", 1) || patch_value(j, &f->value))
      return nomem(err);
  }
  if (patch_add(j, "}", 1)) return nomem(err);
  if (!nextra) j->plen = 0;
  return 0;
}

int truv_journal_put(truv_journal *j, const char *case_id, const truv_jfield *fields,
                     size_t nfields, truv_err *err) {
  const truv_jvalue *cols[NCOLS];
  long long set = 0, bools = 0;
  sqlite3_stmt *st = j->put;
  int i, rc;
  truv_err_clear(err);
  if (!case_id || !*case_id) return truv_err_invalid(err, "case_id", "must be non-empty text");
  memset(cols, 0, sizeof cols);
  if ((rc = split_fields(j, fields, nfields, cols, &set, &bools, err))) return rc;
  sqlite3_bind_text(st, 1, case_id, -1, SQLITE_STATIC);
  for (i = 0; i < NCOLS; i++) bind_value(st, i + 2, cols[i]);
  sqlite3_bind_int64(st, NCOLS + 2, bools);
  sqlite3_bind_int64(st, NCOLS + 3, set);
  if (j->plen) sqlite3_bind_text(st, NCOLS + 4, j->patch, (int)j->plen, SQLITE_STATIC);
  else sqlite3_bind_null(st, NCOLS + 4);
  rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(j, "put", err);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

int truv_journal_delete(truv_journal *j, const char *case_id, truv_err *err) {
  int rc;
  truv_err_clear(err);
  if (!case_id || !*case_id) return truv_err_invalid(err, "case_id", "must be non-empty text");
  sqlite3_bind_text(j->del, 1, case_id, -1, SQLITE_STATIC);
  rc = sqlite3_step(j->del) == SQLITE_DONE ? 0 : db_fail(j, "delete", err);
  sqlite3_reset(j->del);
  sqlite3_clear_bindings(j->del);
  return rc;
}

/* ------------------------------------------------------------ reading */

static int reserve(truv_journal *j, size_t nfields, size_t nbytes, truv_err *err) {
  if (nfields > j->fcap) {
    truv_jfield *f = realloc(j->fields, nfields * sizeof *f);
    if (!f) return nomem(err);
    j->fields = f;
    j->fcap = nfields;
  }
  if (nbytes > j->bcap) {
    char *b = realloc(j->buf, nbytes);
    if (!b) return nomem(err);
    j->buf = b;
    j->bcap = nbytes;
  }
  return 0;
}

/* Copies text column col of st into the buffer at *at; returns it. */
static const char *copy_text(truv_journal *j, sqlite3_stmt *st, int col, size_t *at, size_t *len) {
  const unsigned char *s = sqlite3_column_text(st, col);
  char *dst = j->buf + *at;
  *len = (size_t)sqlite3_column_bytes(st, col);
  if (*len) memcpy(dst, s, *len);
  dst[*len] = '\0';
  *at += *len + 1;
  return dst;
}

static void extra_value(const cJSON *item, truv_jvalue *v) {
  memset(v, 0, sizeof *v);
  if (cJSON_IsBool(item)) {
    v->type = TRUV_JBOOL;
    v->i = cJSON_IsTrue(item);
  } else if (cJSON_IsString(item)) {
    v->type = TRUV_JTEXT;
    v->s = item->valuestring;
    v->len = strlen(item->valuestring);
  } else if (cJSON_IsNumber(item)) {
    double d = item->valuedouble;
    /* JSON does not tell 3 from 3.0: integral values within 2^53 are integers */
    if (d == floor(d) && fabs(d) <= 9007199254740992.0) v->type = TRUV_JINT, v->i = (long long)d;
    else v->type = TRUV_JREAL, v->r = d;
  }
}

/* Fills out from the current row of st (the SELECT of select_sql). Types
 * are read before anything else: asking a numeric column for its length
 * would convert it to text and make its type undefined. */
static int read_case(truv_journal *j, sqlite3_stmt *st, truv_jcase *out, truv_err *err) {
  long long bools = sqlite3_column_int64(st, SEL_BOOLS);
  size_t bytes = 0, nf = 0, at = 0, len;
  int types[NCOLS];
  const cJSON *item;
  int i;
  cJSON_Delete(j->extra);
  j->extra = NULL;
  bytes = (size_t)sqlite3_column_bytes(st, 1) + 1;
  for (i = 0; i < NCOLS; i++) {
    types[i] = sqlite3_column_type(st, SEL_FIELDS + i);
    if (types[i] == SQLITE_TEXT || types[i] == SQLITE_BLOB)
      bytes += (size_t)sqlite3_column_bytes(st, SEL_FIELDS + i) + 1;
  }
  if (sqlite3_column_type(st, SEL_EXTRA) != SQLITE_NULL &&
      !(j->extra = cJSON_ParseWithLength((const char *)sqlite3_column_text(st, SEL_EXTRA),
                                         (size_t)sqlite3_column_bytes(st, SEL_EXTRA))))
    return truv_err_set(err, TRUV_EINTERNAL, "journal", "journal %s: unreadable extra fields",
                        j->path);
  if (reserve(j, (size_t)NCOLS + (size_t)cJSON_GetArraySize(j->extra), bytes, err))
    return err->kind;
  out->seq = sqlite3_column_int64(st, 0);
  out->case_id = copy_text(j, st, 1, &at, &len);
  for (i = 0; i < NCOLS; i++) {
    truv_jfield *f = &j->fields[nf];
    int c = SEL_FIELDS + i, type = types[i];
    if (type == SQLITE_NULL) continue;
    memset(f, 0, sizeof *f);
    f->name = COLUMNS[i];
    if (type == SQLITE_INTEGER) {
      f->value.type = bools & (1LL << i) ? TRUV_JBOOL : TRUV_JINT;
      f->value.i = sqlite3_column_int64(st, c);
    } else if (type == SQLITE_FLOAT) {
      f->value.type = TRUV_JREAL;
      f->value.r = sqlite3_column_double(st, c);
    } else {
      f->value.type = TRUV_JTEXT;
      f->value.s = copy_text(j, st, c, &at, &f->value.len);
    }
    nf++;
  }
  cJSON_ArrayForEach(item, j->extra) {
    extra_value(item, &j->fields[nf].value);
    j->fields[nf].name = item->string;
    if (j->fields[nf].value.type != TRUV_JNULL) nf++;
  }
  out->fields = j->fields;
  out->nfields = nf;
  return 0;
}

int truv_journal_get(truv_journal *j, const char *case_id, truv_jcase *out, int *found,
                     truv_err *err) {
  sqlite3_stmt *st = j->get;
  int rc = 0, step;
  truv_err_clear(err);
  *found = 0;
  sqlite3_bind_text(st, 1, case_id ? case_id : "", -1, SQLITE_STATIC);
  step = sqlite3_step(st);
  if (step == SQLITE_ROW) {
    rc = read_case(j, st, out, err);
    *found = rc == 0;
  } else if (step != SQLITE_DONE) {
    rc = db_fail(j, "get", err);
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

/* ------------------------------------------------------------ meta */

int truv_journal_meta_get(truv_journal *j, const char *key, truv_jvalue *out, truv_err *err) {
  sqlite3_stmt *st = j->meta_get;
  int rc = 0, step;
  size_t at = 0;
  truv_err_clear(err);
  memset(out, 0, sizeof *out);
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  if ((step = sqlite3_step(st)) == SQLITE_ROW) {
    switch (sqlite3_column_type(st, 0)) {
      case SQLITE_INTEGER:
        out->type = sqlite3_column_int(st, 1) ? TRUV_JBOOL : TRUV_JINT;
        out->i = sqlite3_column_int64(st, 0);
        break;
      case SQLITE_FLOAT:
        out->type = TRUV_JREAL;
        out->r = sqlite3_column_double(st, 0);
        break;
      case SQLITE_NULL: break;
      default:
        if ((rc = reserve(j, 0, (size_t)sqlite3_column_bytes(st, 0) + 1, err))) break;
        out->type = TRUV_JTEXT;
        out->s = copy_text(j, st, 0, &at, &out->len);
    }
  } else if (step != SQLITE_DONE) {
    rc = db_fail(j, "meta_get", err);
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

int truv_journal_meta_set(truv_journal *j, const char *key, const truv_jvalue *value,
                          truv_err *err) {
  sqlite3_stmt *st = value && value->type != TRUV_JNULL ? j->meta_set : j->meta_del;
  int rc;
  truv_err_clear(err);
  if (!key || !*key) return truv_err_invalid(err, "key", "must be non-empty text");
  if (value && value->type == TRUV_JREAL && !isfinite(value->r))
    return truv_err_invalid(err, key, "must be a finite number");
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  if (st == j->meta_set) {
    bind_value(st, 2, value);
    sqlite3_bind_int(st, 3, value->type == TRUV_JBOOL);
  }
  rc = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(j, "meta_set", err);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc;
}

/* ------------------------------------------------------------ cursors */

static int append_in(char *where, size_t cap, const char *clause, size_t n) {
  size_t len = strlen(where), i;
  if (!n) return 0;
  len += (size_t)snprintf(where + len, cap - len, " AND %s (", clause);
  for (i = 0; i < n && len < cap; i++)
    len += (size_t)snprintf(where + len, cap - len, i ? ", ?" : "?");
  return snprintf(where + len, cap - len, ")") < 0 || len >= cap - 2;
}

static void bind_list(sqlite3_stmt *st, int *idx, const char *const *list, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) sqlite3_bind_text(st, (*idx)++, list[i], -1, SQLITE_TRANSIENT);
}

/* A rowid range scan (NOT INDEXED): each next() continues from the last
 * case seen, so a whole iteration reads every row at most once, whatever the
 * filter; an index on state would make the planner sort at every step. */
int truv_journal_each(truv_journal *j, const truv_jfilter *f, truv_jcursor **out, truv_err *err) {
  truv_jfilter none;
  truv_jcursor *c;
  char *where, *sql = NULL;
  size_t cap;
  int rc = 0, idx = 2;
  truv_err_clear(err);
  *out = NULL;
  if (!f) {
    memset(&none, 0, sizeof none);
    f = &none;
  }
  cap = 128 + 4 * (f->nstates + f->nnot_states + f->nroutes);
  if (!(where = malloc(cap)) || !(c = calloc(1, sizeof *c))) {
    free(where);
    return nomem(err);
  }
  snprintf(where, cap, "NOT INDEXED WHERE seq > ?1");
  if (append_in(where, cap, "state IN", f->nstates) ||
      append_in(where, cap, "state NOT IN", f->nnot_states) ||
      append_in(where, cap, "route IN", f->nroutes))
    rc = nomem(err);
  else if (!(sql = select_sql(where, " ORDER BY seq LIMIT 1"))) rc = nomem(err);
  if (!rc) rc = prepare(j, sql, &c->stmt, err);
  free(where);
  free(sql);
  if (rc) {
    free(c);
    return rc;
  }
  bind_list(c->stmt, &idx, f->states, f->nstates);
  bind_list(c->stmt, &idx, f->not_states, f->nnot_states);
  bind_list(c->stmt, &idx, f->routes, f->nroutes);
  c->j = j;
  c->next = j->cursors;
  if (c->next) c->next->prevp = &c->next;
  c->prevp = &j->cursors;
  j->cursors = c;
  *out = c;
  return 0;
}

int truv_jcursor_next(truv_jcursor *c, truv_jcase *out, int *found, truv_err *err) {
  int rc = 0, step;
  truv_err_clear(err);
  *found = 0;
  if (!c->j)
    return truv_err_set(err, TRUV_EINVALID, "journal_closed", "journal: iterated after close()");
  sqlite3_bind_int64(c->stmt, 1, c->last_seq);
  step = sqlite3_step(c->stmt);
  if (step == SQLITE_ROW) {
    c->last_seq = sqlite3_column_int64(c->stmt, 0);
    rc = read_case(c->j, c->stmt, out, err);
    *found = rc == 0;
  } else if (step != SQLITE_DONE) {
    rc = db_fail(c->j, "each", err);
  }
  /* reset at once: no read transaction is held between calls */
  sqlite3_reset(c->stmt);
  return rc;
}

void truv_jcursor_free(truv_jcursor *c) {
  if (!c) return;
  if (c->j) {
    *c->prevp = c->next;
    if (c->next) c->next->prevp = c->prevp;
    sqlite3_finalize(c->stmt);
  }
  free(c);
}

/* ------------------------------------------------------------ counts */

int truv_journal_counts(truv_journal *j, int by_route, truv_jcount_fn fn, void *ud, truv_err *err) {
  const char *sql = by_route
                      ? "SELECT route, count(*) FROM cases WHERE route IS NOT NULL GROUP BY route"
                      : "SELECT state, count(*) FROM cases GROUP BY state";
  sqlite3_stmt *st = NULL;
  int step;
  truv_err_clear(err);
  if (sqlite3_prepare_v2(j->db, sql, -1, &st, NULL) != SQLITE_OK) return db_fail(j, "counts", err);
  while ((step = sqlite3_step(st)) == SQLITE_ROW)
    fn(ud, (const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1));
  sqlite3_finalize(st);
  return step == SQLITE_DONE ? 0 : db_fail(j, "counts", err);
}
