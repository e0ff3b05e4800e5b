/* libFuzzer target: the response classifier and the order model.
 *
 * Input layout: byte 0 picks the operation, bytes 1-2 the HTTP status, byte
 * 3 whether a Retry-After header is present (its value follows, up to a
 * newline), the rest is the body. Whatever the bytes, classification must
 * end in a document or a typed error, never a crash or a leak; a document
 * accepted for an order must read as an order model or be refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "truv/classify.h"
#include "truv/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const truv_config cfg = {"https://prod.truv.com/v1/", "cid", "secret-xyz", NULL};
  truv_request req;
  truv_response resp;
  truv_json *doc = NULL;
  truv_err err;
  truv_op op;
  size_t at = 4;
  cJSON *params = NULL;

  if (size < 4) return 0;
  op = (truv_op)(data[0] % TRUV_OP_COUNT);
  if (op == TRUV_OP_REFRESH_ORDER) params = cJSON_Parse("{\"products\":[\"income\"]}");
  else if (op == TRUV_OP_CREATE_REFRESH_TASK)
    params = cJSON_Parse("{\"access_token\":\"tok-1234\",\"product_type\":\"income\"}");
  else if (op == TRUV_OP_CREATE_ORDER)
    params = cJSON_Parse("{\"products\":[\"income\"],\"first_name\":\"a\",\"last_name\":\"b\"}");
  else if (op == TRUV_OP_CREATE_BRIDGE_TOKEN) params = cJSON_Parse("{\"product_type\":\"income\"}");
  if (truv_request_build(&cfg, op, "id1", params, NULL, &req, &err)) abort();
  cJSON_Delete(params);

  truv_response_init(&resp);
  resp.status = 100 + (data[1] << 8 | data[2]) % 500;
  if (data[3] & 1) {
    const uint8_t *nl = memchr(data + 4, '\n', size - 4);
    size_t vlen = nl ? (size_t)(nl - data - 4) : size - 4;
    truv_response_add_header(&resp, "Retry-After", 11, (const char *)data + 4, vlen);
    at = 4 + vlen + (nl ? 1 : 0);
  }
  truv_response_append(&resp, (const char *)data + at, size - at);

  if (truv_classify(&req, &resp, 1800000000.0, &doc, &err) == 0 && doc) {
    /* every accepted document goes through the order model: the reader must
     * refuse what is not an order and never leave anything to free then */
    truv_order order;
    if (truv_order_read(truv_json_root(doc), &order, &err) == 0 && !order.id) abort();
    truv_order_release(&order);
  } else if (err.kind == TRUV_OK && doc == NULL && resp.status != 204) {
    abort(); /* neither a document nor an error */
  }
  truv_json_free(doc);
  truv_response_free(&resp);
  truv_request_free(&req);
  return 0;
}
