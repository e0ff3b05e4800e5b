/* Times as Truv writes them, read as seconds since the Unix epoch: ISO 8601
 * timestamps in documents and webhooks, Retry-After (delta-seconds or an
 * HTTP date), and the "available in N seconds" of Truv's throttling text.
 * No locale and no TZ environment: everything is UTC arithmetic. */
#ifndef TRUV_TIME_H
#define TRUV_TIME_H

#include "truv/common.h"

/* Parses an ISO 8601 / RFC 3339 UTC timestamp ("2021-04-21T21:45:14.418542Z",
 * offsets allowed, or a bare date) to epoch seconds; returns -1 if malformed. */
TRUV_API double truv_parse_time(const char *s);

/* Parses a Retry-After value: delta-seconds or an HTTP date. Returns the
 * absolute time (epoch s), or 0 if it cannot be read. */
TRUV_API double truv_parse_retry_after(const char *value, double now);

/* Finds Truv's "... available in N seconds" hint in a message; returns N or -1. */
TRUV_API double truv_parse_available_in(const char *message);

#endif
