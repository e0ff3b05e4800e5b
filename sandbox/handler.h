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

/* /_sandbox/ (admin.c) */
void admin_handle(struct handler_ctx *x);

/* shared by the creators (store lock held exclusively): whether every
 * connection in conns[0..n) may take one more task now */
bool refresh_allowed(struct store *s, const uint32_t *conns, unsigned n, sb_time now);
/* creates a task on conn (accounting, refresh window, live list); SB_NONE on OOM */
uint32_t refresh_new_task(struct store *s, uint32_t conn, uint32_t sub, unsigned product,
                          unsigned origin, sb_time now);
/* the initial task of a connection the user just made: it ends done after
 * the task duration and counts in the refresh window (Truv's "initial
 * request"); false on OOM */
bool connect_initial_task(struct store *s, uint32_t conn, uint32_t sub, sb_time now);

#endif
