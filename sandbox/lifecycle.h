/* lifecycle: how refresh tasks, suborders and orders move through statuses.
 *
 * A task's path (its list of statuses) is decided once, when the task is
 * created, from its connection's effective state at that moment; afterwards
 * its status is a pure function of the virtual clock: the path's n steps are
 * spread evenly over the task's duration (drawn at creation: durations.h),
 * step 0 ("new") at creation and the
 * terminal step at creation + duration. Changing a connection's state later
 * affects only tasks created later.
 *
 *   active         new login parse full_parse done
 *   credentials    new login login_error
 *   expired        new login login_error   (error_message: connection expired)
 *   mfa            new login mfa mfa_error
 *   locked         new login account_locked
 *   provider_down  new login unavailable   (if still down when the task ends,
 *                                           else the active path)
 *   no_data        new login parse no_data
 *   unsupported    new not_supported
 *
 * A suborder follows its task: pending until terminal, then completed (done),
 * no_data, or error (every other terminal status). An order is pending while
 * any suborder is pending (or it has none), then completed if any suborder
 * completed, no_data if all are no_data, else error. All functions expect the
 * store lock held (any mode). */
#ifndef SANDBOX_LIFECYCLE_H
#define SANDBOX_LIFECYCLE_H

#include <stdbool.h>

#include "store.h"

enum task_path {
  TP_DONE,
  TP_LOGIN_ERROR,
  TP_EXPIRED,
  TP_MFA_ERROR,
  TP_LOCKED,
  TP_UNAVAILABLE,
  TP_NO_DATA,
  TP_NOT_SUPPORTED,
  TP__COUNT
};

enum sub_status { SUB_PENDING, SUB_COMPLETED, SUB_NO_DATA, SUB_ERROR };

/* the effective state of a connection at `now` (expired, outage over) */
unsigned conn_effective_state(const struct sb_conn *c, const struct sb_settings *st, sb_time now);
/* the path a task created now on connection c, lasting `duration`, takes;
 * *down_until receives the outage end to snapshot (0 if none) */
enum task_path lifecycle_path(const struct sb_conn *c, const struct sb_settings *st, sb_time now,
                              int64_t duration, sb_time *down_until);

unsigned task_nsteps(const struct sb_task *t);
sb_time task_step_time(const struct sb_task *t, unsigned step);
unsigned task_step_at(const struct sb_task *t, sb_time now);
const char *task_step_name(const struct sb_task *t, unsigned step);
bool task_is_terminal(const struct sb_task *t, sb_time now);
sb_time task_end_time(const struct sb_task *t);
/* NULL while running and for done */
const char *task_error_message(const struct sb_task *t, sb_time now);
bool task_path_failed(unsigned path);
enum sub_status task_sub_status(const struct sb_task *t, sb_time now);

const char *sub_status_name(enum sub_status st);
/* suborder status at now; *since receives when it last changed */
enum sub_status sub_status_at(const struct store *s, uint32_t sub, sb_time now, sb_time *since);
/* order status name at now; *settled receives the time it became terminal
 * (when it is not pending) */
const char *order_status_at(const struct store *s, uint32_t order, sb_time now, sb_time *settled,
                            bool *pending);

#endif
