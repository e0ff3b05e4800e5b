/* api_tasks: refresh tasks and bridge tokens.
 *
 *   POST /v1/refresh/tasks/            {"access_token","product_type"} -> {"task_id"}
 *   GET  /v1/refresh/tasks/{task_id}/  the task (never the access token)
 *   POST /v1/users/{user_id}/tokens/   a bridge token; with an access_token of
 *        the user's, update mode: the connection counts as re-authenticated
 *        (state active, age reset), which is how a reverify completes here.
 * Every task created (here or by an order refresh) counts against its
 * access_token's refresh window and is billed. */
#include <string.h>

#include "docs.h"
#include "events.h"
#include "handler.h"
#include "lifecycle.h"
#include "validate.h"

#define BRIDGE_TOKEN_TTL (6LL * 3600 * SB_USEC)

bool refresh_allowed(struct store *s, const uint32_t *conns, unsigned n, sb_time now)
{
  int limit = s->settings.refresh_limit;
  for (unsigned i = 0; i < n; i++) {
    struct sb_conn *c = &s->conns[conns[i]];
    store_window_prune(c, now);
    if (limit > 0 && store_window_count(c, now) >= (unsigned)limit + 1)
      return false;
  }
  return true;
}

uint32_t refresh_new_task(struct store *s, uint32_t conn, uint32_t sub, unsigned product,
                          unsigned origin, sb_time now)
{
  uint32_t t = store_add_task(s, NULL);
  if (t == SB_NONE)
    return SB_NONE;
  struct sb_task *task = &s->tasks[t];
  struct sb_conn *c = &s->conns[conn];
  task->created_at = now;
  task->duration = s->settings.task_duration;
  task->path = (uint8_t)lifecycle_path(c, &s->settings, now, &task->down_until);
  task->conn = conn;
  task->sub = sub;
  task->product = (uint8_t)product;
  task->origin = (uint8_t)origin;
  if (!store_window_add(c, now) || !store_add_live(s, t, now))
    return SB_NONE;
  c->stat_created++;
  c->stat_billed++;
  s->stat_tasks_created++;
  s->stat_billed++;
  return t;
}

static void product_field(struct invalid *v, const cJSON *json, unsigned *product)
{
  const char *p = field_string(v, json, "product_type", true, 64);
  if (p && !product_parse(p, product))
    invalid_add(v, "product_type", "\"%s\" is not a valid choice.", p);
}

static void task_reply(struct handler_ctx *x, uint32_t task)
{
  struct jw w;
  jw_init(&w, 64);
  jw_obj(&w);
  jw_khex(&w, "task_id", x->sb->store.tasks[task].id, 16);
  jw_obj_end(&w);
  reply_json(x->reply, 200, &w);
}

/* with the lock held: the token's connection, the limit, the task */
static void create_task_locked(struct handler_ctx *x, const uint8_t token[16], unsigned product)
{
  struct store *s = &x->sb->store;
  uint32_t conn = store_find_token(s, token);
  if (conn == SB_NONE) {
    reply_bad_field(x->reply, "access_token", "Unknown access_token.");
    return;
  }
  if (!refresh_allowed(s, &conn, 1, x->now)) {
    reply_refresh_limit(x->reply, s->settings.refresh_limit_status);
    return;
  }
  uint32_t task = refresh_new_task(s, conn, SB_NONE, product, TASK_DIRECT, x->now);
  if (task == SB_NONE) {
    reply_server_error(x->reply);
    return;
  }
  events_tick(x->sb, x->now);
  task_reply(x, task);
}

void api_create_task(struct handler_ctx *x)
{
  struct invalid v;
  uint8_t token[16];
  unsigned product = 0;
  bool given;
  invalid_init(&v);
  const cJSON *json = x->json ? x->json : &(cJSON){.type = cJSON_Object};
  bool token_ok = field_hex_id(&v, json, "access_token", true, token, &given);
  product_field(&v, json, &product);
  field_object(&v, json, "account", "account");
  if (v.n > 0 || !token_ok) {
    reply_invalid(x->reply, &v, NULL);
    return;
  }
  invalid_free(&v);
  store_wrlock(&x->sb->store);
  create_task_locked(x, token, product);
  store_unlock(&x->sb->store);
}

void api_get_task(struct handler_ctx *x)
{
  struct store *s = &x->sb->store;
  store_rdlock(s);
  uint32_t task = x->route->id_valid ? store_find_task(s, x->route->id) : SB_NONE;
  if (task == SB_NONE) {
    reply_not_found(x->reply);
  } else {
    struct jw w;
    jw_init(&w, 384);
    docs_task(&w, s, task, x->now);
    reply_json(x->reply, 200, &w);
  }
  store_unlock(s);
}

static void token_reply(struct handler_ctx *x, uint32_t user, unsigned product, uint32_t conn)
{
  struct store *s = &x->sb->store;
  uint8_t bridge[16];
  store_new_id(s, bridge);
  struct jw w;
  jw_init(&w, 256);
  jw_obj(&w);
  jw_khex(&w, "bridge_token", bridge, 16);
  jw_khex(&w, "user_id", s->users[user].id, 16);
  jw_kstr(&w, "product_type", product_name(product));
  jw_kstr(&w, "mode", conn == SB_NONE ? "create" : "update");
  jw_khex(&w, "link_id", conn == SB_NONE ? NULL : s->conns[conn].link, 16);
  jw_ktime(&w, "expires_at", x->now + BRIDGE_TOKEN_TTL);
  jw_obj_end(&w);
  reply_json(x->reply, 200, &w);
}

/* validates the body; *conn receives the update-mode connection or SB_NONE */
static bool token_request(struct handler_ctx *x, uint32_t user, unsigned *product,
                          uint32_t *conn)
{
  struct store *s = &x->sb->store;
  struct invalid v;
  uint8_t token[16];
  bool given;
  const cJSON *json = x->json ? x->json : &(cJSON){.type = cJSON_Object};
  invalid_init(&v);
  product_field(&v, json, product);
  *conn = SB_NONE;
  if (field_hex_id(&v, json, "access_token", false, token, &given)) {
    *conn = store_find_token(s, token);
    if (*conn == SB_NONE || s->conns[*conn].user != user)
      invalid_add(&v, "access_token", "Unknown access_token for this user.");
  }
  field_string(&v, json, "tracking_info", false, 255);
  field_string(&v, json, "company_mapping_id", false, 64);
  field_object(&v, json, "account", "account");
  if (v.n > 0) {
    reply_invalid(x->reply, &v, NULL);
    return false;
  }
  invalid_free(&v);
  return true;
}

void api_user_token(struct handler_ctx *x)
{
  struct store *s = &x->sb->store;
  unsigned product = 0;
  uint32_t conn;
  store_wrlock(s);
  uint32_t user = x->route->id_valid ? store_find_user(s, x->route->id) : SB_NONE;
  if (user == SB_NONE) {
    reply_not_found(x->reply);
  } else if (token_request(x, user, &product, &conn)) {
    if (conn != SB_NONE) { /* update mode: the user re-authenticated */
      struct sb_conn *c = &s->conns[conn];
      c->state = ST_ACTIVE;
      c->created_at = x->now;
      c->down_since = 0;
    }
    s->users[user].stat_tokens++;
    token_reply(x, user, product, conn);
  }
  store_unlock(s);
}
