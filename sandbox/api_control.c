/* api_control: the /_sandbox/ control endpoints (no auth, never faulted, never
 * rate-limited). See sandbox/README.md for the bodies.
 *
 *   GET|POST /_sandbox/clock            read / move the virtual clock
 *   POST     /_sandbox/seed             add seeded cases
 *   GET      /_sandbox/cases            every seeded case
 *   POST     /_sandbox/connections/state  set connection states
 *   GET      /_sandbox/connections      an order's, a user's or a link's connections
 *                                       (with tokens)
 *   GET|POST /_sandbox/faults           fault injection settings
 *   GET|POST /_sandbox/config           runtime settings
 *   GET      /_sandbox/stats            counters; POST /_sandbox/stats/reset
 *   GET      /_sandbox/webhooks         recent deliveries
 *   POST     /_sandbox/orders/complete  complete an API-created order
 *   POST     /_sandbox/bridge/complete  finish Truv Bridge for a bridge token, as the
 *                                       user would: connect (or re-authenticate) and
 *                                       hand over a single-use public_token */
#include <math.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing.h"
#include "docs.h"
#include "events.h"
#include "handler.h"
#include "hex.h"
#include "lifecycle.h"
#include "seed.h"
#include "validate.h"

#define MAX_SEED_CASES 1000000L

/* a number member in [lo, hi]; false when absent; errors recorded */
static bool num_field(struct invalid *v, const cJSON *json, const char *name, double lo, double hi,
                      double *out) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(json, name);
  if (!j) return false;
  if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble < lo ||
      j->valuedouble > hi) {
    invalid_add(v, name, "Expected a number between %g and %g.", lo, hi);
    return false;
  }
  *out = j->valuedouble;
  return true;
}

/* ---- clock ------------------------------------------------------------- */

static void clock_reply(struct handler_ctx *x, sb_time now) {
  struct jw w;
  jw_init(&w, 96);
  jw_obj(&w);
  jw_key(&w, "now");
  jw_double(&w, (double)now / (double)SB_USEC, 6);
  jw_ktime(&w, "iso", now);
  jw_kbool(&w, "realtime", x->sb->opt.realtime);
  jw_obj_end(&w);
  reply_json(x->reply, 200, &w);
}

static void control_clock(struct handler_ctx *x) {
  struct invalid v;
  bool has_advance;
  sb_time now;
  bool has_set;
  double advance = 0, set = 0;
  if (x->method == M_GET) {
    clock_reply(x, vclock_now(&x->sb->clock));
    return;
  }
  invalid_init(&v);
  has_advance = num_field(&v, x->json, "advance_s", 0, 1e10, &advance);
  has_set = num_field(&v, x->json, "set", 0, TIME_MAX_S, &set);
  if (v.n == 0 && has_advance == has_set)
    invalid_add(&v, "non_field_errors", "Give exactly one of \"advance_s\" and \"set\".");
  if (!handler_valid(x, &v)) return;
  store_wrlock(&x->sb->store);
  now = has_set ? vclock_set(&x->sb->clock, (sb_time)llround(set * SB_USEC))
                : vclock_advance(&x->sb->clock, (sb_time)llround(advance * SB_USEC));
  events_tick(x->sb, now);
  store_unlock(&x->sb->store);
  clock_reply(x, now);
}

/* ---- seeding ----------------------------------------------------------- */

static void control_seed(struct handler_ctx *x) {
  struct invalid v;
  struct mix mix;
  char err[256];
  const char *text;
  struct store *s;
  uint32_t first;
  double cases = 0, seed = (double)x->sb->opt.rng_seed;
  invalid_init(&v);
  if (!num_field(&v, x->json, "cases", 0, (double)MAX_SEED_CASES, &cases) && v.n == 0)
    invalid_add(&v, "cases", "This field is required.");
  num_field(&v, x->json, "rng_seed", 0, 9007199254740991.0, &seed);
  text = field_string(&v, x->json, "mix", false, 1024);
  if (!mix_parse(text ? text : DEFAULT_MIX, &mix, err, sizeof err))
    invalid_add(&v, "mix", "%s", err);
  if (!handler_valid(x, &v)) return;
  s = &x->sb->store;
  store_wrlock(s);
  first = s->n_cases;
  if (!seed_cases(s, (long)cases, &mix, (uint64_t)seed, x->now)) {
    reply_server_error(x->reply);
  } else {
    struct jw w;
    jw_init(&w, 1024 + (size_t)cases * 512);
    seed_render_cases(&w, s, first);
    reply_json(x->reply, 200, &w);
  }
  store_unlock(s);
}

static void control_cases(struct handler_ctx *x) {
  struct jw w;
  store_rdlock(&x->sb->store);
  jw_init(&w, 1024 + (size_t)x->sb->store.n_cases * 512);
  seed_render_cases(&w, &x->sb->store, 0);
  store_unlock(&x->sb->store);
  reply_json(x->reply, 200, &w);
}

/* ---- connections ------------------------------------------------------- */

static void render_connection(struct jw *w, const struct store *s, uint32_t conn, sb_time now) {
  const struct sb_conn *c = &s->conns[conn];
  const struct sb_sub *b = c->origin_sub == SB_NONE ? NULL : &s->subs[c->origin_sub];
  const struct sb_settings *st = &s->settings;
  struct billing_window win;
  billing_window(c, st, now, &win);
  jw_obj(w);
  jw_kstr(w, "kind", c->kind == KIND_EMPLOYER ? "employer" : "financial_account");
  jw_khex(w, "suborder_id", b ? b->id : NULL, 16);
  jw_key(w, "suborder_number");
  if (b) jw_uint_str(w, b->number);
  else jw_null(w);
  jw_khex(w, "access_token", c->token, 16);
  jw_khex(w, "link_id", c->link, 16);
  jw_khex(w, "user_id", s->users[c->user].id, 16);
  jw_kstr(w, "product", product_name(c->product));
  jw_kstr(w, "provider", docs_provider_id(c));
  jw_kstr(w, "state", state_name(conn_effective_state(c, st, now)));
  jw_ktime(w, "created_at", c->origin_at);
  jw_ktime(w, "authenticated_at", c->auth_at);
  jw_kbool(w, "oauth", c->oauth);
  jw_key(w, "provider_down_until");
  jw_time_or_null(w, c->down_since + st->provider_down, c->state == ST_PROVIDER_DOWN);
  jw_kint(w, "refreshes_in_window", win.used);
  jw_key(w, "window_limit");
  if (win.size > 0) jw_int(w, win.size);
  else jw_null(w);
  jw_key(w, "next_refresh_at");
  jw_time_or_null(w, win.frees_at, win.full);
  jw_kint(w, "tasks_created", c->stat_created);
  jw_obj_end(w);
}

/* ?order_id= (the order's connections, in suborder order), ?user_id= (the
 * user's, newest first) or ?link_id=; false when none names a known one */
static bool render_connections(struct handler_ctx *x, struct jw *w) {
  const struct store *s = &x->sb->store;
  uint8_t raw[16];
  uint32_t order = SB_NONE, user = SB_NONE, link = SB_NONE;
  if (handler_query_id(x, "order_id", raw, NULL)) order = store_find_order(s, raw);
  else if (handler_query_id(x, "user_id", raw, NULL)) user = store_find_user(s, raw);
  else if (handler_query_id(x, "link_id", raw, NULL)) link = store_find_link(s, raw);
  if (order == SB_NONE && user == SB_NONE && link == SB_NONE) return false;
  jw_obj(w);
  if (order != SB_NONE) jw_khex(w, "order_id", s->orders[order].id, 16);
  jw_key(w, "connections");
  jw_arr(w);
  if (order != SB_NONE) {
    const struct sb_order *o = &s->orders[order];
    for (unsigned i = 0; i < (unsigned)(o->n_emp + o->n_fa); i++)
      if (s->subs[o->sub_first + i].conn != SB_NONE)
        render_connection(w, s, s->subs[o->sub_first + i].conn, x->now);
  } else if (user != SB_NONE) {
    for (uint32_t c = s->users[user].last_conn; c != SB_NONE; c = s->conns[c].prev_of_user)
      render_connection(w, s, c, x->now);
  } else {
    render_connection(w, s, link, x->now);
  }
  jw_arr_end(w);
  jw_obj_end(w);
  return true;
}

static void control_connections(struct handler_ctx *x) {
  struct jw w;
  store_rdlock(&x->sb->store);
  jw_init(&w, 2048);
  if (render_connections(x, &w)) {
    reply_json(x->reply, 200, &w);
  } else {
    jw_free(&w);
    reply_not_found(x->reply);
  }
  store_unlock(&x->sb->store);
}

static void set_state(struct store *s, struct sb_conn *c, unsigned st, sb_time now) {
  if (st == ST_EXPIRED) {
    c->oauth = 1;
    c->auth_at = now - s->settings.expiry - SB_DAY;
    c->state = ST_ACTIVE;
    return;
  }
  if (conn_effective_state(c, &s->settings, now) == ST_EXPIRED)
    c->auth_at = now; /* asked for another state: the user reconnected */
  c->state = (uint8_t)st;
  if (st == ST_PROVIDER_DOWN) c->down_since = now;
}

/* a connection the user just made through Bridge: in state st, with its
 * initial task (which ends done); SB_NONE on OOM */
static uint32_t connect(struct store *s, uint32_t user, uint32_t sub, unsigned kind,
                        unsigned product, unsigned st, bool oauth, sb_time now) {
  struct sb_conn *c;
  uint32_t conn = store_add_conn(s, NULL, NULL);
  if (conn == SB_NONE) return SB_NONE;
  c = &s->conns[conn];
  c->doc_seed = rng_next(&s->rng);
  c->origin_at = c->auth_at = c->down_since = now;
  c->origin_sub = sub;
  c->kind = (uint8_t)kind;
  c->product = (uint8_t)product;
  c->oauth = oauth;
  store_conn_attach(s, conn, user);
  set_state(s, c, st, now);
  if (sub != SB_NONE) s->subs[sub].conn = conn;
  return billing_initial_task(s, conn, sub, now) ? conn : SB_NONE;
}

/* the connections a state change targets; returns how many */
static unsigned target_conns(struct store *s, const cJSON *json, uint32_t *out, unsigned max,
                             struct invalid *v) {
  uint8_t raw[16];
  bool given;
  unsigned n = 0;
  if (field_hex_id(v, json, "order_id", false, raw, &given)) {
    uint32_t order = store_find_order(s, raw);
    const struct sb_order *o = order == SB_NONE ? NULL : &s->orders[order];
    for (unsigned i = 0; o && i < (unsigned)(o->n_emp + o->n_fa) && n < max; i++)
      if (s->subs[o->sub_first + i].conn != SB_NONE) out[n++] = s->subs[o->sub_first + i].conn;
    if (!o) invalid_add(v, "order_id", "Unknown order.");
  } else if (field_hex_id(v, json, "access_token", false, raw, &given)) {
    if ((out[0] = store_find_token(s, raw)) != SB_NONE) n = 1;
    else invalid_add(v, "access_token", "Unknown access_token.");
  } else if (field_hex_id(v, json, "link_id", false, raw, &given)) {
    if ((out[0] = store_find_link(s, raw)) != SB_NONE) n = 1;
    else invalid_add(v, "link_id", "Unknown link_id.");
  } else if (v->n == 0) {
    invalid_add(v, "non_field_errors", "Give one of order_id, access_token, link_id.");
  }
  return n;
}

static void control_set_state(struct handler_ctx *x) {
  const char *name;
  unsigned n;
  struct store *s = &x->sb->store;
  struct invalid v;
  uint32_t conns[512];
  unsigned st = 0;
  invalid_init(&v);
  name = field_string(&v, x->json, "state", true, 32);
  if (name && !state_parse(name, &st))
    invalid_add(&v, "state", "\"%s\" is not a valid choice.", name);
  store_wrlock(s);
  n = target_conns(s, x->json, conns, 512, &v);
  if (handler_valid(x, &v)) {
    struct jw w;
    for (unsigned i = 0; i < n; i++) set_state(s, &s->conns[conns[i]], st, x->now);
    jw_init(&w, 64);
    jw_obj(&w);
    jw_kint(&w, "updated", n);
    jw_kstr(&w, "state", state_name(st));
    jw_obj_end(&w);
    reply_json(x->reply, 200, &w);
  }
  store_unlock(s);
}

/* ---- completing an API-created order ----------------------------------- */

/* An order created without employers or financial institutions: in Bridge
 * the user searched for theirs, and finishing makes the suborder it
 * connects (of the kind the order's first product verifies). false on OOM. */
static bool add_found_sub(struct store *s, uint32_t order, sb_time now) {
  unsigned kind;
  uint32_t sub;
  struct sb_order *o = &s->orders[order];
  if (o->n_emp + o->n_fa > 0) return true;
  kind = product_kind(o->products[0]);
  sub = store_add_subs(s, 1);
  if (sub == SB_NONE) return false;
  o = &s->orders[order];
  o->sub_first = sub;
  if (kind == KIND_EMPLOYER) o->n_emp = 1;
  else o->n_fa = 1;
  store_init_sub(s, sub, NULL, order, kind, store_sub_product(o->products, o->n_products, kind),
                 now);
  return true;
}

/* connects every pending suborder of an API order; returns how many (the
 * first new connection in *first), or -1 on OOM */
static int complete_subs(struct handler_ctx *x, uint32_t order, unsigned st, bool oauth,
                         uint32_t *first) {
  struct store *s = &x->sb->store;
  int n = 0;
  *first = SB_NONE;
  if (!add_found_sub(s, order, x->now)) return -1;
  for (unsigned i = 0; i < (unsigned)(s->orders[order].n_emp + s->orders[order].n_fa); i++) {
    uint32_t conn;
    uint32_t sub = s->orders[order].sub_first + i;
    if (s->subs[sub].conn != SB_NONE) continue;
    conn = connect(s, s->orders[order].user, sub, s->subs[sub].kind, s->subs[sub].product, st,
                   oauth, x->now);
    if (conn == SB_NONE) return -1;
    if (*first == SB_NONE) *first = conn;
    events_link_connected(x->sb, conn, x->now);
    n++;
  }
  if (n > 0) s->orders[order].consent_at = x->now;
  events_tick(x->sb, x->now);
  return n;
}

static void complete_locked(struct handler_ctx *x, uint32_t order, unsigned st, bool oauth) {
  uint32_t first;
  struct jw w;
  int n = complete_subs(x, order, st, oauth, &first);
  if (n < 0) {
    reply_server_error(x->reply);
    return;
  }
  if (n == 0) {
    reply_bad_field(x->reply, "order_id", "The order has no pending suborder to complete.");
    return;
  }
  jw_init(&w, 4096);
  docs_order(&w, &x->sb->store, order, x->now);
  reply_json(x->reply, 200, &w);
}

/* a completion's body: the id member `id_name` (required), the optional
 * "state" (never "expired", default active) and "oauth"; false when the 400
 * is the answer */
struct completion {
  uint8_t id[16];
  unsigned state;
  bool oauth;
};

static bool completion_request(struct handler_ctx *x, const char *id_name, struct completion *c) {
  struct invalid v;
  bool given;
  bool id_ok;
  const char *name;
  invalid_init(&v);
  id_ok = field_hex_id(&v, x->json, id_name, true, c->id, &given);
  name = field_string(&v, x->json, "state", false, 32);
  c->state = ST_ACTIVE;
  if (name && (!state_parse(name, &c->state) || c->state == ST_EXPIRED))
    invalid_add(&v, "state", "\"%s\" is not a valid choice.", name);
  field_bool(&v, x->json, "oauth", "oauth");
  c->oauth = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x->json, "oauth"));
  return handler_valid(x, &v) && id_ok;
}

static void control_complete(struct handler_ctx *x) {
  uint32_t order;
  struct store *s = &x->sb->store;
  struct completion c;
  if (!completion_request(x, "order_id", &c)) return;
  store_wrlock(s);
  order = store_find_order(s, c.id);
  if (order == SB_NONE) reply_not_found(x->reply);
  else if (s->orders[order].origin != ORIGIN_API)
    reply_bad_field(x->reply, "order_id", "Only orders created through the API can be completed.");
  else complete_locked(x, order, c.state, c.oauth);
  store_unlock(s);
}

/* ---- finishing Bridge -------------------------------------------------- */

static void public_reply(struct handler_ctx *x, uint32_t conn) {
  struct jw w;
  struct store *s = &x->sb->store;
  uint32_t p = store_add_public(s);
  if (p == SB_NONE) {
    reply_server_error(x->reply);
    return;
  }
  s->publics[p].created_at = x->now;
  s->publics[p].conn = conn;
  jw_init(&w, 128);
  jw_obj(&w);
  jw_khex(&w, "public_token", s->publics[p].id, 16);
  jw_khex(&w, "link_id", s->conns[conn].link, 16);
  jw_obj_end(&w);
  reply_json(x->reply, 200, &w);
}

/* update mode: the user logged in again. The connection's age restarts and
 * whatever made it fail (credentials, MFA, expiry) is cleared, or set to st. */
static void reauthenticate(struct handler_ctx *x, uint32_t conn, unsigned st) {
  struct sb_conn *c = &x->sb->store.conns[conn];
  c->auth_at = x->now;
  c->down_since = x->now;
  c->state = (uint8_t)st;
  events_link_connected(x->sb, conn, x->now);
  public_reply(x, conn);
}

static void bridge_locked(struct handler_ctx *x, uint32_t b, unsigned st, bool oauth) {
  struct store *s = &x->sb->store;
  const struct sb_bridge br = s->bridges[b];
  uint32_t conn;
  if (x->now - br.created_at >= SB_TOKEN_TTL) {
    reply_bad_field(x->reply, "bridge_token", "The bridge token has expired (6 hours).");
  } else if (br.order != SB_NONE) {
    int n = complete_subs(x, br.order, st, oauth, &conn);
    if (n < 0) reply_server_error(x->reply);
    else if (n == 0)
      reply_bad_field(x->reply, "bridge_token", "The order has no pending suborder to connect.");
    else public_reply(x, conn);
  } else if (br.conn != SB_NONE) {
    reauthenticate(x, br.conn, st);
  } else {
    conn = connect(s, br.user, SB_NONE, product_kind(br.product), br.product, st, oauth, x->now);
    if (conn == SB_NONE) {
      reply_server_error(x->reply);
      return;
    }
    s->conns[conn].bridge = b;
    events_link_connected(x->sb, conn, x->now);
    events_tick(x->sb, x->now);
    public_reply(x, conn);
  }
}

static void control_bridge_complete(struct handler_ctx *x) {
  uint32_t b;
  struct store *s = &x->sb->store;
  struct completion c;
  if (!completion_request(x, "bridge_token", &c)) return;
  store_wrlock(s);
  b = store_find_bridge(s, c.id);
  if (b == SB_NONE) reply_not_found(x->reply);
  else bridge_locked(x, b, c.state, c.oauth);
  store_unlock(s);
}

/* ---- faults and settings ----------------------------------------------- */

static void faults_reply(struct handler_ctx *x) {
  struct fault_config cfg;
  struct jw w;
  faults_get(&x->sb->faults, &cfg);
  jw_init(&w, 256);
  faults_render_config(&w, &cfg);
  reply_json(x->reply, 200, &w);
}

static void faults_update(struct invalid *v, const cJSON *json, struct fault_config *c) {
  double d;
  const cJSON *m;
  const cJSON *reset = cJSON_GetObjectItemCaseSensitive(json, "reset");
  if (cJSON_IsTrue(reset)) faults_defaults(c);
  if (num_field(v, json, "latency_ms", 0, FAULT_MS_MAX, &d)) c->latency_ms = (int)d;
  if (num_field(v, json, "latency_jitter_ms", 0, FAULT_MS_MAX, &d)) c->jitter_ms = (int)d;
  if (num_field(v, json, "stall_ms", 0, FAULT_MS_MAX, &d)) c->stall_ms = (int)d;
  num_field(v, json, "fault_5xx", 0, 1, &c->p5xx);
  num_field(v, json, "reset_before", 0, 1, &c->reset_before);
  num_field(v, json, "reset_after", 0, 1, &c->reset_after);
  num_field(v, json, "truncate", 0, 1, &c->truncate);
  num_field(v, json, "stall", 0, 1, &c->stall);
  m = cJSON_GetObjectItemCaseSensitive(json, "match");
  if (cJSON_IsString(m) && strlen(m->valuestring) < sizeof c->match)
    snprintf(c->match, sizeof c->match, "%s", m->valuestring);
  else if (m && !cJSON_IsNull(m))
    invalid_add(v, "match", "Expected a string shorter than %zu bytes.", sizeof c->match);
  else if (cJSON_IsNull(m)) c->match[0] = '\0';
}

static void control_faults(struct handler_ctx *x) {
  struct invalid v;
  struct fault_config cfg;
  if (x->method == M_POST) {
    invalid_init(&v);
    faults_get(&x->sb->faults, &cfg);
    faults_update(&v, x->json, &cfg);
    if (!handler_valid(x, &v)) return;
    faults_set(&x->sb->faults, &cfg);
  }
  faults_reply(x);
}

static void config_reply(struct handler_ctx *x) {
  struct webhook_config wh;
  struct sb_settings st;
  struct jw w;
  webhooks_get_config(&x->sb->hooks, &wh);
  store_rdlock(&x->sb->store);
  st = x->sb->store.settings;
  store_unlock(&x->sb->store);
  jw_init(&w, 512);
  jw_obj(&w);
  jw_kint(&w, "rate_limit", ratelimit_get(&x->sb->limiter));
  jw_kint(&w, "refresh_limit", st.refresh_limit);
  jw_kint(&w, "refresh_limit_status", st.refresh_limit_status);
  jw_key(&w, "task_duration");
  jw_double(&w, (double)st.task_duration / SB_USEC, 6);
  jw_key(&w, "task_duration_spread");
  jw_double(&w, st.task_duration_spread, 6);
  jw_key(&w, "slow_share");
  jw_double(&w, st.slow_share, 6);
  jw_key(&w, "slow_factor");
  jw_double(&w, st.slow_factor, 6);
  jw_key(&w, "expiry_days");
  jw_double(&w, (double)st.expiry / (double)SB_DAY, 6);
  jw_key(&w, "provider_down_s");
  jw_double(&w, (double)st.provider_down / SB_USEC, 6);
  jw_kstr(&w, "webhook_url", wh.url[0] ? wh.url : NULL);
  jw_key(&w, "webhook_duplicates");
  jw_double(&w, wh.duplicates, 4);
  jw_kint(&w, "webhook_retries", wh.retries);
  jw_kint(&w, "webhook_backoff_ms", wh.backoff_ms);
  jw_obj_end(&w);
  reply_json(x->reply, 200, &w);
}

static void webhook_update(struct invalid *v, const cJSON *json, struct webhook_config *wh) {
  double d;
  const cJSON *url = cJSON_GetObjectItemCaseSensitive(json, "webhook_url");
  if (cJSON_IsNull(url) || (cJSON_IsString(url) && url->valuestring[0] == '\0')) wh->url[0] = '\0';
  else if (cJSON_IsString(url) && webhooks_url_valid(url->valuestring))
    snprintf(wh->url, sizeof wh->url, "%s", url->valuestring);
  else if (url) invalid_add(v, "webhook_url", "Enter an http:// or https:// URL.");
  num_field(v, json, "webhook_duplicates", 0, 1, &wh->duplicates);
  if (num_field(v, json, "webhook_retries", 0, WEBHOOK_RETRIES_MAX, &d)) wh->retries = (int)d;
  if (num_field(v, json, "webhook_backoff_ms", 0, WEBHOOK_BACKOFF_MAX_MS, &d))
    wh->backoff_ms = (int)d;
}

static void settings_update(struct invalid *v, const cJSON *json, struct sb_settings *st,
                            double *rate) {
  double d;
  num_field(v, json, "rate_limit", 0, RATE_LIMIT_MAX, rate);
  if (num_field(v, json, "refresh_limit", 0, REFRESH_LIMIT_MAX, &d)) st->refresh_limit = (int)d;
  if (num_field(v, json, "refresh_limit_status", 400, 429, &d)) {
    if (d != 400 && d != 429) invalid_add(v, "refresh_limit_status", "Expected 429 or 400.");
    st->refresh_limit_status = (int)d;
  }
  if (num_field(v, json, "task_duration", 0, TASK_DURATION_MAX_S, &d))
    st->task_duration = llround(d * SB_USEC);
  num_field(v, json, "task_duration_spread", 0, TASK_SPREAD_MAX, &st->task_duration_spread);
  num_field(v, json, "slow_share", 0, 1, &st->slow_share);
  num_field(v, json, "slow_factor", 1, SLOW_FACTOR_MAX, &st->slow_factor);
  if (num_field(v, json, "expiry_days", 0, EXPIRY_DAYS_MAX, &d))
    st->expiry = llround(d * (double)SB_DAY);
  if (num_field(v, json, "provider_down_s", 0, PROVIDER_DOWN_MAX_S, &d))
    st->provider_down = llround(d * SB_USEC);
}

static void control_config(struct handler_ctx *x) {
  struct invalid v;
  struct webhook_config wh;
  struct store *s = &x->sb->store;
  if (x->method == M_POST) {
    struct sb_settings st;
    bool ok;
    double rate = ratelimit_get(&x->sb->limiter);
    invalid_init(&v);
    webhooks_get_config(&x->sb->hooks, &wh);
    store_wrlock(s);
    st = s->settings;
    settings_update(&v, x->json, &st, &rate);
    webhook_update(&v, x->json, &wh);
    ok = handler_valid(x, &v);
    if (ok) s->settings = st;
    store_unlock(s);
    if (!ok) return;
    webhooks_set_config(&x->sb->hooks, &wh);
    if ((int)rate != ratelimit_get(&x->sb->limiter) && !ratelimit_set(&x->sb->limiter, (int)rate)) {
      reply_server_error(x->reply);
      return;
    }
  }
  config_reply(x);
}

/* ---- stats ------------------------------------------------------------- */

static void token_key(const uint8_t token[16], char out[17]) {
  char hex[33];
  unsigned char digest[SHA256_DIGEST_LENGTH];
  hex_encode(token, 16, hex);
  SHA256((const unsigned char *)hex, 32, digest);
  hex_encode(digest, 8, out);
}

static void render_refresh(struct jw *w, const struct store *s) {
  char key[33];
  jw_kint(w, "tasks_created", (long long)s->stat_tasks_created);
  jw_kint(w, "billed", (long long)s->stat_billed);
  jw_kint(w, "order_refreshes", (long long)s->stat_order_refreshes);
  jw_key(w, "by_access_token");
  jw_obj(w);
  for (uint32_t i = 0; i < s->n_conns; i++) {
    const struct sb_conn *c = &s->conns[i];
    if (c->stat_created == 0) continue;
    token_key(c->token, key);
    jw_key(w, key);
    jw_obj(w);
    jw_kint(w, "created", c->stat_created);
    jw_kint(w, "billed", c->stat_billed);
    jw_obj_end(w);
  }
  jw_obj_end(w);
  jw_key(w, "by_order");
  jw_obj(w);
  for (uint32_t i = 0; i < s->n_orders; i++) {
    const struct sb_order *o = &s->orders[i];
    if (o->stat_refresh_orders == 0 && o->stat_tasks == 0) continue;
    hex_encode(o->id, 16, key);
    jw_key(w, key);
    jw_obj(w);
    jw_kint(w, "refresh_orders", o->stat_refresh_orders);
    jw_kint(w, "tasks", o->stat_tasks);
    jw_obj_end(w);
  }
  jw_obj_end(w);
}

static int by_order_number(const void *a, const void *b) {
  const char *x = (*(const struct sb_order *const *)a)->order_number;
  const char *y = (*(const struct sb_order *const *)b)->order_number;
  return strcmp(x ? x : "", y ? y : "");
}

/* orders made by POST /v1/orders/, per order_number (a re-verification
 * order carries its case's), and bridge tokens per user: what a client
 * that creates twice would show */
static bool render_created(struct jw *w, const struct store *s) {
  const struct sb_order **made = malloc((s->n_orders ? s->n_orders : 1) * sizeof *made);
  uint32_t n = 0, tokens = 0;
  char key[33];
  if (!made) return false;
  for (uint32_t i = 0; i < s->n_orders; i++)
    if (s->orders[i].stat_created) made[n++] = &s->orders[i];
  qsort(made, n, sizeof *made, by_order_number);
  jw_key(w, "orders");
  jw_obj(w);
  jw_kint(w, "created", n);
  jw_key(w, "by_order_number");
  jw_obj(w);
  for (uint32_t i = 0, run; i < n; i += run) {
    for (run = 1; i + run < n && by_order_number(&made[i], &made[i + run]) == 0; run++)
      ;
    jw_kint(w, made[i]->order_number ? made[i]->order_number : "", run);
  }
  jw_obj_end(w);
  jw_obj_end(w);
  free(made);
  jw_key(w, "bridge_tokens");
  jw_obj(w);
  for (uint32_t i = 0; i < s->n_users; i++) tokens += s->users[i].stat_tokens;
  jw_kint(w, "created", tokens);
  jw_key(w, "by_user");
  jw_obj(w);
  for (uint32_t i = 0; i < s->n_users; i++) {
    if (s->users[i].stat_tokens == 0) continue;
    hex_encode(s->users[i].id, 16, key);
    jw_kint(w, key, s->users[i].stat_tokens);
  }
  jw_obj_end(w);
  jw_obj_end(w);
  return true;
}

static void control_stats(struct handler_ctx *x) {
  struct jw w;
  bool ok;
  jw_init(&w, 4096);
  jw_obj(&w);
  jw_key(&w, "requests");
  jw_obj(&w);
  stats_render_requests(&w, &x->sb->stats);
  jw_obj_end(&w);
  jw_key(&w, "connections");
  jw_obj(&w);
  stats_render_connections(&w, &x->sb->stats);
  jw_obj_end(&w);
  jw_key(&w, "refresh");
  jw_obj(&w);
  store_rdlock(&x->sb->store);
  render_refresh(&w, &x->sb->store);
  jw_obj_end(&w);
  ok = render_created(&w, &x->sb->store);
  store_unlock(&x->sb->store);
  jw_key(&w, "faults");
  jw_obj(&w);
  faults_render_counts(&w, &x->sb->faults);
  jw_obj_end(&w);
  jw_key(&w, "webhooks");
  jw_obj(&w);
  webhooks_render_stats(&w, &x->sb->hooks);
  jw_obj_end(&w);
  jw_obj_end(&w);
  if (!ok) {
    jw_free(&w);
    reply_server_error(x->reply);
    return;
  }
  reply_json(x->reply, 200, &w);
}

static void control_stats_reset(struct handler_ctx *x) {
  struct store *s = &x->sb->store;
  stats_reset(&x->sb->stats);
  faults_reset_counts(&x->sb->faults);
  webhooks_reset_stats(&x->sb->hooks);
  store_wrlock(s);
  s->stat_tasks_created = s->stat_billed = s->stat_order_refreshes = 0;
  for (uint32_t i = 0; i < s->n_conns; i++) s->conns[i].stat_created = s->conns[i].stat_billed = 0;
  for (uint32_t i = 0; i < s->n_orders; i++) {
    s->orders[i].stat_refresh_orders = s->orders[i].stat_tasks = 0;
    s->orders[i].stat_created = 0;
  }
  for (uint32_t i = 0; i < s->n_users; i++) s->users[i].stat_tokens = 0;
  store_unlock(s);
  reply_static(x->reply, 200, "{\"reset\":true}");
}

static void control_webhooks(struct handler_ctx *x) {
  struct jw w;
  jw_init(&w, 4096);
  webhooks_render_log(&w, &x->sb->hooks);
  reply_json(x->reply, 200, &w);
}

void control_handle(struct handler_ctx *x) {
  switch (x->route->ep) {
    case EP_SB_CLOCK: control_clock(x); break;
    case EP_SB_SEED: control_seed(x); break;
    case EP_SB_CASES: control_cases(x); break;
    case EP_SB_CONN_STATE: control_set_state(x); break;
    case EP_SB_CONNECTIONS: control_connections(x); break;
    case EP_SB_FAULTS: control_faults(x); break;
    case EP_SB_CONFIG: control_config(x); break;
    case EP_SB_STATS: control_stats(x); break;
    case EP_SB_STATS_RESET: control_stats_reset(x); break;
    case EP_SB_WEBHOOKS: control_webhooks(x); break;
    case EP_SB_ORDER_COMPLETE: control_complete(x); break;
    case EP_SB_BRIDGE_COMPLETE: control_bridge_complete(x); break;
    default: reply_not_found(x->reply);
  }
}
