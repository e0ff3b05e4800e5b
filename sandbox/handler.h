/* handler: the contract between server.c and the endpoint handlers.
 *
 * server.c has already matched the route, checked credentials, the rate
 * limit, the method and the body's media type, and parsed the body (`json`
 * is a JSON object, an empty one when the request had no body). A handler
 * reads the request through the context, takes the store lock it needs,
 * fills `reply` and returns. Handlers never block on anything but the store
 * lock and never talk to MHD except to read query arguments (handler_query).
 * handler.c holds what every handler does the same way: query arguments,
 * the entity a path names, answering a request that failed validation, and
 * the GET of one document. */
#ifndef SANDBOX_HANDLER_H
#define SANDBOX_HANDLER_H

#include <cjson/cJSON.h>

#include "json_writer.h"
#include "reply.h"
#include "router.h"
#include "sandbox.h"

struct MHD_Connection;

struct handler_ctx {
  struct sandbox *sb;
  struct MHD_Connection *conn;
  const struct route *route;
  enum method method; /* HEAD arrives as M_GET */
  const cJSON *json;
  const char *host; /* Host header, for absolute URLs */
  sb_time now;
  struct reply *reply;
};

/* a store lookup by id (store_find_order, store_find_task, ...) */
typedef uint32_t (*handler_find_fn)(const struct store *s, const uint8_t id[16]);
/* renders entity's document (the store lock held) */
typedef void (*handler_render_fn)(struct jw *w, const struct handler_ctx *x, uint32_t entity);

/* a query argument, or NULL when absent */
const char *handler_query(const struct handler_ctx *x, const char *name);
/* a query argument naming an id: true, id filled, when it is 32 lowercase
 * hex digits; *given (when not NULL) says whether the argument was there */
bool handler_query_id(const struct handler_ctx *x, const char *name, uint8_t id[16], bool *given);
/* the entity the path's id names (any store lock held); SB_NONE when none */
uint32_t handler_path_entity(const struct handler_ctx *x, handler_find_fn find);
/* true when validation found nothing (v is freed); else the 400 listing
 * every invalid field is the answer and false is returned */
bool handler_valid(struct handler_ctx *x, struct invalid *v);
/* GET of the entity the path names: under the shared lock, 404 when there
 * is none, else 200 with its document (size_hint: its usual size) */
void handler_get(struct handler_ctx *x, handler_find_fn find, handler_render_fn render,
                 size_t size_hint);

/* /v1/ (api_orders.c, api_tasks.c, api_links.c) */
void api_create_order(struct handler_ctx *x);
void api_get_order(struct handler_ctx *x);
void api_refresh_order(struct handler_ctx *x);
void api_order_events(struct handler_ctx *x);
void api_create_refresh_task(struct handler_ctx *x);
void api_get_refresh_task(struct handler_ctx *x);
void api_list_tasks(struct handler_ctx *x);
void api_get_task(struct handler_ctx *x);
void api_create_user(struct handler_ctx *x);
void api_get_user(struct handler_ctx *x);
void api_user_token(struct handler_ctx *x);
void api_link_token(struct handler_ctx *x);
void api_get_link(struct handler_ctx *x);
void api_link_report(struct handler_ctx *x);

/* /_sandbox/ (api_control.c) */
void control_handle(struct handler_ctx *x);

#endif
