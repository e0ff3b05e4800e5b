/* The operation table (see operation.h): one row per endpoint, with the
 * checks of its parameters next to it. Sources: truv-api.md §2 (refresh an
 * order), §3 (create an order), §4 (refresh tasks), §9 (tasks), §10 (bridge
 * tokens). */
#include "operation.h"

#include <string.h>

#include "fields.h"

static void check_query(const cJSON *p, const truv_order_facts *facts, truv_err *err) {
  (void)facts;
  truv_check_query(p, err);
}

static void check_create_order(const cJSON *p, const truv_order_facts *facts, truv_err *err) {
  const cJSON *ssn = cJSON_GetObjectItemCaseSensitive(p, "ssn");
  (void)facts;
  if (!ssn) ssn = cJSON_GetObjectItemCaseSensitive(p, "social_security_number");
  truv_check_products(cJSON_GetObjectItemCaseSensitive(p, "products"), truv_order_products, 0, err);
  truv_check_string(cJSON_GetObjectItemCaseSensitive(p, "first_name"), "first_name", 1, err);
  truv_check_string(cJSON_GetObjectItemCaseSensitive(p, "last_name"), "last_name", 1, err);
  truv_check_email(cJSON_GetObjectItemCaseSensitive(p, "email"), "email", err);
  truv_check_phone(cJSON_GetObjectItemCaseSensitive(p, "phone"), "phone", err);
  truv_check_ssn(ssn, err);
  truv_check_new_connections(cJSON_GetObjectItemCaseSensitive(p, "employers"), "employers",
                             "company_name", "company_mapping_id", err);
  truv_check_new_connections(cJSON_GetObjectItemCaseSensitive(p, "financial_institutions"),
                             "financial_institutions", "id", "name", err);
  truv_check_notes(cJSON_GetObjectItemCaseSensitive(p, "notes"), err);
  truv_check_cc_emails(cJSON_GetObjectItemCaseSensitive(p, "cc_emails"), err);
  truv_check_object(cJSON_GetObjectItemCaseSensitive(p, "manager"), "manager", err);
}

static void check_refresh_order(const cJSON *p, const truv_order_facts *facts, truv_err *err) {
  const cJSON *products = cJSON_GetObjectItemCaseSensitive(p, "products");
  truv_check_products(products, truv_refresh_products, 1, err);
  truv_check_product_rule(products, facts, err);
  truv_check_selection(cJSON_GetObjectItemCaseSensitive(p, "employers"), "employers", err);
  truv_check_selection(cJSON_GetObjectItemCaseSensitive(p, "financial_accounts"),
                       "financial_accounts", err);
  truv_check_object(cJSON_GetObjectItemCaseSensitive(p, "manager"), "manager", err);
  truv_check_email(cJSON_GetObjectItemCaseSensitive(p, "email"), "email", err);
  truv_check_phone(cJSON_GetObjectItemCaseSensitive(p, "phone"), "phone", err);
  truv_check_bool(cJSON_GetObjectItemCaseSensitive(p, "include_recent_paystub"),
                  "include_recent_paystub", err);
  truv_check_voa(cJSON_GetObjectItemCaseSensitive(p, "reports"), err);
  truv_check_notes(cJSON_GetObjectItemCaseSensitive(p, "notes"), err);
  truv_check_cc_emails(cJSON_GetObjectItemCaseSensitive(p, "cc_emails"), err);
}

static void check_refresh_task(const cJSON *p, const truv_order_facts *facts, truv_err *err) {
  (void)facts;
  truv_check_string(cJSON_GetObjectItemCaseSensitive(p, "access_token"), "access_token", 1, err);
  truv_check_product_type(cJSON_GetObjectItemCaseSensitive(p, "product_type"), err);
  truv_check_object(cJSON_GetObjectItemCaseSensitive(p, "account"), "account", err);
}

/* Without a body, product_type is what is missing. */
static void check_bridge_token(const cJSON *p, const truv_order_facts *facts, truv_err *err) {
  (void)facts;
  truv_check_product_type(cJSON_GetObjectItemCaseSensitive(p, "product_type"), err);
  truv_check_string(cJSON_GetObjectItemCaseSensitive(p, "access_token"), "access_token", 0, err);
  truv_check_object(cJSON_GetObjectItemCaseSensitive(p, "account"), "account", err);
}

#define QUERY TRUV_PARAMS_QUERY
#define BODY TRUV_PARAMS_BODY
#define BODY_OPTIONAL TRUV_PARAMS_BODY_OPTIONAL
#define SAFE TRUV_REQ_SAFE
#define BILLED TRUV_REQ_BILLED
#define RECONCILED TRUV_REQ_RECONCILED

/* name, method, path, id_name, flags, params, check, answer_key, products (NULL: none) */
static const truv_operation ops[TRUV_OP_COUNT] = {
  [TRUV_OP_CREATE_ORDER] = {"create_order", "POST", "orders/", NULL, 0, BODY, check_create_order,
                            "id", truv_order_products},
  [TRUV_OP_GET_ORDER] = {"get_order", "GET", "orders/{id}/", "order_id", SAFE, QUERY, check_query,
                         "id", NULL},
  [TRUV_OP_REFRESH_ORDER] = {"refresh_order", "POST", "orders/{id}/", "order_id",
                             BILLED | RECONCILED, BODY, check_refresh_order, "id",
                             truv_refresh_products},
  [TRUV_OP_LIST_ORDER_EVENTS] = {"list_order_events", "GET", "orders/{id}/events/", "order_id",
                                 SAFE, QUERY, check_query, NULL, NULL},
  [TRUV_OP_CREATE_REFRESH_TASK] = {"create_refresh_task", "POST", "refresh/tasks/", NULL, BILLED,
                                   BODY, check_refresh_task, "task_id", truv_task_products},
  [TRUV_OP_GET_REFRESH_TASK] = {"get_refresh_task", "GET", "refresh/tasks/{id}/", "task_id", SAFE,
                                QUERY, check_query, "id", NULL},
  [TRUV_OP_CREATE_BRIDGE_TOKEN] = {"create_bridge_token", "POST", "users/{id}/tokens/", "user_id",
                                   0, BODY_OPTIONAL, check_bridge_token, "bridge_token",
                                   truv_task_products},
  [TRUV_OP_LIST_TASKS] = {"list_tasks", "GET", "tasks/", NULL, SAFE, QUERY, check_query, NULL,
                          NULL},
  [TRUV_OP_GET_TASK] = {"get_task", "GET", "tasks/{id}/", "task_id", SAFE, QUERY, check_query, "id",
                        NULL},
};

const truv_operation *truv_operation_of(truv_op op) {
  return (int)op >= 0 && op < TRUV_OP_COUNT ? &ops[op] : NULL;
}

const char *truv_op_name(truv_op op) {
  const truv_operation *o = truv_operation_of(op);
  return o ? o->name : "unknown";
}

int truv_op_from_name(const char *name) {
  int i;
  for (i = 0; name && i < TRUV_OP_COUNT; i++)
    if (strcmp(ops[i].name, name) == 0) return i;
  return -1;
}

int truv_product_takes(truv_op op, const char *product) {
  const truv_operation *o = truv_operation_of(op);
  return o && truv_in_set(product, o->products);
}

unsigned truv_op_flags(truv_op op) {
  const truv_operation *o = truv_operation_of(op);
  return o ? o->flags : 0;
}
