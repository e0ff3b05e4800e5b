/* faults: see faults.h. */
#include "faults.h"

#include <string.h>

#include "stats.h"

void faults_defaults(struct fault_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->stall_ms = 5000;
}

static bool any_active(const struct fault_config *c) {
  return c->latency_ms > 0 || c->jitter_ms > 0 || c->p5xx > 0 || c->reset_before > 0 ||
         c->reset_after > 0 || c->truncate > 0 || c->stall > 0;
}

void faults_init(struct faults *f, const struct fault_config *cfg, uint64_t seed) {
  memset(f, 0, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  rng_seed(&f->rng, seed ^ 0x6661756c7473ULL);
  faults_set(f, cfg);
}

void faults_destroy(struct faults *f) {
  pthread_mutex_destroy(&f->mu);
}

static bool matches(const struct fault_config *c, const char *method, const char *path) {
  size_t ml, n;
  if (c->match[0] == '\0') return true;
  ml = strlen(method);
  n = strlen(c->match);
  if (c->match[n - 1] == '$') { /* exact: "POST /v1/orders/$" is order creation only */
    size_t pl = strlen(path);
    return n - 1 == ml + 1 + pl && strncmp(c->match, method, ml) == 0 && c->match[ml] == ' ' &&
           strncmp(c->match + ml + 1, path, pl) == 0;
  }
  if (n <= ml) return strncmp(c->match, method, n) == 0;
  if (strncmp(c->match, method, ml) != 0 || c->match[ml] != ' ') return false;
  return strncmp(c->match + ml + 1, path, n - ml - 1) == 0;
}

static enum fault_kind draw(const struct fault_config *c, double u) {
  const double p[] = {c->reset_before, c->p5xx, c->reset_after, c->truncate, c->stall};
  const enum fault_kind k[] = {FAULT_RESET_BEFORE, FAULT_5XX, FAULT_RESET_AFTER, FAULT_TRUNCATE,
                               FAULT_STALL};
  double acc = 0;
  for (unsigned i = 0; i < 5; i++) {
    acc += p[i];
    if (p[i] > 0 && u < acc) return k[i];
  }
  return FAULT_NONE;
}

void faults_plan(struct faults *f, const char *method, const char *path, struct fault_plan *plan) {
  const struct fault_config *c;
  static const int STATUSES[] = {500, 502, 503};
  memset(plan, 0, sizeof *plan);
  if (!__atomic_load_n(&f->active, __ATOMIC_ACQUIRE)) return;
  pthread_mutex_lock(&f->mu);
  c = &f->cfg;
  if (matches(c, method, path)) {
    plan->kind = draw(c, rng_unit(&f->rng));
    plan->status = STATUSES[rng_next(&f->rng) % 3];
    plan->delay_ms = c->latency_ms;
    if (c->jitter_ms > 0) plan->delay_ms += (int)rng_range(&f->rng, 0, c->jitter_ms);
    plan->stall_ms = c->stall_ms;
  }
  pthread_mutex_unlock(&f->mu);
}

void faults_get(struct faults *f, struct fault_config *out) {
  pthread_mutex_lock(&f->mu);
  *out = f->cfg;
  pthread_mutex_unlock(&f->mu);
}

void faults_set(struct faults *f, const struct fault_config *cfg) {
  pthread_mutex_lock(&f->mu);
  f->cfg = *cfg;
  f->cfg.match[FAULT_MATCH_MAX - 1] = '\0';
  __atomic_store_n(&f->active, any_active(cfg), __ATOMIC_RELEASE);
  pthread_mutex_unlock(&f->mu);
}

void faults_count(struct faults *f, enum fault_kind kind) {
  if (kind < FAULT__COUNT) counter_add(&f->counts[kind], 1);
}

void faults_reset_counts(struct faults *f) {
  for (unsigned i = 0; i < FAULT__COUNT; i++) counter_zero(&f->counts[i]);
}

void faults_render_config(struct jw *w, const struct fault_config *c) {
  jw_obj(w);
  jw_kint(w, "latency_ms", c->latency_ms);
  jw_kint(w, "latency_jitter_ms", c->jitter_ms);
  jw_key(w, "fault_5xx");
  jw_double(w, c->p5xx, 4);
  jw_key(w, "reset_before");
  jw_double(w, c->reset_before, 4);
  jw_key(w, "reset_after");
  jw_double(w, c->reset_after, 4);
  jw_key(w, "truncate");
  jw_double(w, c->truncate, 4);
  jw_key(w, "stall");
  jw_double(w, c->stall, 4);
  jw_kint(w, "stall_ms", c->stall_ms);
  jw_kstr(w, "match", c->match);
  jw_obj_end(w);
}

void faults_render_counts(struct jw *w, struct faults *f) {
  jw_kint(w, "reset_before", (long long)counter_get(&f->counts[FAULT_RESET_BEFORE]));
  jw_kint(w, "reset_after", (long long)counter_get(&f->counts[FAULT_RESET_AFTER]));
  jw_kint(w, "truncate", (long long)counter_get(&f->counts[FAULT_TRUNCATE]));
  jw_kint(w, "stall", (long long)counter_get(&f->counts[FAULT_STALL]));
  jw_kint(w, "5xx", (long long)counter_get(&f->counts[FAULT_5XX]));
}
