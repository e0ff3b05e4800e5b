/* events: what happened to orders and tasks, as webhooks and as timelines.
 *
 * Webhooks. events_order_created() announces a new order; events_tick()
 * announces, in time order, every task step that became due since the last
 * call (task-status-updated for each step; at a terminal step also
 * order-status-updated for the suborder, and for failures other than no_data
 * order-refresh-failed (refresh orders) and link-disconnected (refresh and
 * direct tasks)). Event times (event_created_at, updated_at) are the virtual
 * times at which the steps happened, not when the ticker noticed. Callers
 * hold the store lock exclusively. Steps are marked announced even when no
 * webhook URL is set, so configuring one later does not replay history.
 *
 * Timelines. events_page() renders GET /v1/orders/{id}/events/ (DRF page of
 * 100, newest last): order_created / order_refresh_created,
 * task_status_updated per step and suborder_status_updated per terminal
 * suborder, computed from the tasks at `now`. An original order's timeline
 * includes the events of every refresh order made from it (is_refresh:
 * true, order_id = the refresh order). Shared lock is enough. */
#ifndef SANDBOX_EVENTS_H
#define SANDBOX_EVENTS_H

#include <stdbool.h>

#include "jw.h"
#include "sandbox.h"

void events_order_created(struct sandbox *sb, uint32_t order);
void events_tick(struct sandbox *sb, sb_time now);
/* false when the page does not exist (the caller answers 404) or on OOM
 * (*oom set) */
bool events_page(struct jw *w, const struct store *s, uint32_t order, sb_time now,
                 long page, const char *base_url, bool *oom);

#endif
