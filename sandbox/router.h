/* router: maps "METHOD /path" to an endpoint.
 *
 * Paths are matched exactly, trailing slash included ("/v1/orders/x" without
 * the final slash is unknown here; server.c redirects it as Django's
 * APPEND_SLASH does, or answers 404 under --strict). Path ids are 32 hex digits; anything else
 * in an id position still matches the endpoint (the handler answers 404 for
 * an unknown id), so 404 bodies are uniform. route_allows() tells whether a
 * method is allowed on an endpoint; route_allow_header() renders the Allow
 * header for 405s. Pure functions, thread-safe. */
#ifndef SANDBOX_ROUTER_H
#define SANDBOX_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

enum endpoint {
  EP_V1_ORDERS,
  EP_V1_ORDER,
  EP_V1_ORDER_EVENTS,
  EP_V1_REFRESH_TASKS,
  EP_V1_REFRESH_TASK,
  EP_V1_USERS,
  EP_V1_USER,
  EP_V1_USER_TOKENS,
  EP_V1_LINK_TOKENS,
  EP_V1_LINK,
  EP_V1_LINK_REPORT,
  EP_V1_TASKS,
  EP_V1_TASK,
  EP_V1_UNKNOWN,
  EP_SB_CLOCK,
  EP_SB_SEED,
  EP_SB_CASES,
  EP_SB_CONN_STATE,
  EP_SB_CONNECTIONS,
  EP_SB_FAULTS,
  EP_SB_CONFIG,
  EP_SB_STATS,
  EP_SB_STATS_RESET,
  EP_SB_WEBHOOKS,
  EP_SB_ORDER_COMPLETE,
  EP_SB_BRIDGE_COMPLETE,
  EP_SB_UNKNOWN,
  EP_OTHER,
  EP__COUNT
};

enum method { M_GET, M_HEAD, M_POST, M_PUT, M_PATCH, M_DELETE, M_OPTIONS, M_OTHER, M__COUNT };

struct route {
  enum endpoint ep;
  bool id_valid;   /* the path id is 32 hex digits */
  uint8_t id[16];  /* the path id ({id}, {task_id}, {user_id}, {link_id}) when id_valid */
  uint8_t product; /* EP_V1_LINK_REPORT: PROD_INCOME or PROD_EMPLOYMENT */
};

void route_match(const char *path, struct route *out);
enum method route_method(const char *method);
const char *route_method_name(enum method m);
bool route_allows(enum endpoint ep, enum method m);
/* the route of path + "/" is known: the path misses only its final slash */
bool route_wants_slash(const char *path);
/* "GET, POST" style list; "" for unknown endpoints */
const char *route_allow_header(enum endpoint ep);
/* the stats key of an endpoint: "/v1/orders/{id}/" */
const char *route_template(enum endpoint ep);
bool route_is_v1(enum endpoint ep);

#endif
