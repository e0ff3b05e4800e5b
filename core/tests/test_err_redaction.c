/* Redaction before truncation: whatever reaches a truv_err (its message,
 * code, request id, field names and field messages, from Truv's answer or
 * from the core itself) is redacted as a whole before it is cut to fit, so
 * a secret, a token or an SSN straddling a cut leaves nothing of itself. */
#include "check.h"
#include "truv/classify.h"

#define NOW 1800000000.0

/* Canaries: no four bytes in a row of any may survive anywhere in an error. */
static const char SECRET[] = "Zq7vK2mX9pL4wR8tY3nB6cH1jF5gD0sA";
static const char TOKEN[] = "tokQ8wE3rT6yU1iO4pA7sD2fG5hJ9kL0";
static const char SSN[] = "987-65-4329";
static const char SSN9[] = "876543219";

static truv_request req;

static void make_request(void) {
  static const truv_config cfg = {"https://prod.truv.com/v1/", "cid", SECRET, NULL};
  char json[256];
  cJSON *params;
  truv_err err;
  snprintf(json, sizeof json, "{\"access_token\":\"%s\",\"product_type\":\"income\"}", TOKEN);
  params = cJSON_Parse(json);
  truv_request_free(&req);
  if (truv_request_build(&cfg, TRUV_OP_CREATE_REFRESH_TASK, NULL, params, NULL, &req, &err))
    fprintf(stderr, "cannot build: %s\n", err.message);
  cJSON_Delete(params);
}

/* Whether four bytes in a row of canary appear in s. */
static int shows(const char *s, const char *canary) {
  size_t i, n = strlen(canary);
  char window[5];
  for (i = 0; i + 4 <= n; i++) {
    memcpy(window, canary + i, 4);
    window[4] = '\0';
    if (strstr(s, window)) return 1;
  }
  return 0;
}

/* Whether any text of err shows a piece of canary; names the first such text. */
static const char *leak_in(const truv_err *err, const char *canary) {
  int i;
  if (shows(err->message, canary)) return err->message;
  if (shows(err->code, canary)) return err->code;
  if (shows(err->request_id, canary)) return err->request_id;
  for (i = 0; i < err->nfields; i++) {
    if (shows(err->fields[i].field, canary)) return err->fields[i].field;
    if (shows(err->fields[i].message, canary)) return err->fields[i].message;
  }
  return NULL;
}

static int check_no_leak(const truv_err *err, const char *canary, const char *where, size_t at) {
  const char *text = leak_in(err, canary);
  if (!text) return 1;
  fprintf(stderr, "%s, canary at %zu: \"%s\" shows part of \"%s\"\n", where, at, text, canary);
  return 0;
}

/* `pad` bytes of filler (letters no canary holds in a row of four). */
static void filler(char *out, size_t pad) {
  size_t i;
  for (i = 0; i < pad; i++) out[i] = (char)('a' + i % 3);
  out[pad] = '\0';
}

/* Classifies `status` with body `body` and X-Request-Id `rid`. */
static void classify(int status, const char *body, const char *rid, truv_err *err) {
  truv_response resp;
  truv_json *doc = NULL;
  truv_response_init(&resp);
  resp.status = status;
  truv_response_append(&resp, body, strlen(body));
  if (rid) truv_response_add_header(&resp, "X-Request-Id", 12, rid, strlen(rid));
  truv_classify(&req, &resp, NOW, &doc, err);
  truv_json_free(doc);
  truv_response_free(&resp);
}

static const char *const CANARIES[] = {SECRET, TOKEN, SSN, SSN9};
#define NCANARIES (sizeof CANARIES / sizeof CANARIES[0])

/* The places of an answer Truv's text is copied from into an error, each
 * with the size of the buffer it lands in (so the loop below straddles it). */
enum place {
  MESSAGE,
  CODE,
  FIELD_NAME,
  FIELD_MESSAGE,
  MAP_NAME,
  MAP_MESSAGE,
  DETAIL,
  SNIPPET,
  REQUEST_ID,
  NPLACES
};
static const char *const PLACE_NAMES[NPLACES] = {"error.message",
                                                 "error.code",
                                                 "invalid-params field",
                                                 "invalid-params message",
                                                 "field map name",
                                                 "field map message",
                                                 "detail",
                                                 "non-JSON body",
                                                 "X-Request-Id"};
static const size_t PLACE_LIMITS[NPLACES] = {256, 48, 64, 192, 64, 192, 256, 121, 64};

static void answer_with(enum place place, const char *text, char *body, size_t size,
                        const char **rid, int *status) {
  *rid = "req-1";
  *status = 400;
  switch (place) {
    case MESSAGE:
      snprintf(body, size, "{\"error\":{\"code\":\"c\",\"message\":\"%s\"}}", text);
      break;
    case CODE: snprintf(body, size, "{\"error\":{\"code\":\"%s\",\"message\":\"m\"}}", text); break;
    case FIELD_NAME:
      snprintf(body, size,
               "{\"error\":{\"code\":\"c\",\"message\":\"m\",\"extra\":"
               "{\"invalid-params\":[{\"field\":\"%s\",\"message\":\"m\"}]}}}",
               text);
      break;
    case FIELD_MESSAGE:
      snprintf(body, size,
               "{\"error\":{\"code\":\"c\",\"message\":\"m\",\"extra\":"
               "{\"invalid-params\":[{\"field\":\"f\",\"message\":\"%s\"}]}}}",
               text);
      break;
    case MAP_NAME: snprintf(body, size, "{\"%s\":[\"m\"]}", text); break;
    case MAP_MESSAGE: snprintf(body, size, "{\"f\":[\"%s\"]}", text); break;
    case DETAIL:
      *status = 404;
      snprintf(body, size, "{\"detail\":\"%s\"}", text);
      break;
    case SNIPPET:
      *status = 502;
      snprintf(body, size, "%s", text);
      break;
    case REQUEST_ID:
      *status = 500;
      snprintf(body, size, "{\"detail\":\"m\"}");
      *rid = text;
      break;
    default: break;
  }
}

static void a_canary_straddling_any_cut_of_an_answer_leaves_nothing(void) {
  char text[1024], body[2048];
  size_t c, at;
  int p;
  make_request();
  for (p = 0; p < NPLACES; p++) {
    for (c = 0; c < NCANARIES; c++) {
      /* every offset from "wholly inside" to "wholly past" the cut */
      for (at = 0; at < PLACE_LIMITS[p] + 8; at++) {
        const char *rid;
        int status;
        truv_err err;
        filler(text, at);
        snprintf(text + at, sizeof text - at, "%s%s", CANARIES[c], "-and-more");
        answer_with((enum place)p, text, body, sizeof body, &rid, &status);
        classify(status, body, rid, &err);
        if (!check_no_leak(&err, CANARIES[c], PLACE_NAMES[p], at)) {
          check_current_failed = 1;
          break; /* one report per place and canary */
        }
      }
    }
  }
}

static void text_before_the_canary_is_kept_up_to_the_cut(void) {
  char text[512], body[1024];
  truv_err err;
  make_request();
  filler(text, 100);
  snprintf(text + 100, sizeof text - 100, " %s tail", SECRET);
  snprintf(body, sizeof body, "{\"error\":{\"code\":\"c\",\"message\":\"%s\"}}", text);
  classify(400, body, "req-1", &err);
  CHECK_INT(strncmp(err.message, text, 100), 0);
  CHECK_CONTAINS(err.message, " [redacted] tail");
  CHECK_STR(err.request_id, "req-1");
}

static void a_secret_in_an_invalid_params_field_name_is_redacted(void) {
  char body[512];
  truv_err err;
  make_request();
  snprintf(body, sizeof body,
           "{\"error\":{\"code\":\"invalid\",\"message\":\"bad\",\"extra\":"
           "{\"invalid-params\":[{\"field\":\"employers[%s]\",\"message\":\"no\"},"
           "{\"field\":\"%s\",\"message\":\"unknown\"}]}}}",
           TOKEN, SSN);
  classify(400, body, "req-1", &err);
  CHECK_INT(err.kind, TRUV_EINVALID);
  CHECK_INT(err.nfields, 2);
  CHECK_STR(err.fields[0].field, "employers[[redacted]]");
  CHECK_STR(err.fields[1].field, "[redacted]");
  CHECK(leak_in(&err, TOKEN) == NULL);
  CHECK(leak_in(&err, SSN) == NULL);
}

/* The core's own doors, with no secret list: SSN-shaped runs still go. */
static void an_ssn_straddling_the_cut_of_a_local_error_leaves_nothing(void) {
  char text[512];
  size_t at;
  for (at = 0; at < 300; at++) {
    truv_err err;
    truv_err_clear(&err);
    filler(text, at);
    snprintf(text + at, sizeof text - at, "%s!", SSN);
    truv_err_set(&err, TRUV_EINTERNAL, "c", "%s", text);
    truv_err_invalid(&err, text, "%s", text);
    if (!check_no_leak(&err, SSN, "truv_err_set / truv_err_invalid", at)) {
      check_current_failed = 1;
      break;
    }
  }
}

static void secrets_given_to_a_door_are_redacted_before_the_cut(void) {
  const char *secrets[] = {SECRET};
  char text[512];
  size_t at;
  for (at = 0; at < 300; at++) {
    truv_err err;
    truv_err_clear(&err);
    filler(text, at);
    snprintf(text + at, sizeof text - at, "%s!", SECRET);
    truv_err_set_redacted(&err, secrets, 1, TRUV_EAPI, text, "%s", text);
    truv_err_invalid_redacted(&err, secrets, 1, text, "%s", text);
    truv_err_set_request_id(&err, secrets, 1, text);
    if (!check_no_leak(&err, SECRET, "the redacting doors", at)) {
      check_current_failed = 1;
      break;
    }
  }
}

/* Redaction shrinks a long secret to a short mark: a message made of
 * thousands of secrets, or megabytes long, still leaves only marks and the
 * text around them, and costs no more than a short one. */
static void a_long_run_of_secrets_leaves_only_marks(void) {
  const char *secrets[] = {SECRET};
  size_t n = 4000, i, slen = strlen(SECRET);
  char *text = malloc(n * slen + 16);
  truv_err err;
  CHECK(text != NULL);
  if (!text) return;
  for (i = 0; i < n; i++) memcpy(text + i * slen, SECRET, slen);
  snprintf(text + n * slen, 16, "-end");
  truv_err_clear(&err);
  truv_err_set_redacted(&err, secrets, 1, TRUV_EAPI, "c", "%s", text);
  CHECK(!shows(err.message, SECRET));
  CHECK_INT(strncmp(err.message, "[redacted][redacted][redacted]", 30), 0);
  /* the cut leaves only marks (or a piece of one) */
  for (i = 0; err.message[i]; i++) CHECK(strchr("[redacted]", err.message[i]) != NULL);
  /* a secret straddling the window of a huge text: a megabyte of filler first */
  free(text);
  text = malloc((1u << 20) + 64);
  CHECK(text != NULL);
  if (!text) return;
  filler(text, 1u << 20);
  snprintf(text + (1u << 20), 64, "%s", SECRET);
  truv_err_set_redacted(&err, secrets, 1, TRUV_EAPI, "c", "%s", text);
  CHECK_INT(strlen(err.message), sizeof err.message - 1);
  CHECK(!shows(err.message, SECRET));
  free(text);
}

int main(void) {
  RUN(a_canary_straddling_any_cut_of_an_answer_leaves_nothing);
  RUN(text_before_the_canary_is_kept_up_to_the_cut);
  RUN(a_secret_in_an_invalid_params_field_name_is_redacted);
  RUN(an_ssn_straddling_the_cut_of_a_local_error_leaves_nothing);
  RUN(secrets_given_to_a_door_are_redacted_before_the_cut);
  RUN(a_long_run_of_secrets_leaves_only_marks);
  truv_request_free(&req);
  return CHECK_DONE();
}
