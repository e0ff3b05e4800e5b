/* Request validation (see truv/request.h): an operation's row of the
 * table (operation.h) says what to check: the path parameter, where the
 * parameters go and whether they are required, and the row's own checks.
 * Every violation is recorded, not just the first. */
#include "truv/request.h"

#include "fields.h"
#include "operation.h"

int truv_validate(truv_op op, const char *id, const cJSON *params, const truv_order_facts *facts,
                  truv_err *err) {
  const truv_operation *o = truv_operation_of(op);
  truv_err local;
  if (!err) err = &local;
  truv_err_clear(err);
  if (!o) return truv_err_set(err, TRUV_EINVALID, "unknown_operation", "unknown operation");
  if (o->id_name && !truv_valid_id(id))
    truv_err_invalid(err, o->id_name,
                     "must be a non-empty id of letters, digits, '-' or '_' (at most %d)",
                     TRUV_MAX_ID);
  if (params && !cJSON_IsObject(params)) {
    truv_err_invalid(err, o->params == TRUV_PARAMS_QUERY ? "query" : "body", "must be an object");
    return err->kind;
  }
  if (!params && o->params == TRUV_PARAMS_BODY) {
    truv_err_invalid(err, "body", "is required");
    return err->kind;
  }
  o->check(params, facts, err);
  return err->kind;
}
