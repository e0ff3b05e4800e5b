/* Models: validated views of the parts of Truv's documents the workflow
 * relies on. A view points into a parsed document (truv_json) and is valid
 * as long as it is; nothing is copied but the small fixed-size fields.
 *
 * truv_order_read() checks what the refresh workflow needs and refuses a
 * document that lacks it (TRUV_EPROTOCOL "unexpected_shape", naming the
 * field): an order has a string id; products, when present, is an array of
 * strings; employers and financial_accounts, when present, are arrays of
 * objects each with a string id. Everything else is optional and NULL (or
 * -1 for times) when absent or of another type: documents grow, and a
 * client must not break on a field it does not use. Truv's Order has no
 * status, email or phone of its own (a status is per suborder; email and
 * phone are request fields only), so the model reads none. */
#ifndef TRUV_MODEL_H
#define TRUV_MODEL_H

#include <cjson/cJSON.h>

#include "truv/common.h"
#include "truv/err.h"

#define TRUV_MODEL_MAX_PRODUCTS 8

typedef enum truv_connection_kind {
  TRUV_CONN_EMPLOYER,         /* "employers" */
  TRUV_CONN_FINANCIAL_ACCOUNT /* "financial_accounts" */
} truv_connection_kind;

typedef struct truv_connection {
  truv_connection_kind kind;
  const char *id;              /* the suborder id */
  const char *status;          /* suborder status */
  const char *suborder_number; /* as text (Truv sends a string; a number is formatted) */
  const char *access_token;    /* NULL until the user connected */
  const char *link_id;
  const char *product_type;
  const char *data_source;
  const char *provider_id;
  const char *provider_name;
  const char *company_name; /* employers: the employer's name */
  double created_at;        /* epoch s, -1 if absent */
  char suborder_buf[24];    /* backing text for a numeric suborder_number */
} truv_connection;

typedef struct truv_order {
  const char *id;
  const char *order_number;
  const char *user_id;
  const char *initial_order; /* set on refresh orders */
  const char *refresh_order; /* the latest refresh made from this order */
  const char *share_url;
  const char *first_name, *last_name;
  double created_at;
  const char *products[TRUV_MODEL_MAX_PRODUCTS];
  size_t nproducts;
  truv_connection *connections; /* employers first, then financial accounts */
  size_t nconnections;
} truv_order;

TRUV_API int truv_order_read(const cJSON *doc, truv_order *out, truv_err *err);
TRUV_API void truv_order_release(truv_order *order);

TRUV_API const char *truv_connection_kind_name(truv_connection_kind kind);

#endif
