/* Responses as data: what a transport received (status, headers, body), and
 * the classifier that turns it into a document or a typed error.
 *
 * Transports fill a truv_response; truv_classify() parses the body once with
 * cJSON and decides, for the operation that was sent:
 *   - 2xx with the shape the operation returns -> *doc (the whole document,
 *     unknown fields kept, amounts left as the strings Truv sends);
 *   - every error shape Truv uses -> a truv_err of the right kind: 400 with
 *     error.extra.invalid-params (or a field map), 401/403, 404 {"detail"},
 *     410, 429 with Retry-After (seconds or an HTTP date) or the text
 *     "available in N seconds", the refresh limit message (any status), 5xx,
 *     and malformed, truncated or unexpected bodies (TRUV_EPROTOCOL).
 * Every text copied from the answer into the error (message, code, field
 * names and messages, request id) is redacted whole with the request's
 * secrets before it is cut to fit (truv/err.h). */
#ifndef TRUV_RESPONSE_H
#define TRUV_RESPONSE_H

#include <cjson/cJSON.h>

#include "truv/common.h"
#include "truv/err.h"
#include "truv/json.h"
#include "truv/request.h"

#define TRUV_MAX_BODY (64u << 20)  /* a larger body is refused (TRUV_EPROTOCOL) */

typedef struct truv_header {
  char *name;
  char *value;
} truv_header;

typedef struct truv_response {
  int status;
  truv_header *headers;
  size_t nheaders, hcap;
  char *body;           /* NUL-terminated for convenience; body_len is authoritative */
  size_t body_len, body_cap;
} truv_response;

TRUV_API void truv_response_init(truv_response *r);
/* Empties the response for reuse, keeping its buffers. */
TRUV_API void truv_response_reset(truv_response *r);
TRUV_API void truv_response_free(truv_response *r);
/* Both return 0, or TRUV_EINTERNAL when out of memory / over TRUV_MAX_BODY. */
TRUV_API int truv_response_add_header(truv_response *r, const char *name, size_t nlen,
                                      const char *value, size_t vlen);
TRUV_API int truv_response_append(truv_response *r, const char *data, size_t len);
/* The first header of that name (case-insensitive), or NULL. */
TRUV_API const char *truv_response_header(const truv_response *r, const char *name);

/* Classifies a complete response to `req` (needed for the operation and the
 * secrets to redact). `now` is the current time (epoch s) for Retry-After.
 * On success returns 0 and stores the parsed document in *doc (the caller
 * frees it with truv_json_free; NULL for an empty 204). */
TRUV_API int truv_classify(const truv_request *req, const truv_response *resp, double now,
                           truv_json **doc, truv_err *err);

/* Parses a Retry-After value: delta-seconds or an HTTP date. Returns the
 * absolute time (epoch s), or 0 if it cannot be read. */
TRUV_API double truv_parse_retry_after(const char *value, double now);

/* Finds Truv's "... available in N seconds" hint in a message; returns N or -1. */
TRUV_API double truv_parse_available_in(const char *message);

/* Parses an ISO 8601 / RFC 3339 UTC timestamp ("2021-04-21T21:45:14.418542Z",
 * offsets allowed, or a bare date) to epoch seconds; returns -1 if malformed. */
TRUV_API double truv_parse_time(const char *s);

#endif
