/* events: what happened to orders, tasks and links, as webhooks and as
 * order event lists.
 *
 * Webhooks. events_order_created() announces a new order;
 * events_link_connected() a connection made or re-authenticated through
 * Bridge; events_tick() announces, in time order, every task step that
 * became due since the last call (task-status-updated for each step; at a
 * terminal step also order-status-updated for the suborder, and for
 * failures other than no_data order-refresh-failed (refresh orders) and
 * link-disconnected (refresh and direct tasks)). Event times are the
 * virtual times at which the steps happened, not when the ticker noticed:
 * event_created_at in ISO with Z, updated_at with +00:00, as Truv sends
 * them. Callers hold the store lock exclusively. Steps are marked announced
 * even when no webhook URL is set, so configuring one later does not replay
 * history.
 *
 * Order events. events_page() renders GET /v1/orders/{id}/events/ (a DRF
 * page, paging.h; oldest first) with the documented types the sandbox produces:
 * order_created, suborder_completed and suborder_no_data, computed from the
 * tasks at `now`. A failed suborder has no documented event and gets none.
 * With include_refresh an original order's list also holds the events of
 * the refresh orders made from it (is_refresh: true, order_id = the refresh
 * order). Shared lock is enough. */
#ifndef SANDBOX_EVENTS_H
#define SANDBOX_EVENTS_H

#include <stdbool.h>

#include "json_writer.h"
#include "sandbox.h"

void events_order_created(struct sandbox *sb, uint32_t order);
void events_link_connected(struct sandbox *sb, uint32_t conn, sb_time at);
void events_tick(struct sandbox *sb, sb_time now);
/* false when the page does not exist (the caller answers 404) or on OOM
 * (*oom set) */
bool events_page(struct jw *w, const struct store *s, uint32_t order, sb_time now, long page,
                 bool include_refresh, const char *base_url, bool *oom);

#endif
