/* billing: what a task costs an access_token, and whether one may be made.
 *
 * Every task made on a connection enters its refresh window: a sorted log of
 * creation times (virtual clock) in the connection, each entry inside the
 * window while now - t < BILLING_WINDOW, a later entry too (the clock may be
 * set back). The window holds refresh_limit + 1 entries, the initial request
 * plus refresh_limit refreshes as Truv says; refresh_limit 0 lifts the
 * limit. A refresh (an order refresh's task per connection, or a direct
 * refresh task) is allowed only while every connection it touches has room,
 * counts whatever its outcome, and is billed; the initial task of a new
 * connection counts but is not billed. Nothing counts when a request is
 * refused.
 *
 * Callers hold the store lock: exclusively for billing_allows() (it drops
 * the entries that left the window) and the task makers, any mode for
 * billing_window(). */
#ifndef SANDBOX_BILLING_H
#define SANDBOX_BILLING_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

#define BILLING_WINDOW (86400LL * SB_USEC) /* the refresh-limit window: 24 h */

/* a connection's refresh window at a moment */
struct billing_window {
  unsigned used;    /* entries inside the window */
  unsigned size;    /* refresh_limit + 1; 0 = no limit */
  bool full;        /* size > 0 and used >= size: no refresh now */
  sb_time frees_at; /* when full: the moment a refresh is allowed again */
};

void billing_window(const struct sb_conn *c, const struct sb_settings *st, sb_time now,
                    struct billing_window *out);
/* whether every connection in conns[0..n) may take one more task now */
bool billing_allows(struct store *s, const uint32_t *conns, unsigned n, sb_time now);
/* a refresh task on conn (its path drawn from the connection's state now):
 * counted and billed; SB_NONE on OOM */
uint32_t billing_refresh_task(struct store *s, uint32_t conn, uint32_t sub, unsigned product,
                              unsigned origin, sb_time now);
/* the initial task of a connection the user just made: it ends done after
 * the task duration and counts in the window (Truv's "initial request"),
 * unbilled; recorded as sub's task when sub is not SB_NONE; false on OOM */
bool billing_initial_task(struct store *s, uint32_t conn, uint32_t sub, sb_time now);

#endif
