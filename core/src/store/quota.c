/* Quota keys, policy, and the checked calls through the store vtable (see
 * truv/quota.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "truv/quota.h"

#define KEY_PREFIX "truv-quota-v1:"
#define MAX_WINDOW_S (10 * 366 * 86400.0)

/* ---- keys ---- */

int truv_quota_key_repeats(const truv_quota_key *keys, size_t i) {
  size_t j;
  for (j = 0; j < i; j++)
    if (memcmp(keys[j].bytes, keys[i].bytes, TRUV_QUOTA_KEY_LEN) == 0) return 1;
  return 0;
}

int truv_quota_key_of_len(const char *access_token, size_t len, truv_quota_key *out) {
  return truv_hash16(NULL, KEY_PREFIX, access_token, len, out->bytes, NULL);
}

int truv_quota_key_of(const char *access_token, truv_quota_key *out) {
  return truv_quota_key_of_len(access_token, strlen(access_token), out);
}

void truv_quota_key_hex(const truv_quota_key *key, char out[TRUV_QUOTA_HEX_LEN + 1]) {
  static const char digits[] = "0123456789abcdef";
  int i;
  for (i = 0; i < TRUV_QUOTA_KEY_LEN; i++) {
    out[2 * i] = digits[key->bytes[i] >> 4];
    out[2 * i + 1] = digits[key->bytes[i] & 15];
  }
  out[TRUV_QUOTA_HEX_LEN] = '\0';
}

static int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int truv_quota_key_parse(const char *hex, size_t len, truv_quota_key *out, truv_err *err) {
  int i, hi, lo;
  truv_err_clear(err);
  if (!hex || len != TRUV_QUOTA_HEX_LEN) goto bad;
  for (i = 0; i < TRUV_QUOTA_KEY_LEN; i++) {
    if ((hi = hex_digit(hex[2 * i])) < 0 || (lo = hex_digit(hex[2 * i + 1])) < 0) goto bad;
    out->bytes[i] = (unsigned char)(hi << 4 | lo);
  }
  return 0;
bad:
  return truv_err_set(err, TRUV_EINVALID, "invalid_quota_key",
                      "a quota key is 32 hex characters (from truv_quota_key_of)");
}

/* ---- policy ---- */

truv_quota_policy truv_quota_policy_default(void) {
  truv_quota_policy p = {TRUV_QUOTA_DEFAULT_LIMIT, TRUV_QUOTA_DEFAULT_WINDOW_S};
  return p;
}

int truv_quota_policy_check(const truv_quota_policy *policy, truv_err *err) {
  truv_err_clear(err);
  if (policy->limit < 1 || policy->limit > TRUV_QUOTA_MAX_LIMIT)
    return truv_err_set(err, TRUV_EINVALID, "invalid_quota_policy",
                        "limit must be between 1 and %d refreshes", TRUV_QUOTA_MAX_LIMIT);
  if (!(isfinite(policy->window_s) && policy->window_s >= 0.001 &&
        policy->window_s <= MAX_WINDOW_S))
    return truv_err_set(err, TRUV_EINVALID, "invalid_quota_policy",
                        "window must be between 0.001 s and 10 years");
  return 0;
}

/* ---- checked calls ---- */

static int check_keys(const truv_quota_key *keys, size_t n, truv_err *err) {
  if (keys && n > 0) return 0;
  return truv_err_set(err, TRUV_EINVALID, "invalid_quota_keys",
                      "at least one connection key is needed");
}

int truv_quota_reserve(truv_quota_store *s, const truv_quota_key *keys, size_t n, double now,
                       truv_quota_ticket *ticket, double *not_before, unsigned char *spent,
                       truv_err *err) {
  truv_quota_ticket t = 0;
  double nb = 0;
  int rc;
  truv_err_clear(err);
  if ((rc = check_keys(keys, n, err)) || (rc = truv_store_check_time(now, "now", err))) return rc;
  if (spent) memset(spent, 0, n);
  rc = s->ops->reserve(s, keys, n, now, &t, &nb, spent, err);
  if (ticket) *ticket = rc ? 0 : t;
  if (not_before) *not_before = rc == TRUV_EQUOTA ? nb : 0;
  if (rc == TRUV_EQUOTA) {
    /* no formatting: a refusal is an answer on the hot path, not a failure */
    truv_err_set(err, TRUV_EQUOTA, "refresh_quota",
                 "the refresh quota of a connection is spent (see retry_at)");
    if (err) err->retry_at = nb;
  }
  return rc;
}

int truv_quota_release(truv_quota_store *s, const truv_quota_key *keys, size_t n,
                       truv_quota_ticket ticket, truv_err *err) {
  truv_err_clear(err);
  if (ticket == 0 || n == 0) return 0;
  if (!keys) return check_keys(keys, n, err);
  return s->ops->release(s, keys, n, ticket, err);
}

int truv_quota_record_limit(truv_quota_store *s, const truv_quota_key *key, double now,
                            truv_err *err) {
  int rc;
  truv_err_clear(err);
  if ((rc = check_keys(key, 1, err)) || (rc = truv_store_check_time(now, "now", err))) return rc;
  return s->ops->record_limit(s, key, now, err);
}

static int by_time(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int truv_quota_record_count(truv_quota_store *s, const truv_quota_key *key, const double *times,
                            size_t n, double now, truv_err *err) {
  double *in = NULL;
  int64_t from_ms;
  size_t i, c = 0, limit;
  int rc;
  truv_err_clear(err);
  if ((rc = check_keys(key, 1, err)) || (rc = truv_store_check_time(now, "now", err))) return rc;
  if (n > 0 && !times) return truv_err_set(err, TRUV_EINVALID, "invalid_times", "no times");
  for (i = 0; i < n; i++)
    if ((rc = truv_store_check_time(times[i], "a refresh time", err))) return rc;
  if (!s->ops->record_count)
    return truv_err_set(err, TRUV_EINVALID, "record_count_unsupported",
                        "this quota store cannot record Truv's count");
  /* the window in the store's own unit, so that an entry is in it exactly
   * when the store counts it */
  from_ms = truv_store_ms(now) - truv_store_ms(s->policy.window_s);
  if (n > 0 && !(in = malloc(n * sizeof *in)))
    return truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "quota store: out of memory");
  for (i = 0; i < n; i++)
    if (truv_store_ms(times[i]) > from_ms) in[c++] = times[i];
  if (c > 1) qsort(in, c, sizeof *in, by_time);
  limit = (size_t)s->policy.limit;
  rc = c == 0 ? 0
              : s->ops->record_count(s, key, c > limit ? in + (c - limit) : in,
                                     c > limit ? limit : c, now, err);
  free(in);
  return rc;
}

int truv_quota_usage(truv_quota_store *s, const truv_quota_key *key, double now, int *used,
                     double *next_free, truv_err *err) {
  int u = 0, rc;
  double nf = 0;
  truv_err_clear(err);
  if ((rc = check_keys(key, 1, err)) || (rc = truv_store_check_time(now, "now", err))) return rc;
  rc = s->ops->usage(s, key, now, &u, &nf, err);
  if (used) *used = rc ? 0 : u;
  if (next_free) *next_free = rc ? 0 : nf;
  return rc;
}

void truv_quota_close(truv_quota_store *s) {
  if (s) s->ops->close(s);
}

/* ---- connection facts ---- */

static const char *const fact_names[TRUV_FACT_COUNT] = {"dead", "alive", "auth"};

const char *truv_quota_fact_name(truv_quota_fact fact) {
  return (int)fact >= 0 && fact < TRUV_FACT_COUNT ? fact_names[fact] : "?";
}

int truv_quota_fact_of(const char *name) {
  int i;
  for (i = 0; name && i < TRUV_FACT_COUNT; i++)
    if (strcmp(fact_names[i], name) == 0) return i;
  return -1;
}

int truv_quota_has_facts(const truv_quota_store *s) {
  return s && s->ops->note && s->ops->facts;
}

static int no_facts(truv_err *err) {
  return truv_err_set(err, TRUV_EINVALID, "facts_unsupported",
                      "this quota store keeps no connection facts");
}

/* NULL, or 1 to TRUV_QUOTA_REASON_MAX - 1 bytes of [a-z0-9_-]. */
static int check_reason(const char *reason, truv_err *err) {
  size_t n = 0;
  if (!reason) return 0;
  for (; reason[n]; n++) {
    char c = reason[n];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) break;
  }
  if (n > 0 && !reason[n] && n < TRUV_QUOTA_REASON_MAX) return 0;
  return truv_err_set(err, TRUV_EINVALID, "invalid_reason",
                      "a reason is 1 to %d characters of a-z, 0-9, '_' and '-'",
                      TRUV_QUOTA_REASON_MAX - 1);
}

int truv_quota_note(truv_quota_store *s, const truv_quota_key *key, truv_quota_fact fact, double at,
                    const char *reason, truv_err *err) {
  int rc;
  truv_err_clear(err);
  if (!truv_quota_has_facts(s)) return no_facts(err);
  if ((rc = check_keys(key, 1, err)) || (rc = truv_store_check_time(at, "at", err))) return rc;
  if ((int)fact < 0 || fact >= TRUV_FACT_COUNT)
    return truv_err_set(err, TRUV_EINVALID, "invalid_fact", "a fact is dead, alive or auth");
  if (reason && fact != TRUV_FACT_DEAD)
    return truv_err_set(err, TRUV_EINVALID, "invalid_reason", "only a dead fact has a reason");
  if ((rc = check_reason(reason, err))) return rc;
  return s->ops->note(s, key, fact, at, reason, err);
}

int truv_quota_facts_read(truv_quota_store *s, const truv_quota_key *key, truv_quota_facts *out,
                          truv_err *err) {
  int rc;
  truv_err_clear(err);
  memset(out, 0, sizeof *out);
  if (!truv_quota_has_facts(s)) return no_facts(err);
  if ((rc = check_keys(key, 1, err))) return rc;
  rc = s->ops->facts(s, key, out, err);
  if (rc) memset(out, 0, sizeof *out);
  return rc;
}
