/* What reserving a refresh's quota slot inside a transaction already open
 * would save against the quota store's own transaction (a benchmark, never
 * a test). One run, the same files and keys:
 *
 *  A. truv_quota_usage + truv_quota_reserve on the SQLite store: what a
 *     refresh does today (a read transaction, then BEGIN IMMEDIATE, the
 *     check, the ticket, the INSERT, COMMIT);
 *  B. truv_quota_reserve alone;
 *  C. the reserve's own statements (the check, the ticket, the INSERT) on a
 *     file of the same schema, inside a transaction left open and committed
 *     every GROUP reserves, as a journal's group commit would: the cost of
 *     the reserve's work without a transaction of its own;
 *  D. as C, committed after every reserve: the same statements with their
 *     own transaction (the anchor that C differs from only by the commit).
 *
 *   reserve_tx DIR [OPS] [GROUP]
 *     DIR    where the SQLite files go (created and removed here)
 *     OPS    reserves per variant (default 20000), each on a new connection
 *     GROUP  reserves per commit in C (default 32, truv-renew's requests in
 *            flight: at most that many write-aheads share a commit)
 *
 * Wall time and CPU time (user + system, getrusage) per reserve; WAL with
 * synchronous=NORMAL as the stores open their files. Prints a Markdown
 * table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "truv/quota.h"

#define T0 1700000000.0

typedef struct {
  double wall, cpu;
} sample;

static sample now_sample(void) {
  struct timespec ts;
  struct rusage ru;
  sample s;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  getrusage(RUSAGE_SELF, &ru);
  s.wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  s.cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
          (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
  return s;
}

static void die(const char *what, const char *detail) {
  fprintf(stderr, "reserve_tx: %s: %s\n", what, detail);
  exit(1);
}

static void remove_db(const char *path) {
  char p[600];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

static truv_quota_key *make_keys(size_t n, const char *tag) {
  truv_quota_key *keys = malloc(n * sizeof *keys);
  char token[64];
  size_t i;
  if (!keys) abort();
  for (i = 0; i < n; i++) {
    snprintf(token, sizeof token, "bench-%s-access-token-%zu", tag, i);
    truv_quota_key_of(token, &keys[i]);
  }
  return keys;
}

static void row(const char *what, sample a, sample b, size_t n, double *cpu_us) {
  double wall = (b.wall - a.wall) / (double)n * 1e6, cpu = (b.cpu - a.cpu) / (double)n * 1e6;
  printf("| %-62s | %8.1f | %8.1f |\n", what, wall, cpu);
  fflush(stdout);
  if (cpu_us) *cpu_us = cpu;
}

/* A and B: through the store. */
static void through_store(const char *dir, size_t n, double *a_cpu, double *b_cpu) {
  truv_quota_key *keys = make_keys(n, "store");
  char path[512];
  truv_err err;
  truv_quota_store *s;
  truv_quota_ticket ticket;
  double not_before, next_free;
  int used, pass;
  size_t i;
  snprintf(path, sizeof path, "%s/reserve-tx-store.db", dir);
  for (pass = 0; pass < 2; pass++) {
    sample t0, t1;
    remove_db(path);
    if (!(s = truv_quota_sqlite(path, NULL, &err))) die("sqlite store", err.message);
    t0 = now_sample();
    for (i = 0; i < n; i++) {
      if (pass == 0 &&
          truv_quota_usage(s, &keys[i], T0 + (double)i / 1000, &used, &next_free, &err))
        die("usage", err.message);
      if (truv_quota_reserve(s, &keys[i], 1, T0 + (double)i / 1000, &ticket, &not_before, NULL,
                             &err))
        die("reserve", err.message);
    }
    t1 = now_sample();
    row(pass == 0 ? "A. store: usage + reserve (what a refresh does today)"
                  : "B. store: reserve (BEGIN IMMEDIATE ... COMMIT of its own)",
        t0, t1, n, pass == 0 ? a_cpu : b_cpu);
    truv_quota_close(s);
  }
  remove_db(path);
  free(keys);
}

static sqlite3_stmt *prepare(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
    die("prepare", sqlite3_errmsg(db));
  return st;
}

static void exec(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) die(sql, msg ? msg : "?");
}

static void step(sqlite3 *db, sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) die("step", sqlite3_errmsg(db));
  sqlite3_reset(st);
}

/* C and D: the reserve's statements (as core/src/store/quota_sqlite.c runs
 * them) on a file of the store's schema, committed every `group`. */
static void in_open_tx(const char *dir, size_t n, size_t group, const char *what, double *cpu) {
  truv_quota_key *keys = make_keys(n, what);
  char path[512];
  truv_err err;
  truv_quota_store *s;
  sqlite3 *db;
  sqlite3_stmt *check, *bump, *ticket, *insert, *begin, *commit;
  sample t0, t1;
  size_t i;
  snprintf(path, sizeof path, "%s/reserve-tx-open.db", dir);
  remove_db(path);
  /* the store creates the schema (and the ticket counter) */
  if (!(s = truv_quota_sqlite(path, NULL, &err))) die("sqlite store", err.message);
  truv_quota_close(s);
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
    die("open", sqlite3_errmsg(db));
  exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL");
  check = prepare(db, "SELECT t_ms FROM truv_quota_entry WHERE key = ?1 AND t_ms > ?2 "
                      "ORDER BY t_ms DESC LIMIT 1 OFFSET ?3");
  bump = prepare(db, "UPDATE truv_store_counter SET value = value + 1 WHERE name = 'quota_ticket'");
  ticket = prepare(db, "SELECT value FROM truv_store_counter WHERE name = 'quota_ticket'");
  insert = prepare(db, "INSERT INTO truv_quota_entry(key, t_ms, ticket) VALUES (?1, ?2, ?3)");
  begin = prepare(db, "BEGIN IMMEDIATE");
  commit = prepare(db, "COMMIT");
  t0 = now_sample();
  for (i = 0; i < n; i++) {
    long long ms = (long long)(T0 * 1000) + (long long)i;
    if (i % group == 0) step(db, begin);
    sqlite3_bind_blob(check, 1, keys[i].bytes, TRUV_QUOTA_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(check, 2, ms - 86400000LL);
    sqlite3_bind_int(check, 3, 2);
    step(db, check);
    step(db, bump);
    step(db, ticket);
    sqlite3_bind_blob(insert, 1, keys[i].bytes, TRUV_QUOTA_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(insert, 2, ms);
    sqlite3_bind_int64(insert, 3, (long long)i + 1);
    step(db, insert);
    if (i % group == group - 1 || i == n - 1) step(db, commit);
  }
  t1 = now_sample();
  {
    char label[96];
    snprintf(label, sizeof label, "%s, committed every %zu", what, group);
    row(label, t0, t1, n, cpu);
  }
  sqlite3_finalize(check);
  sqlite3_finalize(bump);
  sqlite3_finalize(ticket);
  sqlite3_finalize(insert);
  sqlite3_finalize(begin);
  sqlite3_finalize(commit);
  sqlite3_close(db);
  remove_db(path);
  free(keys);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  size_t n = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 20000;
  size_t group = argc > 3 ? (size_t)strtoul(argv[3], NULL, 10) : 32;
  double a = 0, b = 0, c = 0, d = 0;
  if (!n || !group) die("usage", "reserve_tx DIR [OPS>0] [GROUP>0]");
  printf("| %-62s | %8s | %8s |\n", "per reserve", "wall us", "CPU us");
  printf("|%s|%s|%s|\n", "----------------------------------------------------------------",
         "---------:", "---------:");
  through_store(dir, n, &a, &b);
  in_open_tx(dir, n, 1, "D. its statements in a transaction of their own", &d);
  in_open_tx(dir, n, group, "C. its statements inside an open transaction", &c);
  printf("\nCPU: reserve with its own commit (B) / inside an open transaction (C): %.2fx;"
         " saved per refresh: %.1f us (B - C), %.1f us of usage + reserve (A)\n",
         c > 0 ? b / c : 0, b - c, a);
  return 0;
}
