/* The classifier: what a transport received, read for the operation that
 * was sent, becomes a document or a typed error.
 *
 * truv_classify() parses the body once with cJSON and decides:
 *   - 2xx with the shape the operation returns (the string field its row of
 *     the operation table names, or a list) -> *doc (the whole document,
 *     unknown fields kept, amounts left as the strings Truv sends);
 *   - every error shape Truv uses -> a truv_err of the right kind: 400 with
 *     error.extra.invalid-params (or a field map), 401/403, 404 {"detail"},
 *     410, 429 with Retry-After (seconds or an HTTP date) or the text
 *     "available in N seconds", the refresh limit message (any status), 5xx,
 *     and malformed, truncated or unexpected bodies (TRUV_EPROTOCOL).
 * Every text copied from the answer into the error (message, code, field
 * names and messages, request id) is redacted whole with the request's
 * secrets before it is cut to fit (truv/err.h). */
#ifndef TRUV_CLASSIFY_H
#define TRUV_CLASSIFY_H

#include "truv/common.h"
#include "truv/err.h"
#include "truv/json.h"
#include "truv/request.h"
#include "truv/response.h"

/* Classifies a complete response to `req` (needed for the operation and the
 * secrets to redact). `now` is the current time (epoch s) for Retry-After.
 * On success returns 0 and stores the parsed document in *doc (the caller
 * frees it with truv_json_free; NULL for an empty 204). */
TRUV_API int truv_classify(const truv_request *req, const truv_response *resp, double now,
                           truv_json **doc, truv_err *err);

#endif
