/* api_tasks: refresh tasks and the task list.
 *
 *   POST /v1/refresh/tasks/            {"access_token", "product_type"?} -> {"task_id"}
 *        (product_type defaults to the link's product, as Truv's own
 *        quickstarts need; required under --strict)
 *   GET  /v1/refresh/tasks/{task_id}/  {id, created_at, refresh_date, status}
 *   GET  /v1/tasks/?user_id=&link_id=  every task (initial, order refresh,
 *        direct refresh), newest first, DRF page of 100: the documented way
 *        to learn why a task failed (error_message)
 *   GET  /v1/tasks/{task_id}/          the Task object
 * Every task created (here or by an order refresh) counts against its
 * access_token's refresh window and is billed (billing.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing.h"
#include "docs.h"
#include "events.h"
#include "handler.h"
#include "paging.h"
#include "validate.h"

/* ---- POST /v1/refresh/tasks/ ------------------------------------------- */

static void task_reply(struct handler_ctx *x, uint32_t task) {
  struct jw w;
  jw_init(&w, 64);
  jw_obj(&w);
  jw_khex(&w, "task_id", x->sb->store.tasks[task].id, 16);
  jw_obj_end(&w);
  reply_json(x->reply, 200, &w);
}

/* with the lock held: the token's connection, the limit, the task */
static void create_task_locked(struct handler_ctx *x, const uint8_t token[16], bool has_product,
                               unsigned product) {
  uint32_t task;
  struct store *s = &x->sb->store;
  uint32_t conn = store_find_token(s, token);
  if (conn == SB_NONE) {
    reply_bad_field(x->reply, "access_token", "Unknown access_token.");
    return;
  }
  if (!billing_allows(s, &conn, 1, x->now)) {
    reply_refresh_limit(x->reply, s->settings.refresh_limit_status);
    return;
  }
  if (!has_product) product = s->conns[conn].product;
  task = billing_refresh_task(s, conn, SB_NONE, product, TASK_DIRECT, x->now);
  if (task == SB_NONE) {
    reply_server_error(x->reply);
    return;
  }
  events_tick(x->sb, x->now);
  task_reply(x, task);
}

void api_create_refresh_task(struct handler_ctx *x) {
  struct invalid v;
  uint8_t token[16];
  const cJSON *json;
  bool token_ok;
  const char *p;
  unsigned product = 0;
  bool given;
  invalid_init(&v);
  json = x->json;
  token_ok = field_hex_id(&v, json, "access_token", true, token, &given);
  p = field_string(&v, json, "product_type", x->sb->opt.strict, 64);
  if (p && !product_parse(p, &product))
    invalid_add(&v, "product_type", "\"%s\" is not a valid choice.", p);
  field_object(&v, json, "account", "account");
  if (!handler_valid(x, &v) || !token_ok) return;
  store_wrlock(&x->sb->store);
  create_task_locked(x, token, p != NULL, product);
  store_unlock(&x->sb->store);
}

/* ---- reading tasks ----------------------------------------------------- */

static void refresh_task_doc(struct jw *w, const struct handler_ctx *x, uint32_t task) {
  docs_refresh_task(w, &x->sb->store, task, x->now);
}

void api_get_refresh_task(struct handler_ctx *x) {
  handler_get(x, store_find_task, refresh_task_doc, 192);
}

static void task_doc(struct jw *w, const struct handler_ctx *x, uint32_t task) {
  docs_task(w, &x->sb->store, task, x->now);
}

void api_get_task(struct handler_ctx *x) {
  handler_get(x, store_find_task, task_doc, 768);
}

/* a listed task and its sort key */
struct task_key {
  sb_time at;
  uint32_t task;
};

struct task_list {
  struct task_key *v;
  size_t n, cap;
  bool oom;
};

static void list_add(struct task_list *l, const struct store *s, uint32_t task) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    struct task_key *p = realloc(l->v, cap * sizeof *p);
    if (!p) {
      l->oom = true;
      return;
    }
    l->v = p;
    l->cap = cap;
  }
  l->v[l->n++] = (struct task_key){s->tasks[task].created_at, task};
}

static void list_conn(struct task_list *l, const struct store *s, uint32_t conn) {
  for (uint32_t t = s->conns[conn].last_task; t != SB_NONE; t = s->tasks[t].prev_of_conn)
    list_add(l, s, t);
}

/* the tasks the filters select (user_id and link_id: both must hold) */
static void select_tasks(const struct handler_ctx *x, struct task_list *l) {
  const struct store *s = &x->sb->store;
  uint8_t uid[16], lid[16];
  bool by_user, by_link;
  bool uid_ok = handler_query_id(x, "user_id", uid, &by_user);
  bool lid_ok = handler_query_id(x, "link_id", lid, &by_link);
  uint32_t user = uid_ok ? store_find_user(s, uid) : SB_NONE;
  uint32_t conn = lid_ok ? store_find_link(s, lid) : SB_NONE;
  if ((by_user && user == SB_NONE) || (by_link && conn == SB_NONE)) return;
  if (by_link) {
    if (!by_user || s->conns[conn].user == user) list_conn(l, s, conn);
  } else if (by_user) {
    for (uint32_t c = s->users[user].last_conn; c != SB_NONE; c = s->conns[c].prev_of_user)
      list_conn(l, s, c);
  } else {
    for (uint32_t t = s->n_tasks; t-- > 0;) list_add(l, s, t);
  }
}

/* newest first; among equal times, the one created last first */
static int newest_first(const void *a, const void *b) {
  const struct task_key *x = a, *y = b;
  if (x->at != y->at) return x->at > y->at ? -1 : 1;
  return (x->task < y->task) - (x->task > y->task);
}

static void base_url(const struct handler_ctx *x, char *out, size_t n) {
  const char *user = handler_query(x, "user_id"), *link = handler_query(x, "link_id");
  int k = snprintf(out, n, "http://%.200s/v1/tasks/", x->host);
  char sep = '?';
  if (user && k > 0 && (size_t)k < n) {
    k += snprintf(out + k, n - (size_t)k, "%cuser_id=%.64s", sep, user);
    sep = '&';
  }
  if (link && k > 0 && (size_t)k < n)
    snprintf(out + k, n - (size_t)k, "%clink_id=%.64s", sep, link);
}

static void render_page(struct handler_ctx *x, const struct task_list *l, long page) {
  struct jw w;
  size_t first;
  const struct store *s = &x->sb->store;
  char base[512];
  if (!page_exists(page, l->n)) {
    reply_invalid_page(x->reply);
    return;
  }
  base_url(x, base, sizeof base);
  jw_init(&w, 1024 + (l->n < PAGE_SIZE ? l->n : PAGE_SIZE) * 700);
  page_begin(&w, l->n, page, base);
  first = page_first(page);
  for (size_t i = first; i < l->n && i < first + PAGE_SIZE; i++)
    docs_task(&w, s, l->v[i].task, x->now);
  page_end(&w);
  reply_json(x->reply, 200, &w);
}

void api_list_tasks(struct handler_ctx *x) {
  struct store *s = &x->sb->store;
  struct task_list l = {0};
  long page;
  if (!page_parse(handler_query(x, "page"), &page)) {
    reply_invalid_page(x->reply);
    return;
  }
  store_rdlock(s);
  select_tasks(x, &l);
  if (l.oom) {
    reply_server_error(x->reply);
  } else {
    if (l.n > 1) qsort(l.v, l.n, sizeof *l.v, newest_first);
    render_page(x, &l, page);
  }
  store_unlock(s);
  free(l.v);
}
