/* store: the sandbox's state: users, orders, suborders, connections
 * (links), tasks, bridge tokens and public tokens.
 *
 * Representation. Entities live in growable arrays and refer to each other by
 * index (uint32, SB_NONE = no reference); an order's suborders are contiguous
 * (employers first, then financial accounts). Ids are 16 random bytes shown
 * as 32 lowercase hex; idmaps index orders, users (by id and by
 * external_user_id), tasks, connections (by access_token and link_id),
 * bridge tokens and public tokens. A user's connections and a connection's
 * tasks are chained newest first (store_conn_attach, store_task_attach), so
 * "the tasks of a link / of a user" costs what it returns. Strings live in
 * an arena freed with the store. Nothing is ever deleted. Documents
 * (employments, statements, accounts) are not stored: docs.c generates them
 * from each connection's doc_seed on demand.
 *
 * Statuses are not stored either: a task's status is a pure function of its
 * creation time, its snapshotted path and the virtual clock (lifecycle.h);
 * suborder statuses follow from their tasks.
 *
 * Locking. One reader/writer lock (writer-preferring) guards everything here,
 * including `settings`. Readers (GET handlers) take it shared; every mutation
 * takes it exclusive (and bumps `generation`). Pointers into the arrays are valid only while the
 * lock is held and no entity is created (creation may move the arrays). */
#ifndef SANDBOX_STORE_H
#define SANDBOX_STORE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "idmap.h"
#include "rng.h"
#include "timeutil.h"

#define SB_NONE UINT32_MAX
#define SB_TOKEN_TTL (6LL * 3600 * SB_USEC) /* bridge and public tokens live 6 h */

enum sb_product {
  PROD_INCOME,
  PROD_EMPLOYMENT,
  PROD_ASSETS,
  PROD_INSURANCE,
  PROD_TRANSACTIONS,
  PROD_DEPOSIT_SWITCH,
  PROD_PLL,
  PROD__COUNT
};

/* connection states; ST_EXPIRED is only ever an effective state (age) */
enum sb_state {
  ST_ACTIVE,
  ST_EXPIRED,
  ST_CREDENTIALS,
  ST_MFA,
  ST_PROVIDER_DOWN,
  ST_NO_DATA,
  ST_LOCKED,
  ST_UNSUPPORTED,
  ST__COUNT
};

enum sb_kind { KIND_EMPLOYER, KIND_FINANCIAL };
enum sb_origin { ORIGIN_API, ORIGIN_SEED, ORIGIN_REFRESH };
enum sb_task_origin { TASK_INITIAL, TASK_ORDER_REFRESH, TASK_DIRECT };

struct sb_user {
  uint8_t id[16];
  const char *external_id;                                  /* NULL when none */
  const char *first_name, *last_name, *email, *phone, *ssn; /* NULL when not given */
  sb_time created_at;
  uint32_t last_conn;   /* the newest connection of the user (SB_NONE: none) */
  uint32_t stat_tokens; /* bridge tokens made since the last stats reset */
};

/* what a user is told about themselves through the API (NULL: not given) */
struct sb_person {
  const char *first_name, *last_name, *email, *phone, *ssn;
};

/* a connection is what Truv calls a Link: access_token + link_id */
struct sb_conn {
  uint8_t token[16], link[16];
  uint64_t doc_seed;
  sb_time origin_at;  /* first connection (the link's created_at): anchors the history */
  sb_time auth_at;    /* last authentication (connect, Bridge re-authentication): OAuth
                         connections expire settings.expiry after it */
  sb_time down_since; /* provider_down: the outage started then */
  sb_time *window;    /* task creations in the refresh window, oldest first (billing.h) */
  uint16_t n_window, cap_window;
  uint32_t user, origin_sub; /* origin_sub: the order suborder it connected, or SB_NONE */
  uint32_t bridge;           /* the bridge token it was connected with, or SB_NONE */
  uint32_t last_task;        /* the newest task on it (SB_NONE: none) */
  uint32_t prev_of_user;     /* the user's connection made before this one */
  uint32_t stat_created, stat_billed;
  uint8_t state;         /* behavioural state, never ST_EXPIRED */
  uint8_t oauth;         /* the provider is OAuth-based (expires); otherwise session-based */
  uint8_t kind, product; /* product: the link's initial product */
};

struct sb_sub {
  uint8_t id[16];
  uint64_t number; /* suborder_number */
  sb_time created_at;
  uint32_t order, conn, task;
  uint8_t kind, product;
  const char *label;    /* company_name / institution name as requested, or NULL */
  const char *label_id; /* company_mapping_id / institution id as requested, or NULL */
};

struct sb_task {
  uint8_t id[16];
  sb_time created_at;
  int64_t duration;
  sb_time down_until; /* provider outage end snapshotted at creation (or 0) */
  uint32_t conn, sub;
  uint32_t prev_of_conn; /* the connection's task made before this one */
  uint8_t product, path, origin;
  uint8_t emitted; /* steps already announced by webhooks */
};

struct sb_order {
  uint8_t id[16], bridge_token[16], share_token[16];
  sb_time created_at, refreshed_at;
  sb_time consent_at; /* user_consent_at; 0 = null */
  uint64_t seed;
  uint32_t user, initial, refresh_order;
  uint32_t first_refresh, last_refresh, next_refresh; /* refresh orders of an original */
  uint32_t sub_first;
  uint8_t n_emp, n_fa;
  uint8_t products[PROD__COUNT], n_products;
  uint8_t origin, case_state;
  uint32_t case_no; /* 0: not a seeded case */
  const char *first_name, *last_name, *email, *phone, *order_number, *external_user_id;
  const char *template_id;
  const char *manager; /* the rendered manager object, or NULL */
  const char *extra;   /* rendered members "cc_emails":[...],"notes":..., or NULL */
  uint32_t stat_refresh_orders, stat_tasks;
  uint8_t stat_created; /* made by POST /v1/orders/ since the last stats reset */
};

/* a bridge token: from POST /v1/users/{id}/tokens/ (user set), or an API
 * order's own bridge_token (order set); conn set: update mode */
struct sb_bridge {
  uint8_t id[16];
  sb_time created_at;
  uint32_t user, conn, order;
  uint8_t product;
  const char *tracking_info, *client_name, *company_mapping_id, *template_id;
  const char *allowed_products, *data_sources; /* rendered JSON arrays, or NULL */
};

/* a public_token Bridge hands over on success; exchanged once */
struct sb_public {
  uint8_t id[16];
  sb_time created_at;
  uint32_t conn;
  uint8_t used;
};

/* the settings' bounds, for the command line and POST /_sandbox/config */
#define REFRESH_LIMIT_MAX 10000
#define TASK_DURATION_MAX_S 1e7
#define TASK_SPREAD_MAX 3
#define SLOW_FACTOR_MAX 1000
#define EXPIRY_DAYS_MAX 36500
#define PROVIDER_DOWN_MAX_S 1e9

struct sb_settings {
  int refresh_limit;           /* refreshes per access_token per window; 0 = off */
  int refresh_limit_status;    /* 429 or 400 */
  int64_t task_duration;       /* the median, microseconds (durations.h) */
  double task_duration_spread; /* standard deviation of the duration's logarithm */
  double slow_share;           /* share of connections behind a slow provider */
  double slow_factor;          /* how many times longer their tasks take */
  int64_t expiry;              /* OAuth connection lifetime, microseconds */
  int64_t provider_down;       /* outage length, microseconds */
};

struct arena_chunk;

/* a task with steps still to announce, keyed by when the next one is due */
struct live_task {
  sb_time due;
  uint32_t task;
};

struct store {
  pthread_rwlock_t lock;
  uint64_t generation; /* bumped by every exclusive lock: cached documents expire */
  struct sb_settings settings;
  struct rng rng; /* ids and secrets of API-created entities */
  uint64_t seed;  /* --rng-seed: stateless draws (task durations) */

  struct sb_user *users;
  struct sb_order *orders;
  struct sb_sub *subs;
  struct sb_conn *conns;
  struct sb_task *tasks;
  struct sb_bridge *bridges;
  struct sb_public *publics;
  uint32_t n_users, n_orders, n_subs, n_conns, n_tasks, n_bridges, n_publics;
  uint32_t cap_users, cap_orders, cap_subs, cap_conns, cap_tasks, cap_bridges, cap_publics;

  uint32_t *cases, n_cases, cap_cases; /* seeded original orders, in case order */
  struct live_task *live;              /* min-heap on `due` */
  uint32_t n_live, cap_live;

  /* refresh accounting for GET /_sandbox/stats (reset by stats/reset) */
  uint64_t stat_tasks_created, stat_billed, stat_order_refreshes;

  struct idmap order_ids, user_ids, user_ext, task_ids, conn_tokens, conn_links;
  struct idmap bridge_ids, public_ids;
  struct arena_chunk *arena;
};

bool store_init(struct store *s, const struct sb_settings *settings, uint64_t seed);
void store_free(struct store *s);

void store_rdlock(struct store *s);
void store_wrlock(struct store *s);
void store_unlock(struct store *s);

/* creation (exclusive lock held); id NULL = a fresh random id. Each returns
 * the new entity's index, or SB_NONE when memory runs out. */
uint32_t store_add_user(struct store *s, const uint8_t *id, const char *external_id);
/* a user made through the API, with a fresh id and a copy of p */
uint32_t store_add_person(struct store *s, const char *external_id, const struct sb_person *p,
                          sb_time at);
uint32_t store_add_order(struct store *s, const uint8_t *id);
uint32_t store_add_subs(struct store *s, uint32_t n); /* n zeroed suborders */
/* gives suborder `sub` of `order` its id and suborder_number (drawn from r,
 * the store's generator when r is NULL), kind, product and time */
void store_init_sub(struct store *s, uint32_t sub, struct rng *r, uint32_t order, unsigned kind,
                    unsigned product, sb_time created_at);
/* the product a suborder of `kind` verifies for an order of these products */
unsigned store_sub_product(const uint8_t *products, unsigned n, unsigned kind);
uint32_t store_add_conn(struct store *s, const uint8_t *token, const uint8_t *link);
uint32_t store_add_task(struct store *s, const uint8_t *id);
uint32_t store_add_bridge(struct store *s, const uint8_t *id);
uint32_t store_add_public(struct store *s);
/* chains a connection to its user, a task to its connection (newest first) */
void store_conn_attach(struct store *s, uint32_t conn, uint32_t user);
void store_task_attach(struct store *s, uint32_t task, uint32_t conn);
bool store_add_case(struct store *s, uint32_t order);
/* the heap of tasks with steps to announce (exclusive lock held) */
bool store_add_live(struct store *s, uint32_t task, sb_time due);
/* the task whose next step is the earliest, if it is due by now; else SB_NONE.
 * The task leaves the heap (add it back with its next due time). */
uint32_t store_take_due(struct store *s, sb_time now);
/* a fresh random id from the store's generator, for what no index looks up
 * (an order's bridge and share tokens, a webhook's id) */
void store_new_id(struct store *s, uint8_t id[16]);
/* a copy of str in the store's arena (NULL for NULL); NULL on OOM */
const char *store_strdup(struct store *s, const char *str);
const char *store_strndup(struct store *s, const char *str, size_t n);

/* lookups (any lock held); SB_NONE when unknown */
uint32_t store_find_order(const struct store *s, const uint8_t id[16]);
uint32_t store_find_user(const struct store *s, const uint8_t id[16]);
uint32_t store_find_user_ext(const struct store *s, const char *external_id);
uint32_t store_find_task(const struct store *s, const uint8_t id[16]);
uint32_t store_find_token(const struct store *s, const uint8_t token[16]);
uint32_t store_find_link(const struct store *s, const uint8_t link[16]);
uint32_t store_find_bridge(const struct store *s, const uint8_t id[16]);
uint32_t store_find_public(const struct store *s, const uint8_t id[16]);

/* names: every product, in enum order (NULL-terminated), and the others */
extern const char *const PRODUCT_NAMES[PROD__COUNT + 1];
const char *product_name(unsigned p);
bool product_parse(const char *name, unsigned *out);
/* the kind of connection that verifies product p: a bank for assets and
 * transactions, a payroll for the others */
unsigned product_kind(unsigned p);
const char *state_name(unsigned st);
bool state_parse(const char *name, unsigned *out);

/* the root order of a refresh chain (itself for originals) */
uint32_t store_root(const struct store *s, uint32_t order);

#endif
