/* timeutil: calendar arithmetic and the sandbox's time formats.
 *
 * Sandbox time (sb_time) is microseconds since the Unix epoch, UTC; days are
 * counted from 1970-01-01. Conversions are pure integer arithmetic (proleptic
 * Gregorian calendar), thread-safe and locale-free. Output buffers must hold
 * at least TIME_ISO_LEN bytes (ISO) or TIME_DATE_LEN bytes (date). */
#ifndef SANDBOX_TIMEUTIL_H
#define SANDBOX_TIMEUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int64_t sb_time;

#define SB_USEC 1000000LL
#define SB_DAY (86400LL * SB_USEC)
#define TIME_MAX_S 253402300799.0 /* 9999-12-31T23:59:59Z, the last time ISO 8601 writes */
#define TIME_ISO_LEN 40
#define TIME_DATE_LEN 16

int64_t time_days_from_civil(int64_t y, unsigned m, unsigned d);
void time_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
int64_t time_day_of(sb_time t);

/* "2021-04-21T21:45:14.418542Z"; returns the length (27 for years 0..9999) */
size_t time_iso(sb_time t, char *out);
/* "2024-07-11T21:40:48.424655+00:00" (a webhook's updated_at) */
size_t time_iso_offset(sb_time t, char *out);
/* "2021-04-21"; returns the length */
size_t time_date(int64_t days, char *out);
/* parses "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM[:SS[.ffffff]][Z|+HH:MM]" */
bool time_parse_iso(const char *s, sb_time *out);
/* wall clock (CLOCK_REALTIME) and monotonic clock, both in microseconds */
sb_time time_wall_now(void);
int64_t time_mono_us(void);

#endif
