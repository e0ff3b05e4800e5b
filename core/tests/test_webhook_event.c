/* Webhook events: every kind Truv sends (spec/fixtures/webhooks/), the
 * fields the workflow routes on, the time fallbacks, and refusals of
 * bodies that are not Truv events. */
#include "check.h"
#include "truv/webhook.h"

#define USER "99dd17074ac94aa9ace2621d657c7610"
#define LINK "24d7e80942ce4ad58a93f70ce4115f5c"

static int parse_text(const char *s, truv_webhook_event *ev, truv_err *err) {
  truv_err_clear(err);
  return truv_webhook_parse(s, strlen(s), ev, err);
}

/* Parses spec/fixtures/webhooks/<name>.json; the body stays alive in *body. */
static int parse_fixture(const char *name, char **body, truv_webhook_event *ev) {
  char path[128];
  size_t len = 0;
  truv_err err;
  snprintf(path, sizeof path, "webhooks/%s.json", name);
  *body = check_fixture(path, &len);
  if (!*body) {
    fprintf(stderr, "fixture %s missing\n", path);
    return -1;
  }
  truv_err_clear(&err);
  return truv_webhook_parse(*body, len, ev, &err);
}

static void every_fixture_parses_to_its_kind(void) {
  static const struct {
    const char *name;
    truv_webhook_kind kind;
  } cases[] = {
    {"order-created", TRUV_WEBHOOK_ORDER_CREATED},
    {"order-status-updated", TRUV_WEBHOOK_ORDER_STATUS_UPDATED},
    {"order-refresh-failed", TRUV_WEBHOOK_ORDER_REFRESH_FAILED},
    {"order-finalized", TRUV_WEBHOOK_ORDER_FINALIZED},
    {"task-status-updated", TRUV_WEBHOOK_TASK_STATUS_UPDATED},
    {"link-connected", TRUV_WEBHOOK_LINK_CONNECTED},
    {"link-disconnected", TRUV_WEBHOOK_LINK_DISCONNECTED},
    {"link-deleted", TRUV_WEBHOOK_LINK_DELETED},
    {"certification-completed", TRUV_WEBHOOK_CERTIFICATION_COMPLETED},
    {"employment-updated", TRUV_WEBHOOK_DATA},
    {"statements-created", TRUV_WEBHOOK_DATA},
    {"unknown-event", TRUV_WEBHOOK_UNKNOWN},
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof *cases; i++) {
    truv_webhook_event ev;
    char *body;
    CHECK_INT(parse_fixture(cases[i].name, &body, &ev), 0);
    CHECK_INT(ev.kind, cases[i].kind);
    CHECK(ev.doc != NULL);
    CHECK(ev.webhook_id && strlen(ev.webhook_id) == 32);
    CHECK_STR(ev.user_id, USER);
    CHECK(ev.updated_at > 1700000000.0);
    if (cases[i].kind != TRUV_WEBHOOK_UNKNOWN && cases[i].kind != TRUV_WEBHOOK_DATA)
      CHECK_STR(truv_webhook_kind_name(ev.kind), ev.event_type);
    truv_webhook_event_free(&ev);
    free(body);
  }
}

static void a_task_event_carries_task_link_and_status(void) {
  truv_webhook_event ev;
  char *body;
  CHECK_INT(parse_fixture("task-status-updated", &body, &ev), 0);
  CHECK_STR(ev.event_type, "task-status-updated");
  CHECK_STR(ev.webhook_id, "1a3c5e7f9b0d4f2a8c6e0b2d4f6a8c91");
  CHECK_STR(ev.task_id, "c4e6a8b0d2f14e3c9a7b5d3f1e0c2a46");
  CHECK_STR(ev.link_id, LINK);
  CHECK_STR(ev.product, "income");
  CHECK_STR(ev.data_source, "payroll");
  CHECK_STR(ev.tracking_info, "ad9f14440d624ec3b0f66e81e44518c7");
  CHECK_STR(ev.status, "done");
  CHECK(ev.template_id == NULL); /* JSON null */
  CHECK(ev.order_id == NULL);
  CHECK_STR(ev.event_created_at, "2024-03-06T02:10:58.904417Z");
  CHECK_STR(ev.updated_at_iso, "2024-03-06T02:10:58.761230Z");
  CHECK_DBL(ev.event_created, 1709691058.904417);
  CHECK_DBL(ev.updated_at, 1709691058.761230);
  truv_webhook_event_free(&ev);
  free(body);
}

static void an_order_event_carries_the_suborder(void) {
  truv_webhook_event ev;
  char *body;
  CHECK_INT(parse_fixture("order-refresh-failed", &body, &ev), 0);
  CHECK_STR(ev.order_id, "5e0a7c2b9d1f4e3a8c6b0d2f4a6c8e10");
  CHECK_STR(ev.order_number, "1534332");
  CHECK_STR(ev.employer_id, "0f3b5d7e9a1c4b2d8e6f0a2c4e6b8d13");
  CHECK_STR(ev.link_id, LINK);
  CHECK_STR(ev.status, "login_error");
  truv_webhook_event_free(&ev);
  free(body);
  CHECK_INT(parse_fixture("order-status-updated", &body, &ev), 0);
  CHECK_STR(ev.template_id, "d2a1c0b9e8f74d6c85b4a3928176e5f4");
  CHECK_STR(ev.status, "completed");
  truv_webhook_event_free(&ev);
  free(body);
  CHECK_INT(parse_fixture("order-created", &body, &ev), 0);
  CHECK_STR(ev.status, "pending");
  CHECK(ev.employer_id == NULL && ev.link_id == NULL && ev.data_source == NULL);
  truv_webhook_event_free(&ev);
  free(body);
}

static void an_unknown_type_is_kept_as_sent(void) {
  truv_webhook_event ev;
  char *body;
  cJSON *widget;
  CHECK_INT(parse_fixture("unknown-event", &body, &ev), 0);
  CHECK_INT(ev.kind, TRUV_WEBHOOK_UNKNOWN);
  CHECK_STR(ev.event_type, "payroll-widget-opened");
  widget = cJSON_GetObjectItemCaseSensitive(truv_json_root(ev.doc), "widget");
  CHECK(cJSON_IsObject(widget)); /* unknown fields survive in the document */
  truv_webhook_event_free(&ev);
  free(body);
}

static void kinds_are_named_like_truv_event_types(void) {
  CHECK_INT(truv_webhook_kind_of("order-refresh-failed"), TRUV_WEBHOOK_ORDER_REFRESH_FAILED);
  CHECK_INT(truv_webhook_kind_of("link-disconnected"), TRUV_WEBHOOK_LINK_DISCONNECTED);
  CHECK_INT(truv_webhook_kind_of("profile-created"), TRUV_WEBHOOK_DATA);
  CHECK_INT(truv_webhook_kind_of("shifts-updated"), TRUV_WEBHOOK_DATA);
  CHECK_INT(truv_webhook_kind_of("bank-accounts-updated"), TRUV_WEBHOOK_DATA);
  CHECK_INT(truv_webhook_kind_of("employment-deleted"), TRUV_WEBHOOK_UNKNOWN);
  CHECK_INT(truv_webhook_kind_of("-updated"), TRUV_WEBHOOK_UNKNOWN);
  CHECK_INT(truv_webhook_kind_of("employment"), TRUV_WEBHOOK_UNKNOWN);
  CHECK_INT(truv_webhook_kind_of("Order-Created"), TRUV_WEBHOOK_UNKNOWN);
  CHECK_INT(truv_webhook_kind_of("data"), TRUV_WEBHOOK_UNKNOWN);
  CHECK_INT(truv_webhook_kind_of(NULL), TRUV_WEBHOOK_UNKNOWN);
  CHECK_STR(truv_webhook_kind_name(TRUV_WEBHOOK_DATA), "data");
  CHECK_STR(truv_webhook_kind_name(TRUV_WEBHOOK_UNKNOWN), "unknown");
  CHECK_STR(truv_webhook_kind_name((truv_webhook_kind)99), "unknown");
}

static void updated_at_falls_back_to_event_created_at_then_zero(void) {
  truv_webhook_event ev;
  truv_err err;
  CHECK_INT(parse_text("{\"webhook_id\":\"w\",\"event_type\":\"x\","
                       "\"event_created_at\":\"2024-03-06T02:10:58Z\"}",
                       &ev, &err),
            0);
  CHECK_DBL(ev.updated_at, 1709691058.0);
  CHECK(ev.updated_at_iso == NULL);
  truv_webhook_event_free(&ev);
  CHECK_INT(parse_text("{\"webhook_id\":\"w\",\"event_type\":\"x\",\"updated_at\":\"yesterday\","
                       "\"event_created_at\":\"2024-03-06T02:10:58+01:00\"}",
                       &ev, &err),
            0);
  CHECK_DBL(ev.updated_at, 1709687458.0);
  CHECK_STR(ev.updated_at_iso, "yesterday"); /* what was sent, even when unreadable */
  truv_webhook_event_free(&ev);
  CHECK_INT(parse_text("{\"webhook_id\":\"w\",\"event_type\":\"x\",\"updated_at\":17,"
                       "\"event_created_at\":null}",
                       &ev, &err),
            0);
  CHECK_DBL(ev.updated_at, 0);
  CHECK_DBL(ev.event_created, 0);
  CHECK(ev.updated_at_iso == NULL && ev.event_created_at == NULL);
  truv_webhook_event_free(&ev);
}

static void ids_are_never_truncated(void) {
  char body[9000];
  char id[4097];
  truv_webhook_event ev;
  truv_err err;
  memset(id, 'a', sizeof id - 1);
  id[sizeof id - 1] = '\0';
  snprintf(body, sizeof body,
           "{\"webhook_id\":\"%s\",\"event_type\":\"task-status-updated\","
           "\"task_id\":\"%s\"}",
           id, id);
  CHECK_INT(parse_text(body, &ev, &err), 0);
  CHECK_STR(ev.webhook_id, id);
  CHECK_STR(ev.task_id, id);
  truv_webhook_event_free(&ev);
}

static void non_string_fields_read_as_absent(void) {
  truv_webhook_event ev;
  truv_err err;
  CHECK_INT(parse_text("{\"webhook_id\":\"w\",\"event_type\":\"order-status-updated\","
                       "\"order_id\":123,\"status\":{\"a\":1},\"link_id\":[\"l\"],"
                       "\"user_id\":true}",
                       &ev, &err),
            0);
  CHECK(!ev.order_id && !ev.status && !ev.link_id && !ev.user_id);
  truv_webhook_event_free(&ev);
}

static void the_first_member_of_a_name_counts(void) {
  truv_webhook_event ev;
  truv_err err;
  /* as in the document the Lua side sees (cJSON_GetObjectItem) */
  CHECK_INT(parse_text("{\"webhook_id\":\"w1\",\"status\":1,\"event_type\":\"x\","
                       "\"webhook_id\":\"w2\",\"status\":\"done\",\"event_type\":\"y\"}",
                       &ev, &err),
            0);
  CHECK_STR(ev.webhook_id, "w1");
  CHECK_STR(ev.event_type, "x");
  CHECK(ev.status == NULL);
  truv_webhook_event_free(&ev);
  CHECK_INT(
    parse_text("{\"webhook_id\":null,\"event_type\":\"x\",\"webhook_id\":\"w2\"}", &ev, &err),
    TRUV_EPROTOCOL);
  CHECK_STR(err.code, "missing_webhook_id");
}

static void bodies_that_are_not_events_are_refused(void) {
  static const struct {
    const char *body, *code;
  } cases[] = {
    {"", "malformed_json"},
    {"   ", "malformed_json"},
    {"not json", "malformed_json"},
    {"{\"webhook_id\":\"w\",\"event_type\":\"x\"", "malformed_json"},
    {"{\"webhook_id\":\"w\",\"event_type\":\"x\"}}", "malformed_json"},
    {"{\"webhook_id\":\"w\",\"event_type\":\"x\"} trailing", "malformed_json"},
    {"[{\"webhook_id\":\"w\",\"event_type\":\"x\"}]", "unexpected_shape"},
    {"\"webhook\"", "unexpected_shape"},
    {"null", "unexpected_shape"},
    {"42", "unexpected_shape"},
    {"{}", "missing_webhook_id"},
    {"{\"event_type\":\"x\"}", "missing_webhook_id"},
    {"{\"webhook_id\":null,\"event_type\":\"x\"}", "missing_webhook_id"},
    {"{\"webhook_id\":\"\",\"event_type\":\"x\"}", "missing_webhook_id"},
    {"{\"webhook_id\":7,\"event_type\":\"x\"}", "missing_webhook_id"},
    {"{\"webhook_id\":\"w\"}", "missing_event_type"},
    {"{\"webhook_id\":\"w\",\"event_type\":\"\"}", "missing_event_type"},
    {"{\"webhook_id\":\"w\",\"event_type\":[]}", "missing_event_type"},
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof *cases; i++) {
    truv_webhook_event ev;
    truv_err err;
    CHECK_INT(parse_text(cases[i].body, &ev, &err), TRUV_EPROTOCOL);
    CHECK_STR(err.code, cases[i].code);
    CHECK_CONTAINS(err.message, "webhook");
    CHECK(ev.doc == NULL && ev.webhook_id == NULL);
    truv_webhook_event_free(&ev); /* harmless on a refused event */
  }
}

static void every_truncation_of_a_real_event_is_refused(void) {
  size_t len, n;
  char *body = check_fixture("webhooks/task-status-updated.json", &len);
  int refused = 0, accepted = 0;
  CHECK(body != NULL);
  if (!body) return;
  for (n = 0; n < len; n++) {
    truv_webhook_event ev;
    truv_err err;
    truv_err_clear(&err);
    if (truv_webhook_parse(body, n, &ev, &err) == 0) {
      accepted++;
      truv_webhook_event_free(&ev);
    } else if (err.kind == TRUV_EPROTOCOL && strcmp(err.code, "malformed_json") == 0) {
      refused++;
    }
  }
  /* only the cut that drops nothing but the final newline still parses */
  CHECK_INT(accepted, 1);
  CHECK_INT(refused + accepted, len);
  free(body);
}

static void a_truncated_body_says_so(void) {
  truv_webhook_event ev;
  truv_err err;
  CHECK_INT(parse_text("{\"webhook_id\":\"w\",\"event_type\":\"task-sta", &ev, &err),
            TRUV_EPROTOCOL);
  CHECK_CONTAINS(err.message, "truncated");
}

static void the_document_can_outlive_the_event(void) {
  truv_webhook_event ev;
  truv_err err;
  truv_json *doc;
  CHECK_INT(parse_text("{\"webhook_id\":\"w\",\"event_type\":\"link-deleted\",\"link_id\":\"l\"}",
                       &ev, &err),
            0);
  doc = ev.doc;
  ev.doc = NULL;
  truv_webhook_event_free(&ev);
  CHECK_STR(cJSON_GetObjectItemCaseSensitive(truv_json_root(doc), "link_id")->valuestring, "l");
  truv_json_free(doc);
}

int main(void) {
  RUN(every_fixture_parses_to_its_kind);
  RUN(a_task_event_carries_task_link_and_status);
  RUN(an_order_event_carries_the_suborder);
  RUN(an_unknown_type_is_kept_as_sent);
  RUN(kinds_are_named_like_truv_event_types);
  RUN(updated_at_falls_back_to_event_created_at_then_zero);
  RUN(ids_are_never_truncated);
  RUN(non_string_fields_read_as_absent);
  RUN(the_first_member_of_a_name_counts);
  RUN(bodies_that_are_not_events_are_refused);
  RUN(every_truncation_of_a_real_event_is_refused);
  RUN(a_truncated_body_says_so);
  RUN(the_document_can_outlive_the_event);
  return CHECK_DONE();
}
