/* libFuzzer target: the order model over any JSON text.
 *
 * The bytes are parsed as a document (the arena parser every answer goes
 * through), then read as an order. Whatever the bytes: the parser ends in a
 * document or a typed error; the model reader either refuses the document
 * with a typed error or returns an order whose promised fields hold (a
 * string id, products that are strings, connections each of a known kind
 * with a string id); nothing leaks, nothing is read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "truv/json.h"
#include "truv/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reads a whole string (AddressSanitizer checks each byte), in a way the
 * compiler cannot drop. */
static volatile size_t touched;
static void touch(const char *s) {
  touched += strlen(s);
}

static void check_order(const truv_order *o) {
  size_t i;
  if (!o->id) abort();
  touch(o->id);
  if (o->nproducts > TRUV_MODEL_MAX_PRODUCTS) abort();
  for (i = 0; i < o->nproducts; i++)
    if (!o->products[i]) abort();
  if (o->nconnections && !o->connections) abort();
  for (i = 0; i < o->nconnections; i++) {
    const truv_connection *c = &o->connections[i];
    if (!c->id) abort();
    if (c->kind != TRUV_CONN_EMPLOYER && c->kind != TRUV_CONN_FINANCIAL_ACCOUNT) abort();
    if (c->suborder_number) touch(c->suborder_number);
    if (c->access_token) touch(c->access_token);
    if (!truv_connection_kind_name(c->kind)) abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  truv_err err;
  truv_order order;
  truv_json *doc = truv_json_parse((const char *)data, size, &err);
  if (!doc) {
    if (err.kind == TRUV_OK) abort(); /* refused without saying why */
    return 0;
  }
  if (truv_order_read(truv_json_root(doc), &order, &err) == 0) {
    check_order(&order);
    truv_order_release(&order);
  } else if (err.kind == TRUV_OK) {
    abort();
  }
  truv_json_free(doc);
  return 0;
}
