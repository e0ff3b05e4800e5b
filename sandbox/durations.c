/* durations: the log-normal task duration model; see durations.h. */
#include "durations.h"

#include <math.h>

#include "rng.h"

#define SALT_DURATION 0x6475726174696f6eULL /* "duration" */
#define SALT_SLOW 0x736c6f7770726f76ULL     /* "slowprov" */
#define TWO_PI 6.283185307179586

/* a uniform double in (0, 1) from a 64-bit hash */
static double unit_open(uint64_t v) {
  return ((double)(v >> 11) + 0.5) * 0x1.0p-53;
}

bool duration_slow_conn(const struct sb_settings *st, uint64_t seed, uint32_t conn) {
  if (st->slow_share <= 0) return false;
  return unit_open(rng_mix(seed ^ SALT_SLOW, conn)) < st->slow_share;
}

int64_t duration_draw(const struct sb_settings *st, uint64_t seed, uint32_t conn, uint32_t task) {
  double d = (double)st->task_duration, max = TASK_DURATION_MAX_S * (double)SB_USEC;
  if (st->task_duration_spread > 0) {
    /* Box-Muller: one standard normal from two uniforms */
    double u1 = unit_open(rng_mix(seed ^ SALT_DURATION, (uint64_t)task * 2));
    double u2 = unit_open(rng_mix(seed ^ SALT_DURATION, (uint64_t)task * 2 + 1));
    double z = sqrt(-2.0 * log(u1)) * cos(TWO_PI * u2);
    d *= exp(st->task_duration_spread * z);
  }
  if (duration_slow_conn(st, seed, conn)) d *= st->slow_factor;
  if (!(d < max)) d = max; /* NaN included */
  return d > 0 ? llround(d) : 0;
}
