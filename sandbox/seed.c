/* seed: see seed.h. */
#include "seed.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hex.h"
#include "durations.h"
#include "lifecycle.h"
#include "names.h"
#include "timeutil.h"

#define MINUTE (60LL * SB_USEC)
#define OAUTH_PERCENT 40

/* the error for a mix naming no state: the name, then every state's */
static void unknown_state(const char *name, char *err, size_t errlen) {
  size_t n = (size_t)snprintf(err, errlen, "mix: unknown state \"%s\" (", name);
  for (unsigned i = 0; i < ST__COUNT && n < errlen; i++)
    n += (size_t)snprintf(err + n, errlen - n, "%s%s", i ? ", " : "", state_name(i));
  if (n < errlen) snprintf(err + n, errlen - n, ")");
}

bool mix_parse(const char *text, struct mix *out, char *err, size_t errlen) {
  const char *p;
  double total = 0;
  memset(out, 0, sizeof *out);
  p = text;
  while (*p) {
    char name[32];
    char *end;
    double w;
    size_t n = strcspn(p, "=,");
    unsigned st;
    if (p[n] != '=' || n == 0 || n >= sizeof name) {
      snprintf(err, errlen, "mix: expected state=weight at \"%.40s\"", p);
      return false;
    }
    memcpy(name, p, n);
    name[n] = '\0';
    if (!state_parse(name, &st)) {
      unknown_state(name, err, errlen);
      return false;
    }
    errno = 0;
    w = strtod(p + n + 1, &end);
    if (end == p + n + 1 || errno || w < 0 || (*end != ',' && *end != '\0')) {
      snprintf(err, errlen, "mix: bad weight for \"%s\"", name);
      return false;
    }
    out->weights[st] = w;
    total += w;
    p = *end == ',' ? end + 1 : end;
  }
  if (total <= 0) {
    snprintf(err, errlen, "mix: the weights must add up to more than 0");
    return false;
  }
  return true;
}

/* the state of each of n cases: exact proportions, then shuffled */
static uint8_t *plan_states(const struct mix *m, long n, struct rng *r) {
  long k = 0;
  uint8_t *states = malloc((size_t)(n > 0 ? n : 1));
  double total = 0, frac[ST__COUNT];
  long count[ST__COUNT], assigned = 0;
  if (!states) return NULL;
  for (unsigned i = 0; i < ST__COUNT; i++) total += m->weights[i];
  for (unsigned i = 0; i < ST__COUNT; i++) {
    double exact = (double)n * m->weights[i] / total;
    count[i] = (long)exact;
    frac[i] = exact - (double)count[i];
    assigned += count[i];
  }
  while (assigned < n) { /* largest remainders first, ties by state order */
    unsigned best = 0;
    for (unsigned i = 1; i < ST__COUNT; i++)
      if (frac[i] > frac[best]) best = i;
    count[best]++;
    frac[best] = -1;
    assigned++;
  }
  for (unsigned i = 0; i < ST__COUNT; i++)
    for (long j = 0; j < count[i]; j++) states[k++] = (uint8_t)i;
  for (long i = n - 1; i > 0; i--) {
    long j = (long)rng_range(r, 0, i);
    uint8_t t = states[i];
    states[i] = states[j];
    states[j] = t;
  }
  return states;
}

struct case_plan {
  unsigned state, product, n_emp, n_fa;
  bool oauth;
  sb_time conn_at, order_at;
};

static void plan_case(struct case_plan *c, const struct store *s, struct rng *r, unsigned state,
                      sb_time now) {
  int64_t age;
  int64_t expiry = s->settings.expiry, lo = SB_DAY + 60 * MINUTE;
  int64_t hi = 150 * SB_DAY < expiry - SB_DAY ? 150 * SB_DAY : expiry - SB_DAY;
  unsigned u = (unsigned)rng_range(r, 0, 9);
  c->state = state;
  c->product = u < 6 ? PROD_INCOME : u < 9 ? PROD_EMPLOYMENT : PROD_ASSETS;
  c->n_emp = c->product == PROD_ASSETS
               ? 0
               : (unsigned)(1 + (rng_range(r, 0, 99) >= 50) + (rng_range(r, 0, 99) >= 70));
  c->n_fa = 0;
  if (c->product == PROD_ASSETS || (c->product == PROD_INCOME && rng_range(r, 0, 99) < 20))
    c->n_fa = (unsigned)rng_range(r, 1, 2);
  if (state == ST_EXPIRED) {
    age = expiry + rng_range(r, SB_DAY, 60 * SB_DAY);
    c->oauth = true;
  } else {
    age = hi >= lo ? rng_range(r, lo, hi) : lo;
    c->oauth = hi >= lo && rng_range(r, 0, 99) < OAUTH_PERCENT;
  }
  c->conn_at = now - age;
  c->order_at = c->conn_at - rng_range(r, 10 * MINUTE, 120 * MINUTE);
}

static bool seed_person(struct store *s, struct sb_order *o, struct rng *r, uint32_t case_no) {
  char buf[160];
  const char *first = names_first(rng_next(r)), *last = names_last(rng_next(r));
  size_t n = (size_t)snprintf(buf, sizeof buf, "%s.%s%u@example.com", first, last, case_no);
  for (size_t i = 0; i < n; i++) buf[i] = (char)tolower((unsigned char)buf[i]);
  for (size_t i = 0, k = 0; i <= n; i++) /* drop the apostrophe of O'Brien */
    if (buf[i] != '\'') buf[k++] = buf[i];
  o->first_name = first;
  o->last_name = last;
  o->email = store_strdup(s, buf);
  snprintf(buf, sizeof buf, "%03d555%04d", (int)rng_range(r, 201, 989), (int)rng_range(r, 0, 9999));
  o->phone = store_strdup(s, buf);
  snprintf(buf, sizeof buf, "RC-%07u", case_no);
  o->order_number = store_strdup(s, buf);
  return o->email && o->phone && o->order_number;
}

/* a completed connection for suborder `sub`: connection + initial task */
static bool seed_connection(struct store *s, uint32_t sub, const struct case_plan *c, struct rng *r,
                            unsigned i, sb_time now) {
  uint8_t token[16], link[16], tid[16];
  uint32_t conn;
  struct sb_sub *b;
  struct sb_task *t;
  uint32_t task;
  struct sb_conn *k;
  rng_id(r, token);
  rng_id(r, link);
  rng_id(r, tid);
  conn = store_add_conn(s, token, link);
  task = conn == SB_NONE ? SB_NONE : store_add_task(s, tid);
  if (task == SB_NONE) return false;
  b = &s->subs[sub];
  k = &s->conns[conn];
  k->doc_seed = rng_next(r);
  k->origin_at = k->auth_at = c->conn_at + (sb_time)i * 3 * MINUTE;
  k->down_since = now;
  k->origin_sub = sub;
  k->state = (uint8_t)(c->state == ST_EXPIRED ? ST_ACTIVE : c->state);
  k->oauth = c->oauth;
  k->kind = b->kind;
  k->product = b->product;
  store_conn_attach(s, conn, s->orders[b->order].user);
  t = &s->tasks[task];
  t->created_at = k->auth_at;
  t->duration = duration_draw(&s->settings, s->seed, conn, task);
  t->path = TP_DONE;
  store_task_attach(s, task, conn);
  t->sub = sub;
  t->product = b->product;
  t->origin = TASK_INITIAL;
  t->emitted = (uint8_t)task_nsteps(t);
  b->conn = conn;
  b->task = task;
  return true;
}

static bool seed_subs(struct store *s, uint32_t order, const struct case_plan *c, struct rng *r,
                      sb_time now) {
  unsigned n = c->n_emp + c->n_fa;
  uint32_t first = store_add_subs(s, n);
  if (first == SB_NONE) return false;
  s->orders[order].sub_first = first;
  for (unsigned i = 0; i < n; i++) {
    store_init_sub(s, first + i, r, order, i < c->n_emp ? KIND_EMPLOYER : KIND_FINANCIAL,
                   i < c->n_emp ? c->product : PROD_ASSETS, c->order_at);
    if (!seed_connection(s, first + i, c, r, i, now)) return false;
  }
  return true;
}

static bool seed_one(struct store *s, struct rng *r, unsigned state, sb_time now) {
  struct case_plan c;
  uint8_t uid[16], oid[16];
  uint32_t user;
  struct sb_order *o;
  struct sb_user *u;
  uint32_t order;
  uint32_t case_no = s->n_cases + 1;
  plan_case(&c, s, r, state, now);
  rng_id(r, uid);
  rng_id(r, oid);
  user = store_add_user(s, uid, NULL);
  order = user == SB_NONE ? SB_NONE : store_add_order(s, oid);
  if (order == SB_NONE) return false;
  o = &s->orders[order];
  o->user = user;
  rng_id(r, o->bridge_token);
  rng_id(r, o->share_token);
  o->seed = rng_next(r);
  o->created_at = c.order_at;
  o->consent_at = c.conn_at;
  o->origin = ORIGIN_SEED;
  o->case_state = (uint8_t)state;
  o->case_no = case_no;
  o->products[o->n_products++] = (uint8_t)c.product;
  if (c.product == PROD_INCOME && c.n_fa) o->products[o->n_products++] = PROD_ASSETS;
  o->n_emp = (uint8_t)c.n_emp;
  o->n_fa = (uint8_t)c.n_fa;
  if (!seed_person(s, o, r, case_no)) return false;
  u = &s->users[user];
  u->first_name = o->first_name;
  u->last_name = o->last_name;
  u->email = o->email;
  u->phone = o->phone;
  u->created_at = o->created_at;
  if (!seed_subs(s, order, &c, r, now)) return false;
  return store_add_case(s, order);
}

bool seed_cases(struct store *s, long n, const struct mix *m, uint64_t seed, sb_time now) {
  struct rng r, shuffle;
  uint8_t *states;
  bool ok;
  rng_seed(&r, rng_mix(seed, s->n_cases + 1));
  rng_seed(&shuffle, rng_mix(seed ^ 0x73687566666c65ULL, s->n_cases + 1));
  states = plan_states(m, n, &shuffle);
  ok = states != NULL;
  for (long i = 0; ok && i < n; i++) ok = seed_one(s, &r, states[i], now);
  free(states);
  return ok;
}

/* ---- rendering --------------------------------------------------------- */

static void case_id(char out[32], uint32_t case_no) {
  snprintf(out, 32, "case-%06u", case_no);
}

static void case_subs(struct jw *w, const struct store *s, const struct sb_order *o,
                      const char *key, unsigned first, unsigned n) {
  jw_key(w, key);
  jw_arr(w);
  for (unsigned i = 0; i < n; i++) {
    const struct sb_sub *b = &s->subs[o->sub_first + first + i];
    jw_obj(w);
    jw_khex(w, "id", b->id, 16);
    jw_key(w, "suborder_number");
    jw_uint_str(w, b->number);
    jw_kstr(w, "state", state_name(o->case_state));
    jw_obj_end(w);
  }
  jw_arr_end(w);
}

void seed_render_case(struct jw *w, const struct store *s, uint32_t order) {
  const struct sb_order *o = &s->orders[order];
  char id[32];
  case_id(id, o->case_no);
  jw_obj(w);
  jw_kstr(w, "case_id", id);
  jw_khex(w, "order_id", o->id, 16);
  jw_khex(w, "user_id", s->users[o->user].id, 16);
  jw_kstr(w, "product", product_name(o->products[0]));
  jw_kstr(w, "first_name", o->first_name);
  jw_kstr(w, "last_name", o->last_name);
  jw_kstr(w, "email", o->email);
  jw_kstr(w, "phone", o->phone);
  jw_kstr(w, "order_number", o->order_number);
  jw_kstr(w, "state", state_name(o->case_state));
  case_subs(w, s, o, "employers", 0, o->n_emp);
  case_subs(w, s, o, "financial_accounts", o->n_emp, o->n_fa);
  jw_obj_end(w);
}

void seed_render_cases(struct jw *w, const struct store *s, uint32_t first) {
  jw_obj(w);
  jw_key(w, "cases");
  jw_arr(w);
  for (uint32_t i = first; i < s->n_cases; i++) seed_render_case(w, s, s->cases[i]);
  jw_arr_end(w);
  jw_obj_end(w);
}

/* RFC 4180: quote fields holding a comma, a quote or a line break */
static void csv_field(struct jw *w, const char *v, bool last) {
  if (strpbrk(v, ",\"\r\n")) {
    jw_text(w, "\"", 1);
    for (const char *p = v; *p; p++) {
      jw_text(w, p, 1);
      if (*p == '"') jw_text(w, "\"", 1);
    }
    jw_text(w, "\"", 1);
  } else {
    jw_text(w, v, strlen(v));
  }
  jw_text(w, last ? "\r\n" : ",", last ? 2 : 1);
}

static void csv_ids(struct jw *w, const struct store *s, const struct sb_order *o, unsigned first,
                    unsigned n, bool last) {
  char hex[33];
  for (unsigned i = 0; i < n; i++) {
    hex_encode(s->subs[o->sub_first + first + i].id, 16, hex);
    jw_text(w, hex, 32);
    if (i + 1 < n) jw_text(w, ";", 1);
  }
  jw_text(w, last ? "\r\n" : ",", last ? 2 : 1);
}

static void csv_case(struct jw *w, const struct store *s, uint32_t order) {
  const struct sb_order *o = &s->orders[order];
  char id[32], oid[33], uid[33];
  const char *fields[] = {id,
                          oid,
                          uid,
                          product_name(o->products[0]),
                          o->first_name,
                          o->last_name,
                          o->email,
                          o->phone,
                          o->order_number,
                          state_name(o->case_state)};
  case_id(id, o->case_no);
  hex_encode(o->id, 16, oid);
  hex_encode(s->users[o->user].id, 16, uid);
  for (unsigned i = 0; i < sizeof fields / sizeof *fields; i++) csv_field(w, fields[i], false);
  csv_ids(w, s, o, 0, o->n_emp, false);
  csv_ids(w, s, o, o->n_emp, o->n_fa, true);
}

static void render_csv(struct jw *w, const struct store *s) {
  static const char HEADER[] = "case_id,order_id,user_id,product,first_name,last_name,email,"
                               "phone,order_number,state,employers,financial_accounts\r\n";
  jw_text(w, HEADER, sizeof HEADER - 1);
  for (uint32_t i = 0; i < s->n_cases; i++) csv_case(w, s, s->cases[i]);
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), k = strlen(suffix);
  return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool write_atomic(const char *path, const char *data, size_t len, char *err, size_t errlen) {
  char tmp[4096];
  FILE *f;
  bool ok;
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  f = fopen(tmp, "wb");
  ok = f && fwrite(data, 1, len, f) == len;
  ok = f && (fclose(f) == 0) && ok;
  ok = ok && rename(tmp, path) == 0;
  if (!ok) {
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
  }
  return ok;
}

bool seed_write_cases(const struct store *s, const char *path, char *err, size_t errlen) {
  struct jw w;
  size_t len;
  bool ok;
  char *data;
  bool csv = ends_with(path, ".csv");
  if (!csv && !ends_with(path, ".json")) {
    snprintf(err, errlen, "--cases-out: the file name must end in .csv or .json");
    return false;
  }
  jw_init(&w, 1 << 16);
  if (csv) render_csv(&w, s);
  else seed_render_cases(&w, s, 0);
  jw_text(&w, csv ? "" : "\n", csv ? 0 : 1);
  data = jw_finish(&w, &len);
  if (!data) {
    snprintf(err, errlen, "out of memory writing %s", path);
    return false;
  }
  ok = write_atomic(path, data, len, err, errlen);
  free(data);
  return ok;
}
