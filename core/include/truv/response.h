/* Responses as data: what a transport received (status, headers, body),
 * filled by a transport (libcurl's, the HTTP/1.1 parser) and read by the
 * classifier (truv/classify.h). */
#ifndef TRUV_RESPONSE_H
#define TRUV_RESPONSE_H

#include "truv/common.h"
#include "truv/err.h"

#define TRUV_MAX_BODY (64u << 20) /* a larger body is refused (TRUV_EPROTOCOL) */

typedef struct truv_header {
  char *name;
  char *value;
} truv_header;

typedef struct truv_response {
  int status;
  truv_header *headers;
  size_t nheaders, hcap;
  char *body; /* NUL-terminated for convenience; body_len is authoritative */
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

#endif
