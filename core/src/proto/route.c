/* The default routing table (see truv/route.h). Reasons for each choice:
 *
 * Task statuses (truv-api.md §5): the non-terminal ones wait; done is fresh
 * data; login_error, mfa_error, account_locked and unable_to_reset need the
 * user to sign in again (Bridge update mode / a new link); unavailable is a
 * provider outage ("retry the refresh after some time"); error is generic
 * and retried; config_error and not_supported need a person; no_data is its
 * own outcome.
 *
 * Suborder and order statuses (§3): completed is done; expired and skipped
 * links need a new link; canceled and an order-level error (notification
 * delivery failed) need a person. A suborder error is what a failed refresh
 * looks like when its task's status could not be learned (Truv sends no
 * order event for it): the cause may be one only the user can fix
 * (login_error), so it needs a person, never an automatic billed retry.
 * (truv.wait first reads the task's status; this entry is for when it
 * cannot.)
 *
 * Errors: throttling, 5xx, network failures and garbled answers are
 * transient (retry); a refused refresh (Truv's limit or our quota) is
 * deferred to the instant the window frees; an expired connection needs the
 * user; everything else (invalid request, credentials, unknown ids, other
 * 4xx, local failures, a handler of the caller's that raised) needs a
 * person. One row per kind of truv/err.h, no more (test_route.c checks).
 *
 * Events: link-disconnected means the link failed during a refresh task. */
#include <string.h>

#include "truv/route.h"

#define HOUR 3600.0

static const truv_route_entry table[] = {
  /* task statuses */
  {TRUV_OUTCOME_TASK, "new", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_TASK, "login", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_TASK, "mfa", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_TASK, "parse", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_TASK, "base_parse", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_TASK, "full_parse", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_TASK, "switch_deposit", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_TASK, "done", TRUV_ROUTE_DONE, 0},
  {TRUV_OUTCOME_TASK, "login_error", TRUV_ROUTE_REVERIFY, 0},
  {TRUV_OUTCOME_TASK, "mfa_error", TRUV_ROUTE_REVERIFY, 0},
  {TRUV_OUTCOME_TASK, "account_locked", TRUV_ROUTE_REVERIFY, 0},
  {TRUV_OUTCOME_TASK, "unable_to_reset", TRUV_ROUTE_REVERIFY, 0},
  {TRUV_OUTCOME_TASK, "config_error", TRUV_ROUTE_FIX, 0},
  {TRUV_OUTCOME_TASK, "not_supported", TRUV_ROUTE_FIX, 0},
  {TRUV_OUTCOME_TASK, "no_data", TRUV_ROUTE_NO_DATA, 0},
  {TRUV_OUTCOME_TASK, "unavailable", TRUV_ROUTE_RETRY, HOUR},
  {TRUV_OUTCOME_TASK, "error", TRUV_ROUTE_RETRY, HOUR},
  /* suborder statuses */
  {TRUV_OUTCOME_SUBORDER, "pending", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_SUBORDER, "sent", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_SUBORDER, "completed", TRUV_ROUTE_DONE, 0},
  {TRUV_OUTCOME_SUBORDER, "no_data", TRUV_ROUTE_NO_DATA, 0},
  {TRUV_OUTCOME_SUBORDER, "expired", TRUV_ROUTE_REVERIFY, 0},
  {TRUV_OUTCOME_SUBORDER, "skipped", TRUV_ROUTE_REVERIFY, 0},
  {TRUV_OUTCOME_SUBORDER, "canceled", TRUV_ROUTE_FIX, 0},
  {TRUV_OUTCOME_SUBORDER, "error", TRUV_ROUTE_FIX, 0},
  /* order statuses */
  {TRUV_OUTCOME_ORDER, "pending", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_ORDER, "sent", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_ORDER, "completed", TRUV_ROUTE_DONE, 0},
  {TRUV_OUTCOME_ORDER, "no_data", TRUV_ROUTE_NO_DATA, 0},
  {TRUV_OUTCOME_ORDER, "expired", TRUV_ROUTE_REVERIFY, 0},
  {TRUV_OUTCOME_ORDER, "skipped", TRUV_ROUTE_REVERIFY, 0},
  {TRUV_OUTCOME_ORDER, "canceled", TRUV_ROUTE_FIX, 0},
  {TRUV_OUTCOME_ORDER, "error", TRUV_ROUTE_FIX, 0},
  /* error kinds */
  {TRUV_OUTCOME_ERROR, "throttled", TRUV_ROUTE_RETRY, 60},
  {TRUV_OUTCOME_ERROR, "server", TRUV_ROUTE_RETRY, 60},
  {TRUV_OUTCOME_ERROR, "network", TRUV_ROUTE_RETRY, 60},
  {TRUV_OUTCOME_ERROR, "protocol", TRUV_ROUTE_RETRY, 60},
  {TRUV_OUTCOME_ERROR, "refresh_limit", TRUV_ROUTE_DEFER, 0},
  {TRUV_OUTCOME_ERROR, "quota", TRUV_ROUTE_DEFER, 0},
  {TRUV_OUTCOME_ERROR, "expired", TRUV_ROUTE_REVERIFY, 0},
  {TRUV_OUTCOME_ERROR, "invalid", TRUV_ROUTE_FIX, 0},
  {TRUV_OUTCOME_ERROR, "auth", TRUV_ROUTE_FIX, 0},
  {TRUV_OUTCOME_ERROR, "not_found", TRUV_ROUTE_FIX, 0},
  {TRUV_OUTCOME_ERROR, "api", TRUV_ROUTE_FIX, 0},
  {TRUV_OUTCOME_ERROR, "internal", TRUV_ROUTE_FIX, 0},
  {TRUV_OUTCOME_ERROR, "handler", TRUV_ROUTE_FIX, 0},
  /* webhook events without a status of their own */
  {TRUV_OUTCOME_EVENT, "order-created", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_EVENT, "link-connected", TRUV_ROUTE_WAIT, 0},
  {TRUV_OUTCOME_EVENT, "link-disconnected", TRUV_ROUTE_REVERIFY, 0},
  {TRUV_OUTCOME_EVENT, "link-deleted", TRUV_ROUTE_REVERIFY, 0},
};

static const char *const route_names[TRUV_ROUTE_COUNT] = {
  "wait", "done", "reverify", "retry", "defer", "no_data", "fix",
};

static const char *const outcome_names[TRUV_OUTCOME_COUNT] = {
  "task", "suborder", "order", "error", "event",
};

const char *truv_route_name(truv_route route) {
  return (int)route >= 0 && route < TRUV_ROUTE_COUNT ? route_names[route] : "fix";
}

const char *truv_outcome_name(truv_outcome outcome) {
  return (int)outcome >= 0 && outcome < TRUV_OUTCOME_COUNT ? outcome_names[outcome] : "?";
}

const truv_route_entry *truv_route_table(size_t *n) {
  *n = sizeof table / sizeof table[0];
  return table;
}

const truv_route_entry *truv_route_lookup(truv_outcome outcome, const char *name) {
  size_t i;
  if (!name) return NULL;
  for (i = 0; i < sizeof table / sizeof table[0]; i++)
    if (table[i].outcome == outcome && strcmp(table[i].name, name) == 0) return &table[i];
  return NULL;
}
