/* store: see store.h. */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#define ARENA_CHUNK (256 * 1024)

struct arena_chunk {
  struct arena_chunk *next;
  size_t used, cap;
  char data[];
};

const char *const PRODUCT_NAMES[PROD__COUNT + 1] = {
  "income", "employment", "assets", "insurance", "transactions", "deposit_switch", "pll", NULL,
};

static const char *const STATES[ST__COUNT] = {
  "active", "expired", "credentials", "mfa", "provider_down", "no_data", "locked", "unsupported",
};

const char *product_name(unsigned p) {
  return p < PROD__COUNT ? PRODUCT_NAMES[p] : "unknown";
}

/* the index of name in names[0..n) */
static bool name_index(const char *const *names, unsigned n, const char *name, unsigned *out) {
  for (unsigned i = 0; i < n; i++)
    if (strcmp(name, names[i]) == 0) {
      *out = i;
      return true;
    }
  return false;
}

bool product_parse(const char *name, unsigned *out) {
  return name_index(PRODUCT_NAMES, PROD__COUNT, name, out);
}

unsigned product_kind(unsigned p) {
  return p == PROD_ASSETS || p == PROD_TRANSACTIONS ? KIND_FINANCIAL : KIND_EMPLOYER;
}

const char *state_name(unsigned st) {
  return st < ST__COUNT ? STATES[st] : "unknown";
}

bool state_parse(const char *name, unsigned *out) {
  return name_index(STATES, ST__COUNT, name, out);
}

bool store_init(struct store *s, const struct sb_settings *settings, uint64_t seed) {
  pthread_rwlockattr_t attr;
  int rc;
  memset(s, 0, sizeof *s);
  pthread_rwlockattr_init(&attr);
  /* GET traffic must not starve refreshes and clock moves */
  pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  rc = pthread_rwlock_init(&s->lock, &attr);
  pthread_rwlockattr_destroy(&attr);
  s->settings = *settings;
  s->seed = seed;
  rng_seed(&s->rng, seed ^ 0x7275762d73616e64ULL);
  return rc == 0;
}

void store_free(struct store *s) {
  for (uint32_t i = 0; i < s->n_conns; i++) free(s->conns[i].window);
  free(s->users);
  free(s->orders);
  free(s->subs);
  free(s->conns);
  free(s->tasks);
  free(s->bridges);
  free(s->publics);
  free(s->cases);
  free(s->live);
  idmap_free(&s->order_ids);
  idmap_free(&s->user_ids);
  idmap_free(&s->user_ext);
  idmap_free(&s->task_ids);
  idmap_free(&s->conn_tokens);
  idmap_free(&s->conn_links);
  idmap_free(&s->bridge_ids);
  idmap_free(&s->public_ids);
  while (s->arena) {
    struct arena_chunk *next = s->arena->next;
    free(s->arena);
    s->arena = next;
  }
  pthread_rwlock_destroy(&s->lock);
}

void store_rdlock(struct store *s) {
  pthread_rwlock_rdlock(&s->lock);
}
void store_wrlock(struct store *s) {
  pthread_rwlock_wrlock(&s->lock);
  s->generation++;
}
void store_unlock(struct store *s) {
  pthread_rwlock_unlock(&s->lock);
}

/* room for `need` elements of `size` bytes in *arr (capacity *cap) */
static bool reserve(void **arr, uint32_t *cap, uint32_t need, size_t size) {
  uint64_t n;
  void *p;
  if (need <= *cap) return true;
  if (need == SB_NONE) return false;
  n = *cap ? *cap : 64;
  while (n < need) n *= 2;
  if (n >= SB_NONE) n = SB_NONE - 1;
  p = realloc(*arr, (size_t)n * size);
  if (!p) return false;
  *arr = p;
  *cap = (uint32_t)n;
  return true;
}

#define RESERVE(s, field, need) \
  reserve((void **)&(s)->field, &(s)->cap_##field, (need), sizeof *(s)->field)

/* equality callbacks for the idmaps: compare a key with entity i's key */
static bool eq_order(const void *ctx, uint32_t i, const void *key) {
  return memcmp(((const struct store *)ctx)->orders[i].id, key, 16) == 0;
}
static bool eq_user(const void *ctx, uint32_t i, const void *key) {
  return memcmp(((const struct store *)ctx)->users[i].id, key, 16) == 0;
}
static bool eq_user_ext(const void *ctx, uint32_t i, const void *key) {
  const char *ext = ((const struct store *)ctx)->users[i].external_id;
  return ext && strcmp(ext, key) == 0;
}
static bool eq_task(const void *ctx, uint32_t i, const void *key) {
  return memcmp(((const struct store *)ctx)->tasks[i].id, key, 16) == 0;
}
static bool eq_token(const void *ctx, uint32_t i, const void *key) {
  return memcmp(((const struct store *)ctx)->conns[i].token, key, 16) == 0;
}
static bool eq_link(const void *ctx, uint32_t i, const void *key) {
  return memcmp(((const struct store *)ctx)->conns[i].link, key, 16) == 0;
}
static bool eq_bridge(const void *ctx, uint32_t i, const void *key) {
  return memcmp(((const struct store *)ctx)->bridges[i].id, key, 16) == 0;
}
static bool eq_public(const void *ctx, uint32_t i, const void *key) {
  return memcmp(((const struct store *)ctx)->publics[i].id, key, 16) == 0;
}

void store_new_id(struct store *s, uint8_t id[16]) {
  rng_id(&s->rng, id);
}

/* gives an entity its id (the given one, or a fresh random one) and indexes
 * it under that id; false when memory runs out */
static bool take_id(struct store *s, struct idmap *map, uint8_t dst[16], const uint8_t *id,
                    uint32_t entity) {
  if (id) memcpy(dst, id, 16);
  else rng_id(&s->rng, dst);
  return idmap_put(map, idmap_hash_id(dst), entity);
}

/* entity i of a table, zeroed once there is room for it; NULL when memory
 * runs out */
#define NEW_ENTITY(s, field, i) \
  (RESERVE(s, field, (i) + 1) ? memset(&(s)->field[i], 0, sizeof *(s)->field) : NULL)

uint32_t store_add_user(struct store *s, const uint8_t *id, const char *external_id) {
  uint32_t i = s->n_users;
  struct sb_user *u = NEW_ENTITY(s, users, i);
  if (!u || !take_id(s, &s->user_ids, u->id, id, i)) return SB_NONE;
  u->last_conn = SB_NONE;
  if (external_id && !(u->external_id = store_strdup(s, external_id))) return SB_NONE;
  /* the first user of an external_user_id keeps the index */
  if (u->external_id && store_find_user_ext(s, u->external_id) == SB_NONE &&
      !idmap_put(&s->user_ext, idmap_hash_str(u->external_id), i))
    return SB_NONE;
  s->n_users++;
  return i;
}

uint32_t store_add_person(struct store *s, const char *external_id, const struct sb_person *p,
                          sb_time at) {
  struct sb_user *u;
  uint32_t user = store_add_user(s, NULL, external_id);
  if (user == SB_NONE) return SB_NONE;
  u = &s->users[user];
  u->first_name = store_strdup(s, p->first_name);
  u->last_name = store_strdup(s, p->last_name);
  u->email = store_strdup(s, p->email);
  u->phone = store_strdup(s, p->phone);
  u->ssn = store_strdup(s, p->ssn);
  u->created_at = at;
  return user;
}

uint32_t store_add_order(struct store *s, const uint8_t *id) {
  uint32_t i = s->n_orders;
  struct sb_order *o = NEW_ENTITY(s, orders, i);
  if (!o || !take_id(s, &s->order_ids, o->id, id, i)) return SB_NONE;
  o->user = o->initial = o->refresh_order = SB_NONE;
  o->first_refresh = o->last_refresh = o->next_refresh = SB_NONE;
  o->sub_first = s->n_subs;
  s->n_orders++;
  return i;
}

uint32_t store_add_subs(struct store *s, uint32_t n) {
  uint32_t first = s->n_subs;
  if (!RESERVE(s, subs, first + n)) return SB_NONE;
  for (uint32_t i = first; i < first + n; i++) {
    memset(&s->subs[i], 0, sizeof s->subs[i]);
    s->subs[i].order = s->subs[i].conn = s->subs[i].task = SB_NONE;
  }
  s->n_subs += n;
  return first;
}

void store_init_sub(struct store *s, uint32_t sub, struct rng *r, uint32_t order, unsigned kind,
                    unsigned product, sb_time created_at) {
  struct sb_sub *b = &s->subs[sub];
  if (!r) r = &s->rng;
  rng_id(r, b->id);
  b->number = 100000000000ULL + rng_next(r) % 900000000000ULL; /* 12 digits */
  b->created_at = created_at;
  b->order = order;
  b->kind = (uint8_t)kind;
  b->product = (uint8_t)product;
}

static bool has_product(const uint8_t *products, unsigned n, unsigned p) {
  for (unsigned i = 0; i < n; i++)
    if (products[i] == p) return true;
  return false;
}

unsigned store_sub_product(const uint8_t *products, unsigned n, unsigned kind) {
  static const unsigned EMP[] = {PROD_INCOME, PROD_EMPLOYMENT, PROD_DEPOSIT_SWITCH, PROD_PLL};
  static const unsigned FIN[] = {PROD_ASSETS, PROD_TRANSACTIONS};
  const unsigned *pref = kind == KIND_EMPLOYER ? EMP : FIN;
  unsigned np = kind == KIND_EMPLOYER ? 4 : 2;
  for (unsigned i = 0; i < np; i++)
    if (has_product(products, n, pref[i])) return pref[i];
  return products[0];
}

uint32_t store_add_conn(struct store *s, const uint8_t *token, const uint8_t *link) {
  uint32_t i = s->n_conns;
  struct sb_conn *c = NEW_ENTITY(s, conns, i);
  if (!c || !take_id(s, &s->conn_tokens, c->token, token, i) ||
      !take_id(s, &s->conn_links, c->link, link, i))
    return SB_NONE;
  c->user = c->origin_sub = c->bridge = c->last_task = c->prev_of_user = SB_NONE;
  s->n_conns++;
  return i;
}

uint32_t store_add_task(struct store *s, const uint8_t *id) {
  uint32_t i = s->n_tasks;
  struct sb_task *t = NEW_ENTITY(s, tasks, i);
  if (!t || !take_id(s, &s->task_ids, t->id, id, i)) return SB_NONE;
  t->conn = t->sub = t->prev_of_conn = SB_NONE;
  s->n_tasks++;
  return i;
}

uint32_t store_add_bridge(struct store *s, const uint8_t *id) {
  uint32_t i = s->n_bridges;
  struct sb_bridge *b = NEW_ENTITY(s, bridges, i);
  if (!b || !take_id(s, &s->bridge_ids, b->id, id, i)) return SB_NONE;
  b->user = b->conn = b->order = SB_NONE;
  s->n_bridges++;
  return i;
}

uint32_t store_add_public(struct store *s) {
  uint32_t i = s->n_publics;
  struct sb_public *p = NEW_ENTITY(s, publics, i);
  if (!p || !take_id(s, &s->public_ids, p->id, NULL, i)) return SB_NONE;
  p->conn = SB_NONE;
  s->n_publics++;
  return i;
}

void store_conn_attach(struct store *s, uint32_t conn, uint32_t user) {
  struct sb_conn *c = &s->conns[conn];
  c->user = user;
  c->prev_of_user = s->users[user].last_conn;
  s->users[user].last_conn = conn;
}

void store_task_attach(struct store *s, uint32_t task, uint32_t conn) {
  struct sb_task *t = &s->tasks[task];
  t->conn = conn;
  t->prev_of_conn = s->conns[conn].last_task;
  s->conns[conn].last_task = task;
}

bool store_add_case(struct store *s, uint32_t order) {
  if (!RESERVE(s, cases, s->n_cases + 1)) return false;
  s->cases[s->n_cases++] = order;
  return true;
}

static void live_swap(struct live_task *h, uint32_t a, uint32_t b) {
  struct live_task t = h[a];
  h[a] = h[b];
  h[b] = t;
}

bool store_add_live(struct store *s, uint32_t task, sb_time due) {
  uint32_t i;
  if (!RESERVE(s, live, s->n_live + 1)) return false;
  i = s->n_live++;
  s->live[i] = (struct live_task){due, task};
  while (i > 0 && s->live[(i - 1) / 2].due > s->live[i].due) {
    live_swap(s->live, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
  return true;
}

uint32_t store_take_due(struct store *s, sb_time now) {
  uint32_t task, n, i = 0;
  if (s->n_live == 0 || s->live[0].due > now) return SB_NONE;
  task = s->live[0].task;
  n = --s->n_live;
  s->live[0] = s->live[n];
  for (;;) {
    uint32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && s->live[l].due < s->live[m].due) m = l;
    if (r < n && s->live[r].due < s->live[m].due) m = r;
    if (m == i) return task;
    live_swap(s->live, i, m);
    i = m;
  }
}

const char *store_strndup(struct store *s, const char *str, size_t n) {
  struct arena_chunk *a;
  char *p;
  if (!str) return NULL;
  a = s->arena;
  if (!a || a->cap - a->used < n + 1) {
    size_t cap = n + 1 > ARENA_CHUNK ? n + 1 : ARENA_CHUNK;
    a = malloc(sizeof *a + cap);
    if (!a) return NULL;
    a->next = s->arena;
    a->used = 0;
    a->cap = cap;
    s->arena = a;
  }
  p = a->data + a->used;
  memcpy(p, str, n);
  p[n] = '\0';
  a->used += n + 1;
  return p;
}

const char *store_strdup(struct store *s, const char *str) {
  return str ? store_strndup(s, str, strlen(str)) : NULL;
}

uint32_t store_find_order(const struct store *s, const uint8_t id[16]) {
  return idmap_get(&s->order_ids, idmap_hash_id(id), eq_order, s, id);
}

uint32_t store_find_user(const struct store *s, const uint8_t id[16]) {
  return idmap_get(&s->user_ids, idmap_hash_id(id), eq_user, s, id);
}

uint32_t store_find_user_ext(const struct store *s, const char *external_id) {
  return idmap_get(&s->user_ext, idmap_hash_str(external_id), eq_user_ext, s, external_id);
}

uint32_t store_find_task(const struct store *s, const uint8_t id[16]) {
  return idmap_get(&s->task_ids, idmap_hash_id(id), eq_task, s, id);
}

uint32_t store_find_token(const struct store *s, const uint8_t token[16]) {
  return idmap_get(&s->conn_tokens, idmap_hash_id(token), eq_token, s, token);
}

uint32_t store_find_link(const struct store *s, const uint8_t link[16]) {
  return idmap_get(&s->conn_links, idmap_hash_id(link), eq_link, s, link);
}

uint32_t store_find_bridge(const struct store *s, const uint8_t id[16]) {
  return idmap_get(&s->bridge_ids, idmap_hash_id(id), eq_bridge, s, id);
}

uint32_t store_find_public(const struct store *s, const uint8_t id[16]) {
  return idmap_get(&s->public_ids, idmap_hash_id(id), eq_public, s, id);
}

uint32_t store_root(const struct store *s, uint32_t order) {
  uint32_t init = s->orders[order].initial;
  return init == SB_NONE ? order : init;
}
