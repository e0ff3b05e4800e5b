/* The response classifier (see truv/classify.h).
 *
 * One pass: parse the body once, then decide by status and shape. The order
 * of the checks matters: the refresh limit message wins over the status it
 * comes with (Truv does not document which status that is), and a 2xx body
 * must have the shape of the operation's answer before the workflow acts on
 * it. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "operation.h"
#include "truv/classify.h"
#include "truv/json.h"
#include "truv/time.h"

static const char REFRESH_LIMIT_TEXT[] = "Refresh limit for the access_token exceeded";

static int contains_nocase(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (; hay && *hay; hay++)
    if (strncasecmp(hay, needle, n) == 0) return 1;
  return 0;
}

static const char *string_at(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The secrets an error built from an answer to req must not show. */
#define SECRETS(req) (const char *const *)(req)->redact, (req)->nredact

/* Copies Truv's invalid params (error.extra.invalid-params, or a DRF-style
 * {"field": ["message"]} map) into err->fields, names and messages redacted. */
static void copy_fields(const truv_request *req, const cJSON *doc, const cJSON *error,
                        truv_err *err) {
  const cJSON *extra = cJSON_GetObjectItemCaseSensitive(error, "extra");
  const cJSON *list = cJSON_GetObjectItemCaseSensitive(extra, "invalid-params");
  const cJSON *e;
  if (cJSON_IsArray(list)) {
    cJSON_ArrayForEach(e, list) {
      const char *f = string_at(e, "field"), *m = string_at(e, "message");
      truv_err_invalid_redacted(err, SECRETS(req), f ? f : "?", "%s", m ? m : "invalid");
    }
  } else if (!error && cJSON_IsObject(doc)) {
    cJSON_ArrayForEach(e, doc) {
      const cJSON *first = cJSON_IsArray(e) ? e->child : e;
      if (!cJSON_IsString(first) || !e->string) continue;
      truv_err_invalid_redacted(err, SECRETS(req), e->string, "%s", first->valuestring);
    }
  }
}

static truv_kind kind_for_status(int status) {
  if (status == 400) return TRUV_EINVALID;
  if (status == 401 || status == 403) return TRUV_EAUTH;
  if (status == 404) return TRUV_ENOTFOUND;
  if (status == 429) return TRUV_ETHROTTLED;
  if (status >= 500 && status <= 599) return TRUV_ESERVER;
  if (status >= 400 && status <= 499) return TRUV_EAPI;
  return TRUV_EPROTOCOL;
}

static const char *default_code(int status) {
  switch (status) {
    case 400: return "incorrect_parameters";
    case 401: return "authentication_failed";
    case 403: return "not_authenticated";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 406: return "not_acceptable";
    case 410: return "expired_token";
    case 415: return "unsupported_media_type";
    case 429: return "throttled";
    default: return status >= 500 ? "server_error" : "unexpected_status";
  }
}

/* The first 120 bytes of a non-JSON error body (an error page), with
 * anything unprintable as a space: redacted before the cut (the part of the
 * body that can reach those bytes, truv_redact_window). */
#define SNIPPET_MAX 120
static void snippet(const truv_request *req, const truv_response *resp, char *out, size_t size) {
  size_t room = size < SNIPPET_MAX + 1 ? size : SNIPPET_MAX + 1;
  size_t n = truv_redact_window(room, SECRETS(req)), i;
  char *text;
  if (n > resp->body_len) n = resp->body_len;
  if (!(text = malloc(n + 1))) {
    snprintf(out, size, "(an error page)");
    return;
  }
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)resp->body[i];
    text[i] = (c >= 0x20 && c < 0x7f) ? (char)c : ' ';
  }
  text[n] = '\0';
  truv_redact_copy(out, room, text, SECRETS(req));
  free(text);
}

static int classify_error(const truv_request *req, const truv_response *resp, double now,
                          truv_err *err) {
  truv_err probe;
  truv_json *parsed = resp->body_len ? truv_json_parse(resp->body, resp->body_len, &probe) : NULL;
  const cJSON *doc = truv_json_root(parsed);
  const cJSON *error = cJSON_GetObjectItemCaseSensitive(doc, "error");
  const char *code = string_at(error, "code");
  const char *message = string_at(error, "message");
  const char *detail = string_at(doc, "detail");
  const char *retry_after = truv_response_header(resp, "Retry-After");
  double in;
  char body_text[128];

  if (!message) message = detail;
  if (!message && cJSON_IsString(error)) message = error->valuestring;
  if (!message && !doc && resp->body_len) {
    snippet(req, resp, body_text, sizeof body_text);
    message = body_text;
  }
  if (message)
    truv_err_set_redacted(err, SECRETS(req), kind_for_status(resp->status),
                          code ? code : default_code(resp->status), "%s", message);
  else
    truv_err_set_redacted(err, SECRETS(req), kind_for_status(resp->status),
                          code ? code : default_code(resp->status), "HTTP %d", resp->status);
  if (err->kind == TRUV_EINVALID) copy_fields(req, doc, cJSON_IsObject(error) ? error : NULL, err);
  if (contains_nocase(message, REFRESH_LIMIT_TEXT)) {
    err->kind = TRUV_EREFRESH_LIMIT;
    err->nfields = 0;
    err->fields_dropped = 0;
  }
  if (err->kind == TRUV_EPROTOCOL) {
    char kept[sizeof err->code];
    memcpy(kept, err->code, sizeof kept);
    truv_err_set(err, TRUV_EPROTOCOL, kept, "unexpected HTTP status %d", resp->status);
  }
  err->status = resp->status;
  if (retry_after) err->retry_at = truv_parse_retry_after(retry_after, now);
  if (err->retry_at <= 0 && (in = truv_parse_available_in(message)) >= 0) err->retry_at = now + in;
  truv_json_free(parsed);
  return err->kind;
}

/* What the operation's row says a successful answer carries: a string
 * field, or a list. */
static int has_expected_shape(truv_op op, const cJSON *doc) {
  const truv_operation *o = truv_operation_of(op);
  if (!o) return cJSON_IsObject(doc);
  if (o->answer_key) return string_at(doc, o->answer_key) != NULL;
  return cJSON_IsArray(doc) || cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(doc, "results"));
}

int truv_classify(const truv_request *req, const truv_response *resp, double now, truv_json **doc,
                  truv_err *err) {
  const char *rid = truv_response_header(resp, "X-Request-Id");
  truv_json *parsed;
  truv_err_clear(err);
  *doc = NULL;
  if (resp->status < 200 || resp->status > 299) {
    classify_error(req, resp, now, err);
  } else if (resp->body_len == 0) {
    if (resp->status != 204)
      truv_err_set(err, TRUV_EPROTOCOL, "empty_body", "HTTP %d with an empty body", resp->status);
  } else if ((parsed = truv_json_parse(resp->body, resp->body_len, err)) != NULL) {
    if (has_expected_shape(req->op, truv_json_root(parsed))) {
      *doc = parsed;
    } else {
      truv_json_free(parsed);
      truv_err_set(err, TRUV_EPROTOCOL, "unexpected_shape",
                   "the answer to %s lacks the fields Truv returns", truv_op_name(req->op));
    }
  }
  if (err->kind) {
    err->status = resp->status;
    if (rid) truv_err_set_request_id(err, SECRETS(req), rid);
  }
  return err->kind;
}
