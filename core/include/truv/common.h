/* Shared definitions for libtruv's public headers.
 *
 * TRUV_API marks the functions a program (or the Lua binding) may call; every
 * other symbol is hidden. Times are seconds since the Unix epoch as doubles
 * (fractions allowed); durations in the configuration are milliseconds. */
#ifndef TRUV_COMMON_H
#define TRUV_COMMON_H

#include <stddef.h>

#define TRUV_API __attribute__((visibility("default")))

#endif
