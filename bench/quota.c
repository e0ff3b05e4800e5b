/* Quota and de-duplication stores: throughput and footprint, the memory and
 * SQLite stores side by side in one run (a benchmark, never a test).
 *
 *   quota_bench DIR [CONNECTIONS] [SQLITE_CONNECTIONS]
 *     DIR                 where the SQLite files go (created and removed here)
 *     CONNECTIONS         connections for the memory stores (default 1000000)
 *     SQLITE_CONNECTIONS  connections for the SQLite stores (default 50000)
 *
 * Keys are derived before any clock starts; steady-state rounds visit the
 * connections in a shuffled order (a shuffled copy of the keys, so the key
 * array streams while the store is probed at random). Bytes per connection
 * are the growth of the resident set (RSS) while the store fills, i.e. what
 * the allocator really touched; for SQLite, the file's size after a
 * checkpoint. Prints a Markdown table. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "truv/dedupe.h"
#include "truv/quota.h"

#define T0 1700000000.0
#define DAY 86400.0

static double clock_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double rss_bytes(void) {
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    fclose(f);
  }
  return (double)resident * (double)sysconf(_SC_PAGESIZE);
}

static double file_bytes(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (double)st.st_size : 0;
}

static void row(const char *what, const char *store, double value, const char *unit) {
  if (value >= 1e6) printf("| %-46s | %-7s | %8.2f M%-6s |\n", what, store, value / 1e6, unit);
  else if (value >= 1e4) printf("| %-46s | %-7s | %8.1f k%-6s |\n", what, store, value / 1e3, unit);
  else printf("| %-46s | %-7s | %8.1f %-7s |\n", what, store, value, unit);
  fflush(stdout);
}

/* xorshift64*: a fixed sequence, so that runs compare */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545f4914f6cdd1du;
}

static uint32_t *shuffled(size_t n) {
  uint32_t *order = malloc(n * sizeof *order);
  size_t i;
  if (!order) abort();
  for (i = 0; i < n; i++) order[i] = (uint32_t)i;
  for (i = n - 1; i > 0; i--) {
    size_t j = (size_t)(rng() % (i + 1));
    uint32_t t = order[i];
    order[i] = order[j];
    order[j] = t;
  }
  return order;
}

static truv_quota_key *make_keys(size_t n) {
  truv_quota_key *keys = malloc(n * sizeof *keys);
  char token[48];
  size_t i;
  if (!keys) abort();
  for (i = 0; i < n; i++) {
    snprintf(token, sizeof token, "bench-access-token-%zu", i);
    truv_quota_key_of(token, &keys[i]);
  }
  return keys;
}

static void die(const char *what, const truv_err *err) {
  fprintf(stderr, "quota_bench: %s: %s\n", what, err->message);
  exit(1);
}

/* ---- quota ---- */

/* Reserves every key once at `now`; returns ops/s. */
static double reserve_round(truv_quota_store *s, const truv_quota_key *keys, size_t n, double now,
                            int expect) {
  truv_err err;
  double t = clock_s();
  size_t i;
  for (i = 0; i < n; i++)
    if (truv_quota_reserve(s, &keys[i], 1, now, NULL, NULL, NULL, &err) != expect)
      die("reserve", &err);
  return (double)n / (clock_s() - t);
}

static double usage_round(truv_quota_store *s, const truv_quota_key *keys, size_t n, double now) {
  truv_err err;
  double t = clock_s();
  size_t i;
  int used;
  for (i = 0; i < n; i++)
    if (truv_quota_usage(s, &keys[i], now, &used, NULL, &err)) die("usage", &err);
  return (double)n / (clock_s() - t);
}

/* The keys in a shuffled order, copied: the store is then probed in an
 * order unrelated to insertion while the key array itself streams, as a
 * caller's keys would be at hand. */
static truv_quota_key *shuffled_copy(const truv_quota_key *keys, size_t n) {
  uint32_t *order = shuffled(n);
  truv_quota_key *copy = malloc(n * sizeof *copy);
  size_t i;
  if (!copy) abort();
  for (i = 0; i < n; i++) copy[i] = keys[order[i]];
  free(order);
  return copy;
}

/* Fill from empty (growing), six rounds that slide the window (the best
 * counts: other work on the machine only ever slows a round down), a refused
 * round, usage; bytes per connection on the way. */
static void bench_quota_store(const char *label, truv_quota_store *s, const truv_quota_key *keys,
                              const truv_quota_key *shuf, size_t n, double rss_before, int memory) {
  double best = 0, ops;
  int r;
  char what[80];
  snprintf(what, sizeof what, "reserve, new connection (%zu, store grows)", n);
  row(what, label, reserve_round(s, keys, n, T0, 0), "ops/s");
  if (memory) row("bytes per connection (RSS)", label, (rss_bytes() - rss_before) / (double)n, "B");
  for (r = 1; r <= 6; r++) { /* entries at T0+W/3, +2W/3, then each drops the oldest */
    ops = reserve_round(s, shuf, n, T0 + r * DAY / 3, 0);
    if (ops > best) best = ops;
  }
  row("reserve, steady state (prune + append), shuffled", label, best, "ops/s");
  row("reserve refused (connection spent)", label,
      reserve_round(s, shuf, n, T0 + DAY + 1, TRUV_EQUOTA), "ops/s");
  row("usage", label, usage_round(s, shuf, n, T0 + DAY + 1), "ops/s");
}

static void bench_quota_memory(size_t n) {
  truv_quota_key *keys = make_keys(n), *shuf = shuffled_copy(keys, n);
  truv_err err;
  truv_quota_store *s;
  double rss0, t = 0, best = 0;
  size_t i;
  int r;
  rss0 = rss_bytes();
  if (!(s = truv_quota_memory(NULL, 0, &err))) die("memory store", &err);
  bench_quota_store("memory", s, keys, shuf, n, rss0, 1);
  truv_quota_close(s);

  rss0 = rss_bytes();
  if (!(s = truv_quota_memory(NULL, n, &err))) die("memory store", &err);
  reserve_round(s, keys, n, T0, 0);
  row("bytes per connection (RSS), presized", "memory", (rss_bytes() - rss0) / (double)n, "B");
  truv_quota_close(s);

  /* a hot set that stays in cache: the cost of the code, not of DRAM */
  if (!(s = truv_quota_memory(NULL, 1000, &err))) die("memory store", &err);
  for (r = 0; r < 3000; r++) {
    if (r % 500 == 0) t = clock_s();
    for (i = 0; i < 1000; i++)
      if (truv_quota_reserve(s, &keys[i], 1, T0 + r * (DAY / 3 + 1), NULL, NULL, NULL, &err))
        die("reserve", &err);
    if (r % 500 == 499 && 5e5 / (clock_s() - t) > best) best = 5e5 / (clock_s() - t);
  }
  row("reserve, 1000 hot connections", "memory", best, "ops/s");
  truv_quota_close(s);
  free(shuf);
  free(keys);
}

static void remove_db(const char *path) {
  char p[600];
  unlink(path);
  snprintf(p, sizeof p, "%s-wal", path);
  unlink(p);
  snprintf(p, sizeof p, "%s-shm", path);
  unlink(p);
}

static double checkpointed_size(const char *path) {
  sqlite3 *db;
  if (sqlite3_open(path, &db) == SQLITE_OK) {
    sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
    sqlite3_close(db);
  }
  return file_bytes(path);
}

static void bench_quota_sqlite(const char *dir, size_t n) {
  truv_quota_key *keys = make_keys(n), *shuf = shuffled_copy(keys, n);
  char path[512];
  truv_err err;
  truv_quota_store *s;
  snprintf(path, sizeof path, "%s/quota-bench.db", dir);
  remove_db(path);
  if (!(s = truv_quota_sqlite(path, NULL, &err))) die("sqlite store", &err);
  bench_quota_store("SQLite", s, keys, shuf, n, 0, 0);
  truv_quota_close(s);
  row("file bytes per connection, 3 entries each", "SQLite", checkpointed_size(path) / (double)n,
      "B");
  remove_db(path);
  free(shuf);
  free(keys);
}

/* ---- dedupe ---- */

static char *make_ids(size_t n) {
  char *ids = malloc(n * 33);
  size_t i;
  if (!ids) abort();
  for (i = 0; i < n; i++) /* shaped like Truv's webhook_id: 32 hex characters */
    snprintf(ids + 33 * i, 33, "%016" PRIx64 "%016" PRIx64, rng(), (uint64_t)i);
  return ids;
}

static double seen_round(truv_dedupe_store *s, const char *ids, size_t n, double now,
                         int expect_first) {
  truv_err err;
  double t = clock_s();
  size_t i;
  int first;
  for (i = 0; i < n; i++) {
    if (truv_dedupe_seen(s, ids + 33 * i, 32, now, 7 * DAY, &first, &err)) die("seen", &err);
    if (first != expect_first) {
      fprintf(stderr, "quota_bench: seen answered %d for id %zu\n", first, i);
      exit(1);
    }
  }
  return (double)n / (clock_s() - t);
}

/* The memory store (path NULL) or a SQLite one: first sights, bytes per id,
 * duplicates. */
static void bench_dedupe(const char *path, size_t n) {
  const char *label = path ? "SQLite" : "memory";
  char *ids = make_ids(n), what[80];
  double rss0 = rss_bytes();
  truv_err err;
  truv_dedupe_store *s = path ? truv_dedupe_sqlite(path, &err) : truv_dedupe_memory(0, &err);
  if (!s) die("dedupe store", &err);
  snprintf(what, sizeof what, "dedupe seen, first sight (%zu ids)", n);
  row(what, label, seen_round(s, ids, n, T0, 1), "ops/s");
  if (!path) row("dedupe bytes per id (RSS)", label, (rss_bytes() - rss0) / (double)n, "B");
  row("dedupe seen, duplicate", label, seen_round(s, ids, n, T0 + 1, 0), "ops/s");
  truv_dedupe_close(s);
  free(ids);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : ".";
  size_t n = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 1000000;
  size_t nsql = argc > 3 ? (size_t)strtoul(argv[3], NULL, 10) : 50000;
  char path[512];
  printf("| %-46s | %-7s | %16s |\n", "what", "store", "result");
  printf("|%s|%s|%s|\n", "------------------------------------------------", "---------",
         "------------------:");
  bench_quota_memory(n);
  bench_quota_sqlite(dir, nsql);

  bench_dedupe(NULL, n);
  snprintf(path, sizeof path, "%s/dedupe-bench.db", dir);
  remove_db(path);
  bench_dedupe(path, nsql);
  remove_db(path);
  return 0;
}
