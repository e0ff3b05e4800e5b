/* vclock: the sandbox's virtual clock.
 *
 * Every timestamp the API shows and every window it enforces (task steps,
 * refresh limit, connection expiry, provider outages) uses this clock.
 * Standing mode: time moves only through vclock_advance()/vclock_set().
 * Realtime mode: time follows the monotonic wall clock from the last set
 * point, scaled by `scale` virtual seconds per wall second. All functions are
 * thread-safe (one small mutex); time never goes backwards except through an
 * explicit vclock_set(). */
#ifndef SANDBOX_VCLOCK_H
#define SANDBOX_VCLOCK_H

#include <pthread.h>
#include <stdbool.h>

#include "timeutil.h"

struct vclock {
  pthread_mutex_t mu;
  sb_time base;      /* virtual time at mono_base */
  int64_t mono_base; /* monotonic microseconds when base was set */
  bool realtime;
  double scale;
};

void vclock_init(struct vclock *c, sb_time start, bool realtime, double scale);
void vclock_destroy(struct vclock *c);
sb_time vclock_now(struct vclock *c);
/* returns the new time */
sb_time vclock_advance(struct vclock *c, sb_time delta);
sb_time vclock_set(struct vclock *c, sb_time t);
bool vclock_is_realtime(struct vclock *c);

#endif
