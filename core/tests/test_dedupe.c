/* De-duplication stores: the contract in truv/dedupe.h, run through the
 * vtable against the memory store and the SQLite store with an injected
 * `now`; then sharing (two handles, racing processes, one file with the
 * quota tables). */
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "truv/dedupe.h"
#include "truv/quota.h"

#define T0 1700000000.0
#define TTL (7 * 86400.0)

static char tmpdir[256];
static int nfiles;

static void temp_path(char *buf, size_t size) {
  snprintf(buf, size, "%s/dedupe-%d.db", tmpdir, nfiles++);
}

static void remove_temp_files(void) {
  static const char *const suffixes[] = {"", "-wal", "-shm"};
  char path[300];
  int i, j;
  for (i = 0; i < nfiles; i++)
    for (j = 0; j < 3; j++) {
      snprintf(path, sizeof path, "%s/dedupe-%d.db%s", tmpdir, i, suffixes[j]);
      unlink(path);
    }
  rmdir(tmpdir);
}

static truv_dedupe_store *make_memory(void) {
  truv_err err;
  truv_dedupe_store *s = truv_dedupe_memory(0, &err);
  if (!s) fprintf(stderr, "memory store: %s\n", err.message);
  return s;
}

static truv_dedupe_store *make_sqlite(void) {
  char path[300];
  truv_err err;
  truv_dedupe_store *s;
  temp_path(path, sizeof path);
  if (!(s = truv_dedupe_sqlite(path, &err))) fprintf(stderr, "sqlite store: %s\n", err.message);
  return s;
}

static truv_dedupe_store *(*make)(void);
static int bulk_ids;

/* 1 first, 0 duplicate, -1 error. */
static int seen(truv_dedupe_store *s, const char *id, double now, double ttl) {
  int first = -1;
  truv_err err;
  if (truv_dedupe_seen(s, id, strlen(id), now, ttl, &first, &err)) {
    fprintf(stderr, "seen failed: %s\n", err.message);
    return -1;
  }
  return first;
}

static int newer(truv_dedupe_store *s, const char *object, double updated_at) {
  int is_newer = -1;
  truv_err err;
  if (truv_dedupe_last_update(s, object, strlen(object), updated_at, &is_newer, &err)) {
    fprintf(stderr, "last_update failed: %s\n", err.message);
    return -1;
  }
  return is_newer;
}

/* ---- the contract, for every store ---- */

static void an_id_is_first_once_then_a_duplicate(void) {
  truv_dedupe_store *s = make();
  CHECK_INT(seen(s, "wh-1", T0, TTL), 1);
  CHECK_INT(seen(s, "wh-1", T0 + 1, TTL), 0);
  CHECK_INT(seen(s, "wh-1", T0 + 2, TTL), 0);
  CHECK_INT(seen(s, "wh-2", T0 + 2, TTL), 1);
  truv_dedupe_close(s);
}

static void an_id_is_first_again_exactly_when_its_ttl_ends(void) {
  truv_dedupe_store *s = make();
  CHECK_INT(seen(s, "wh-ttl", T0, 100), 1);
  CHECK_INT(seen(s, "wh-ttl", T0 + 99.999, 100), 0);
  CHECK_INT(seen(s, "wh-ttl", T0 + 100, 100), 1);
  CHECK_INT(seen(s, "wh-ttl", T0 + 150, 100), 0); /* recorded again until T0+200 */
  CHECK_INT(seen(s, "wh-ttl", T0 + 200, 100), 1);
  truv_dedupe_close(s);
}

static void a_duplicate_does_not_extend_the_ttl(void) {
  truv_dedupe_store *s = make();
  CHECK_INT(seen(s, "wh-x", T0, 100), 1);
  CHECK_INT(seen(s, "wh-x", T0 + 90, 1000), 0);
  CHECK_INT(seen(s, "wh-x", T0 + 100, 100), 1);
  truv_dedupe_close(s);
}

static void ids_are_byte_strings(void) {
  truv_dedupe_store *s = make();
  truv_err err;
  int first = -1;
  CHECK_INT(truv_dedupe_seen(s, "a\0b", 3, T0, TTL, &first, &err), 0);
  CHECK_INT(first, 1);
  CHECK_INT(truv_dedupe_seen(s, "a\0c", 3, T0, TTL, &first, &err), 0);
  CHECK_INT(first, 1);
  CHECK_INT(truv_dedupe_seen(s, "a", 1, T0, TTL, &first, &err), 0);
  CHECK_INT(first, 1);
  CHECK_INT(truv_dedupe_seen(s, "", 0, T0, TTL, &first, &err), 0);
  CHECK_INT(first, 1);
  CHECK_INT(truv_dedupe_seen(s, "a\0b", 3, T0, TTL, &first, &err), 0);
  CHECK_INT(first, 0);
  truv_dedupe_close(s);
}

static void a_forgotten_id_is_first_again(void) {
  truv_dedupe_store *s = make();
  truv_err err;
  CHECK_INT(seen(s, "wh-f", T0, TTL), 1);
  CHECK_INT(truv_dedupe_forget(s, "wh-f", 4, &err), 0);
  CHECK_INT(seen(s, "wh-f", T0 + 1, TTL), 1);
  CHECK_INT(seen(s, "wh-f", T0 + 2, TTL), 0);
  CHECK_INT(truv_dedupe_forget(s, "never-seen", 10, &err), 0);
  truv_dedupe_close(s);
}

static void only_a_strictly_newer_update_is_recorded(void) {
  truv_dedupe_store *s = make();
  CHECK_INT(newer(s, "task:1", T0), 1);
  CHECK_INT(newer(s, "task:1", T0 + 0.5), 1);
  CHECK_INT(newer(s, "task:1", T0 + 0.5), 1); /* equal: not older (a retry) */
  CHECK_INT(newer(s, "task:1", T0 - 10), 0);  /* older */
  CHECK_INT(newer(s, "task:1", T0 + 0.25), 0);
  CHECK_INT(newer(s, "task:2", T0 - 10), 1); /* per object */
  CHECK_INT(newer(s, "task:1", T0 + 0.500001), 1);
  truv_dedupe_close(s);
}

static void ids_and_objects_do_not_collide(void) {
  truv_dedupe_store *s = make();
  CHECK_INT(newer(s, "same", T0), 1);
  CHECK_INT(seen(s, "same", T0, TTL), 1);
  CHECK_INT(newer(s, "same", T0 + 1), 1);
  truv_dedupe_close(s);
}

static void misuse_is_refused(void) {
  truv_dedupe_store *s = make();
  truv_err err;
  int first = 7;
  memset(&err, 0x55, sizeof err);
  CHECK_INT(truv_dedupe_seen(s, "x", 1, NAN, TTL, &first, &err), TRUV_EINVALID);
  CHECK_INT(err.nfields, 0);
  CHECK_INT(err.status, 0);
  CHECK_INT(first, 7);
  CHECK_INT(truv_dedupe_seen(s, "x", 1, T0, -1, &first, &err), TRUV_EINVALID);
  CHECK_INT(truv_dedupe_seen(s, "x", 1, T0, INFINITY, &first, &err), TRUV_EINVALID);
  CHECK_INT(truv_dedupe_seen(s, NULL, 0, T0, TTL, &first, &err), TRUV_EINVALID);
  CHECK_INT(truv_dedupe_last_update(s, "o", 1, NAN, &first, &err), TRUV_EINVALID);
  CHECK_INT(seen(s, "x", T0, TTL), 1);
  truv_dedupe_close(s);
  truv_dedupe_close(NULL);
}

static void many_ids_grow_the_store_and_expired_ones_go(void) {
  truv_dedupe_store *s = make();
  char id[32];
  int i, ok = 1;
  for (i = 0; i < bulk_ids && ok; i++) {
    snprintf(id, sizeof id, "wh-%d", i);
    ok = seen(s, id, T0, 3600) == 1;
  }
  CHECK(ok);
  for (i = 0; i < bulk_ids && ok; i++) {
    snprintf(id, sizeof id, "wh-%d", i);
    ok = seen(s, id, T0 + 1, 3600) == 0;
  }
  CHECK(ok);
  for (i = 0; i < bulk_ids && ok; i++) { /* new ids after the first ones expired */
    snprintf(id, sizeof id, "later-%d", i);
    ok = seen(s, id, T0 + 7200, 3600) == 1;
  }
  CHECK(ok);
  for (i = 0; i < bulk_ids && ok; i += 7) {
    snprintf(id, sizeof id, "wh-%d", i);
    ok = seen(s, id, T0 + 7200, 3600) == 1;
  }
  CHECK(ok);
  for (i = 0; i < bulk_ids && ok; i++) {
    snprintf(id, sizeof id, "later-%d", i);
    ok = seen(s, id, T0 + 7201, 3600) == 0;
  }
  CHECK(ok);
  truv_dedupe_close(s);
}

static void forgetting_inside_a_cluster_keeps_the_rest_findable(void) {
  truv_dedupe_store *s = make();
  truv_err err;
  char id[32];
  int i, ok = 1;
  for (i = 0; i < 2000; i++) {
    snprintf(id, sizeof id, "c-%d", i);
    seen(s, id, T0, TTL);
  }
  for (i = 0; i < 2000; i += 3) {
    snprintf(id, sizeof id, "c-%d", i);
    truv_dedupe_forget(s, id, strlen(id), &err);
  }
  for (i = 0; i < 2000 && ok; i++) {
    snprintf(id, sizeof id, "c-%d", i);
    ok = seen(s, id, T0 + 1, TTL) == (i % 3 == 0);
  }
  CHECK(ok);
  truv_dedupe_close(s);
}

/* ---- the SQLite store: shared ---- */

static void two_handles_on_one_file_share_what_they_saw(void) {
  char path[300];
  truv_err err;
  truv_dedupe_store *a, *b;
  temp_path(path, sizeof path);
  a = truv_dedupe_sqlite(path, &err);
  b = truv_dedupe_sqlite(path, &err);
  CHECK(a && b);
  if (a && b) {
    CHECK_INT(seen(a, "wh-s", T0, TTL), 1);
    CHECK_INT(seen(b, "wh-s", T0, TTL), 0);
    CHECK_INT(newer(b, "order:1", T0), 1);
    CHECK_INT(newer(a, "order:1", T0 - 1), 0);
    CHECK_INT(truv_dedupe_forget(b, "wh-s", 4, &err), 0);
    CHECK_INT(seen(a, "wh-s", T0, TTL), 1);
  }
  truv_dedupe_close(a);
  truv_dedupe_close(b);
}

static void one_file_holds_quota_and_dedupe_tables(void) {
  char path[300];
  truv_err err;
  truv_dedupe_store *d;
  truv_quota_store *q;
  truv_quota_key k;
  truv_quota_ticket t = 0;
  temp_path(path, sizeof path);
  d = truv_dedupe_sqlite(path, &err);
  q = truv_quota_sqlite(path, NULL, &err);
  CHECK(d && q);
  if (d && q) {
    truv_quota_key_of("tok", &k);
    CHECK_INT(truv_quota_reserve(q, &k, 1, T0, &t, NULL, NULL, &err), 0);
    CHECK_INT(seen(d, "wh-q", T0, TTL), 1);
  }
  truv_dedupe_close(d);
  truv_quota_close(q);
}

static void seen_in_child(const char *path) {
  truv_err err;
  truv_dedupe_store *s = truv_dedupe_sqlite(path, &err);
  int first = 0, i, firsts = 0;
  if (!s) _exit(100);
  for (i = 0; i < 20; i++) {
    if (truv_dedupe_seen(s, "wh-race", 7, T0, TTL, &first, &err)) _exit(101);
    firsts += first;
  }
  truv_dedupe_close(s);
  _exit(firsts);
}

static void processes_racing_on_one_id_see_it_first_once(void) {
  enum { PROCS = 6 };
  char path[300];
  pid_t pids[PROCS];
  int i, firsts = 0, status;
  temp_path(path, sizeof path);
  fflush(NULL);
  for (i = 0; i < PROCS; i++)
    if ((pids[i] = fork()) == 0) seen_in_child(path);
  for (i = 0; i < PROCS; i++) {
    CHECK(pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) <= 1);
    if (WIFEXITED(status) && WEXITSTATUS(status) <= 1) firsts += WEXITSTATUS(status);
  }
  CHECK_INT(firsts, 1);
}

/* Housekeeping that fails must not record an id as seen: a receiver
 * answers 500 on an error, and Truv's retry would then be a "duplicate"
 * never handled. (The trigger stands for any failure of the pruning
 * statement: a busy file, a full disk.) */
static void a_failed_prune_records_nothing(void) {
  char path[300];
  truv_err err;
  truv_dedupe_store *s;
  sqlite3 *db;
  int first = -1;
  temp_path(path, sizeof path);
  s = truv_dedupe_sqlite(path, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
  CHECK_INT(sqlite3_exec(db,
                         "INSERT INTO truv_dedupe_seen(id, expires_ms) VALUES ('old', 0);"
                         "CREATE TRIGGER no_prune BEFORE DELETE ON truv_dedupe_seen "
                         "BEGIN SELECT RAISE(ABORT, 'pruning failed'); END;",
                         NULL, NULL, NULL),
            SQLITE_OK);
  /* the handle's first write is also a pruning turn */
  CHECK(truv_dedupe_seen(s, "wh-p", 4, T0, TTL, &first, &err) != 0);
  CHECK_CONTAINS(err.message, "pruning failed");
  CHECK_INT(sqlite3_exec(db, "DROP TRIGGER no_prune", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  CHECK_INT(seen(s, "wh-p", T0 + 1, TTL), 1); /* the retry is handled */
  CHECK_INT(seen(s, "wh-p", T0 + 2, TTL), 0);
  truv_dedupe_close(s);
}

/* Child: takes the write lock, records `id` as seen without committing,
 * tells the parent through `ready`, and waits to be killed. */
static void hold_the_write_lock(const char *path, const char *id, int ready) {
  sqlite3 *db;
  char sql[200];
  snprintf(sql, sizeof sql,
           "BEGIN IMMEDIATE; INSERT INTO truv_dedupe_seen(id, expires_ms) "
           "VALUES ('%s', %.0f)",
           id, (T0 + TTL) * 1000);
  if (sqlite3_open(path, &db) != SQLITE_OK || sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
    _exit(100);
  if (write(ready, "h", 1) != 1) _exit(101);
  for (;;) pause();
}

static void a_process_killed_holding_the_write_lock_leaves_the_id_unseen(void) {
  char path[300], c = 0;
  truv_err err;
  truv_dedupe_store *s;
  pid_t pid;
  int status, ready[2];
  temp_path(path, sizeof path);
  s = truv_dedupe_sqlite(path, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(seen(s, "wh-before", T0, TTL), 1);
  CHECK_INT(pipe(ready), 0);
  fflush(NULL);
  if ((pid = fork()) == 0) hold_the_write_lock(path, "wh-killed", ready[1]);
  CHECK(pid > 0);
  CHECK_INT(read(ready[0], &c, 1), 1);
  close(ready[0]);
  close(ready[1]);
  kill(pid, SIGKILL);
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  CHECK_INT(seen(s, "wh-killed", T0, TTL), 1);
  CHECK_INT(seen(s, "wh-killed", T0, TTL), 0);
  CHECK_INT(seen(s, "wh-before", T0, TTL), 0);
  truv_dedupe_close(s);
}

/* See test_quota.c: a connection does not cross fork(); the verdict comes
 * through a pipe (the child leaves its copy unclosed). */
static void a_handle_used_in_a_forked_child_is_refused(void) {
  char path[300], verdict = 0;
  truv_err err;
  truv_dedupe_store *s;
  pid_t pid;
  int status, out[2];
  temp_path(path, sizeof path);
  s = truv_dedupe_sqlite(path, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(seen(s, "wh-f", T0, TTL), 1);
  CHECK_INT(pipe(out), 0);
  fflush(NULL);
  if ((pid = fork()) == 0) {
    int first = -1, rc = truv_dedupe_seen(s, "wh-child", 8, T0, TTL, &first, &err);
    char v = rc == TRUV_EINVALID && strcmp(err.code, "store_forked") == 0 ? 'y' : 'n';
    _exit(write(out[1], &v, 1) == 1 ? 0 : 1);
  }
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK_INT(read(out[0], &verdict, 1), 1);
  CHECK_INT(verdict, 'y');
  close(out[0]);
  close(out[1]);
  CHECK_INT(seen(s, "wh-child", T0, TTL), 1);
  CHECK_INT(seen(s, "wh-f", T0, TTL), 0);
  truv_dedupe_close(s);
}

#define RUN_CONTRACT(name)                                    \
  do {                                                        \
    fprintf(stderr, "-- the contract, %s store\n", name);     \
    RUN(an_id_is_first_once_then_a_duplicate);                \
    RUN(an_id_is_first_again_exactly_when_its_ttl_ends);      \
    RUN(a_duplicate_does_not_extend_the_ttl);                 \
    RUN(ids_are_byte_strings);                                \
    RUN(a_forgotten_id_is_first_again);                       \
    RUN(only_a_strictly_newer_update_is_recorded);            \
    RUN(ids_and_objects_do_not_collide);                      \
    RUN(misuse_is_refused);                                   \
    RUN(many_ids_grow_the_store_and_expired_ones_go);         \
    RUN(forgetting_inside_a_cluster_keeps_the_rest_findable); \
  } while (0)

int main(void) {
  int valgrind = getenv("TRUV_UNDER_VALGRIND") != NULL;
  snprintf(tmpdir, sizeof tmpdir, "%s/truv-dedupe-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  make = make_memory;
  bulk_ids = valgrind ? 5000 : 50000;
  RUN_CONTRACT("memory");
  make = make_sqlite;
  bulk_ids = valgrind ? 500 : 5000;
  RUN_CONTRACT("SQLite");
  RUN(two_handles_on_one_file_share_what_they_saw);
  RUN(one_file_holds_quota_and_dedupe_tables);
  RUN(processes_racing_on_one_id_see_it_first_once);
  RUN(a_failed_prune_records_nothing);
  RUN(a_process_killed_holding_the_write_lock_leaves_the_id_unseen);
  RUN(a_handle_used_in_a_forked_child_is_refused);
  remove_temp_files();
  return CHECK_DONE();
}
