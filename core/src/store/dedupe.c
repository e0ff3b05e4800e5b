/* The checked calls through the de-duplication store vtable (see
 * truv/dedupe.h). */
#include <math.h>

#include "store.h"
#include "truv/dedupe.h"

#define MAX_ID_LEN 4096 /* webhook ids are 32 characters; object keys little more */

static int check_id(const char *id, size_t len, const char *what, truv_err *err) {
  if (id && len <= MAX_ID_LEN) return 0;
  return truv_err_set(err, TRUV_EINVALID, "invalid_id", "%s is %s", what,
                      id ? "longer than 4096 bytes" : "missing");
}

int truv_dedupe_seen(truv_dedupe_store *s, const char *id, size_t len, double now, double ttl_s,
                     int *first, truv_err *err) {
  int f = 0, rc;
  truv_err_clear(err);
  if ((rc = check_id(id, len, "webhook id", err)) || (rc = truv_store_check_time(now, "now", err)))
    return rc;
  if (!(isfinite(ttl_s) && ttl_s >= 0 && ttl_s <= TRUV_STORE_MAX_TIME))
    return truv_err_set(err, TRUV_EINVALID, "invalid_ttl", "ttl must be a finite number >= 0");
  rc = s->ops->seen(s, id, len, now, ttl_s, &f, err);
  if (first) *first = rc ? 0 : f;
  return rc;
}

int truv_dedupe_last_update(truv_dedupe_store *s, const char *object_key, size_t len,
                            double updated_at, int *is_newer, truv_err *err) {
  int newer = 0, rc;
  truv_err_clear(err);
  if ((rc = check_id(object_key, len, "object key", err)) ||
      (rc = truv_store_check_time(updated_at, "updated_at", err)))
    return rc;
  rc = s->ops->last_update(s, object_key, len, updated_at, &newer, err);
  if (is_newer) *is_newer = rc ? 0 : newer;
  return rc;
}

int truv_dedupe_forget(truv_dedupe_store *s, const char *id, size_t len, truv_err *err) {
  int rc;
  truv_err_clear(err);
  if ((rc = check_id(id, len, "webhook id", err))) return rc;
  return s->ops->forget(s, id, len, err);
}

void truv_dedupe_close(truv_dedupe_store *s) {
  if (s) s->ops->close(s);
}
