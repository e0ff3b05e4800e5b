/* Quota stores: one suite of the contract in truv/quota.h, run through the
 * vtable against the memory store and the SQLite store, with an injected
 * `now`; then what only a durable, shared store can do (two handles, two
 * processes, a writer killed half-way, schema versions). */
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "truv/quota.h"

#define T0 1700000000.0
#define DAY 86400.0

/* ---- fixtures ---- */

static char tmpdir[256];
static int nfiles;

static void temp_path(char *buf, size_t size) {
  snprintf(buf, size, "%s/quota-%d.db", tmpdir, nfiles++);
}

static void remove_temp_files(void) {
  char path[300];
  int i;
  for (i = 0; i < nfiles; i++) {
    snprintf(path, sizeof path, "%s/quota-%d.db", tmpdir, i);
    unlink(path);
    snprintf(path, sizeof path, "%s/quota-%d.db-wal", tmpdir, i);
    unlink(path);
    snprintf(path, sizeof path, "%s/quota-%d.db-shm", tmpdir, i);
    unlink(path);
  }
  rmdir(tmpdir);
}

static int under_valgrind(void) {
  return getenv("TRUV_UNDER_VALGRIND") != NULL;
}

static truv_quota_store *make_memory(const truv_quota_policy *p) {
  truv_err err;
  truv_quota_store *s = truv_quota_memory(p, 0, &err);
  if (!s) fprintf(stderr, "memory store: %s\n", err.message);
  return s;
}

static truv_quota_store *make_sqlite(const truv_quota_policy *p) {
  char path[300];
  truv_err err;
  truv_quota_store *s;
  temp_path(path, sizeof path);
  if (!(s = truv_quota_sqlite(path, p, &err))) fprintf(stderr, "sqlite store: %s\n", err.message);
  return s;
}

/* The store under test; every contract test runs once per store. */
static truv_quota_store *(*make)(const truv_quota_policy *p);
static int bulk_keys; /* how many connections the growth test uses */

static truv_quota_store *make_default(void) {
  return make(NULL);
}

static truv_quota_key key(const char *token) {
  truv_quota_key k;
  truv_quota_key_of(token, &k);
  return k;
}

static truv_quota_key key_n(int i) {
  char token[32];
  snprintf(token, sizeof token, "token-%d", i);
  return key(token);
}

/* Reserves one key at `now`: the ticket, or 0 when refused (*nb set). */
static truv_quota_ticket reserve1(truv_quota_store *s, truv_quota_key k, double now, double *nb) {
  truv_quota_ticket t = 0;
  truv_err err;
  double not_before = 0;
  int rc = truv_quota_reserve(s, &k, 1, now, &t, &not_before, NULL, &err);
  if (nb) *nb = not_before;
  if (rc && rc != TRUV_EQUOTA) fprintf(stderr, "reserve failed: %s\n", err.message);
  return rc ? 0 : t;
}

static int used_of(truv_quota_store *s, truv_quota_key k, double now, double *next_free) {
  int used = -1;
  truv_err err;
  if (truv_quota_usage(s, &k, now, &used, next_free, &err))
    fprintf(stderr, "usage failed: %s\n", err.message);
  return used;
}

static truv_quota_facts facts_of(truv_quota_store *s, truv_quota_key k) {
  truv_quota_facts f;
  truv_err err;
  if (truv_quota_facts_read(s, &k, &f, &err)) fprintf(stderr, "facts failed: %s\n", err.message);
  return f;
}

static int note(truv_quota_store *s, truv_quota_key k, truv_quota_fact fact, double at,
                const char *reason) {
  truv_err err;
  int rc = truv_quota_note(s, &k, fact, at, reason, &err);
  if (rc && rc != TRUV_EINVALID) fprintf(stderr, "note failed: %s\n", err.message);
  return rc;
}

/* ---- keys and policy ---- */

static void keys_are_a_hash_of_the_token_never_the_token(void) {
  truv_quota_key k, back;
  char hex[TRUV_QUOTA_HEX_LEN + 1];
  truv_err err;
  CHECK_INT(truv_quota_key_of("tok_abc", &k), 0);
  truv_quota_key_hex(&k, hex);
  CHECK_STR(hex, "ab2c5dc36326bc103ab6548f77cc4a3b"); /* SHA-256("truv-quota-v1:tok_abc") */
  CHECK_INT(truv_quota_key_of_len("", 0, &k), 0);
  truv_quota_key_hex(&k, hex);
  CHECK_STR(hex, "fa8b2716ac72f742477404da0074afd7");
  CHECK_INT(truv_quota_key_parse(hex, strlen(hex), &back, &err), 0);
  CHECK(memcmp(k.bytes, back.bytes, TRUV_QUOTA_KEY_LEN) == 0);
  CHECK_INT(truv_quota_key_parse("FA8B2716AC72F742477404DA0074AFD7", 32, &back, &err), 0);
  CHECK(memcmp(k.bytes, back.bytes, TRUV_QUOTA_KEY_LEN) == 0);
}

static void malformed_key_text_is_refused(void) {
  truv_quota_key k;
  truv_err err;
  truv_err_clear(&err);
  CHECK_INT(truv_quota_key_parse("fa8b2716ac72f742477404da0074afd", 31, &k, &err), TRUV_EINVALID);
  CHECK_STR(err.code, "invalid_quota_key");
  CHECK_INT(truv_quota_key_parse("fa8b2716ac72f742477404da0074afdg", 32, &k, &err), TRUV_EINVALID);
  CHECK_INT(truv_quota_key_parse("fa8b2716ac72f742477404da0074afd77", 33, &k, &err), TRUV_EINVALID);
  CHECK_INT(truv_quota_key_parse(NULL, 0, &k, &err), TRUV_EINVALID);
}

static void policy_defaults_to_three_per_day_and_is_checked(void) {
  truv_quota_policy p = truv_quota_policy_default(), bad;
  truv_err err;
  CHECK_INT(p.limit, 3);
  CHECK_DBL(p.window_s, 86400);
  CHECK_INT(truv_quota_policy_check(&p, &err), 0);
  bad = p, bad.limit = 0;
  CHECK_INT(truv_quota_policy_check(&bad, &err), TRUV_EINVALID);
  bad = p, bad.limit = TRUV_QUOTA_MAX_LIMIT + 1;
  CHECK_INT(truv_quota_policy_check(&bad, &err), TRUV_EINVALID);
  bad = p, bad.window_s = 0;
  CHECK_INT(truv_quota_policy_check(&bad, &err), TRUV_EINVALID);
  bad = p, bad.window_s = NAN;
  CHECK_INT(truv_quota_policy_check(&bad, &err), TRUV_EINVALID);
  bad = p, bad.limit = -1;
  CHECK(truv_quota_memory(&bad, 0, &err) == NULL);
  CHECK_INT(err.kind, TRUV_EINVALID);
  CHECK(truv_quota_sqlite(":memory:", &bad, &err) == NULL);
  CHECK_INT(err.kind, TRUV_EINVALID);
}

/* ---- the contract, for every store ---- */

static void fourth_reserve_in_the_window_is_refused_with_the_exact_not_before(void) {
  truv_quota_store *s = make_default();
  truv_quota_key k = key("tok-a");
  truv_quota_ticket t = 99;
  unsigned char spent[1] = {0};
  double nb = 0;
  truv_err err;
  CHECK(reserve1(s, k, T0, NULL) != 0);
  CHECK(reserve1(s, k, T0 + 60, NULL) != 0);
  CHECK(reserve1(s, k, T0 + 120.25, NULL) != 0);
  memset(&err, 0x55, sizeof err); /* every field must be set, not left */
  CHECK_INT(truv_quota_reserve(s, &k, 1, T0 + 3600, &t, &nb, spent, &err), TRUV_EQUOTA);
  CHECK_INT(err.status, 0);
  CHECK_INT(err.nfields, 0);
  CHECK_STR(err.request_id, "");
  CHECK_DBL(nb, T0 + DAY);
  CHECK_INT(spent[0], 1);
  CHECK_INT(t, 0);
  CHECK_INT(err.kind, TRUV_EQUOTA);
  CHECK_STR(err.code, "refresh_quota");
  CHECK_DBL(err.retry_at, T0 + DAY);
  CHECK_NOT_CONTAINS(err.message, "tok-a");
  truv_quota_close(s);
}

static void reserve_succeeds_at_not_before_and_one_second_after(void) {
  truv_quota_store *s = make_default();
  truv_quota_key k = key("tok-a");
  double nb = 0;
  reserve1(s, k, T0, NULL);
  reserve1(s, k, T0 + 60, NULL);
  reserve1(s, k, T0 + 120, NULL);
  CHECK(reserve1(s, k, T0 + DAY - 0.001, &nb) == 0);
  CHECK_DBL(nb, T0 + DAY);
  CHECK(reserve1(s, k, nb, NULL) != 0);          /* exactly at not_before */
  CHECK(reserve1(s, k, T0 + DAY + 1, &nb) == 0); /* full again: next is T0+60's */
  CHECK_DBL(nb, T0 + 60 + DAY);
  CHECK(reserve1(s, k, nb + 1, NULL) != 0); /* one second after */
  truv_quota_close(s);
}

static void times_keep_millisecond_precision(void) {
  truv_quota_store *s = make_default();
  truv_quota_key k = key("tok-ms");
  double nb = 0;
  reserve1(s, k, T0 + 0.123, NULL);
  reserve1(s, k, T0 + 0.456, NULL);
  reserve1(s, k, T0 + 0.789, NULL);
  CHECK(reserve1(s, k, T0 + 1, &nb) == 0);
  CHECK_DBL(nb, T0 + 0.123 + DAY);
  CHECK(reserve1(s, k, T0 + 0.122 + DAY, &nb) == 0);
  CHECK(reserve1(s, k, T0 + 0.123 + DAY, NULL) != 0);
  truv_quota_close(s);
}

static void the_window_and_the_limit_come_from_the_policy(void) {
  truv_quota_policy p = {1, 60};
  truv_quota_store *s = make(&p);
  truv_quota_key k = key("tok-p");
  double nb = 0;
  CHECK_INT(s->policy.limit, 1);
  CHECK_DBL(s->policy.window_s, 60);
  CHECK(reserve1(s, k, T0, NULL) != 0);
  CHECK(reserve1(s, k, T0 + 59.999, &nb) == 0);
  CHECK_DBL(nb, T0 + 60);
  CHECK(reserve1(s, k, T0 + 60, NULL) != 0);
  truv_quota_close(s);
}

static void one_full_key_blocks_the_others_and_leaves_them_untouched(void) {
  truv_quota_store *s = make_default();
  truv_quota_key ks[3] = {key("tok-b"), key("tok-full"), key("tok-c")};
  unsigned char spent[3] = {9, 9, 9};
  truv_quota_ticket t = 0;
  double nb = 0, nf = -1;
  truv_err err;
  reserve1(s, ks[1], T0, NULL);
  reserve1(s, ks[1], T0 + 1, NULL);
  reserve1(s, ks[1], T0 + 2, NULL);
  CHECK_INT(truv_quota_reserve(s, ks, 3, T0 + 10, &t, &nb, spent, &err), TRUV_EQUOTA);
  CHECK_INT(spent[0], 0);
  CHECK_INT(spent[1], 1);
  CHECK_INT(spent[2], 0);
  CHECK_DBL(nb, T0 + DAY);
  CHECK_INT(used_of(s, ks[0], T0 + 10, &nf), 0);
  CHECK_DBL(nf, 0);
  CHECK_INT(used_of(s, ks[2], T0 + 10, NULL), 0);
  CHECK_INT(used_of(s, ks[1], T0 + 10, NULL), 3);
  truv_quota_close(s);
}

static void all_keys_get_one_entry_under_one_ticket(void) {
  truv_quota_store *s = make_default();
  truv_quota_key ks[3] = {key("tok-1"), key("tok-2"), key("tok-3")};
  truv_quota_ticket t = 0;
  truv_err err;
  int i;
  CHECK_INT(truv_quota_reserve(s, ks, 3, T0, &t, NULL, NULL, &err), 0);
  CHECK(t != 0);
  for (i = 0; i < 3; i++) CHECK_INT(used_of(s, ks[i], T0, NULL), 1);
  CHECK_INT(truv_quota_release(s, ks, 3, t, &err), 0);
  for (i = 0; i < 3; i++) CHECK_INT(used_of(s, ks[i], T0, NULL), 0);
  truv_quota_close(s);
}

static void not_before_is_when_every_full_key_has_room(void) {
  truv_quota_store *s = make_default();
  truv_quota_key ks[2] = {key("tok-early"), key("tok-late")};
  unsigned char spent[2];
  double nb = 0;
  truv_err err;
  int i;
  for (i = 0; i < 3; i++) reserve1(s, ks[0], T0 + i, NULL);
  for (i = 0; i < 3; i++) reserve1(s, ks[1], T0 + 500 + i, NULL);
  CHECK_INT(truv_quota_reserve(s, ks, 2, T0 + 1000, NULL, &nb, spent, &err), TRUV_EQUOTA);
  CHECK_DBL(nb, T0 + 500 + DAY);
  CHECK(spent[0] && spent[1]);
  CHECK_INT(truv_quota_reserve(s, ks, 2, nb, NULL, NULL, NULL, &err), 0);
  truv_quota_close(s);
}

static void release_removes_only_that_tickets_entries(void) {
  truv_quota_store *s = make_default();
  truv_quota_key ks[2] = {key("tok-r1"), key("tok-r2")};
  truv_quota_ticket a = 0, b = 0;
  truv_err err;
  CHECK_INT(truv_quota_reserve(s, ks, 2, T0, &a, NULL, NULL, &err), 0);
  CHECK_INT(truv_quota_reserve(s, ks, 1, T0 + 1, &b, NULL, NULL, &err), 0);
  CHECK(a != b && a && b);
  CHECK_INT(truv_quota_release(s, ks, 2, a, &err), 0);
  CHECK_INT(used_of(s, ks[0], T0 + 2, NULL), 1);
  CHECK_INT(used_of(s, ks[1], T0 + 2, NULL), 0);
  /* twice, unknown, 0: no-ops */
  CHECK_INT(truv_quota_release(s, ks, 2, a, &err), 0);
  CHECK_INT(truv_quota_release(s, ks, 2, b + 1000, &err), 0);
  CHECK_INT(truv_quota_release(s, ks, 2, 0, &err), 0);
  CHECK_INT(truv_quota_release(s, ks, 2, UINT64_MAX, &err), 0);
  CHECK_INT(used_of(s, ks[0], T0 + 2, NULL), 1);
  /* a ticket only touches the keys it is released from */
  CHECK_INT(truv_quota_release(s, &ks[1], 1, b, &err), 0);
  CHECK_INT(used_of(s, ks[0], T0 + 2, NULL), 1);
  CHECK_INT(truv_quota_release(s, &ks[0], 1, b, &err), 0);
  CHECK_INT(used_of(s, ks[0], T0 + 2, NULL), 0);
  truv_quota_close(s);
}

static void tickets_are_distinct_and_never_zero(void) {
  truv_quota_store *s = make_default();
  truv_quota_ticket seen[50];
  int i, j;
  for (i = 0; i < 50; i++) {
    seen[i] = reserve1(s, key_n(i), T0, NULL);
    CHECK(seen[i] != 0);
    for (j = 0; j < i; j++) CHECK(seen[i] != seen[j]);
  }
  truv_quota_close(s);
}

static void a_refusal_from_truv_fills_the_key_until_a_window_from_now(void) {
  truv_quota_store *s = make_default();
  truv_quota_key k = key("tok-limit"), fresh = key("tok-fresh");
  double nb = 0, nf = 0;
  truv_err err;
  reserve1(s, k, T0, NULL);
  CHECK_INT(truv_quota_record_limit(s, &k, T0 + 100, &err), 0);
  CHECK_INT(used_of(s, k, T0 + 100, &nf), 3);
  CHECK_DBL(nf, T0 + 100 + DAY);
  CHECK(reserve1(s, k, T0 + DAY, &nb) == 0); /* T0's entry left; Truv's count did not */
  CHECK_DBL(nb, T0 + 100 + DAY);
  CHECK(reserve1(s, k, T0 + 100 + DAY, NULL) != 0);
  CHECK_INT(used_of(s, k, T0 + 100 + DAY, NULL), 1);
  /* on a key never reserved, and twice in a row */
  CHECK_INT(truv_quota_record_limit(s, &fresh, T0, &err), 0);
  CHECK_INT(truv_quota_record_limit(s, &fresh, T0, &err), 0);
  CHECK_INT(used_of(s, fresh, T0, &nf), 3);
  CHECK_DBL(nf, T0 + DAY);
  truv_quota_close(s);
}

static void truvs_count_is_kept_when_larger_and_never_twice(void) {
  truv_quota_store *s = make_default();
  truv_quota_key k = key("tok-count"), other = key("tok-count-other");
  double theirs[2] = {T0 + 20, T0 + 10}, again[3] = {T0 + 25, T0 + 1, T0 + 2};
  double five[5] = {T0 - 50, T0 - 40, T0 - 30, T0 - 20, T0 - 10}, old[1] = {T0 - DAY}, nf = 0;
  double bad[1] = {NAN};
  truv_err err;
  /* an empty store takes Truv's refreshes at their instants */
  CHECK_INT(truv_quota_record_count(s, &k, theirs, 2, T0 + 100, &err), 0);
  CHECK_INT(used_of(s, k, T0 + 100, NULL), 2);
  reserve1(s, k, T0 + 100, NULL);
  CHECK_INT(used_of(s, k, T0 + 100, &nf), 3);
  CHECK_DBL(nf, T0 + 10 + DAY);
  /* the same times again, or fewer than the store holds: nothing changes */
  CHECK_INT(truv_quota_record_count(s, &k, theirs, 2, T0 + 100, &err), 0);
  CHECK_INT(truv_quota_record_count(s, &k, theirs, 0, T0 + 100, &err), 0);
  CHECK_INT(used_of(s, k, T0 + 100, NULL), 3);
  /* a store that saw one: the missing ones come in at the oldest of Truv's times */
  reserve1(s, other, T0, NULL);
  CHECK_INT(truv_quota_record_count(s, &other, again, 3, T0 + 30, &err), 0);
  CHECK_INT(used_of(s, other, T0 + 30, &nf), 3);
  CHECK_DBL(nf, T0 + DAY);
  CHECK_INT(used_of(s, other, T0 + DAY, &nf), 2); /* T0 left: T0+1 and T0+2 remain */
  CHECK_DBL(nf, 0);
  truv_quota_close(s);
  /* out of the window: ignored; more than the limit: the newest count */
  s = make_default();
  CHECK_INT(truv_quota_record_count(s, &k, old, 1, T0, &err), 0);
  CHECK_INT(used_of(s, k, T0, NULL), 0);
  CHECK_INT(truv_quota_record_count(s, &k, five, 5, T0, &err), 0);
  CHECK_INT(used_of(s, k, T0, &nf), 3);
  CHECK_DBL(nf, T0 - 30 + DAY);
  CHECK_INT(truv_quota_record_count(s, &k, bad, 1, T0, &err), TRUV_EINVALID);
  CHECK_INT(truv_quota_record_count(s, &k, NULL, 1, T0, &err), TRUV_EINVALID);
  CHECK_INT(truv_quota_record_count(s, &k, five, 5, NAN, &err), TRUV_EINVALID);
  truv_quota_close(s);
}

static void usage_counts_the_window_and_says_when_a_slot_frees(void) {
  truv_quota_store *s = make_default();
  truv_quota_key k = key("tok-u");
  double nf = -1;
  CHECK_INT(used_of(s, k, T0, &nf), 0);
  CHECK_DBL(nf, 0);
  reserve1(s, k, T0, NULL);
  reserve1(s, k, T0 + 5, NULL);
  CHECK_INT(used_of(s, k, T0 + 6, &nf), 2);
  CHECK_DBL(nf, 0);
  reserve1(s, k, T0 + 7.5, NULL);
  CHECK_INT(used_of(s, k, T0 + 8, &nf), 3);
  CHECK_DBL(nf, T0 + DAY);
  CHECK_INT(used_of(s, k, T0 + DAY, &nf), 2);
  CHECK_DBL(nf, 0);
  CHECK_INT(used_of(s, k, T0 + 7.5 + DAY, &nf), 0);
  truv_quota_close(s);
}

static void a_key_listed_twice_counts_once(void) {
  truv_quota_store *s = make_default();
  truv_quota_key ks[3] = {key("tok-d"), key("tok-d"), key("tok-e")};
  unsigned char spent[3];
  truv_quota_ticket t = 0;
  truv_err err;
  CHECK_INT(truv_quota_reserve(s, ks, 3, T0, &t, NULL, NULL, &err), 0);
  CHECK_INT(used_of(s, ks[0], T0, NULL), 1);
  CHECK_INT(truv_quota_reserve(s, ks, 2, T0 + 1, NULL, NULL, NULL, &err), 0);
  CHECK_INT(truv_quota_reserve(s, ks, 2, T0 + 2, NULL, NULL, NULL, &err), 0);
  CHECK_INT(used_of(s, ks[0], T0 + 2, NULL), 3);
  CHECK_INT(truv_quota_reserve(s, ks, 3, T0 + 3, NULL, NULL, spent, &err), TRUV_EQUOTA);
  CHECK(spent[0] && spent[1] && !spent[2]);
  CHECK_INT(truv_quota_release(s, ks, 3, t, &err), 0);
  CHECK_INT(used_of(s, ks[0], T0 + 3, NULL), 2);
  CHECK_INT(used_of(s, ks[2], T0 + 3, NULL), 0);
  truv_quota_close(s);
}

static void misuse_is_refused_before_the_store_is_asked(void) {
  truv_quota_store *s = make_default();
  truv_quota_key k = key("tok-m");
  truv_err err;
  CHECK_INT(truv_quota_reserve(s, &k, 0, T0, NULL, NULL, NULL, &err), TRUV_EINVALID);
  CHECK_INT(truv_quota_reserve(s, NULL, 1, T0, NULL, NULL, NULL, &err), TRUV_EINVALID);
  CHECK_INT(truv_quota_reserve(s, &k, 1, NAN, NULL, NULL, NULL, &err), TRUV_EINVALID);
  CHECK_INT(truv_quota_reserve(s, &k, 1, INFINITY, NULL, NULL, NULL, &err), TRUV_EINVALID);
  CHECK_INT(truv_quota_record_limit(s, &k, NAN, &err), TRUV_EINVALID);
  CHECK_INT(truv_quota_usage(s, NULL, T0, NULL, NULL, &err), TRUV_EINVALID);
  CHECK_INT(used_of(s, k, T0, NULL), 0);
  truv_quota_close(s);
  truv_quota_close(NULL);
}

static void many_connections_grow_the_store_and_expired_ones_go(void) {
  truv_quota_store *s = make_default();
  int i, n = bulk_keys, ok = 1;
  double nf;
  for (i = 0; i < n && ok; i++) ok = reserve1(s, key_n(i), T0 + i * 0.001, NULL) != 0;
  CHECK(ok);
  for (i = 0; i < n && ok; i++) ok = used_of(s, key_n(i), T0 + 100, NULL) == 1;
  CHECK(ok);
  /* a day later the first round has left: the same number of new
   * connections fits, and the old ones read as empty */
  for (i = 0; i < n && ok; i++) ok = reserve1(s, key_n(n + i), T0 + 2 * DAY, NULL) != 0;
  CHECK(ok);
  for (i = 0; i < n && ok; i += 97) ok = used_of(s, key_n(i), T0 + 2 * DAY, &nf) == 0;
  CHECK(ok);
  CHECK_INT(used_of(s, key_n(n + n - 1), T0 + 2 * DAY, NULL), 1);
  truv_quota_close(s);
}

static void reservations_in_one_millisecond_get_their_own_tickets(void) {
  truv_quota_store *s = make_default();
  truv_quota_key k = key("tok-same-ms");
  truv_quota_ticket t[3];
  truv_err err;
  int i;
  for (i = 0; i < 3; i++) t[i] = reserve1(s, k, T0, NULL);
  CHECK(t[0] && t[1] && t[2] && t[0] != t[1] && t[1] != t[2] && t[0] != t[2]);
  CHECK_INT(truv_quota_release(s, &k, 1, t[1], &err), 0);
  CHECK_INT(used_of(s, k, T0, NULL), 2);
  CHECK_INT(truv_quota_release(s, &k, 1, t[1], &err), 0);
  CHECK_INT(used_of(s, k, T0, NULL), 2);
  CHECK_INT(truv_quota_release(s, &k, 1, t[0], &err), 0);
  CHECK_INT(truv_quota_release(s, &k, 1, t[2], &err), 0);
  CHECK_INT(used_of(s, k, T0, NULL), 0);
  truv_quota_close(s);
}

static void a_large_limit_is_kept_exactly(void) {
  truv_quota_policy p = {50, 3600};
  truv_quota_store *s = make(&p);
  truv_quota_key k = key("tok-50");
  double nb = 0, nf = 0;
  int i, ok = 1;
  for (i = 0; i < 50 && ok; i++) ok = reserve1(s, k, T0 + i, NULL) != 0;
  CHECK(ok);
  CHECK(reserve1(s, k, T0 + 100, &nb) == 0);
  CHECK_DBL(nb, T0 + 3600);
  CHECK_INT(used_of(s, k, T0 + 3600, &nf), 49);
  CHECK_DBL(nf, 0);
  CHECK(reserve1(s, k, T0 + 3600, NULL) != 0);
  truv_quota_close(s);
}

static void times_are_accepted_up_to_1e11_seconds_either_side(void) {
  truv_quota_store *s = make_default();
  truv_quota_key k = key("tok-range");
  double nb = 0;
  truv_err err;
  CHECK(reserve1(s, k, -1e9, NULL) != 0);
  CHECK(reserve1(s, k, -1e9 + 1, NULL) != 0);
  CHECK(reserve1(s, k, -1e9 + 2, NULL) != 0);
  CHECK(reserve1(s, k, -1e9 + 3, &nb) == 0);
  CHECK_DBL(nb, -1e9 + DAY);
  CHECK(reserve1(s, key("tok-far"), 1e11, NULL) != 0);
  CHECK_INT(truv_quota_reserve(s, &k, 1, 1.0001e11, NULL, NULL, NULL, &err), TRUV_EINVALID);
  CHECK_INT(truv_quota_reserve(s, &k, 1, -1.0001e11, NULL, NULL, NULL, &err), TRUV_EINVALID);
  truv_quota_close(s);
}

/* ---- the memory store ---- */

static void a_ticket_stays_unique_on_its_keys_when_the_tag_counter_wraps(void) {
  truv_quota_store *s = truv_quota_memory(NULL, 0, NULL);
  truv_quota_key k = key("tok-wrap");
  truv_quota_ticket first, second;
  truv_err err;
  int i, ok = 1;
  first = reserve1(s, k, T0, NULL);
  /* 65535 more reservations in the same millisecond bring the counter round */
  for (i = 0; i < 65535 && ok; i++) ok = reserve1(s, key_n(i), T0, NULL) != 0;
  CHECK(ok);
  second = reserve1(s, k, T0, NULL);
  CHECK(second != 0 && second != first);
  CHECK_INT(truv_quota_release(s, &k, 1, first, &err), 0);
  CHECK_INT(used_of(s, k, T0, NULL), 1);
  CHECK_INT(truv_quota_release(s, &k, 1, second, &err), 0);
  CHECK_INT(used_of(s, k, T0, NULL), 0);
  truv_quota_close(s);
}

/* ---- the SQLite store: durable and shared ---- */

static void two_handles_on_one_file_share_the_log(void) {
  char path[300];
  truv_err err;
  truv_quota_store *a, *b;
  truv_quota_key k = key("tok-shared");
  truv_quota_ticket t;
  double nb = 0;
  temp_path(path, sizeof path);
  a = truv_quota_sqlite(path, NULL, &err);
  b = truv_quota_sqlite(path, NULL, &err);
  CHECK(a && b);
  if (!a || !b) goto done;
  t = reserve1(a, k, T0, NULL);
  CHECK(reserve1(b, k, T0 + 1, NULL) != 0);
  CHECK(reserve1(a, k, T0 + 2, NULL) != 0);
  CHECK_INT(used_of(b, k, T0 + 3, NULL), 3);
  CHECK(reserve1(b, k, T0 + 3, &nb) == 0);
  CHECK_DBL(nb, T0 + DAY);
  CHECK_INT(truv_quota_release(b, &k, 1, t, &err), 0);
  CHECK_INT(used_of(a, k, T0 + 3, NULL), 2);
done:
  truv_quota_close(a);
  truv_quota_close(b);
}

static void entries_and_tickets_survive_reopening(void) {
  char path[300];
  truv_err err;
  truv_quota_store *s;
  truv_quota_key k = key("tok-durable");
  truv_quota_ticket t1, t2;
  temp_path(path, sizeof path);
  s = truv_quota_sqlite(path, NULL, &err);
  t1 = reserve1(s, k, T0, NULL);
  truv_quota_close(s);
  s = truv_quota_sqlite(path, NULL, &err);
  CHECK_INT(used_of(s, k, T0 + 1, NULL), 1);
  t2 = reserve1(s, k, T0 + 1, NULL);
  CHECK(t2 > t1); /* never reissued */
  truv_quota_close(s);
}

static void a_lower_limit_on_a_fuller_log_waits_for_enough_entries_to_leave(void) {
  char path[300];
  truv_err err;
  truv_quota_policy two = {2, DAY};
  truv_quota_store *s;
  truv_quota_key k = key("tok-k");
  double nb = 0, nf = 0;
  temp_path(path, sizeof path);
  s = truv_quota_sqlite(path, NULL, &err);
  reserve1(s, k, T0, NULL);
  reserve1(s, k, T0 + 10, NULL);
  reserve1(s, k, T0 + 20, NULL);
  truv_quota_close(s);
  /* 3 entries, limit 2: k = 3 - 2 + 1 = 2 must leave; the 2nd oldest at T0+10 */
  s = truv_quota_sqlite(path, &two, &err);
  CHECK(reserve1(s, k, T0 + 30, &nb) == 0);
  CHECK_DBL(nb, T0 + 10 + DAY);
  CHECK_INT(used_of(s, k, T0 + 30, &nf), 3);
  CHECK_DBL(nf, T0 + 10 + DAY);
  CHECK(reserve1(s, k, T0 + 10 + DAY, NULL) != 0);
  truv_quota_close(s);
}

static void a_file_from_a_newer_schema_is_refused(void) {
  char path[300];
  truv_err err;
  sqlite3 *db;
  truv_quota_store *s;
  temp_path(path, sizeof path);
  s = truv_quota_sqlite(path, NULL, &err);
  truv_quota_close(s);
  CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
  CHECK_INT(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  CHECK(truv_quota_sqlite(path, NULL, &err) == NULL);
  CHECK_INT(err.kind, TRUV_EINTERNAL);
  CHECK_STR(err.code, "store_schema");
  memset(&err, 0x55, sizeof err);
  CHECK(truv_quota_sqlite("/nonexistent-dir/x/quota.db", NULL, &err) == NULL);
  CHECK_INT(err.kind, TRUV_EINTERNAL);
  CHECK_INT(err.nfields, 0);
  CHECK_DBL(err.retry_at, 0);
  CHECK_CONTAINS(err.message, "opening");
}

static void the_file_is_in_wal_mode(void) {
  char path[300];
  truv_err err;
  sqlite3 *db;
  sqlite3_stmt *st;
  truv_quota_store *s;
  temp_path(path, sizeof path);
  s = truv_quota_sqlite(path, NULL, &err);
  truv_quota_close(s);
  sqlite3_open(path, &db);
  sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
  CHECK_INT(sqlite3_step(st), SQLITE_ROW);
  CHECK_STR((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
  CHECK_INT(sqlite3_step(st), SQLITE_ROW);
  CHECK_INT(sqlite3_column_int(st, 0), 2);
  sqlite3_finalize(st);
  sqlite3_close(db);
}

/* A file written by the previous schema (no facts table) is brought up to
 * date: its entries stay, and facts can be noted. */
static void a_version_1_file_gains_the_facts_table(void) {
  char path[300];
  truv_err err;
  sqlite3 *db;
  truv_quota_store *s;
  truv_quota_key k = key("tok-v1");
  temp_path(path, sizeof path);
  s = truv_quota_sqlite(path, NULL, &err);
  CHECK(reserve1(s, k, T0, NULL) != 0);
  truv_quota_close(s);
  CHECK_INT(sqlite3_open(path, &db), SQLITE_OK);
  CHECK_INT(
    sqlite3_exec(db, "DROP TABLE truv_quota_fact; PRAGMA user_version = 1", NULL, NULL, NULL),
    SQLITE_OK);
  sqlite3_close(db);
  s = truv_quota_sqlite(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK_INT(used_of(s, k, T0 + 1, NULL), 1);
  CHECK_INT(note(s, k, TRUV_FACT_DEAD, T0 + 2, "mfa_error"), 0);
  CHECK_STR(facts_of(s, k).dead_reason, "mfa_error");
  truv_quota_close(s);
}

static void facts_are_shared_by_handles_on_one_file_and_survive_reopening(void) {
  char path[300];
  truv_err err;
  truv_quota_store *a, *b;
  truv_quota_key k = key("tok-facts-shared");
  temp_path(path, sizeof path);
  a = truv_quota_sqlite(path, NULL, &err);
  b = truv_quota_sqlite(path, NULL, &err);
  CHECK_INT(note(a, k, TRUV_FACT_DEAD, T0, "account_locked"), 0);
  CHECK_INT(note(b, k, TRUV_FACT_AUTH, T0 + 1, NULL), 0);
  CHECK_DBL(facts_of(b, k).dead_at, T0);
  CHECK_DBL(facts_of(a, k).auth_at, T0 + 1);
  truv_quota_close(a);
  truv_quota_close(b);
  a = truv_quota_sqlite(path, NULL, &err);
  CHECK_STR(facts_of(a, k).dead_reason, "account_locked");
  CHECK_INT(facts_of(a, k).seen, (1u << TRUV_FACT_DEAD) | (1u << TRUV_FACT_AUTH));
  truv_quota_close(a);
}

/* Child: opens its own handle and tries `attempts` reserves of one key at
 * one instant; exits with how many succeeded (or 100 + error). */
static void reserve_in_child(const char *path, int attempts) {
  truv_err err;
  truv_quota_store *s = truv_quota_sqlite(path, NULL, &err);
  truv_quota_key k = key("tok-race");
  int won = 0, i, rc = 0;
  if (!s) _exit(100);
  for (i = 0; i < attempts && !rc; i++) {
    rc = truv_quota_reserve(s, &k, 1, T0, NULL, NULL, NULL, &err);
    if (rc == 0) won++;
    else if (rc == TRUV_EQUOTA) rc = 0;
  }
  truv_quota_close(s);
  _exit(rc ? 101 : won);
}

static void processes_racing_on_one_key_get_exactly_the_limit(void) {
  enum { PROCS = 6, ATTEMPTS = 3 };
  char path[300];
  pid_t pids[PROCS];
  int i, won = 0, status;
  truv_err err;
  truv_quota_store *s;
  temp_path(path, sizeof path);
  s = truv_quota_sqlite(path, NULL, &err); /* create the file: a clean start */
  truv_quota_close(s);
  fflush(NULL);
  for (i = 0; i < PROCS; i++)
    if ((pids[i] = fork()) == 0) reserve_in_child(path, ATTEMPTS);
  for (i = 0; i < PROCS; i++) {
    CHECK(pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) <= ATTEMPTS);
    if (WIFEXITED(status) && WEXITSTATUS(status) <= ATTEMPTS) won += WEXITSTATUS(status);
  }
  CHECK_INT(won, 3);
}

static void processes_creating_a_new_file_together_all_open_it(void) {
  enum { PROCS = 4 };
  char path[300];
  pid_t pids[PROCS];
  int i, won = 0, status;
  temp_path(path, sizeof path);
  fflush(NULL);
  for (i = 0; i < PROCS; i++)
    if ((pids[i] = fork()) == 0) reserve_in_child(path, 1);
  for (i = 0; i < PROCS; i++) {
    CHECK(pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i]);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) <= 1);
    if (WIFEXITED(status)) won += WEXITSTATUS(status) <= 1 ? WEXITSTATUS(status) : 0;
  }
  CHECK_INT(won, 3);
}

/* Child: reserves pairs of keys {a_i, b_i} until killed. */
static void reserve_pairs_forever(const char *path) {
  truv_err err;
  truv_quota_store *s = truv_quota_sqlite(path, NULL, &err);
  int i;
  if (!s) _exit(100);
  for (i = 0;; i++) {
    truv_quota_key ks[2] = {key_n(2 * i), key_n(2 * i + 1)};
    if (truv_quota_reserve(s, ks, 2, T0, NULL, NULL, NULL, &err)) _exit(101);
  }
}

static void a_writer_killed_at_any_instant_leaves_whole_reservations(void) {
  char path[300];
  struct timespec pause = {0, 150 * 1000 * 1000};
  truv_err err;
  truv_quota_store *s;
  pid_t pid;
  int status, i, pairs = 0, torn = 0;
  temp_path(path, sizeof path);
  s = truv_quota_sqlite(path, NULL, &err);
  truv_quota_close(s);
  fflush(NULL);
  if ((pid = fork()) == 0) reserve_pairs_forever(path);
  CHECK(pid > 0);
  if (under_valgrind()) pause.tv_sec = 2;
  nanosleep(&pause, NULL);
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  CHECK(WIFSIGNALED(status));
  s = truv_quota_sqlite(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  for (i = 0;; i++) {
    int a = used_of(s, key_n(2 * i), T0, NULL), b = used_of(s, key_n(2 * i + 1), T0, NULL);
    if (a != b) torn++;
    if (a == 0 && b == 0) break;
    pairs++;
  }
  CHECK_INT(torn, 0);
  CHECK(pairs > 0);
  CHECK(reserve1(s, key("after-kill"), T0, NULL) != 0);
  truv_quota_close(s);
}

/* Child: takes the file's write lock through its own connection, adds
 * three entries for `k` (enough to fill it) without committing, tells the
 * parent through `ready`, and waits to be killed. */
static void hold_the_write_lock(const char *path, truv_quota_key k, int ready) {
  sqlite3 *db;
  sqlite3_stmt *st;
  int i;
  if (sqlite3_open(path, &db) != SQLITE_OK ||
      sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "INSERT INTO truv_quota_entry(key, t_ms, ticket) VALUES (?1, ?2, 9)",
                         -1, &st, NULL) != SQLITE_OK)
    _exit(100);
  for (i = 0; i < 3; i++) {
    sqlite3_bind_blob(st, 1, k.bytes, TRUV_QUOTA_KEY_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)(T0 * 1000));
    if (sqlite3_step(st) != SQLITE_DONE) _exit(101);
    sqlite3_reset(st);
  }
  if (write(ready, "h", 1) != 1) _exit(102);
  for (;;) pause();
}

static void a_process_killed_holding_the_write_lock_counts_nothing_and_blocks_nothing(void) {
  char path[300], c = 0;
  truv_err err;
  truv_quota_store *s, *fresh;
  truv_quota_key k = key("tok-killed");
  pid_t pid;
  int status, ready[2];
  temp_path(path, sizeof path);
  s = truv_quota_sqlite(path, NULL, &err); /* open before and after: both must carry on */
  CHECK(s != NULL);
  if (!s) return;
  CHECK(reserve1(s, key("tok-before"), T0, NULL) != 0);
  CHECK_INT(pipe(ready), 0);
  fflush(NULL);
  if ((pid = fork()) == 0) hold_the_write_lock(path, k, ready[1]);
  CHECK(pid > 0);
  CHECK_INT(read(ready[0], &c, 1), 1); /* it holds the lock, entries written */
  close(ready[0]);
  close(ready[1]);
  kill(pid, SIGKILL);
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  /* the lock died with it (no busy wait), its entries were never committed */
  CHECK_INT(used_of(s, k, T0, NULL), 0);
  CHECK(reserve1(s, k, T0, NULL) != 0);
  fresh = truv_quota_sqlite(path, NULL, &err);
  CHECK(fresh != NULL);
  if (fresh) {
    CHECK_INT(used_of(fresh, k, T0, NULL), 1);
    CHECK(reserve1(fresh, k, T0 + 1, NULL) != 0);
    CHECK(reserve1(fresh, k, T0 + 2, NULL) != 0);
    CHECK(reserve1(fresh, k, T0 + 3, NULL) == 0); /* the limit, counted right */
    truv_quota_close(fresh);
  }
  CHECK_INT(used_of(s, k, T0 + 3, NULL), 3);
  truv_quota_close(s);
}

/* A SQLite connection must not cross fork(): a child that used its parent's
 * handle would take locks the parent believes it holds, and closing it
 * could delete the write-ahead log under the parent. (The child leaves its
 * copy unclosed, which valgrind reports in its exit status: the verdict
 * comes through a pipe.) */
static void a_handle_used_in_a_forked_child_is_refused(void) {
  char path[300], verdict = 0;
  truv_err err;
  truv_quota_store *s;
  truv_quota_key k = key("tok-fork");
  pid_t pid;
  int status, out[2];
  temp_path(path, sizeof path);
  s = truv_quota_sqlite(path, NULL, &err);
  CHECK(s != NULL);
  if (!s) return;
  CHECK(reserve1(s, k, T0, NULL) != 0);
  CHECK_INT(pipe(out), 0);
  fflush(NULL);
  if ((pid = fork()) == 0) {
    truv_quota_ticket t = 0;
    int used = -1, rc = truv_quota_reserve(s, &k, 1, T0 + 1, &t, NULL, NULL, &err);
    int urc = truv_quota_usage(s, &k, T0 + 1, &used, NULL, &err);
    char v = rc == TRUV_EINVALID && urc == TRUV_EINVALID && strcmp(err.code, "store_forked") == 0
               ? 'y'
               : 'n';
    _exit(write(out[1], &v, 1) == 1 ? 0 : 1);
  }
  CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
  CHECK_INT(read(out[0], &verdict, 1), 1);
  CHECK_INT(verdict, 'y');
  close(out[0]);
  close(out[1]);
  /* the parent's handle and file are untouched */
  CHECK_INT(used_of(s, k, T0 + 1, NULL), 1);
  CHECK(reserve1(s, k, T0 + 2, NULL) != 0);
  truv_quota_close(s);
}

/* ---- connection facts ---- */

static void facts_keep_the_latest_instant_of_each_fact(void) {
  truv_quota_store *s = make_default();
  truv_quota_key k = key("tok-facts"), other = key("tok-other");
  truv_quota_facts f;
  CHECK(truv_quota_has_facts(s));
  f = facts_of(s, k);
  CHECK_INT(f.seen, 0);
  CHECK_STR(f.dead_reason, "");
  CHECK_INT(note(s, k, TRUV_FACT_ALIVE, T0, NULL), 0);
  CHECK_INT(note(s, k, TRUV_FACT_DEAD, T0 + 10.5, "login_error"), 0);
  f = facts_of(s, k);
  CHECK_INT(f.seen, (1u << TRUV_FACT_DEAD) | (1u << TRUV_FACT_ALIVE));
  CHECK_DBL(f.alive_at, T0);
  CHECK_DBL(f.dead_at, T0 + 10.5);
  CHECK_DBL(f.auth_at, 0);
  CHECK_STR(f.dead_reason, "login_error");
  /* an older sighting changes nothing; a newer one moves the instant and the reason */
  CHECK_INT(note(s, k, TRUV_FACT_DEAD, T0 + 5, "mfa_error"), 0);
  CHECK_INT(note(s, k, TRUV_FACT_ALIVE, T0 - 100, NULL), 0);
  f = facts_of(s, k);
  CHECK_DBL(f.dead_at, T0 + 10.5);
  CHECK_STR(f.dead_reason, "login_error");
  CHECK_DBL(f.alive_at, T0);
  CHECK_INT(note(s, k, TRUV_FACT_DEAD, T0 + 20, "link-disconnected"), 0);
  CHECK_INT(note(s, k, TRUV_FACT_AUTH, T0 + 30.001, NULL), 0);
  f = facts_of(s, k);
  CHECK_DBL(f.dead_at, T0 + 20);
  CHECK_STR(f.dead_reason, "link-disconnected");
  CHECK_DBL(f.auth_at, T0 + 30.001);
  CHECK_INT(f.seen, 7);
  /* a dead fact without a reason has none */
  CHECK_INT(note(s, k, TRUV_FACT_DEAD, T0 + 40, NULL), 0);
  CHECK_STR(facts_of(s, k).dead_reason, "");
  /* keys are apart, and the refresh log is untouched */
  CHECK_INT(facts_of(s, other).seen, 0);
  CHECK_INT(used_of(s, k, T0 + 40, NULL), 0);
  CHECK(reserve1(s, k, T0 + 41, NULL) != 0);
  CHECK_INT(facts_of(s, k).seen, 7);
  truv_quota_close(s);
}

static void facts_misuse_is_refused(void) {
  truv_quota_store *s = make_default();
  truv_quota_key k = key("tok-facts-misuse");
  char long_reason[TRUV_QUOTA_REASON_MAX + 1];
  memset(long_reason, 'a', TRUV_QUOTA_REASON_MAX);
  long_reason[TRUV_QUOTA_REASON_MAX] = '\0';
  CHECK_INT(note(s, k, TRUV_FACT_ALIVE, T0, "login_error"), TRUV_EINVALID);
  CHECK_INT(note(s, k, TRUV_FACT_DEAD, T0, "Login Error"), TRUV_EINVALID);
  CHECK_INT(note(s, k, TRUV_FACT_DEAD, T0, ""), TRUV_EINVALID);
  CHECK_INT(note(s, k, TRUV_FACT_DEAD, T0, long_reason), TRUV_EINVALID);
  long_reason[TRUV_QUOTA_REASON_MAX - 1] = '\0';
  CHECK_INT(note(s, k, TRUV_FACT_DEAD, NAN, NULL), TRUV_EINVALID);
  CHECK_INT(note(s, k, (truv_quota_fact)7, T0, NULL), TRUV_EINVALID);
  CHECK_INT(facts_of(s, k).seen, 0);
  CHECK_INT(note(s, k, TRUV_FACT_DEAD, T0, long_reason), 0);
  CHECK_STR(facts_of(s, k).dead_reason, long_reason);
  CHECK_INT(truv_quota_fact_of("auth"), TRUV_FACT_AUTH);
  CHECK_INT(truv_quota_fact_of("nope"), -1);
  CHECK_STR(truv_quota_fact_name(TRUV_FACT_DEAD), "dead");
  truv_quota_close(s);
}

static void facts_of_many_connections_are_kept_and_old_ones_pruned(void) {
  truv_quota_store *s = make_default();
  int n = bulk_keys / 10, i;
  double later = T0 + TRUV_QUOTA_FACT_RETENTION_S + 1;
  for (i = 0; i < n; i++) CHECK_INT(note(s, key_n(i), TRUV_FACT_ALIVE, T0 + i, NULL), 0);
  for (i = 0; i < n; i += 97) CHECK_DBL(facts_of(s, key_n(i)).alive_at, T0 + i);
  /* kept for the retention after their latest instant; then pruned as newer facts come
   * (lazily: within a few hundred notes) */
  for (i = 0; i < n + 600; i++)
    CHECK_INT(note(s, key_n(n + i), TRUV_FACT_AUTH, later + i, NULL), 0);
  CHECK_DBL(facts_of(s, key_n(n + 5)).auth_at, later + 5);
  CHECK_INT(facts_of(s, key_n(0)).seen, 0);
  truv_quota_close(s);
}

/* ---- runs ---- */

#define RUN_CONTRACT(name)                                                  \
  do {                                                                      \
    fprintf(stderr, "-- the contract, %s store\n", name);                   \
    RUN(fourth_reserve_in_the_window_is_refused_with_the_exact_not_before); \
    RUN(reserve_succeeds_at_not_before_and_one_second_after);               \
    RUN(times_keep_millisecond_precision);                                  \
    RUN(the_window_and_the_limit_come_from_the_policy);                     \
    RUN(one_full_key_blocks_the_others_and_leaves_them_untouched);          \
    RUN(all_keys_get_one_entry_under_one_ticket);                           \
    RUN(not_before_is_when_every_full_key_has_room);                        \
    RUN(release_removes_only_that_tickets_entries);                         \
    RUN(tickets_are_distinct_and_never_zero);                               \
    RUN(a_refusal_from_truv_fills_the_key_until_a_window_from_now);         \
    RUN(truvs_count_is_kept_when_larger_and_never_twice);                   \
    RUN(usage_counts_the_window_and_says_when_a_slot_frees);                \
    RUN(a_key_listed_twice_counts_once);                                    \
    RUN(misuse_is_refused_before_the_store_is_asked);                       \
    RUN(many_connections_grow_the_store_and_expired_ones_go);               \
    RUN(reservations_in_one_millisecond_get_their_own_tickets);             \
    RUN(a_large_limit_is_kept_exactly);                                     \
    RUN(facts_keep_the_latest_instant_of_each_fact);                        \
    RUN(facts_misuse_is_refused);                                           \
    RUN(facts_of_many_connections_are_kept_and_old_ones_pruned);            \
    RUN(times_are_accepted_up_to_1e11_seconds_either_side);                 \
  } while (0)

int main(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s/truv-quota-XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror("mkdtemp");
    return 1;
  }
  RUN(keys_are_a_hash_of_the_token_never_the_token);
  RUN(malformed_key_text_is_refused);
  RUN(policy_defaults_to_three_per_day_and_is_checked);

  make = make_memory;
  bulk_keys = under_valgrind() ? 10000 : 100000;
  RUN_CONTRACT("memory");
  RUN(a_ticket_stays_unique_on_its_keys_when_the_tag_counter_wraps);

  make = make_sqlite;
  bulk_keys = under_valgrind() ? 1000 : 10000;
  RUN_CONTRACT("SQLite");

  RUN(two_handles_on_one_file_share_the_log);
  RUN(entries_and_tickets_survive_reopening);
  RUN(a_lower_limit_on_a_fuller_log_waits_for_enough_entries_to_leave);
  RUN(a_file_from_a_newer_schema_is_refused);
  RUN(the_file_is_in_wal_mode);
  RUN(a_version_1_file_gains_the_facts_table);
  RUN(facts_are_shared_by_handles_on_one_file_and_survive_reopening);
  RUN(processes_racing_on_one_key_get_exactly_the_limit);
  RUN(processes_creating_a_new_file_together_all_open_it);
  RUN(a_writer_killed_at_any_instant_leaves_whole_reservations);
  RUN(a_process_killed_holding_the_write_lock_counts_nothing_and_blocks_nothing);
  RUN(a_handle_used_in_a_forked_child_is_refused);
  remove_temp_files();
  return CHECK_DONE();
}
