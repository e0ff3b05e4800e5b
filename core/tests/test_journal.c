/* The journal: every operation, the schema checks, group commits, and a
 * writer killed with SIGKILL in the middle of its loop. */
#define _DEFAULT_SOURCE /* mkdtemp, usleep */
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "truv/journal.h"

static char dir[64];
static int under_tool;

/* ---------------------------------------------------------------- helpers */

static const char *path_of(const char *name) {
  static char p[4][128];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
  return p[k];
}

static void remove_journal(const char *path) {
  char p[160];
  const char *suffix[] = {"", "-wal", "-shm", "-lock"};
  size_t i;
  for (i = 0; i < 4; i++) {
    snprintf(p, sizeof p, "%s%s", path, suffix[i]);
    unlink(p);
  }
}

static truv_journal *open_fresh(const char *name) {
  truv_journal *j = NULL;
  truv_err err;
  remove_journal(path_of(name));
  if (truv_journal_open(path_of(name), NULL, &j, &err)) {
    fprintf(stderr, "open %s: %s\n", name, err.message);
    exit(2);
  }
  return j;
}

static truv_jfield text(const char *name, const char *s) {
  truv_jfield f;
  memset(&f, 0, sizeof f);
  f.name = name;
  f.value.type = TRUV_JTEXT;
  f.value.s = s;
  f.value.len = strlen(s);
  return f;
}

static truv_jfield integer(const char *name, long long i) {
  truv_jfield f;
  memset(&f, 0, sizeof f);
  f.name = name;
  f.value.type = TRUV_JINT;
  f.value.i = i;
  return f;
}

static truv_jfield real(const char *name, double r) {
  truv_jfield f = integer(name, 0);
  f.value.type = TRUV_JREAL;
  f.value.r = r;
  return f;
}

static truv_jfield boolean(const char *name, int b) {
  truv_jfield f = integer(name, b);
  f.value.type = TRUV_JBOOL;
  return f;
}

static truv_jfield null(const char *name) {
  truv_jfield f = integer(name, 0);
  f.value.type = TRUV_JNULL;
  return f;
}

static const truv_jvalue *field(const truv_jcase *c, const char *name) {
  size_t i;
  for (i = 0; i < c->nfields; i++)
    if (strcmp(c->fields[i].name, name) == 0) return &c->fields[i].value;
  return NULL;
}

static const char *text_of(const truv_jcase *c, const char *name) {
  const truv_jvalue *v = field(c, name);
  return v && v->type == TRUV_JTEXT ? v->s : NULL;
}

static int put1(truv_journal *j, const char *id, truv_jfield f) {
  truv_err err;
  return truv_journal_put(j, id, &f, 1, &err);
}

static long long pragma(const char *path, const char *sql) {
  sqlite3 *db;
  sqlite3_stmt *st;
  long long v = -1;
  sqlite3_open(path, &db);
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return v;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kb(void) {
  char line[256];
  long kb = -1;
  FILE *f = fopen("/proc/self/status", "r");
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
  if (f) fclose(f);
  return kb;
}

/* ---------------------------------------------------------------- tests */

static void test_open_creates_a_versioned_wal_journal(void) {
  truv_journal *j = open_fresh("new.db");
  truv_err err;
  CHECK_STR(truv_journal_path(j), path_of("new.db"));
  CHECK_INT(truv_journal_close(j, &err), 0);
  CHECK_INT(pragma(path_of("new.db"), "PRAGMA user_version"), TRUV_JOURNAL_SCHEMA);
  CHECK_INT(pragma(path_of("new.db"), "PRAGMA application_id"), 0x74727576);
  CHECK_INT(pragma(path_of("new.db"), "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
  /* and opens again */
  CHECK_INT(truv_journal_open(path_of("new.db"), NULL, &j, &err), 0);
  CHECK_INT(truv_journal_close(j, &err), 0);
}

static void test_put_and_get_keep_every_type(void) {
  truv_journal *j = open_fresh("types.db");
  truv_jfield f[] = {
    text("route", "reverify"), integer("attempts", 2),      real("sent_at", 1.5e9 + 0.25),
    boolean("share_url", 1),   text("custom", "x\"y\\z\n"), integer("n", -7),
    real("ratio", 0.5),        boolean("flag", 0),          text("input", "{\"a\":1}")};
  truv_jcase c;
  truv_err err;
  int found;
  CHECK_INT(truv_journal_put(j, "case-1", f, sizeof f / sizeof *f, &err), 0);
  CHECK_INT(truv_journal_get(j, "case-1", &c, &found, &err), 0);
  CHECK_INT(found, 1);
  CHECK_STR(c.case_id, "case-1");
  CHECK_INT(c.seq, 1);
  CHECK_STR(text_of(&c, "state"), "new"); /* a new case starts as new */
  CHECK_STR(text_of(&c, "route"), "reverify");
  CHECK_INT(field(&c, "attempts")->type, TRUV_JINT);
  CHECK_INT(field(&c, "attempts")->i, 2);
  CHECK_INT(field(&c, "sent_at")->type, TRUV_JREAL);
  CHECK_DBL(field(&c, "sent_at")->r, 1.5e9 + 0.25);
  CHECK_INT(field(&c, "share_url")->type, TRUV_JBOOL);
  CHECK_INT(field(&c, "share_url")->i, 1);
  CHECK_STR(text_of(&c, "custom"), "x\"y\\z\n");
  CHECK_INT(field(&c, "n")->i, -7);
  CHECK_INT(field(&c, "ratio")->type, TRUV_JREAL);
  CHECK_INT(field(&c, "flag")->type, TRUV_JBOOL);
  CHECK_INT(field(&c, "flag")->i, 0);
  CHECK_STR(text_of(&c, "input"), "{\"a\":1}");
  CHECK(field(&c, "reason") == NULL);
  CHECK_INT(c.nfields, 10);
  CHECK_INT(truv_journal_get(j, "nope", &c, &found, &err), 0);
  CHECK_INT(found, 0);
  truv_journal_close(j, &err);
}

static void test_put_updates_only_the_named_fields(void) {
  truv_journal *j = open_fresh("update.db");
  truv_jfield first[] = {text("state", "planned"), text("order_id", "o1"), text("note", "a"),
                         integer("line", 3)};
  truv_jfield second[] = {text("state", "sending"), null("order_id"), null("note"),
                          text("other", "b"), boolean("line", 1)};
  truv_jcase c;
  truv_err err;
  int found;
  CHECK_INT(truv_journal_put(j, "c", first, 4, &err), 0);
  CHECK_INT(truv_journal_put(j, "c", second, 5, &err), 0);
  CHECK_INT(truv_journal_get(j, "c", &c, &found, &err), 0);
  CHECK_STR(text_of(&c, "state"), "sending");
  CHECK(field(&c, "order_id") == NULL);
  CHECK(field(&c, "note") == NULL);
  CHECK_STR(text_of(&c, "other"), "b");
  CHECK_INT(field(&c, "line")->type, TRUV_JBOOL);
  /* a boolean column set back to a number is a number again */
  CHECK_INT(put1(j, "c", integer("line", 9)), 0);
  CHECK_INT(truv_journal_get(j, "c", &c, &found, &err), 0);
  CHECK_INT(field(&c, "line")->type, TRUV_JINT);
  CHECK_INT(field(&c, "line")->i, 9);
  CHECK_STR(text_of(&c, "other"), "b");
  CHECK_INT(c.seq, 1); /* an update keeps the case's place */
  CHECK_INT(put1(j, "c", null("other")), 0);
  CHECK_INT(pragma(path_of("update.db"), "SELECT extra IS NULL FROM cases"), 1);
  truv_journal_close(j, &err);
}

static void test_put_refuses_what_would_break_the_record(void) {
  truv_journal *j = open_fresh("invalid.db");
  truv_jfield dup[] = {text("x", "1"), text("x", "2")};
  truv_jfield nul = text("note", "a");
  truv_err err;
  truv_jcase c;
  int found;
  CHECK_INT(put1(j, "c", text("state", "sendng")), TRUV_EINVALID);
  CHECK_INT(truv_journal_put(j, "c", dup, 2, &err), TRUV_EINVALID);
  CHECK_STR(err.fields[0].field, "x");
  CHECK_INT(put1(j, "c", null("state")), TRUV_EINVALID);
  CHECK_INT(put1(j, "c", integer("state", 1)), TRUV_EINVALID);
  CHECK_INT(put1(j, "c", integer("route", 1)), TRUV_EINVALID);
  CHECK_INT(put1(j, "c", text("case_id", "d")), TRUV_EINVALID);
  CHECK_INT(put1(j, "c", real("retry_at", 0.0 / 0.0)), TRUV_EINVALID);
  CHECK_INT(put1(j, "", text("state", "new")), TRUV_EINVALID);
  nul.value.s = "a\0b";
  nul.value.len = 3;
  CHECK_INT(put1(j, "c", nul), TRUV_EINVALID);
  nul.name = "error"; /* a column keeps the bytes as they are */
  CHECK_INT(put1(j, "c", nul), 0);
  CHECK_INT(truv_journal_get(j, "c", &c, &found, &err), 0);
  CHECK_INT(field(&c, "error")->len, 3);
  CHECK_INT(memcmp(field(&c, "error")->s, "a\0b", 3), 0);
  CHECK(truv_journal_state_valid("routed"));
  CHECK(!truv_journal_state_valid("done"));
  truv_journal_close(j, &err);
}

static void test_meta_keeps_run_level_facts(void) {
  truv_journal *j = open_fresh("meta.db");
  truv_jvalue v, s = {TRUV_JTEXT, 0, 0, "sha256:ab", 9}, n = {TRUV_JINT, 42, 0, NULL, 0},
                 b = {TRUV_JBOOL, 1, 0, NULL, 0}, r = {TRUV_JREAL, 0, 2.5, NULL, 0};
  truv_err err;
  CHECK_INT(truv_journal_meta_get(j, "input_hash", &v, &err), 0);
  CHECK_INT(v.type, TRUV_JNULL);
  CHECK_INT(truv_journal_meta_set(j, "input_hash", &s, &err), 0);
  CHECK_INT(truv_journal_meta_set(j, "concurrency", &n, &err), 0);
  CHECK_INT(truv_journal_meta_set(j, "resumed", &b, &err), 0);
  CHECK_INT(truv_journal_meta_set(j, "started_at", &r, &err), 0);
  CHECK_INT(truv_journal_meta_get(j, "input_hash", &v, &err), 0);
  CHECK_INT(v.type, TRUV_JTEXT);
  CHECK_STR(v.s, "sha256:ab");
  CHECK_INT(truv_journal_meta_get(j, "concurrency", &v, &err), 0);
  CHECK_INT(v.type, TRUV_JINT);
  CHECK_INT(v.i, 42);
  CHECK_INT(truv_journal_meta_get(j, "resumed", &v, &err), 0);
  CHECK_INT(v.type, TRUV_JBOOL);
  CHECK_INT(truv_journal_meta_get(j, "started_at", &v, &err), 0);
  CHECK_DBL(v.r, 2.5);
  CHECK_INT(truv_journal_meta_set(j, "input_hash", NULL, &err), 0);
  CHECK_INT(truv_journal_meta_get(j, "input_hash", &v, &err), 0);
  CHECK_INT(v.type, TRUV_JNULL);
  CHECK_INT(truv_journal_meta_set(j, "", &s, &err), TRUV_EINVALID);
  truv_journal_close(j, &err);
}

static void test_group_commit_is_atomic_and_explicit(void) {
  truv_journal *j = open_fresh("group.db"), *reader = NULL;
  truv_jcase c;
  truv_err err;
  int found, i;
  char id[16];
  CHECK_INT(truv_journal_open(path_of("group.db"), NULL, &reader, &err), 0);
  CHECK_INT(truv_journal_commit(j, &err), 0); /* nothing open: nothing to do */
  CHECK_INT(truv_journal_begin(j, &err), 0);
  CHECK(truv_journal_in_group(j));
  CHECK_INT(truv_journal_begin(j, &err), TRUV_EINVALID);
  CHECK_STR(err.code, "group_open");
  for (i = 0; i < 10; i++) {
    snprintf(id, sizeof id, "g%d", i);
    CHECK_INT(put1(j, id, text("state", "sending")), 0);
  }
  /* another connection sees none of the group before the commit */
  CHECK_INT(truv_journal_get(reader, "g0", &c, &found, &err), 0);
  CHECK_INT(found, 0);
  CHECK_INT(truv_journal_commit(j, &err), 0);
  CHECK(!truv_journal_in_group(j));
  CHECK_INT(truv_journal_get(reader, "g9", &c, &found, &err), 0);
  CHECK_INT(found, 1);
  /* rollback undoes a group */
  CHECK_INT(truv_journal_begin(j, &err), 0);
  CHECK_INT(put1(j, "g0", text("state", "sent")), 0);
  CHECK_INT(put1(j, "h", text("state", "new")), 0);
  CHECK_INT(truv_journal_rollback(j, &err), 0);
  CHECK_INT(truv_journal_get(j, "g0", &c, &found, &err), 0);
  CHECK_STR(text_of(&c, "state"), "sending");
  CHECK_INT(truv_journal_get(j, "h", &c, &found, &err), 0);
  CHECK_INT(found, 0);
  /* close commits an open group */
  CHECK_INT(truv_journal_begin(j, &err), 0);
  CHECK_INT(put1(j, "late", text("state", "planned")), 0);
  CHECK_INT(truv_journal_close(j, &err), 0);
  CHECK_INT(truv_journal_get(reader, "late", &c, &found, &err), 0);
  CHECK_INT(found, 1);
  truv_journal_close(reader, &err);
}

typedef struct tally {
  char keys[16][32];
  long long n[16];
  int count;
} tally;

static void count_into(void *ud, const char *key, long long n) {
  tally *t = ud;
  if (t->count < 16) {
    snprintf(t->keys[t->count], sizeof t->keys[0], "%s", key);
    t->n[t->count++] = n;
  }
}

static long long tally_of(const tally *t, const char *key) {
  int i;
  for (i = 0; i < t->count; i++)
    if (strcmp(t->keys[i], key) == 0) return t->n[i];
  return 0;
}

/* Cases c0..c9: even ones routed (reverify for c0, c4, c8; done for c2,
 * c6), odd ones sending, but c9 failed. */
static truv_journal *seeded(const char *name) {
  truv_journal *j = open_fresh(name);
  char id[16];
  int i;
  for (i = 0; i < 10; i++) {
    snprintf(id, sizeof id, "c%d", i);
    if (i == 9) put1(j, id, text("state", "failed"));
    else if (i % 2) put1(j, id, text("state", "sending"));
    else {
      truv_jfield f[] = {text("state", "routed"), text("route", i % 4 ? "done" : "reverify")};
      truv_err err;
      truv_journal_put(j, id, f, 2, &err);
    }
  }
  return j;
}

static int visit(truv_journal *j, const truv_jfilter *f, char *seen, size_t size) {
  truv_jcursor *c;
  truv_jcase k;
  truv_err err;
  int found, n = 0;
  seen[0] = '\0';
  if (truv_journal_each(j, f, &c, &err)) return -1;
  while (truv_jcursor_next(c, &k, &found, &err) == 0 && found) {
    strncat(seen, k.case_id, size - strlen(seen) - 2);
    strcat(seen, " ");
    n++;
  }
  truv_jcursor_free(c);
  return n;
}

static void test_each_filters_in_insertion_order(void) {
  truv_journal *j = seeded("each.db");
  const char *sending[] = {"sending"}, *final[] = {"routed", "failed"}, *rev[] = {"reverify"};
  truv_jfilter f;
  char seen[256];
  truv_err err;
  CHECK_INT(visit(j, NULL, seen, sizeof seen), 10);
  CHECK_STR(seen, "c0 c1 c2 c3 c4 c5 c6 c7 c8 c9 ");
  memset(&f, 0, sizeof f);
  f.states = sending, f.nstates = 1;
  CHECK_INT(visit(j, &f, seen, sizeof seen), 4);
  CHECK_STR(seen, "c1 c3 c5 c7 ");
  memset(&f, 0, sizeof f);
  f.not_states = final, f.nnot_states = 2;
  CHECK_INT(visit(j, &f, seen, sizeof seen), 4);
  memset(&f, 0, sizeof f);
  f.routes = rev, f.nroutes = 1;
  CHECK_INT(visit(j, &f, seen, sizeof seen), 3);
  CHECK_STR(seen, "c0 c4 c8 ");
  f.states = final, f.nstates = 2;
  CHECK_INT(visit(j, &f, seen, sizeof seen), 3);
  f.states = sending, f.nstates = 1;
  CHECK_INT(visit(j, &f, seen, sizeof seen), 0);
  truv_journal_close(j, &err);
}

/* Writing while iterating: every case is visited once, and cases added
 * meanwhile are visited too. */
static void test_each_allows_writes_while_iterating(void) {
  truv_journal *j = seeded("each_write.db");
  const char *sending[] = {"sending"};
  truv_jfilter f;
  truv_jcursor *c;
  truv_jcase k;
  truv_err err;
  char id[32];
  int found, n = 0;
  memset(&f, 0, sizeof f);
  f.states = sending, f.nstates = 1;
  CHECK_INT(truv_journal_each(j, &f, &c, &err), 0);
  while (truv_jcursor_next(c, &k, &found, &err) == 0 && found) {
    snprintf(id, sizeof id, "%s", k.case_id);
    CHECK_INT(put1(j, id, text("state", "sent")), 0);
    if (n == 0) CHECK_INT(put1(j, "added", text("state", "sending")), 0);
    n++;
  }
  CHECK_INT(n, 5);
  truv_jcursor_free(c);
  truv_journal_close(j, &err);
}

static void test_counts_per_state_and_route(void) {
  truv_journal *j = seeded("counts.db");
  tally t;
  truv_err err;
  memset(&t, 0, sizeof t);
  CHECK_INT(truv_journal_counts(j, 0, count_into, &t, &err), 0);
  CHECK_INT(t.count, 3);
  CHECK_INT(tally_of(&t, "routed"), 5);
  CHECK_INT(tally_of(&t, "sending"), 4);
  CHECK_INT(tally_of(&t, "failed"), 1);
  memset(&t, 0, sizeof t);
  CHECK_INT(truv_journal_counts(j, 1, count_into, &t, &err), 0);
  CHECK_INT(t.count, 2);
  CHECK_INT(tally_of(&t, "done"), 2);
  CHECK_INT(tally_of(&t, "reverify"), 3);
  truv_journal_close(j, &err);
}

static void test_cursor_outliving_its_journal_fails_cleanly(void) {
  truv_journal *j = seeded("outlive.db");
  truv_jcursor *c;
  truv_jcase k;
  truv_err err;
  int found;
  CHECK_INT(truv_journal_each(j, NULL, &c, &err), 0);
  CHECK_INT(truv_jcursor_next(c, &k, &found, &err), 0);
  truv_journal_close(j, &err);
  CHECK_INT(truv_jcursor_next(c, &k, &found, &err), TRUV_EINVALID);
  CHECK_STR(err.code, "journal_closed");
  truv_jcursor_free(c);
}

static void test_newer_schema_and_foreign_files_are_refused(void) {
  truv_journal *j = open_fresh("newer.db");
  truv_err err;
  sqlite3 *db;
  truv_journal_close(j, &err);
  sqlite3_open(path_of("newer.db"), &db);
  sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL);
  sqlite3_close(db);
  CHECK_INT(truv_journal_open(path_of("newer.db"), NULL, &j, &err), TRUV_EINTERNAL);
  CHECK(j == NULL);
  CHECK_STR(err.code, "schema_newer");
  CHECK_CONTAINS(err.message, "schema version 99");
  CHECK_CONTAINS(err.message, "newer lua-truv");

  remove_journal(path_of("other.db"));
  sqlite3_open(path_of("other.db"), &db);
  sqlite3_exec(db, "CREATE TABLE t (x)", NULL, NULL, NULL);
  sqlite3_close(db);
  CHECK_INT(truv_journal_open(path_of("other.db"), NULL, &j, &err), TRUV_EINTERNAL);
  CHECK_STR(err.code, "not_a_journal");

  CHECK_INT(truv_journal_open("/nonexistent-dir/x.db", NULL, &j, &err), TRUV_EINTERNAL);
  CHECK_CONTAINS(err.message, "/nonexistent-dir/x.db");
}

static void test_exclusive_open_refuses_a_second_process(void) {
  truv_journal_options ex = {0, 0, 1};
  truv_journal *j = NULL;
  truv_err err;
  int ready[2], done;
  pid_t pid;
  remove_journal(path_of("excl.db"));
  CHECK_INT(pipe(ready), 0);
  fflush(NULL);
  if ((pid = fork()) == 0) {
    truv_journal *cj;
    close(ready[0]);
    if (truv_journal_open(path_of("excl.db"), &ex, &cj, &err)) _exit(1);
    if (write(ready[1], "k", 1) != 1) _exit(1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  CHECK_INT(read(ready[0], &done, 1), 1);
  CHECK_INT(truv_journal_open(path_of("excl.db"), &ex, &j, &err), TRUV_EINTERNAL);
  CHECK_STR(err.code, "busy");
  CHECK_CONTAINS(err.message, "in use by another process");
  /* readers need not be exclusive */
  CHECK_INT(truv_journal_open(path_of("excl.db"), NULL, &j, &err), 0);
  truv_journal_close(j, &err);
  /* the lock dies with its process */
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  close(ready[0]);
  CHECK_INT(truv_journal_open(path_of("excl.db"), &ex, &j, &err), 0);
  /* a second exclusive handle in this process is refused as well, and
   * closing the refused one leaves the first one's lock in place */
  {
    truv_journal *again = NULL;
    CHECK_INT(truv_journal_open(path_of("excl.db"), &ex, &again, &err), TRUV_EINTERNAL);
    CHECK_STR(err.code, "busy");
    CHECK(again == NULL);
    CHECK_INT(truv_journal_open(path_of("excl.db"), &ex, &again, &err), TRUV_EINTERNAL);
  }
  truv_journal_close(j, &err);
}

/* ---------------------------------------------------------------- kill -9 */

#define GROUP 10

/* The child: group g writes cases g*GROUP .. g*GROUP+GROUP-1 as "sending"
 * with group = g, and moves the previous group to "sent"; after each commit
 * it reports g on the pipe. Every fifth group is written without begin()
 * (autocommit), one put at a time. */
static void writer(const char *path, int fd) {
  truv_journal *j;
  truv_err err;
  char id[32];
  int g, i;
  if (truv_journal_open(path, NULL, &j, &err)) _exit(3);
  for (g = 0;; g++) {
    int grouped = g % 5 != 0;
    if (grouped && truv_journal_begin(j, &err)) _exit(4);
    for (i = 0; i < GROUP; i++) {
      truv_jfield f[] = {text("state", "sending"), integer("group", g), integer("attempts", 1),
                         text("input", "{\"order_id\":\"0123456789abcdef\"}")};
      snprintf(id, sizeof id, "case-%d", g * GROUP + i);
      if (truv_journal_put(j, id, f, 4, &err)) _exit(5);
      if (g > 0) {
        snprintf(id, sizeof id, "case-%d", (g - 1) * GROUP + i);
        if (put1(j, id, text("state", "sent"))) _exit(6);
      }
    }
    if (grouped && truv_journal_commit(j, &err)) _exit(7);
    if (write(fd, &g, sizeof g) != sizeof g) _exit(8);
  }
}

/* Checks one journal after its writer was killed: consistent file, every
 * reported group present, and no group half there. */
static int verify_killed(const char *path, int last_reported) {
  truv_journal *j;
  truv_jcursor *c;
  truv_jcase k;
  truv_err err;
  int found, ok = 1, per_group[4096], max_group = -1, n = 0, g;
  memset(per_group, 0, sizeof per_group);
  if (pragma(path, "SELECT integrity_check = 'ok' FROM pragma_integrity_check") != 1) return 0;
  if (truv_journal_open(path, NULL, &j, &err)) return 0;
  truv_journal_each(j, NULL, &c, &err);
  while (truv_jcursor_next(c, &k, &found, &err) == 0 && found) {
    const truv_jvalue *gv = field(&k, "group");
    g = gv ? (int)gv->i : -1;
    if (g < 0 || g >= 4096) {
      ok = 0;
      break;
    }
    per_group[g]++;
    if (g > max_group) max_group = g;
    /* a case of an older group was moved on by the next group's writes */
    if (g < max_group - 1 && strcmp(text_of(&k, "state"), "sent") != 0) ok = 0;
    n++;
  }
  truv_jcursor_free(c);
  truv_journal_close(j, &err);
  for (g = 0; g <= last_reported; g++) ok &= per_group[g] == GROUP;
  /* committed after the last report, before the kill: at most one more */
  ok &= max_group <= last_reported + 1;
  /* only an autocommitted group can be partly there */
  if (max_group == last_reported + 1 && max_group % 5 != 0) ok &= per_group[max_group] == GROUP;
  if (!ok)
    fprintf(stderr, "killed journal: last reported %d, max group %d, %d cases\n", last_reported,
            max_group, n);
  return ok;
}

static void test_killed_writer_leaves_every_committed_write(void) {
  int rounds = under_tool ? 3 : 12, r;
  srand(12345);
  for (r = 0; r < rounds; r++) {
    int fds[2], g, last = -1, target = 5 + rand() % 60;
    pid_t pid;
    remove_journal(path_of("killed.db"));
    CHECK_INT(pipe(fds), 0);
    fflush(NULL);
    if ((pid = fork()) == 0) {
      close(fds[0]);
      writer(path_of("killed.db"), fds[1]);
    }
    close(fds[1]);
    while (last < target && read(fds[0], &g, sizeof g) == sizeof g) last = g;
    /* at a random instant in the middle of the following writes */
    usleep((useconds_t)(rand() % 3000));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    while (read(fds[0], &g, sizeof g) == sizeof g) last = g;
    close(fds[0]);
    CHECK(last >= target);
    CHECK(verify_killed(path_of("killed.db"), last));
  }
}

/* ---------------------------------------------------------------- scale */

/* 100 000 cases, five writes each, in groups of 250 writes (what a tick of
 * a busy scheduler commits). Reported, not asserted: timing is for bench/. */
static void test_a_large_batch_journals_with_flat_memory(void) {
  int cases = under_tool ? 2000 : 100000, group = 250, i, w, writes = 0;
  const char *states[] = {"planned", "sending", "sent", "waiting", "routed"};
  truv_journal *j = open_fresh("large.db");
  truv_err err;
  long rss_half = 0, rss_end;
  double t0 = now_s(), t;
  char id[32];
  tally tl;
  CHECK_INT(truv_journal_begin(j, &err), 0);
  for (i = 0; i < cases; i++) {
    truv_jfield f[] = {text("state", "new"), integer("line", i + 1),
                       text("input", "{\"case_id\":\"c\",\"order_id\":\"0123456789abcdef0123\","
                                     "\"product\":\"income\"}"),
                       text("order_id", "0123456789abcdef0123")};
    snprintf(id, sizeof id, "case-%06d", i);
    CHECK_INT(truv_journal_put(j, id, f, 4, &err), 0);
    if (++writes % group == 0) truv_journal_commit(j, &err), truv_journal_begin(j, &err);
  }
  for (w = 0; w < 5; w++) {
    for (i = 0; i < cases; i++) {
      truv_jfield f[] = {text("state", states[w]), real("updated_at", 1.7e9 + i),
                         integer("attempts", w)};
      snprintf(id, sizeof id, "case-%06d", i);
      if (truv_journal_put(j, id, f, 3, &err)) CHECK_INT(err.kind, 0);
      if (++writes % group == 0) truv_journal_commit(j, &err), truv_journal_begin(j, &err);
    }
    if (w == 1) rss_half = rss_kb();
  }
  CHECK_INT(truv_journal_commit(j, &err), 0);
  t = now_s() - t0;
  rss_end = rss_kb();
  memset(&tl, 0, sizeof tl);
  truv_journal_counts(j, 0, count_into, &tl, &err);
  CHECK_INT(tally_of(&tl, "routed"), cases);
  printf("journal: %d cases, %d writes in %.2f s (%.0f writes/s, groups of %d); "
         "RSS %ld kB after 2 passes, %ld kB at the end\n",
         cases, writes, t, writes / t, group, rss_half, rss_end);
  /* memory does not grow with the number of writes */
  if (!under_tool) CHECK(rss_end - rss_half < 8 * 1024);
  truv_journal_close(j, &err);
  remove_journal(path_of("large.db"));
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/truv-journal-test.XXXXXX");
  if (!mkdtemp(dir)) return 2;
  under_tool = getenv("TRUV_UNDER_VALGRIND") != NULL;
#if defined(__SANITIZE_ADDRESS__)
  under_tool = 1;
#endif
  RUN(test_open_creates_a_versioned_wal_journal);
  RUN(test_put_and_get_keep_every_type);
  RUN(test_put_updates_only_the_named_fields);
  RUN(test_put_refuses_what_would_break_the_record);
  RUN(test_meta_keeps_run_level_facts);
  RUN(test_group_commit_is_atomic_and_explicit);
  RUN(test_each_filters_in_insertion_order);
  RUN(test_each_allows_writes_while_iterating);
  RUN(test_counts_per_state_and_route);
  RUN(test_cursor_outliving_its_journal_fails_cleanly);
  RUN(test_newer_schema_and_foreign_files_are_refused);
  RUN(test_exclusive_open_refuses_a_second_process);
  RUN(test_killed_writer_leaves_every_committed_write);
  RUN(test_a_large_batch_journals_with_flat_memory);
  {
    const char *names[] = {"new.db",   "types.db", "update.db",     "invalid.db", "meta.db",
                           "group.db", "each.db",  "each_write.db", "counts.db",  "outlive.db",
                           "newer.db", "other.db", "excl.db",       "killed.db"};
    size_t i;
    for (i = 0; i < sizeof names / sizeof *names; i++) remove_journal(path_of(names[i]));
    rmdir(dir);
  }
  return CHECK_DONE();
}
