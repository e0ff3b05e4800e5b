/* The request builder: paths, headers, bodies, and every validation rule. */
#include <cjson/cJSON.h>

#include "check.h"
#include "truv/request.h"

static const truv_config cfg = {"http://127.0.0.1:8080/v1/", "client-1", "sandbox-s3cret", NULL};

static int build(truv_op op, const char *id, const char *json, const truv_order_facts *facts,
                 truv_request *req, truv_err *err) {
  cJSON *params = json ? cJSON_Parse(json) : NULL;
  int rc;
  if (json && !params) {
    fprintf(stderr, "bad test JSON: %s\n", json);
    return -1;
  }
  rc = truv_request_build(&cfg, op, id, params, facts, req, err);
  cJSON_Delete(params);
  return rc;
}

/* The fields of err joined as "a,b,c". */
static const char *fields(const truv_err *err) {
  static char buf[1024];
  size_t n = 0;
  int i;
  buf[0] = '\0';
  for (i = 0; i < err->nfields; i++)
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? "," : "", err->fields[i].field);
  return buf;
}

static const char *header(const truv_request *req, const char *prefix) {
  size_t i;
  for (i = 0; i < req->nheaders; i++)
    if (strncmp(req->headers[i], prefix, strlen(prefix)) == 0) return req->headers[i];
  return NULL;
}

static void every_endpoint_has_its_path_and_method(void) {
  static const struct {
    truv_op op;
    const char *id;
    const char *body;
    const char *method, *target;
  } c[] = {
    {TRUV_OP_CREATE_ORDER, NULL,
     "{\"products\":[\"income\"],\"first_name\":\"A\",\"last_name\":\"B\"}", "POST", "/v1/orders/"},
    {TRUV_OP_GET_ORDER, "ab12", NULL, "GET", "/v1/orders/ab12/"},
    {TRUV_OP_REFRESH_ORDER, "ab12", "{\"products\":[\"income\"]}", "POST", "/v1/orders/ab12/"},
    {TRUV_OP_LIST_ORDER_EVENTS, "ab12", NULL, "GET", "/v1/orders/ab12/events/"},
    {TRUV_OP_CREATE_REFRESH_TASK, NULL, "{\"access_token\":\"tok\",\"product_type\":\"income\"}",
     "POST", "/v1/refresh/tasks/"},
    {TRUV_OP_GET_REFRESH_TASK, "t1", NULL, "GET", "/v1/refresh/tasks/t1/"},
    {TRUV_OP_CREATE_BRIDGE_TOKEN, "u1", "{\"product_type\":\"income\",\"access_token\":\"tok\"}",
     "POST", "/v1/users/u1/tokens/"},
    {TRUV_OP_LIST_TASKS, NULL, NULL, "GET", "/v1/tasks/"},
    {TRUV_OP_GET_TASK, "t1", NULL, "GET", "/v1/tasks/t1/"},
  };
  size_t i;
  for (i = 0; i < sizeof c / sizeof c[0]; i++) {
    truv_request req;
    truv_err err;
    CHECK_INT(build(c[i].op, c[i].id, c[i].body, NULL, &req, &err), 0);
    CHECK_STR(req.method, c[i].method);
    CHECK_STR(req.target, c[i].target);
    CHECK_STR(req.host, "127.0.0.1:8080");
    CHECK(strncmp(req.url, "http://127.0.0.1:8080/v1/", 25) == 0);
    CHECK(req.target[strlen(req.target) - 1] == '/');
    truv_request_free(&req);
  }
}

static void a_users_tasks_are_listed_by_query(void) {
  truv_request req;
  truv_err err;
  CHECK_INT(build(TRUV_OP_LIST_TASKS, NULL, "{\"user_id\":\"u1\",\"page\":2}", NULL, &req, &err),
            0);
  CHECK_STR(req.target, "/v1/tasks/?user_id=u1&page=2");
  CHECK(truv_op_flags(TRUV_OP_LIST_TASKS) & TRUV_REQ_SAFE);
  CHECK(truv_op_flags(TRUV_OP_GET_TASK) & TRUV_REQ_SAFE);
  truv_request_free(&req);
  CHECK_INT(build(TRUV_OP_GET_TASK, "a/b", NULL, NULL, &req, &err), TRUV_EINVALID);
  CHECK_STR(err.fields[0].field, "task_id");
}

static void refreshes_are_billed_and_gets_are_safe(void) {
  CHECK(truv_op_flags(TRUV_OP_REFRESH_ORDER) & TRUV_REQ_BILLED);
  CHECK(truv_op_flags(TRUV_OP_CREATE_REFRESH_TASK) & TRUV_REQ_BILLED);
  CHECK(truv_op_flags(TRUV_OP_GET_ORDER) & TRUV_REQ_SAFE);
  CHECK(!(truv_op_flags(TRUV_OP_CREATE_ORDER) & (TRUV_REQ_SAFE | TRUV_REQ_BILLED)));
  CHECK_INT(truv_op_from_name("refresh_order"), TRUV_OP_REFRESH_ORDER);
  CHECK_INT(truv_op_from_name("nope"), -1);
}

static void headers_carry_credentials_version_and_json(void) {
  truv_request req;
  truv_err err;
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "ab12", "{\"products\":[\"income\"]}", NULL, &req, &err),
            0);
  CHECK_STR(header(&req, "X-Access-Client-Id:"), "X-Access-Client-Id: client-1");
  CHECK_STR(header(&req, "X-Access-Secret:"), "X-Access-Secret: sandbox-s3cret");
  CHECK_STR(header(&req, "Content-Type:"), "Content-Type: application/json");
  CHECK_STR(header(&req, "Accept:"), "Accept: application/json");
  CHECK_CONTAINS(header(&req, "User-Agent:"), "lua-truv/" TRUV_VERSION);
  CHECK_STR(req.body, "{\"products\":[\"income\"]}");
  CHECK_INT(req.body_len, strlen(req.body));
  CHECK_STR(req.redact[0], "sandbox-s3cret");
  truv_request_free(&req);
}

static void default_base_url_is_truv_production(void) {
  truv_config c = {NULL, "id", "secret", NULL};
  truv_request req;
  truv_err err;
  CHECK_INT(truv_request_build(&c, TRUV_OP_GET_ORDER, "x1", NULL, NULL, &req, &err), 0);
  CHECK_STR(req.url, "https://prod.truv.com/v1/orders/x1/");
  CHECK_STR(req.host, "prod.truv.com");
  truv_request_free(&req);
  c.base_url = "https://example.test/api/v1"; /* the final slash is added */
  CHECK_INT(truv_request_build(&c, TRUV_OP_GET_ORDER, "x1", NULL, NULL, &req, &err), 0);
  CHECK_STR(req.url, "https://example.test/api/v1/orders/x1/");
  CHECK_STR(req.target, "/api/v1/orders/x1/");
  truv_request_free(&req);
}

static void get_parameters_become_an_encoded_query(void) {
  truv_request req;
  truv_err err;
  CHECK_INT(build(TRUV_OP_LIST_ORDER_EVENTS, "ab12", "{\"page\":2,\"q\":\"a b&c\",\"x\":true}",
                  NULL, &req, &err),
            0);
  CHECK_STR(req.target, "/v1/orders/ab12/events/?page=2&q=a%20b%26c&x=true");
  CHECK(req.body == NULL);
  truv_request_free(&req);
  CHECK_INT(build(TRUV_OP_LIST_ORDER_EVENTS, "ab12", "{\"page\":{\"a\":1}}", NULL, &req, &err),
            TRUV_EINVALID);
  CHECK_STR(fields(&err), "page");
}

static void ids_must_be_path_safe(void) {
  truv_request req;
  truv_err err;
  CHECK_INT(build(TRUV_OP_GET_ORDER, "../admin", NULL, NULL, &req, &err), TRUV_EINVALID);
  CHECK_STR(fields(&err), "order_id");
  CHECK_INT(build(TRUV_OP_GET_ORDER, "", NULL, NULL, &req, &err), TRUV_EINVALID);
  CHECK_INT(build(TRUV_OP_GET_ORDER, NULL, NULL, NULL, &req, &err), TRUV_EINVALID);
  CHECK_INT(build(TRUV_OP_GET_REFRESH_TASK, "a?b", NULL, NULL, &req, &err), TRUV_EINVALID);
  CHECK_STR(fields(&err), "task_id");
  CHECK_INT(
    build(TRUV_OP_CREATE_BRIDGE_TOKEN, "u/1", "{\"product_type\":\"income\"}", NULL, &req, &err),
    TRUV_EINVALID);
  CHECK_STR(fields(&err), "user_id");
}

static void a_refresh_takes_exactly_one_known_product(void) {
  truv_request req;
  truv_err err;
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", "{\"products\":[\"income\",\"employment\"]}", NULL,
                  &req, &err),
            TRUV_EINVALID);
  CHECK_STR(fields(&err), "products");
  CHECK_CONTAINS(err.fields[0].message, "exactly one");
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", "{\"products\":[]}", NULL, &req, &err),
            TRUV_EINVALID);
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", "{}", NULL, &req, &err), TRUV_EINVALID);
  CHECK_STR(fields(&err), "products");
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", "{\"products\":[\"pll\"]}", NULL, &req, &err),
            TRUV_EINVALID);
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", "{\"products\":\"income\"}", NULL, &req, &err),
            TRUV_EINVALID);
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", "{\"products\":[\"assets\"]}", NULL, &req, &err), 0);
  truv_request_free(&req);
}

static void income_orders_refresh_as_income_or_employment_only(void) {
  const char *income[] = {"income"}, *employment[] = {"employment"}, *assets[] = {"assets"};
  truv_order_facts fi = {income, 1}, fe = {employment, 1}, fa = {assets, 1};
  truv_request req;
  truv_err err;
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", "{\"products\":[\"income\"]}", &fi, &req, &err), 0);
  truv_request_free(&req);
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", "{\"products\":[\"employment\"]}", &fi, &req, &err),
            0);
  truv_request_free(&req);
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", "{\"products\":[\"assets\"]}", &fi, &req, &err),
            TRUV_EINVALID);
  CHECK_CONTAINS(err.fields[0].message, "income order");
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", "{\"products\":[\"income\"]}", &fe, &req, &err),
            TRUV_EINVALID);
  CHECK_CONTAINS(err.fields[0].message, "only as employment");
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", "{\"products\":[\"employment\"]}", &fe, &req, &err),
            0);
  truv_request_free(&req);
  /* no documented rule for other products: left to Truv */
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", "{\"products\":[\"assets\"]}", &fa, &req, &err), 0);
  truv_request_free(&req);
}

static void connections_are_named_by_id_or_suborder_number(void) {
  truv_request req;
  truv_err err;
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1",
                  "{\"products\":[\"income\"],\"employers\":[{\"id\":\"e1\"},{\"suborder_number\":"
                  "\"133\"},{\"suborder_number\":7}],"
                  "\"financial_accounts\":[{\"id\":\"f1\"}]}",
                  NULL, &req, &err),
            0);
  truv_request_free(&req);
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1",
                  "{\"products\":[\"income\"],\"employers\":[{\"name\":\"x\"},{\"id\":\"e1\","
                  "\"suborder_number\":\"1\"},\"e3\"],"
                  "\"financial_accounts\":[]}",
                  NULL, &req, &err),
            TRUV_EINVALID);
  CHECK_STR(fields(&err), "employers[1],employers[3],financial_accounts");
  /* Truv's own request example names each connection by both keys */
  CHECK_INT(
    build(
      TRUV_OP_REFRESH_ORDER, "o1",
      "{\"products\":[\"employment\"],\"employers\":[{\"id\":\"e1\",\"suborder_number\":\"133\"}],"
      "\"financial_accounts\":[{\"id\":\"f1\",\"suborder_number\":\"134\"}]}",
      NULL, &req, &err),
    0);
  CHECK_CONTAINS(req.body, "{\"id\":\"e1\",\"suborder_number\":\"133\"}");
  truv_request_free(&req);
  /* both keys, each checked */
  CHECK_INT(
    build(TRUV_OP_REFRESH_ORDER, "o1",
          "{\"products\":[\"income\"],\"employers\":[{\"id\":\"e 1\",\"suborder_number\":true}]}",
          NULL, &req, &err),
    TRUV_EINVALID);
  CHECK_INT(err.nfields, 2);
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1",
                  "{\"products\":[\"income\"],\"employers\":[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":"
                  "\"c\"},{\"id\":\"d\"},{\"id\":\"e\"},{\"id\":\"f\"}]}",
                  NULL, &req, &err),
            TRUV_EINVALID);
  CHECK_CONTAINS(err.fields[0].message, "at most 5");
}

static void every_documented_refresh_field_is_checked_and_sent(void) {
  truv_request req;
  truv_err err;
  const char *ok =
    "{\"products\":[\"assets\"],\"manager\":{\"email\":\"m@x.io\"},\"email\":\"a@b.co\","
    "\"phone\":\"(415) 555-4193\",\"include_recent_paystub\":true,"
    "\"reports\":{\"voa\":{\"days_requested\":380,\"as_of_date\":\"2026-01-02T00:00:00Z\","
    "\"large_deposit_threshold\":{\"fixed_amount\":\"500.00\",\"sales_price\":300000,"
    "\"qualifying_monthly_income\":\"5000\",\"loan_type\":\"FHA\"},\"is_voe\":false,"
    "\"request_extended_history\":true,\"account_ids\":[\"a1\",\"a2\"]}},\"future_field\":1}";
  CHECK_INT(build(TRUV_OP_REFRESH_ORDER, "o1", ok, NULL, &req, &err), 0);
  CHECK_CONTAINS(req.body, "\"days_requested\":380");
  CHECK_CONTAINS(req.body, "\"future_field\":1"); /* unknown fields pass through */
  CHECK_CONTAINS(req.body, "\"include_recent_paystub\":true");
  truv_request_free(&req);
  CHECK_INT(
    build(TRUV_OP_REFRESH_ORDER, "o1",
          "{\"products\":[\"assets\"],\"manager\":1,\"email\":\"nope\",\"phone\":\"12\","
          "\"include_recent_paystub\":\"yes\",\"reports\":{\"voa\":{\"days_requested\":0,"
          "\"as_of_date\":5,\"is_voe\":1,\"request_extended_history\":\"x\",\"account_ids\":[1],"
          "\"large_deposit_threshold\":{\"fixed_amount\":\"-1\",\"loan_type\":3}}}}",
          NULL, &req, &err),
    TRUV_EINVALID);
  CHECK_STR(fields(&err),
            "manager,email,phone,include_recent_paystub,reports.voa.days_requested,"
            "reports.voa.as_of_date,reports.voa.is_voe,reports.voa.request_extended_history,"
            "reports.voa.account_ids,reports.voa.large_deposit_threshold.fixed_amount,"
            "reports.voa.large_deposit_threshold.loan_type");
}

static void notes_and_cc_emails_have_limits(void) {
  char body[4300];
  truv_request req;
  truv_err err;
  int i, n;
  CHECK_INT(
    build(TRUV_OP_CREATE_ORDER, NULL,
          "{\"products\":[\"income\"],\"first_name\":\"A\",\"last_name\":\"B\",\"notes\":\"\"}",
          NULL, &req, &err),
    TRUV_EINVALID);
  CHECK_STR(fields(&err), "notes");
  n = snprintf(body, sizeof body,
               "{\"products\":[\"income\"],\"first_name\":\"A\",\"last_name\":\"B\",\"notes\":\"");
  for (i = 0; i < 2000; i++) body[n++] = 'x';
  snprintf(body + n, sizeof body - (size_t)n, "\"}");
  CHECK_INT(build(TRUV_OP_CREATE_ORDER, NULL, body, NULL, &req, &err), 0);
  truv_request_free(&req);
  snprintf(body + n, sizeof body - (size_t)n, "x\"}");
  CHECK_INT(build(TRUV_OP_CREATE_ORDER, NULL, body, NULL, &req, &err), TRUV_EINVALID);
  CHECK_CONTAINS(err.fields[0].message, "got 2001");
  /* notes count characters, not bytes */
  CHECK_INT(
    build(
      TRUV_OP_CREATE_ORDER, NULL,
      "{\"products\":[\"income\"],\"first_name\":\"A\",\"last_name\":\"B\",\"notes\":\"\xc3\xa9\"}",
      NULL, &req, &err),
    0);
  truv_request_free(&req);
  n =
    snprintf(body, sizeof body,
             "{\"products\":[\"income\"],\"first_name\":\"A\",\"last_name\":\"B\",\"cc_emails\":[");
  for (i = 0; i < 16; i++)
    n += snprintf(body + n, sizeof body - (size_t)n, "%s\"c%d@x.io\"", i ? "," : "", i);
  snprintf(body + n, sizeof body - (size_t)n, "]}");
  CHECK_INT(build(TRUV_OP_CREATE_ORDER, NULL, body, NULL, &req, &err), TRUV_EINVALID);
  CHECK_STR(fields(&err), "cc_emails");
  CHECK_INT(build(TRUV_OP_CREATE_ORDER, NULL,
                  "{\"products\":[\"income\"],\"first_name\":\"A\",\"last_name\":\"B\",\"cc_"
                  "emails\":[\"ok@x.io\",\"bad\"]}",
                  NULL, &req, &err),
            TRUV_EINVALID);
  CHECK_STR(fields(&err), "cc_emails[2]");
}

static void create_order_needs_names_products_and_valid_contacts(void) {
  truv_request req;
  truv_err err;
  CHECK_INT(build(TRUV_OP_CREATE_ORDER, NULL, "{}", NULL, &req, &err), TRUV_EINVALID);
  CHECK_STR(fields(&err), "products,first_name,last_name");
  CHECK_INT(build(TRUV_OP_CREATE_ORDER, NULL,
                  "{\"products\":[\"income\",\"income\"],\"first_name\":\"\",\"last_name\":\"B\","
                  "\"email\":\"a@b\",\"phone\":\"555-CALL-NOW\",\"ssn\":\"12-34\","
                  "\"employers\":[{\"company_name\":\"A\"},{\"x\":1}],\"financial_institutions\":[{"
                  "\"id\":1},{\"id\":2},{\"id\":3},{\"id\":4},{\"id\":5},{\"id\":6}]}",
                  NULL, &req, &err),
            TRUV_EINVALID);
  CHECK_STR(fields(&err),
            "products,first_name,email,phone,ssn,employers[2],financial_institutions");
  CHECK_INT(
    build(
      TRUV_OP_CREATE_ORDER, NULL,
      "{\"products\":[\"income\",\"assets\"],\"first_name\":\"A\",\"last_name\":\"B\","
      "\"email\":\"a.b+c@mail.example.com\",\"phone\":\"+1 415.555.4193\",\"ssn\":\"991-91-9991\","
      "\"order_number\":\"1534332\"}",
      NULL, &req, &err),
    0);
  /* SSNs are secrets: listed for redaction */
  CHECK_STR(req.redact[1], "991-91-9991");
  truv_request_free(&req);
  /* the last 4 digits, or all 9 */
  CHECK_INT(
    build(TRUV_OP_CREATE_ORDER, NULL,
          "{\"products\":[\"income\"],\"first_name\":\"A\",\"last_name\":\"B\",\"ssn\":\"9991\"}",
          NULL, &req, &err),
    0);
  truv_request_free(&req);
  CHECK_INT(build(TRUV_OP_CREATE_ORDER, NULL,
                  "{\"products\":[\"income\"],\"first_name\":\"A\",\"last_name\":\"B\","
                  "\"social_security_number\":\"991919991\"}",
                  NULL, &req, &err),
            0);
  truv_request_free(&req);
  {
    static const char *const bad[] = {"999",        "99911", "99-91", "12345678",
                                      "1234567890", "99a1",  ""};
    size_t i;
    char body[160];
    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
      snprintf(
        body, sizeof body,
        "{\"products\":[\"income\"],\"first_name\":\"A\",\"last_name\":\"B\",\"ssn\":\"%s\"}",
        bad[i]);
      CHECK_INT(build(TRUV_OP_CREATE_ORDER, NULL, body, NULL, &req, &err), TRUV_EINVALID);
      CHECK_STR(fields(&err), "ssn");
    }
  }
}

static void refresh_tasks_and_bridge_tokens_need_a_product_type(void) {
  truv_request req;
  truv_err err;
  CHECK_INT(
    build(TRUV_OP_CREATE_REFRESH_TASK, NULL, "{\"access_token\":\"tok\"}", NULL, &req, &err),
    TRUV_EINVALID);
  CHECK_STR(fields(&err), "product_type");
  CHECK_INT(
    build(TRUV_OP_CREATE_REFRESH_TASK, NULL, "{\"product_type\":\"nope\"}", NULL, &req, &err),
    TRUV_EINVALID);
  CHECK_STR(fields(&err), "access_token,product_type");
  CHECK_INT(build(TRUV_OP_CREATE_REFRESH_TASK, NULL,
                  "{\"access_token\":\"tok-123\",\"product_type\":\"pll\"}", NULL, &req, &err),
            0);
  CHECK_STR(req.redact[1], "tok-123"); /* access tokens are secrets */
  truv_request_free(&req);
  CHECK_INT(build(TRUV_OP_CREATE_BRIDGE_TOKEN, "u1", NULL, NULL, &req, &err), TRUV_EINVALID);
  CHECK_STR(fields(&err), "product_type");
  CHECK_INT(build(TRUV_OP_CREATE_BRIDGE_TOKEN, "u1",
                  "{\"product_type\":\"income\",\"access_token\":5}", NULL, &req, &err),
            TRUV_EINVALID);
  CHECK_STR(fields(&err), "access_token");
}

static void configuration_is_checked(void) {
  truv_config c = cfg;
  truv_request req;
  truv_err err;
  c.secret = "";
  CHECK_INT(truv_request_build(&c, TRUV_OP_GET_ORDER, "x", NULL, NULL, &req, &err), TRUV_EINVALID);
  CHECK_STR(fields(&err), "secret");
  c = cfg;
  c.client_id = "id\r\nX-Evil: 1";
  CHECK_INT(truv_request_build(&c, TRUV_OP_GET_ORDER, "x", NULL, NULL, &req, &err), TRUV_EINVALID);
  CHECK_STR(fields(&err), "client_id");
  c = cfg;
  c.base_url = "ftp://example.test/";
  CHECK_INT(truv_request_build(&c, TRUV_OP_GET_ORDER, "x", NULL, NULL, &req, &err), TRUV_EINVALID);
  CHECK_STR(fields(&err), "base_url");
}

static void at_most_sixteen_fields_are_kept_and_the_rest_counted(void) {
  truv_err err;
  int i;
  truv_err_clear(&err);
  for (i = 0; i < 20; i++) truv_err_invalid(&err, "f", "m%d", i);
  CHECK_INT(err.nfields, TRUV_ERR_MAX_FIELDS);
  CHECK_INT(err.fields_dropped, 4);
}

int main(void) {
  RUN(every_endpoint_has_its_path_and_method);
  RUN(a_users_tasks_are_listed_by_query);
  RUN(refreshes_are_billed_and_gets_are_safe);
  RUN(headers_carry_credentials_version_and_json);
  RUN(default_base_url_is_truv_production);
  RUN(get_parameters_become_an_encoded_query);
  RUN(ids_must_be_path_safe);
  RUN(a_refresh_takes_exactly_one_known_product);
  RUN(income_orders_refresh_as_income_or_employment_only);
  RUN(connections_are_named_by_id_or_suborder_number);
  RUN(every_documented_refresh_field_is_checked_and_sent);
  RUN(notes_and_cc_emails_have_limits);
  RUN(create_order_needs_names_products_and_valid_contacts);
  RUN(refresh_tasks_and_bridge_tokens_need_a_product_type);
  RUN(configuration_is_checked);
  RUN(at_most_sixteen_fields_are_kept_and_the_rest_counted);
  return CHECK_DONE();
}
