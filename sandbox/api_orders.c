/* api_orders: orders.
 *
 *   POST /v1/orders/                 create (201; suborders pending)
 *   GET  /v1/orders/{id}/            the order document
 *   POST /v1/orders/{id}/            refresh: a new order on the original's
 *                                    connections, one task per connection (200)
 *   GET  /v1/orders/{id}/events/     the order's events (events.h); an
 *        original's list holds its refresh orders' events only with
 *        ?include_refresh_orders=true
 * Refreshing a refresh order refreshes its initial (original) order: the new
 * order's initial_order is the original and the original's refresh_order
 * points to it. Validation collects every invalid field before answering. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing.h"
#include "docs.h"
#include "events.h"
#include "handler.h"
#include "hex.h"
#include "lifecycle.h"
#include "paging.h"
#include "validate.h"

#define MAX_EMPLOYERS 5
#define MAX_INSTITUTIONS 5
#define MAX_CC_EMAILS 15
#define MAX_NOTES 2000
#define MAX_SELECTED 64

static void reply_order(struct handler_ctx *x, uint32_t order, int status) {
  struct jw w;
  jw_init(&w, 8192);
  docs_order(&w, &x->sb->store, order, x->now);
  reply_json(x->reply, status, &w);
}

/* ---- create ------------------------------------------------------------ */

struct create_req {
  uint8_t products[PROD__COUNT];
  unsigned n_products;
  struct sb_person who; /* the user's fields, and the order's own names and contacts */
  const char *order_number, *external_user_id;
  const char *template_id;
  const cJSON *employers, *institutions, *manager, *cc_emails;
  const char *notes;
};

static void check_products(struct invalid *v, const cJSON *json, uint8_t *out, unsigned *n,
                           unsigned max_items) {
  unsigned seen = 0;
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(json, "products");
  *n = 0;
  if (!arr || cJSON_IsNull(arr)) {
    invalid_add(v, "products", "This field is required.");
    return;
  }
  if (!(arr = field_array(v, json, "products", "products", 0, false))) return;
  if (max_items == 1 && cJSON_GetArraySize(arr) > 1) {
    invalid_add(v, "products", "Only one product can be refreshed per request.");
    return;
  }
  for (const cJSON *p = arr->child; p; p = p->next) {
    unsigned prod;
    if (!cJSON_IsString(p) || !product_parse(p->valuestring, &prod)) {
      invalid_add(v, "products", "\"%.64s\" is not a valid choice.",
                  cJSON_IsString(p) ? p->valuestring : json_type_name(p));
    } else if (seen & (1u << prod)) {
      invalid_add(v, "products", "Duplicate product \"%s\".", p->valuestring);
    } else if (*n < PROD__COUNT) {
      seen |= 1u << prod;
      out[(*n)++] = (uint8_t)prod;
    }
  }
}

/* employers / financial_institutions: objects with one of two keys */
static void check_parties(struct invalid *v, const cJSON *arr, const char *name, const char *key_a,
                          const char *key_b) {
  char field[64];
  int i = 0;
  for (const cJSON *e = arr ? arr->child : NULL; e; e = e->next, i++) {
    struct invalid tmp;
    const char *a;
    const char *b;
    snprintf(field, sizeof field, "%s[%d]", name, i);
    if (!cJSON_IsObject(e)) {
      invalid_add(v, field, "Expected a dictionary of items but got type \"%s\".",
                  json_type_name(e));
      continue;
    }
    invalid_init(&tmp);
    a = field_string(&tmp, e, key_a, false, 0);
    b = field_string(&tmp, e, key_b, false, 0);
    if (tmp.n > 0) invalid_add(v, field, "%s and %s must be non-empty strings.", key_a, key_b);
    else if (!a && !b) invalid_add(v, field, "Either %s or %s is required.", key_a, key_b);
    invalid_free(&tmp);
  }
}

static void check_cc_emails(struct invalid *v, const cJSON *arr) {
  char field[32];
  int i = 0;
  for (const cJSON *e = arr ? arr->child : NULL; e; e = e->next, i++) {
    snprintf(field, sizeof field, "cc_emails[%d]", i);
    if (!cJSON_IsString(e) || !valid_email(e->valuestring))
      invalid_add(v, field, "%s", INVALID_EMAIL);
  }
}

static void check_create(struct invalid *v, const cJSON *json, struct create_req *q) {
  const char *ssn;
  memset(q, 0, sizeof *q);
  check_products(v, json, q->products, &q->n_products, PROD__COUNT);
  q->who.first_name = field_string(v, json, "first_name", true, 0);
  q->who.last_name = field_string(v, json, "last_name", true, 0);
  q->order_number = field_string(v, json, "order_number", false, 0);
  q->external_user_id = field_string(v, json, "external_user_id", false, 0);
  q->who.email = field_email(v, json, "email");
  q->who.phone = field_phone(v, json, "phone");
  q->who.ssn = field_ssn(v, json, "ssn");
  ssn = field_ssn(v, json, "social_security_number");
  if (!q->who.ssn) q->who.ssn = ssn;
  q->employers = field_array(v, json, "employers", "employers", MAX_EMPLOYERS, true);
  check_parties(v, q->employers, "employers", "company_name", "company_mapping_id");
  q->institutions = field_array(v, json, "financial_institutions", "financial_institutions",
                                MAX_INSTITUTIONS, true);
  check_parties(v, q->institutions, "financial_institutions", "id", "name");
  q->notes = field_string(v, json, "notes", false, MAX_NOTES);
  q->cc_emails = field_array(v, json, "cc_emails", "cc_emails", MAX_CC_EMAILS, true);
  check_cc_emails(v, q->cc_emails);
  q->template_id = field_string(v, json, "template_id", false, 64);
  field_choices(v, json, "data_sources", DATA_SOURCES);
  q->manager = field_object(v, json, "manager", "manager");
}

/* the manager object as given, rendered once (NULL when absent) */
static const char *render_manager(struct store *s, const cJSON *manager) {
  char *m = manager ? cJSON_PrintUnformatted(manager) : NULL;
  const char *kept = m ? store_strdup(s, m) : NULL;
  free(m);
  return kept;
}

/* "cc_emails":[...],"notes":... rendered once at creation */
static const char *render_extra(struct store *s, const cJSON *cc, const char *notes) {
  struct jw w;
  size_t len;
  char *text;
  const char *kept;
  jw_init(&w, 256);
  jw_key(&w, "cc_emails");
  jw_arr(&w);
  for (const cJSON *e = cc ? cc->child : NULL; e; e = e->next) jw_str(&w, e->valuestring);
  jw_arr_end(&w);
  jw_kstr(&w, "notes", notes);
  text = jw_finish(&w, &len);
  kept = text ? store_strndup(s, text, len) : NULL;
  free(text);
  return kept;
}

static bool add_parties(struct store *s, uint32_t order, const cJSON *arr, unsigned kind,
                        const char *key_label, const char *key_id, uint32_t first) {
  struct sb_order *o = &s->orders[order];
  uint32_t i = first;
  for (const cJSON *e = arr ? arr->child : NULL; e; e = e->next, i++) {
    struct sb_sub *b = &s->subs[i];
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(e, key_label);
    const cJSON *lid = cJSON_GetObjectItemCaseSensitive(e, key_id);
    store_init_sub(s, i, NULL, order, kind, store_sub_product(o->products, o->n_products, kind),
                   o->created_at);
    b->label = cJSON_IsString(label) ? store_strdup(s, label->valuestring) : NULL;
    b->label_id = cJSON_IsString(lid) ? store_strdup(s, lid->valuestring) : NULL;
  }
  return true;
}

/* the user of external_user_id, or a new one named as the order */
static uint32_t user_for(struct store *s, const struct create_req *q, sb_time now) {
  uint32_t user = q->external_user_id ? store_find_user_ext(s, q->external_user_id) : SB_NONE;
  if (user != SB_NONE) return user;
  return store_add_person(s, q->external_user_id, &q->who, now);
}

/* an API order's bridge_token, known to /_sandbox/bridge/complete */
static bool order_bridge(struct store *s, uint32_t order) {
  struct sb_bridge *br;
  const struct sb_order *o;
  uint32_t b = store_add_bridge(s, s->orders[order].bridge_token);
  if (b == SB_NONE) return false;
  br = &s->bridges[b];
  o = &s->orders[order];
  br->created_at = o->created_at;
  br->user = o->user;
  br->order = order;
  br->product = o->products[0];
  br->template_id = o->template_id;
  return true;
}

static uint32_t create_locked(struct store *s, const struct create_req *q, sb_time now) {
  struct sb_order *o;
  uint32_t user = user_for(s, q, now);
  uint32_t order = user == SB_NONE ? SB_NONE : store_add_order(s, NULL);
  unsigned n_emp = (unsigned)cJSON_GetArraySize(q->employers);
  unsigned n_fa = (unsigned)cJSON_GetArraySize(q->institutions);
  if (order == SB_NONE || store_add_subs(s, n_emp + n_fa) == SB_NONE) return SB_NONE;
  o = &s->orders[order];
  o->user = user;
  store_new_id(s, o->bridge_token);
  store_new_id(s, o->share_token);
  o->created_at = now;
  o->origin = ORIGIN_API;
  o->stat_created = 1;
  memcpy(o->products, q->products, q->n_products);
  o->n_products = (uint8_t)q->n_products;
  o->n_emp = (uint8_t)n_emp;
  o->n_fa = (uint8_t)n_fa;
  o->first_name = store_strdup(s, q->who.first_name);
  o->last_name = store_strdup(s, q->who.last_name);
  o->order_number = store_strdup(s, q->order_number);
  o->email = store_strdup(s, q->who.email);
  o->phone = store_strdup(s, q->who.phone);
  o->template_id = store_strdup(s, q->template_id);
  o->manager = render_manager(s, q->manager);
  o->extra = render_extra(s, q->cc_emails, q->notes);
  add_parties(s, order, q->employers, KIND_EMPLOYER, "company_name", "company_mapping_id",
              o->sub_first);
  add_parties(s, order, q->institutions, KIND_FINANCIAL, "name", "id", o->sub_first + n_emp);
  return order_bridge(s, order) ? order : SB_NONE;
}

void api_create_order(struct handler_ctx *x) {
  struct invalid v;
  struct create_req q;
  struct store *s;
  uint32_t order;
  invalid_init(&v);
  check_create(&v, x->json, &q);
  if (!handler_valid(x, &v)) return;
  s = &x->sb->store;
  store_wrlock(s);
  order = create_locked(s, &q, x->now);
  if (order == SB_NONE) {
    reply_server_error(x->reply);
  } else {
    events_order_created(x->sb, order);
    reply_order(x, order, 201);
  }
  store_unlock(s);
}

/* ---- read -------------------------------------------------------------- */

/* serves from the document cache when the rendering cannot have changed */
static void reply_order_cached(struct handler_ctx *x, uint32_t order) {
  struct store *s = &x->sb->store;
  size_t len;
  sb_time from, until;
  char *body = doccache_get(&x->sb->cache, order, s->generation, x->now, &len);
  if (body) {
    x->reply->status = 200;
    x->reply->body = body;
    x->reply->len = len;
    return;
  }
  reply_order(x, order, 200);
  docs_order_stable(s, order, x->now, &from, &until);
  if (x->reply->status == 200)
    doccache_put(&x->sb->cache, order, s->generation, from, until, x->reply->body, x->reply->len);
}

void api_get_order(struct handler_ctx *x) {
  uint32_t order;
  store_rdlock(&x->sb->store);
  order = handler_path_entity(x, store_find_order);
  if (order == SB_NONE) reply_not_found(x->reply);
  else reply_order_cached(x, order);
  store_unlock(&x->sb->store);
}

/* the refresh-orders flag: its name is the sandbox's [U] */
static bool include_refresh(const struct handler_ctx *x) {
  const char *v = handler_query(x, "include_refresh_orders");
  return v && (strcmp(v, "true") == 0 || strcmp(v, "True") == 0 || strcmp(v, "1") == 0);
}

void api_order_events(struct handler_ctx *x) {
  long page;
  char base[512], hex[33];
  uint32_t order;
  store_rdlock(&x->sb->store);
  order = handler_path_entity(x, store_find_order);
  if (order == SB_NONE) {
    reply_not_found(x->reply);
  } else if (!page_parse(handler_query(x, "page"), &page)) {
    reply_invalid_page(x->reply);
  } else {
    struct jw w;
    bool oom, refreshes = include_refresh(x);
    hex_encode(x->sb->store.orders[order].id, 16, hex);
    snprintf(base, sizeof base, "http://%.200s/v1/orders/%s/events/%s", x->host, hex,
             refreshes ? "?include_refresh_orders=true" : "");
    jw_init(&w, 4096);
    if (events_page(&w, &x->sb->store, order, x->now, page, refreshes, base, &oom))
      reply_json(x->reply, 200, &w);
    else if ((jw_free(&w), oom)) reply_server_error(x->reply);
    else reply_invalid_page(x->reply);
  }
  store_unlock(&x->sb->store);
}

/* ---- refresh ----------------------------------------------------------- */

struct refresh_req {
  unsigned product, kind;
  uint32_t subs[MAX_SELECTED]; /* selected suborders of the original order */
  unsigned n_subs;
  bool explicit_selection;
  const char *email, *phone;
  const cJSON *manager;
};

static bool refresh_product_allowed(const struct sb_order *root, unsigned p) {
  for (unsigned i = 0; i < root->n_products; i++) {
    unsigned q = root->products[i];
    if (q == p || (q == PROD_INCOME && p == PROD_EMPLOYMENT)) return true;
  }
  return false;
}

static void products_text(const struct sb_order *o, char *out, size_t n) {
  size_t used = 0;
  out[0] = '\0';
  for (unsigned i = 0; i < o->n_products && used < n; i++)
    used +=
      (size_t)snprintf(out + used, n - used, "%s%s", i ? ", " : "", product_name(o->products[i]));
}

/* finds the suborder of kind `kind` in root that `e` references */
static uint32_t find_selected(const struct store *s, const struct sb_order *root, unsigned kind,
                              const cJSON *e) {
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
  const cJSON *num = cJSON_GetObjectItemCaseSensitive(e, "suborder_number");
  unsigned first = kind == KIND_EMPLOYER ? 0 : root->n_emp;
  unsigned n = kind == KIND_EMPLOYER ? root->n_emp : root->n_fa;
  uint8_t raw[16];
  bool has_id = cJSON_IsString(id), has_num = cJSON_IsString(num) || cJSON_IsNumber(num);
  bool id_ok = has_id && strlen(id->valuestring) == 32 && hex_decode(id->valuestring, raw, 16);
  for (unsigned i = 0; i < n; i++) {
    bool id_match;
    bool num_match;
    const struct sb_sub *b = &s->subs[root->sub_first + first + i];
    char number[24];
    snprintf(number, sizeof number, "%llu", (unsigned long long)b->number);
    id_match = id_ok && memcmp(b->id, raw, 16) == 0;
    num_match = (cJSON_IsString(num) && strcmp(num->valuestring, number) == 0) ||
                (cJSON_IsNumber(num) && num->valuedouble == (double)b->number);
    /* Truv's own example names a suborder by both: they must agree */
    if ((!has_id || id_match) && (!has_num || num_match)) return root->sub_first + first + i;
  }
  return SB_NONE;
}

static void select_listed(struct invalid *v, const struct store *s, const struct sb_order *root,
                          const cJSON *arr, const char *name, struct refresh_req *q) {
  char field[48];
  int i = 0;
  for (const cJSON *e = arr->child; e; e = e->next, i++) {
    const cJSON *id;
    uint32_t sub;
    const cJSON *num;
    bool dup = false;
    snprintf(field, sizeof field, "%s[%d]", name, i);
    id = cJSON_GetObjectItemCaseSensitive(e, "id");
    num = cJSON_GetObjectItemCaseSensitive(e, "suborder_number");
    if (!cJSON_IsObject(e) ||
        (!cJSON_IsString(id) && !cJSON_IsString(num) && !cJSON_IsNumber(num))) {
      invalid_add(v, field, "Expected an object with \"id\" or \"suborder_number\".");
      continue;
    }
    sub = find_selected(s, root, q->kind, e);
    for (unsigned k = 0; sub != SB_NONE && k < q->n_subs; k++) dup = dup || q->subs[k] == sub;
    if (sub == SB_NONE)
      invalid_add(v, field, "Not found in order: no such %s.",
                  q->kind == KIND_EMPLOYER ? "employer" : "financial account");
    else if (dup) invalid_add(v, field, "Duplicate selection.");
    else if (s->subs[sub].conn == SB_NONE)
      invalid_add(v, field, "This suborder has no completed connection to refresh.");
    else if (q->n_subs < MAX_SELECTED) q->subs[q->n_subs++] = sub;
  }
}

static void select_all(const struct store *s, const struct sb_order *root, struct refresh_req *q) {
  unsigned first = q->kind == KIND_EMPLOYER ? 0 : root->n_emp;
  unsigned n = q->kind == KIND_EMPLOYER ? root->n_emp : root->n_fa;
  for (unsigned i = 0; i < n && q->n_subs < MAX_SELECTED; i++)
    if (s->subs[root->sub_first + first + i].conn != SB_NONE)
      q->subs[q->n_subs++] = root->sub_first + first + i;
}

static void check_voa(struct invalid *v, const cJSON *reports) {
  const cJSON *ldt;
  const cJSON *ids;
  const cJSON *voa = field_object(v, reports, "voa", "reports.voa");
  if (!voa) return;
  field_int(v, voa, "days_requested", "reports.voa.days_requested", 1, 730);
  field_datetime(v, voa, "as_of_date", "reports.voa.as_of_date");
  field_bool(v, voa, "is_voe", "reports.voa.is_voe");
  field_bool(v, voa, "request_extended_history", "reports.voa.request_extended_history");
  ldt = field_object(v, voa, "large_deposit_threshold", "reports.voa.large_deposit_threshold");
  if (ldt) {
    const cJSON *lt;
    field_amount(v, ldt, "fixed_amount", "reports.voa.large_deposit_threshold.fixed_amount");
    field_amount(v, ldt, "sales_price", "reports.voa.large_deposit_threshold.sales_price");
    field_amount(v, ldt, "qualifying_monthly_income",
                 "reports.voa.large_deposit_threshold.qualifying_monthly_income");
    lt = cJSON_GetObjectItemCaseSensitive(ldt, "loan_type");
    if (lt && !cJSON_IsNull(lt) && !cJSON_IsString(lt))
      invalid_add(v, "reports.voa.large_deposit_threshold.loan_type", "Not a valid string.");
  }
  ids = field_array(v, voa, "account_ids", "reports.voa.account_ids", 0, true);
  for (const cJSON *e = ids ? ids->child : NULL; e; e = e->next)
    if (!cJSON_IsString(e)) {
      invalid_add(v, "reports.voa.account_ids", "Expected a list of strings.");
      break;
    }
}

/* the selection part of the validation, once the product is known */
static void check_selection(struct invalid *v, const struct store *s, const struct sb_order *root,
                            const cJSON *json, struct refresh_req *q) {
  unsigned other;
  static const char *const NAMES[] = {"employers", "financial_accounts"};
  const cJSON *lists[2];
  lists[0] = field_array(v, json, NAMES[0], NAMES[0], MAX_SELECTED, false);
  lists[1] = field_array(v, json, NAMES[1], NAMES[1], MAX_SELECTED, false);
  if (q->product == PROD_INSURANCE) {
    invalid_add(v, "products", "The order has no insurance connection to refresh.");
    return;
  }
  other = q->kind == KIND_EMPLOYER ? 1 : 0;
  if (lists[other])
    invalid_add(v, NAMES[other], "Cannot be refreshed with product \"%s\".",
                product_name(q->product));
  q->explicit_selection = lists[q->kind] != NULL;
  if (lists[q->kind]) select_listed(v, s, root, lists[q->kind], NAMES[q->kind], q);
  else select_all(s, root, q);
  if (!q->explicit_selection && q->n_subs == 0)
    invalid_add(v, NAMES[q->kind], "The order has no completed %s connection to refresh.",
                q->kind == KIND_EMPLOYER ? "employer" : "financial account");
}

static void check_refresh(struct invalid *v, const struct store *s, const struct sb_order *root,
                          const cJSON *json, struct refresh_req *q) {
  uint8_t products[PROD__COUNT];
  const cJSON *reports;
  unsigned n = 0;
  char text[128];
  memset(q, 0, sizeof *q);
  check_products(v, json, products, &n, 1);
  if (n == 1) {
    q->product = products[0];
    products_text(root, text, sizeof text);
    if (q->product == PROD_DEPOSIT_SWITCH || q->product == PROD_PLL)
      invalid_add(v, "products", "\"%s\" is not a valid choice.", product_name(q->product));
    else if (!refresh_product_allowed(root, q->product))
      invalid_add(v, "products", "An order with products [%s] cannot be refreshed as \"%s\".", text,
                  product_name(q->product));
    else {
      q->kind = product_kind(q->product);
      check_selection(v, s, root, json, q);
    }
  }
  q->manager = field_object(v, json, "manager", "manager");
  q->email = field_email(v, json, "email");
  q->phone = field_phone(v, json, "phone");
  field_bool(v, json, "include_recent_paystub", "include_recent_paystub");
  reports = field_object(v, json, "reports", "reports");
  if (reports) check_voa(v, reports);
}

static uint32_t new_refresh_order(struct store *s, uint32_t root, const struct refresh_req *q,
                                  sb_time now) {
  struct sb_order *o;
  const struct sb_order *r;
  uint32_t order = store_add_order(s, NULL);
  if (order == SB_NONE || store_add_subs(s, q->n_subs) == SB_NONE) return SB_NONE;
  o = &s->orders[order];
  r = &s->orders[root];
  o->user = r->user;
  store_new_id(s, o->bridge_token);
  store_new_id(s, o->share_token);
  o->created_at = now;
  o->consent_at = r->consent_at;
  o->origin = ORIGIN_REFRESH;
  o->initial = root;
  o->products[0] = (uint8_t)q->product;
  o->n_products = 1;
  o->first_name = r->first_name;
  o->last_name = r->last_name;
  o->order_number = r->order_number;
  o->template_id = r->template_id;
  o->email = q->email ? store_strdup(s, q->email) : r->email;
  o->phone = q->phone ? store_strdup(s, q->phone) : r->phone;
  o->manager = q->manager ? render_manager(s, q->manager) : NULL;
  if (q->kind == KIND_EMPLOYER) o->n_emp = (uint8_t)q->n_subs;
  else o->n_fa = (uint8_t)q->n_subs;
  return order;
}

static void link_refresh(struct store *s, uint32_t root, uint32_t order, sb_time now) {
  struct sb_order *r = &s->orders[root];
  if (r->last_refresh == SB_NONE) r->first_refresh = order;
  else s->orders[r->last_refresh].next_refresh = order;
  r->last_refresh = order;
  r->refresh_order = order;
  r->refreshed_at = now;
  r->stat_refresh_orders++;
  s->stat_order_refreshes++;
}

/* creates the refresh order and its tasks; SB_NONE on OOM */
static uint32_t refresh_locked(struct store *s, uint32_t root, const struct refresh_req *q,
                               sb_time now) {
  uint32_t order = new_refresh_order(s, root, q, now);
  if (order == SB_NONE) return SB_NONE;
  for (unsigned i = 0; i < q->n_subs; i++) {
    uint32_t task;
    uint32_t sub = s->orders[order].sub_first + i;
    const struct sb_sub *src = &s->subs[q->subs[i]];
    struct sb_sub *b = &s->subs[sub];
    store_init_sub(s, sub, NULL, order, q->kind, q->product, now);
    b->conn = src->conn;
    b->label = src->label;
    b->label_id = src->label_id;
    task = billing_refresh_task(s, b->conn, sub, q->product, TASK_ORDER_REFRESH, now);
    if (task == SB_NONE) return SB_NONE;
    s->subs[sub].task = task;
    s->orders[root].stat_tasks++;
  }
  link_refresh(s, root, order, now);
  return order;
}

static void refresh_validated(struct handler_ctx *x, uint32_t root, const struct refresh_req *q) {
  uint32_t order;
  struct store *s = &x->sb->store;
  uint32_t conns[MAX_SELECTED];
  for (unsigned i = 0; i < q->n_subs; i++) conns[i] = s->subs[q->subs[i]].conn;
  if (!billing_allows(s, conns, q->n_subs, x->now)) {
    reply_refresh_limit(x->reply, s->settings.refresh_limit_status);
    return;
  }
  order = refresh_locked(s, root, q, x->now);
  if (order == SB_NONE) {
    reply_server_error(x->reply);
    return;
  }
  events_order_created(x->sb, order);
  events_tick(x->sb, x->now);
  reply_order(x, order, 200);
}

void api_refresh_order(struct handler_ctx *x) {
  uint32_t order;
  struct store *s = &x->sb->store;
  struct refresh_req q;
  struct invalid v;
  store_wrlock(s);
  order = handler_path_entity(x, store_find_order);
  if (order == SB_NONE) {
    reply_not_found(x->reply);
  } else {
    uint32_t root = store_root(s, order);
    invalid_init(&v);
    check_refresh(&v, s, &s->orders[root], x->json, &q);
    if (handler_valid(x, &v)) refresh_validated(x, root, &q);
  }
  store_unlock(s);
}
