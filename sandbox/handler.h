/* handler: the contract between server.c and the endpoint handlers.
 *
 * server.c has already matched the route, checked credentials, the rate
 * limit, the method and the body's media type, and parsed the body (`json`
 * is a JSON object, or NULL when the request had no body). A handler reads
 * the request through the context, takes the store lock it needs, fills
 * `reply` and returns. Handlers never block on anything but the store lock
 * and never talk to MHD except to read query arguments (handler_query). */
#ifndef SANDBOX_HANDLER_H
#define SANDBOX_HANDLER_H

#include <cjson/cJSON.h>

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

const char *handler_query(const struct handler_ctx *x, const char *name);

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
