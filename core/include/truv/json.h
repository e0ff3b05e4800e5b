/* truv_json: a parsed JSON document that owns the memory its tree lives in.
 *
 * Parsing goes through cJSON, with its nodes and strings placed in one arena
 * (a short list of large blocks) instead of one malloc per value: freeing a
 * document is then a few free() calls rather than a walk over every node,
 * which is most of what parsing costs otherwise.
 *
 * How: libtruv installs cJSON allocation hooks once per process that behave
 * exactly like malloc/free, except while the calling thread is inside
 * truv_json_parse(), where they allocate from that parse's arena (and free
 * is a no-op). Other users of cJSON in the process are unaffected. A tree
 * from truv_json_parse must never be given to cJSON_Delete: use
 * truv_json_free. If something else replaced cJSON's hooks, documents fall
 * back to ordinary cJSON trees, transparently.
 *
 * The tree may be read (never modified) from any thread once parsed. */
#ifndef TRUV_JSON_H
#define TRUV_JSON_H

#include <cjson/cJSON.h>

#include "truv/common.h"
#include "truv/err.h"

typedef struct truv_json truv_json;

/* Parses exactly one JSON value from [s, s+len) (blanks may follow it).
 * Returns NULL with TRUV_EPROTOCOL "malformed_json" (and where it stopped)
 * when the bytes are not one valid value. */
TRUV_API truv_json *truv_json_parse(const char *s, size_t len, truv_err *err);

TRUV_API cJSON *truv_json_root(const truv_json *doc);

/* Bytes the document holds (its arena), for accounting. */
TRUV_API size_t truv_json_size(const truv_json *doc);

TRUV_API void truv_json_free(truv_json *doc);

/* How many documents are alive in the process, and the bytes they hold:
 * for memory accounting in benchmarks and diagnostics. */
TRUV_API void truv_json_live(size_t *docs, size_t *bytes);

/* Makes sure cJSON's hooks are installed (truv_json_parse calls it). */
TRUV_API void truv_json_init(void);

#endif
