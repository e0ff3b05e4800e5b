/* events: see events.h. */
#include "events.h"

#include <stdlib.h>

#include "docs.h"
#include "hex.h"
#include "lifecycle.h"
#include "paging.h"

/* ---- webhooks ---------------------------------------------------------- */

static void begin(struct jw *w, struct sandbox *sb, const char *type, sb_time at,
                  const uint8_t user[16], const char *template_id, char id_hex[33]) {
  uint8_t id[16];
  store_new_id(&sb->store, id);
  hex_encode(id, 16, id_hex);
  jw_init(w, 512);
  jw_obj(w);
  jw_kstr(w, "webhook_id", id_hex);
  jw_kstr(w, "event_type", type);
  jw_ktime(w, "event_created_at", at);
  jw_ktime_offset(w, "updated_at", at); /* Truv's two formats: Z and +00:00 */
  jw_khex(w, "user_id", user, 16);
  jw_kstr(w, "template_id", template_id);
}

static void finish(struct jw *w, struct sandbox *sb, const char *id_hex, const char *type) {
  size_t len;
  char *body;
  jw_obj_end(w);
  body = jw_finish(w, &len);
  if (body) webhooks_push(&sb->hooks, body, len, id_hex, type);
}

void events_order_created(struct sandbox *sb, uint32_t order) {
  const struct store *s;
  const struct sb_order *o;
  struct jw w;
  char id[33];
  if (!webhooks_active(&sb->hooks)) return;
  s = &sb->store;
  o = &s->orders[order];
  begin(&w, sb, "order-created", o->created_at, s->users[o->user].id, o->template_id, id);
  jw_khex(&w, "order_id", o->id, 16);
  jw_kstr(&w, "order_number", o->order_number);
  jw_kstr(&w, "product", o->n_products ? product_name(o->products[0]) : NULL);
  jw_kstr(&w, "status", "pending");
  jw_knull(&w, "employer_id");
  jw_knull(&w, "link_id");
  jw_knull(&w, "data_source");
  finish(&w, sb, id, "order-created");
}

struct task_ctx {
  const struct sb_task *t;
  const struct sb_conn *c;
  const struct sb_sub *b;   /* NULL for direct tasks */
  const struct sb_order *o; /* NULL for direct tasks */
  const uint8_t *user;
  sb_time at;
};

static void begin_task(struct jw *w, struct sandbox *sb, const struct task_ctx *x, const char *type,
                       char id[33]) {
  begin(w, sb, type, x->at, x->user, x->o ? x->o->template_id : NULL, id);
}

static void link_fields(struct jw *w, const struct task_ctx *x) {
  jw_khex(w, "link_id", x->c->link, 16);
  jw_kstr(w, "product", product_name(x->t->product));
  jw_kstr(w, "data_source", docs_data_source(x->c->kind));
}

static void order_fields(struct jw *w, const struct task_ctx *x, const char *status) {
  jw_khex(w, "order_id", x->o->id, 16);
  jw_kstr(w, "order_number", x->o->order_number);
  jw_khex(w, "employer_id", x->b->id, 16);
  link_fields(w, x);
  jw_kstr(w, "status", status);
}

/* an order task's suborder id, else the link's tracking_info (as the Task object) */
static void task_tracking_info(struct jw *w, struct sandbox *sb, const struct task_ctx *x) {
  jw_key(w, "tracking_info");
  if (x->b) jw_hex(w, x->b->id, 16);
  else docs_link_tracking_info(w, &sb->store, x->c);
}

static void emit_task_status(struct sandbox *sb, const struct task_ctx *x, const char *status) {
  struct jw w;
  char id[33];
  begin_task(&w, sb, x, "task-status-updated", id);
  jw_khex(&w, "task_id", x->t->id, 16);
  link_fields(&w, x);
  task_tracking_info(&w, sb, x);
  jw_kstr(&w, "status", status);
  finish(&w, sb, id, "task-status-updated");
}

static void emit_order_event(struct sandbox *sb, const struct task_ctx *x, const char *type,
                             const char *status) {
  struct jw w;
  char id[33];
  begin_task(&w, sb, x, type, id);
  order_fields(&w, x, status);
  finish(&w, sb, id, type);
}

static void emit_link_disconnected(struct sandbox *sb, const struct task_ctx *x) {
  struct jw w;
  char id[33];
  begin_task(&w, sb, x, "link-disconnected", id);
  link_fields(&w, x);
  task_tracking_info(&w, sb, x);
  finish(&w, sb, id, "link-disconnected");
}

void events_link_connected(struct sandbox *sb, uint32_t conn, sb_time at) {
  const struct store *s;
  const struct sb_conn *c;
  const struct sb_bridge *br;
  struct jw w;
  char id[33];
  if (!webhooks_active(&sb->hooks)) return;
  s = &sb->store;
  c = &s->conns[conn];
  br = c->bridge == SB_NONE ? NULL : &s->bridges[c->bridge];
  begin(&w, sb, "link-connected", at, s->users[c->user].id, br ? br->template_id : NULL, id);
  jw_khex(&w, "link_id", c->link, 16);
  jw_kstr(&w, "product", product_name(c->product));
  jw_kstr(&w, "data_source", docs_data_source(c->kind));
  jw_key(&w, "tracking_info");
  docs_link_tracking_info(&w, s, c);
  finish(&w, sb, id, "link-connected");
}

static void emit_step(struct sandbox *sb, uint32_t task, unsigned step) {
  const char *status;
  bool failed;
  const struct store *s = &sb->store;
  struct task_ctx x = {.t = &s->tasks[task]};
  x.c = &s->conns[x.t->conn];
  x.b = x.t->sub == SB_NONE ? NULL : &s->subs[x.t->sub];
  x.o = x.b ? &s->orders[x.b->order] : NULL;
  x.user = s->users[x.c->user].id;
  x.at = task_step_time(x.t, step);
  status = task_step_name(x.t, step);
  emit_task_status(sb, &x, status);
  if (step + 1 < task_nsteps(x.t)) return;
  failed = task_path_failed(x.t->path) && x.t->path != TP_NO_DATA;
  if (x.b)
    emit_order_event(sb, &x, "order-status-updated", sub_status_name(task_sub_status(x.t, x.at)));
  if (failed && x.o && x.o->origin == ORIGIN_REFRESH)
    emit_order_event(sb, &x, "order-refresh-failed", status);
  if (failed && x.t->origin != TASK_INITIAL) emit_link_disconnected(sb, &x);
}

struct due {
  sb_time at;
  uint32_t task;
  unsigned step;
};

static int due_cmp(const void *a, const void *b) {
  const struct due *x = a, *y = b;
  if (x->at != y->at) return x->at < y->at ? -1 : 1;
  if (x->task != y->task) return x->task < y->task ? -1 : 1;
  return (x->step > y->step) - (x->step < y->step);
}

static bool append(struct due **list, size_t *n, size_t *cap, struct due d) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 64;
    struct due *p = realloc(*list, nc * sizeof *p);
    if (!p) return false;
    *list = p;
    *cap = nc;
  }
  (*list)[(*n)++] = d;
  return true;
}

/* takes the due steps of the tasks whose next step is due by now off the
 * live heap (O(due log live)), unsorted; tasks with steps left go back */
static struct due *collect(struct store *s, sb_time now, size_t *n) {
  size_t cap = 0;
  struct due *list = NULL;
  uint32_t id;
  *n = 0;
  while ((id = store_take_due(s, now)) != SB_NONE) {
    struct sb_task *t = &s->tasks[id];
    unsigned cur = task_step_at(t, now);
    for (unsigned step = t->emitted; step <= cur; step++)
      if (!append(&list, n, &cap, (struct due){task_step_time(t, step), id, step}))
        return list; /* out of memory: this task stays unannounced */
    t->emitted = (uint8_t)(cur + 1);
    if (t->emitted < task_nsteps(t)) store_add_live(s, id, task_step_time(t, t->emitted));
  }
  return list;
}

void events_tick(struct sandbox *sb, sb_time now) {
  struct store *s = &sb->store;
  size_t n;
  struct due *list = collect(s, now, &n);
  bool active = webhooks_active(&sb->hooks);
  if (n > 1) qsort(list, n, sizeof *list, due_cmp);
  for (size_t i = 0; active && i < n; i++) emit_step(sb, list[i].task, list[i].step);
  free(list);
}

/* ---- the order's events ------------------------------------------------ */

/* the documented order events the sandbox produces: an order is created, a
 * suborder completes or ends without data. A failed suborder has no
 * documented event, so none is listed. */
enum item_type { IT_ORDER_CREATED, IT_SUBORDER_COMPLETED, IT_SUBORDER_NO_DATA };

struct item {
  sb_time at;
  uint32_t seq;
  uint32_t order, sub;
  uint8_t type;
};

struct items {
  struct item *v;
  size_t n, cap;
  bool oom;
};

static void add(struct items *l, struct item it) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 32;
    struct item *p = realloc(l->v, cap * sizeof *p);
    if (!p) {
      l->oom = true;
      return;
    }
    l->v = p;
    l->cap = cap;
  }
  it.seq = (uint32_t)l->n;
  l->v[l->n++] = it;
}

static void collect_order(struct items *l, const struct store *s, uint32_t order, sb_time now) {
  const struct sb_order *o = &s->orders[order];
  add(l,
      (struct item){.at = o->created_at, .order = order, .sub = SB_NONE, .type = IT_ORDER_CREATED});
  for (unsigned i = 0; i < (unsigned)(o->n_emp + o->n_fa); i++) {
    const struct sb_task *t;
    enum sub_status st;
    uint32_t sub = o->sub_first + i;
    uint32_t task = s->subs[sub].task;
    if (task == SB_NONE) continue;
    t = &s->tasks[task];
    st = task_sub_status(t, now);
    if (st == SUB_COMPLETED || st == SUB_NO_DATA)
      add(l, (struct item){task_end_time(t), 0, order, sub,
                           st == SUB_COMPLETED ? IT_SUBORDER_COMPLETED : IT_SUBORDER_NO_DATA});
  }
}

static int item_cmp(const void *a, const void *b) {
  const struct item *x = a, *y = b;
  if (x->at != y->at) return x->at < y->at ? -1 : 1;
  return (x->seq > y->seq) - (x->seq < y->seq);
}

/* {object, type, is_refresh, order_id, timestamp, suborder_id, task_id,
 * link_id}, as Truv's example */
static void render_item(struct jw *w, const struct store *s, const struct item *it) {
  static const char *const TYPES[] = {"order_created", "suborder_completed", "suborder_no_data"};
  const struct sb_order *o = &s->orders[it->order];
  const struct sb_sub *b = it->sub == SB_NONE ? NULL : &s->subs[it->sub];
  const struct sb_task *t = b ? &s->tasks[b->task] : NULL;
  jw_obj(w);
  jw_kstr(w, "object", "order");
  jw_kstr(w, "type", TYPES[it->type]);
  jw_kbool(w, "is_refresh", o->origin == ORIGIN_REFRESH);
  jw_khex(w, "order_id", o->id, 16);
  jw_ktime(w, "timestamp", it->at);
  jw_khex(w, "suborder_id", b ? b->id : NULL, 16);
  jw_khex(w, "task_id", t ? t->id : NULL, 16);
  jw_khex(w, "link_id", b && b->conn != SB_NONE ? s->conns[b->conn].link : NULL, 16);
  jw_obj_end(w);
}

bool events_page(struct jw *w, const struct store *s, uint32_t order, sb_time now, long page,
                 bool include_refresh, const char *base_url, bool *oom) {
  bool ok;
  struct items l = {0};
  collect_order(&l, s, order, now);
  if (include_refresh && s->orders[order].origin != ORIGIN_REFRESH)
    for (uint32_t r = s->orders[order].first_refresh; r != SB_NONE; r = s->orders[r].next_refresh)
      collect_order(&l, s, r, now);
  *oom = l.oom;
  ok = !l.oom && page_exists(page, l.n);
  if (ok) {
    size_t first;
    if (l.n > 1) qsort(l.v, l.n, sizeof *l.v, item_cmp);
    first = page_first(page);
    page_begin(w, l.n, page, base_url);
    for (size_t i = first; i < l.n && i < first + PAGE_SIZE; i++) render_item(w, s, &l.v[i]);
    page_end(w);
  }
  free(l.v);
  return ok;
}
