/* durations: how long a task takes, the sandbox's model of time.
 *
 * Truv documents a task's statuses and their order, not how long a task
 * takes; the sandbox's durations are a model, not a copy. A task's duration
 * is drawn once, when the task is made, from a log-normal distribution:
 * median `task_duration`, `task_duration_spread` the standard deviation of
 * its logarithm (0: every task takes exactly the median). A share
 * `slow_share` of connections sit behind a slow provider: every task on
 * such a connection takes `slow_factor` times as long. The draw is a pure
 * function of the store's seed (--rng-seed), the task's index and its
 * connection's index: the same seed and the same sequence of calls give the
 * same durations, and the draw consumes nothing from the id stream (ids do
 * not change with the model's settings). Durations are clamped to
 * [0, TASK_DURATION_MAX_S]. */
#ifndef SANDBOX_DURATIONS_H
#define SANDBOX_DURATIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

/* the duration, in microseconds, of task number `task` made on connection `conn` */
int64_t duration_draw(const struct sb_settings *st, uint64_t seed, uint32_t conn, uint32_t task);
/* whether connection `conn` sits behind a slow provider */
bool duration_slow_conn(const struct sb_settings *st, uint64_t seed, uint32_t conn);

#endif
