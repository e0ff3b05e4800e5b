/* The classifier: every answer Truv gives becomes a document or the right
 * typed error, and nothing secret survives into an error. */
#include "check.h"
#include "truv/classify.h"

#define NOW 1800000000.0

static truv_request req;

static void make_request(truv_op op, const char *json) {
  static const truv_config cfg = {"https://prod.truv.com/v1/", "cid", "prod-very-secret", NULL};
  cJSON *params = json ? cJSON_Parse(json) : NULL;
  truv_err err;
  truv_request_free(&req);
  if (truv_request_build(&cfg, op, op == TRUV_OP_CREATE_REFRESH_TASK ? NULL : "o1", params, NULL,
                         &req, &err))
    fprintf(stderr, "cannot build: %s\n", err.message);
  cJSON_Delete(params);
}

/* Classifies status + body (+ one optional header). */
static int classify(int status, const char *body, const char *hname, const char *hvalue,
                    truv_json **doc, truv_err *err) {
  truv_response resp;
  int rc;
  truv_response_init(&resp);
  resp.status = status;
  truv_response_append(&resp, body, strlen(body));
  truv_response_add_header(&resp, "x-request-id", 12, "req-42", 6);
  if (hname) truv_response_add_header(&resp, hname, strlen(hname), hvalue, strlen(hvalue));
  rc = truv_classify(&req, &resp, NOW, doc, err);
  truv_response_free(&resp);
  return rc;
}

static void an_order_is_a_document_with_every_field(void) {
  size_t len;
  char *body = check_fixture("order-example.json", &len);
  truv_json *doc = NULL;
  truv_err err;
  cJSON *e;
  make_request(TRUV_OP_GET_ORDER, NULL);
  CHECK(body != NULL);
  if (!body) return;
  CHECK_INT(classify(200, body, NULL, NULL, &doc, &err), 0);
  CHECK(doc != NULL);
  CHECK_STR(cJSON_GetObjectItem(truv_json_root(doc), "custom_field")->valuestring, "string");
  e = cJSON_GetArrayItem(cJSON_GetObjectItem(truv_json_root(doc), "employers"), 0);
  /* amounts stay the strings Truv sent */
  CHECK_STR(
    cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "employments"), 0), "income")
      ->valuestring,
    "70000.00");
  truv_json_free(doc);
  free(body);
}

static void an_answer_without_the_operations_shape_is_a_protocol_error(void) {
  truv_json *doc = NULL;
  truv_err err;
  make_request(TRUV_OP_CREATE_REFRESH_TASK, "{\"access_token\":\"t\",\"product_type\":\"income\"}");
  CHECK_INT(classify(200, "{\"id\":\"x\"}", NULL, NULL, &doc, &err), TRUV_EPROTOCOL);
  CHECK_STR(err.code, "unexpected_shape");
  CHECK(doc == NULL);
  CHECK_INT(classify(200, "{\"task_id\":\"t1\"}", NULL, NULL, &doc, &err), 0);
  truv_json_free(doc);
  make_request(TRUV_OP_GET_ORDER, NULL);
  CHECK_INT(classify(200, "[1,2]", NULL, NULL, &doc, &err), TRUV_EPROTOCOL);
  CHECK_INT(classify(200, "", NULL, NULL, &doc, &err), TRUV_EPROTOCOL);
  CHECK_STR(err.code, "empty_body");
}

static void malformed_and_truncated_bodies_say_where(void) {
  truv_json *doc = NULL;
  truv_err err;
  make_request(TRUV_OP_GET_ORDER, NULL);
  CHECK_INT(classify(200, "{\"id\": \"abc\", \"employers\": [", NULL, NULL, &doc, &err),
            TRUV_EPROTOCOL);
  CHECK_STR(err.code, "malformed_json");
  CHECK_CONTAINS(err.message, "truncated");
  CHECK_INT(err.status, 200);
  CHECK_STR(err.request_id, "req-42");
  CHECK_INT(classify(200, "{\"id\": nope}", NULL, NULL, &doc, &err), TRUV_EPROTOCOL);
  CHECK_CONTAINS(err.message, "not valid JSON");
  CHECK_INT(classify(200, "{\"id\":\"a\"} trailing", NULL, NULL, &doc, &err), TRUV_EPROTOCOL);
  CHECK_CONTAINS(err.message, "after the JSON value");
  CHECK_INT(classify(200, "{\"id\":\"a\"}\n  ", NULL, NULL, &doc, &err), 0);
  truv_json_free(doc);
}

static void a_400_lists_every_invalid_param(void) {
  truv_json *doc = NULL;
  truv_err err;
  make_request(TRUV_OP_REFRESH_ORDER, "{\"products\":[\"income\"]}");
  CHECK_INT(
    classify(400,
             "{\"error\":{\"code\":\"incorrect_parameters\",\"message\":\"Invalid parameters\","
             "\"extra\":{\"invalid-params\":[{\"field\":\"products\",\"message\":\"bad\"},"
             "{\"field\":\"employers\",\"message\":\"unknown\"}]}}}",
             NULL, NULL, &doc, &err),
    TRUV_EINVALID);
  CHECK_INT(err.status, 400);
  CHECK_STR(err.code, "incorrect_parameters");
  CHECK_INT(err.nfields, 2);
  CHECK_STR(err.fields[1].field, "employers");
  /* older docs: validation_error, and a DRF field map */
  CHECK_INT(classify(400, "{\"first_name\":[\"This field is required.\"]}", NULL, NULL, &doc, &err),
            TRUV_EINVALID);
  CHECK_STR(err.fields[0].field, "first_name");
  CHECK_STR(err.fields[0].message, "This field is required.");
}

static void auth_not_found_and_other_4xx_have_their_kinds(void) {
  truv_json *doc = NULL;
  truv_err err;
  make_request(TRUV_OP_GET_ORDER, NULL);
  CHECK_INT(classify(401,
                     "{\"error\":{\"code\":\"authentication_failed\",\"message\":\"Invalid\"}}",
                     NULL, NULL, &doc, &err),
            TRUV_EAUTH);
  CHECK_STR(err.code, "authentication_failed");
  CHECK_INT(classify(403, "{\"error\":{\"code\":\"not_authenticated\",\"message\":\"No\"}}", NULL,
                     NULL, &doc, &err),
            TRUV_EAUTH);
  CHECK_INT(classify(404, "{\"detail\":\"Not Found.\"}", NULL, NULL, &doc, &err), TRUV_ENOTFOUND);
  CHECK_STR(err.message, "Not Found.");
  CHECK_STR(err.code, "not_found");
  CHECK_INT(classify(410, "{\"error\":{\"code\":\"expired_token\",\"message\":\"Token expired\"}}",
                     NULL, NULL, &doc, &err),
            TRUV_EAPI);
  CHECK_STR(err.code, "expired_token");
  CHECK_INT(
    classify(405, "{\"detail\":\"Method \\\"PUT\\\" not allowed.\"}", NULL, NULL, &doc, &err),
    TRUV_EAPI);
  CHECK_INT(classify(415, "", NULL, NULL, &doc, &err), TRUV_EAPI);
  CHECK_STR(err.code, "unsupported_media_type");
  CHECK_STR(err.message, "HTTP 415");
  CHECK_INT(classify(302, "", NULL, NULL, &doc, &err), TRUV_EPROTOCOL);
}

static void throttling_says_when_to_come_back(void) {
  truv_json *doc = NULL;
  truv_err err;
  make_request(TRUV_OP_GET_ORDER, NULL);
  CHECK_INT(classify(429, "{\"error\":{\"code\":\"throttled\",\"message\":\"Too many\"}}",
                     "Retry-After", "17", &doc, &err),
            TRUV_ETHROTTLED);
  CHECK_DBL(err.retry_at, NOW + 17);
  CHECK_INT(classify(429, "{}", "retry-after", "Fri, 15 Jan 2027 08:00:05 GMT", &doc, &err),
            TRUV_ETHROTTLED);
  CHECK_DBL(err.retry_at, NOW + 5);
  CHECK_INT(classify(429,
                     "{\"detail\":\"Request was throttled. Expected available in 42 seconds.\"}",
                     NULL, NULL, &doc, &err),
            TRUV_ETHROTTLED);
  CHECK_DBL(err.retry_at, NOW + 42);
  CHECK_INT(classify(429,
                     "{\"error\":{\"code\":\"throttled\",\"message\":\"Request was throttled. "
                     "Expected available in 3 seconds.\"}}",
                     NULL, NULL, &doc, &err),
            TRUV_ETHROTTLED);
  CHECK_DBL(err.retry_at, NOW + 3);
  CHECK_INT(classify(429, "{}", NULL, NULL, &doc, &err), TRUV_ETHROTTLED);
  CHECK_DBL(err.retry_at, 0); /* unknown: the retry policy decides */
}

static void the_refresh_limit_message_wins_over_its_status(void) {
  static const int statuses[] = {400, 429, 403};
  truv_json *doc = NULL;
  truv_err err;
  size_t i;
  make_request(TRUV_OP_REFRESH_ORDER, "{\"products\":[\"income\"]}");
  for (i = 0; i < 3; i++) {
    CHECK_INT(
      classify(
        statuses[i],
        "{\"error\":{\"code\":\"x\",\"message\":\"Refresh limit for the access_token exceeded\"}}",
        NULL, NULL, &doc, &err),
      TRUV_EREFRESH_LIMIT);
    CHECK_INT(err.status, statuses[i]);
    CHECK_INT(err.nfields, 0);
  }
  CHECK_INT(classify(400, "{\"detail\":\"refresh limit for the ACCESS_TOKEN exceeded\"}", NULL,
                     NULL, &doc, &err),
            TRUV_EREFRESH_LIMIT);
}

static void server_errors_keep_a_short_readable_body(void) {
  truv_json *doc = NULL;
  truv_err err;
  make_request(TRUV_OP_GET_ORDER, NULL);
  CHECK_INT(classify(502, "<html><body>Bad gateway</body></html>", NULL, NULL, &doc, &err),
            TRUV_ESERVER);
  CHECK_STR(err.code, "server_error");
  CHECK_CONTAINS(err.message, "Bad gateway");
  CHECK_INT(classify(503, "{\"detail\":\"down\"}", "Retry-After", "120", &doc, &err), TRUV_ESERVER);
  CHECK_DBL(err.retry_at, NOW + 120);
}

static void secrets_and_ssns_never_reach_an_error(void) {
  truv_json *doc = NULL;
  truv_err err;
  char line[1024];
  make_request(TRUV_OP_CREATE_REFRESH_TASK,
               "{\"access_token\":\"tok-abcdef123\",\"product_type\":\"income\"}");
  CHECK_INT(
    classify(
      400,
      "{\"error\":{\"code\":\"incorrect_parameters\",\"message\":\"bad token tok-abcdef123 for "
      "prod-very-secret, ssn 991-91-9991 and 123456789\",\"extra\":{\"invalid-params\":"
      "[{\"field\":\"access_token\",\"message\":\"tok-abcdef123 is unknown\"}]}}}",
      NULL, NULL, &doc, &err),
    TRUV_EINVALID);
  truv_err_format(&err, line, sizeof line);
  CHECK_NOT_CONTAINS(line, "tok-abcdef123");
  CHECK_NOT_CONTAINS(line, "prod-very-secret");
  CHECK_NOT_CONTAINS(line, "991-91-9991");
  CHECK_NOT_CONTAINS(line, "123456789");
  CHECK_CONTAINS(line, "[redacted]");
  CHECK_CONTAINS(line, "access_token");
  /* a suborder number (12 digits) is not an SSN */
  CHECK_INT(
    classify(404, "{\"detail\":\"suborder 133982343355 not found\"}", NULL, NULL, &doc, &err),
    TRUV_ENOTFOUND);
  CHECK_CONTAINS(err.message, "133982343355");
}

static void errors_print_on_one_line(void) {
  truv_err err;
  char line[512];
  truv_err_clear(&err);
  truv_err_set(&err, TRUV_ETHROTTLED, "throttled", "slow down");
  err.status = 429;
  err.retry_at = 1800000000;
  snprintf(err.request_id, sizeof err.request_id, "r1");
  truv_err_format(&err, line, sizeof line);
  CHECK_STR(
    line, "throttled (HTTP 429, throttled): slow down; retry at 2027-01-15T08:00:00Z [request r1]");
  truv_err_clear(&err);
  truv_err_set(&err, TRUV_ENETWORK, "connect", "refused");
  truv_err_format(&err, line, sizeof line);
  CHECK_STR(line, "network (connect): refused (the request did not reach Truv)");
  CHECK_INT(truv_err_format(&err, line, 8) > 8, 1); /* reports the length it wanted */
  CHECK_INT(strlen(line), 7);
}

int main(void) {
  RUN(an_order_is_a_document_with_every_field);
  RUN(an_answer_without_the_operations_shape_is_a_protocol_error);
  RUN(malformed_and_truncated_bodies_say_where);
  RUN(a_400_lists_every_invalid_param);
  RUN(auth_not_found_and_other_4xx_have_their_kinds);
  RUN(throttling_says_when_to_come_back);
  RUN(the_refresh_limit_message_wins_over_its_status);
  RUN(server_errors_keep_a_short_readable_body);
  RUN(secrets_and_ssns_never_reach_an_error);
  RUN(errors_print_on_one_line);
  truv_request_free(&req);
  return CHECK_DONE();
}
