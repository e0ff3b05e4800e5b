/* The operation table: one row per endpoint of Truv's API that lua-truv
 * calls, holding everything that differs between endpoints. Three readers:
 * the request builder (method, path, where the parameters go), the
 * validator (the path parameter, the parameters rule, the row's own
 * checks) and the classifier (what a successful answer carries).
 *
 * Adding an endpoint is: its truv_op (truv/request.h), its row and its
 * checks (operation.c), the Lua client's method. Internal. */
#ifndef TRUV_OPERATION_H
#define TRUV_OPERATION_H

#include <cjson/cJSON.h>

#include "truv/err.h"
#include "truv/request.h"

/* Where an operation's parameters go. */
typedef enum truv_params_rule {
  TRUV_PARAMS_QUERY,        /* the query string (a GET); none is fine */
  TRUV_PARAMS_BODY,         /* the JSON body, which is required */
  TRUV_PARAMS_BODY_OPTIONAL /* the JSON body; {} when there are none */
} truv_params_rule;

typedef struct truv_operation {
  const char *name;    /* "refresh_order": what Lua calls it */
  const char *method;  /* "GET", "POST" */
  const char *path;    /* relative to the base URL; "{id}" is the path parameter */
  const char *id_name; /* the path parameter's name in errors ("order_id"); NULL
                          when the path has none */
  unsigned flags;      /* TRUV_REQ_SAFE, TRUV_REQ_BILLED, TRUV_REQ_RECONCILED */
  truv_params_rule params;
  /* The parameters' own rules: records every violation in err. params may
   * be NULL (no parameters); facts may be NULL (unknown). */
  void (*check)(const cJSON *params, const truv_order_facts *facts, truv_err *err);
  /* The string field a successful answer carries ("id", "task_id"), or
   * NULL for a list: an array, or an object with a `results` array. */
  const char *answer_key;
  /* The products its parameters take (products, product_type), for the
   * layers above to read (truv_product_takes); NULL: it takes none. */
  const char *const *products;
} truv_operation;

/* The row of op, or NULL for a value that is no operation. */
const truv_operation *truv_operation_of(truv_op op);

#endif
