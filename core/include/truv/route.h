/* Routing: every outcome of the refresh workflow maps to one next step.
 *
 *   done      fresh data: pre-fill from the new order
 *   reverify  the user must reconnect: a new verification link / Bridge update mode
 *   retry     try again later (retry_at)
 *   defer     the quota is spent: not before T
 *   no_data   connected, but the source returned nothing
 *   fix       a person must act (configuration, unsupported provider, bad request)
 *   wait      not finished yet (a non-terminal status): keep waiting
 *
 * The default table (truv-api.md §5, the design's routing section) lives in
 * route.c and nowhere else; the Lua router reads it through
 * truv_route_table() and lets scripts override any entry. A status the
 * table does not know (a future one) routes to `fix`, with the raw status
 * kept by the caller. */
#ifndef TRUV_ROUTE_H
#define TRUV_ROUTE_H

#include "truv/common.h"
#include "truv/err.h"

typedef enum truv_route {
  TRUV_ROUTE_WAIT,
  TRUV_ROUTE_DONE,
  TRUV_ROUTE_REVERIFY,
  TRUV_ROUTE_RETRY,
  TRUV_ROUTE_DEFER,
  TRUV_ROUTE_NO_DATA,
  TRUV_ROUTE_FIX,
  TRUV_ROUTE_COUNT
} truv_route;

/* What the name in a table entry is: */
typedef enum truv_outcome {
  TRUV_OUTCOME_TASK,     /* a task status: done, login_error, ... */
  TRUV_OUTCOME_SUBORDER, /* a suborder (employer / financial account) status */
  TRUV_OUTCOME_ORDER,    /* an order status */
  TRUV_OUTCOME_ERROR,    /* an error kind: throttled, network, ... (truv_kind_name) */
  TRUV_OUTCOME_EVENT,    /* a webhook event type with no status of its own */
  TRUV_OUTCOME_COUNT
} truv_outcome;

typedef struct truv_route_entry {
  truv_outcome outcome;
  const char *name;
  truv_route route;
  double delay_s; /* retry: how long to wait when nothing better is known; 0 otherwise */
} truv_route_entry;

TRUV_API const char *truv_route_name(truv_route route);
TRUV_API const char *truv_outcome_name(truv_outcome outcome);

/* The whole default table; *n receives its length. */
TRUV_API const truv_route_entry *truv_route_table(size_t *n);

/* The entry for (outcome, name), or NULL when the table does not know it. */
TRUV_API const truv_route_entry *truv_route_lookup(truv_outcome outcome, const char *name);

#endif
