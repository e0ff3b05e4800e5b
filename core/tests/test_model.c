/* Order models: what the workflow reads from an order, and refusals of
 * documents that lack it. */
#include "check.h"
#include "truv/json.h"
#include "truv/model.h"

static int read_json(const char *s, truv_json **doc, truv_order *o, truv_err *err) {
  *doc = truv_json_parse(s, strlen(s), err);
  if (!*doc) return -1;
  return truv_order_read(truv_json_root(*doc), o, err);
}

static void the_fixture_order_reads_completely(void) {
  size_t len;
  char *body = check_fixture("order-example.json", &len);
  truv_json *doc;
  truv_order o;
  truv_err err;
  CHECK(body != NULL);
  if (!body) return;
  CHECK_INT(read_json(body, &doc, &o, &err), 0);
  CHECK_STR(o.id, "39aa1486ccca4bc19cda071ffc1ba392");
  CHECK_STR(o.order_number, "1534332");
  CHECK_STR(o.initial_order, "f5dc0239e2094dbc90ab2edc1918a9df");
  CHECK_STR(o.refresh_order, "9b96606355b94e8abff8ed8d75aa2027");
  CHECK_INT(o.nproducts, 1);
  CHECK_STR(o.products[0], "income");
  CHECK_INT(o.nconnections, 2);
  CHECK_INT(o.connections[1].kind, TRUV_CONN_FINANCIAL_ACCOUNT);
  CHECK_STR(o.connections[1].product_type, "transactions");
  CHECK_STR(o.connections[0].access_token, "e4100fccdae94691b4414c7306220c06");
  CHECK_STR(o.connections[0].suborder_number, "133982343355");
  CHECK_STR(o.connections[0].provider_id, "truv_api");
  CHECK_STR(o.connections[0].company_name, "Facebook Demo");
  CHECK_DBL(o.connections[0].created_at, 1619043179.346109);
  CHECK_INT(o.connections[0].kind, TRUV_CONN_EMPLOYER);
  truv_order_release(&o);
  truv_json_free(doc);
  free(body);
}

static void employers_come_before_financial_accounts(void) {
  truv_json *doc;
  truv_order o;
  truv_err err;
  CHECK_INT(
    read_json("{\"id\":\"o\",\"financial_accounts\":[{\"id\":\"f1\",\"suborder_number\":77}],"
              "\"employers\":[{\"id\":\"e1\"},{\"id\":\"e2\",\"access_token\":null}]}",
              &doc, &o, &err),
    0);
  CHECK_INT(o.nconnections, 3);
  CHECK_STR(o.connections[0].id, "e1");
  CHECK_STR(o.connections[1].id, "e2");
  CHECK(o.connections[1].access_token == NULL);
  CHECK_STR(o.connections[2].id, "f1");
  CHECK_STR(o.connections[2].suborder_number, "77");
  CHECK_INT(o.connections[2].kind, TRUV_CONN_FINANCIAL_ACCOUNT);
  CHECK_DBL(o.connections[0].created_at, -1);
  truv_order_release(&o);
  truv_json_free(doc);
}

static void documents_without_what_the_workflow_needs_are_refused(void) {
  static const struct {
    const char *json, *why;
  } bad[] = {
    {"[]", "not an object"},
    {"{}", "id is missing"},
    {"{\"id\":7}", "id is missing"},
    {"{\"id\":\"o\",\"products\":\"income\"}", "products is not an array"},
    {"{\"id\":\"o\",\"products\":[1]}", "non-string"},
    {"{\"id\":\"o\",\"employers\":{}}", "employers is not an array"},
    {"{\"id\":\"o\",\"employers\":[{\"id\":\"a\"},{\"name\":\"b\"}]}",
     "employers[2] has no string id"},
  };
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    truv_json *doc;
    truv_order o;
    truv_err err;
    CHECK_INT(read_json(bad[i].json, &doc, &o, &err), TRUV_EPROTOCOL);
    CHECK_STR(err.code, "unexpected_shape");
    CHECK_CONTAINS(err.message, bad[i].why);
    truv_order_release(&o);
    truv_json_free(doc);
  }
}

static void unknown_and_mistyped_optional_fields_are_ignored(void) {
  truv_json *doc;
  truv_order o;
  truv_err err;
  CHECK_INT(read_json("{\"id\":\"o\",\"order_number\":5,\"new_field\":{\"x\":1},\"employers\":null,"
                      "\"refresh_order\":null,\"created_at\":\"garbage\"}",
                      &doc, &o, &err),
            0);
  CHECK(o.order_number == NULL);
  CHECK(o.refresh_order == NULL);
  CHECK_DBL(o.created_at, -1);
  CHECK_INT(o.nconnections, 0);
  truv_order_release(&o);
  truv_json_free(doc);
}

int main(void) {
  RUN(the_fixture_order_reads_completely);
  RUN(employers_come_before_financial_accounts);
  RUN(documents_without_what_the_workflow_needs_are_refused);
  RUN(unknown_and_mistyped_optional_fields_are_ignored);
  return CHECK_DONE();
}
