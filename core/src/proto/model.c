/* Validated views over order documents (see truv/model.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "truv/model.h"
#include "truv/time.h"

static const char *str(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double time_of(const cJSON *obj, const char *key) {
  const char *s = str(obj, key);
  return s ? truv_parse_time(s) : -1;
}

const char *truv_connection_kind_name(truv_connection_kind kind) {
  return kind == TRUV_CONN_EMPLOYER ? "employers" : "financial_accounts";
}

static int shape_error(truv_err *err, const char *field, const char *what) {
  return truv_err_set(err, TRUV_EPROTOCOL, "unexpected_shape", "order document: %s %s", field,
                      what);
}

/* Checks one array of connections; returns how many it holds or -1. */
static int count_connections(const cJSON *list, const char *name, truv_err *err) {
  const cJSON *e;
  int n = 0;
  if (!list || cJSON_IsNull(list)) return 0;
  if (!cJSON_IsArray(list)) return shape_error(err, name, "is not an array"), -1;
  cJSON_ArrayForEach(e, list) {
    if (!cJSON_IsObject(e) || !str(e, "id")) {
      char field[48];
      snprintf(field, sizeof field, "%s[%d]", name, n + 1);
      return shape_error(err, field, "has no string id"), -1;
    }
    n++;
  }
  return n;
}

static void read_connection(const cJSON *e, truv_connection_kind kind, truv_connection *c) {
  const cJSON *sn = cJSON_GetObjectItemCaseSensitive(e, "suborder_number");
  const cJSON *provider = cJSON_GetObjectItemCaseSensitive(e, "provider");
  memset(c, 0, sizeof *c);
  c->kind = kind;
  c->id = str(e, "id");
  c->status = str(e, "status");
  c->access_token = str(e, "access_token");
  c->link_id = str(e, "link_id");
  c->product_type = str(e, "product_type");
  c->data_source = str(e, "data_source");
  c->provider_id = str(provider, "id");
  c->provider_name = str(provider, "name");
  c->company_name = str(e, "company_name");
  c->created_at = time_of(e, "created_at");
  if (cJSON_IsString(sn)) {
    c->suborder_number = sn->valuestring;
  } else if (cJSON_IsNumber(sn)) {
    snprintf(c->suborder_buf, sizeof c->suborder_buf, "%.0f", sn->valuedouble);
    c->suborder_number = c->suborder_buf;
  }
}

int truv_order_read(const cJSON *doc, truv_order *out, truv_err *err) {
  const cJSON *products, *emp, *fin, *e;
  int nemp, nfin;
  size_t i = 0;
  memset(out, 0, sizeof *out);
  if (!cJSON_IsObject(doc)) return shape_error(err, "the document", "is not an object");
  if (!(out->id = str(doc, "id"))) return shape_error(err, "id", "is missing");
  products = cJSON_GetObjectItemCaseSensitive(doc, "products");
  if (products && !cJSON_IsArray(products)) return shape_error(err, "products", "is not an array");
  cJSON_ArrayForEach(e, products) {
    if (!cJSON_IsString(e)) return shape_error(err, "products", "holds a non-string");
    if (out->nproducts < TRUV_MODEL_MAX_PRODUCTS) out->products[out->nproducts++] = e->valuestring;
  }
  emp = cJSON_GetObjectItemCaseSensitive(doc, "employers");
  fin = cJSON_GetObjectItemCaseSensitive(doc, "financial_accounts");
  if ((nemp = count_connections(emp, "employers", err)) < 0) return err->kind;
  if ((nfin = count_connections(fin, "financial_accounts", err)) < 0) return err->kind;

  out->order_number = str(doc, "order_number");
  out->user_id = str(doc, "user_id");
  out->initial_order = str(doc, "initial_order");
  out->refresh_order = str(doc, "refresh_order");
  out->share_url = str(doc, "share_url");
  out->first_name = str(doc, "first_name");
  out->last_name = str(doc, "last_name");
  out->created_at = time_of(doc, "created_at");

  if (nemp + nfin == 0) return 0;
  if (!(out->connections = calloc((size_t)(nemp + nfin), sizeof *out->connections)))
    return truv_err_set(err, TRUV_EINTERNAL, "nomem", "out of memory reading an order");
  if (nemp)
    cJSON_ArrayForEach(e, emp) read_connection(e, TRUV_CONN_EMPLOYER, &out->connections[i++]);
  if (nfin)
    cJSON_ArrayForEach(e, fin)
      read_connection(e, TRUV_CONN_FINANCIAL_ACCOUNT, &out->connections[i++]);
  out->nconnections = i;
  return 0;
}

void truv_order_release(truv_order *order) {
  if (!order) return;
  free(order->connections);
  order->connections = NULL;
  order->nconnections = 0;
}
