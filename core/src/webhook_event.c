/* Webhook events: one parse of the body, then a typed view over it (see
 * truv/webhook.h). Field names and event types follow truv-api.md §6. */
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "truv/response.h"
#include "truv/webhook.h"

/* Event types with a kind of their own, indexed by truv_webhook_kind. */
static const char *const kind_names[TRUV_WEBHOOK_KIND_COUNT] = {
  "unknown",
  "order-created",
  "order-status-updated",
  "order-refresh-failed",
  "order-finalized",
  "task-status-updated",
  "link-connected",
  "link-disconnected",
  "link-deleted",
  "certification-completed",
  "data",
};

/* Data events are "<object>-created" (first collection) or
 * "<object>-updated" (a refresh changed the data). */
static const char *const data_objects[] = {
  "employment", "profile", "statements", "shifts", "bank-accounts",
};

const char *truv_webhook_kind_name(truv_webhook_kind kind) {
  if ((int)kind < 0 || kind >= TRUV_WEBHOOK_KIND_COUNT) return kind_names[0];
  return kind_names[kind];
}

static int is_data_event(const char *type) {
  size_t i, n = strlen(type), obj;
  const char *suffix;
  for (i = 0; i < sizeof data_objects / sizeof *data_objects; i++) {
    obj = strlen(data_objects[i]);
    if (n <= obj || strncmp(type, data_objects[i], obj) != 0) continue;
    suffix = type + obj;
    if (strcmp(suffix, "-created") == 0 || strcmp(suffix, "-updated") == 0) return 1;
  }
  return 0;
}

truv_webhook_kind truv_webhook_kind_of(const char *event_type) {
  int k;
  if (!event_type) return TRUV_WEBHOOK_UNKNOWN;
  for (k = TRUV_WEBHOOK_UNKNOWN + 1; k < TRUV_WEBHOOK_DATA; k++)
    if (strcmp(event_type, kind_names[k]) == 0) return (truv_webhook_kind)k;
  return is_data_event(event_type) ? TRUV_WEBHOOK_DATA : TRUV_WEBHOOK_UNKNOWN;
}

/* A string member, or NULL when absent, null or of another type. */
static const char *str(const cJSON *obj, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Epoch seconds of an ISO timestamp, or 0 when absent or unreadable
 * (truv_parse_time answers -1 for those). */
static double seconds(const char *iso) {
  double t = iso ? truv_parse_time(iso) : -1;
  return t > 0 ? t : 0;
}

/* Fills ev from the parsed object; the strings point into it. */
static int read_event(const cJSON *root, truv_webhook_event *ev, truv_err *err) {
  if (!cJSON_IsObject(root))
    return truv_err_set(err, TRUV_EPROTOCOL, "unexpected_shape",
                        "webhook body is valid JSON but not an object");
  ev->webhook_id = str(root, "webhook_id");
  if (!ev->webhook_id || !ev->webhook_id[0])
    return truv_err_set(err, TRUV_EPROTOCOL, "missing_webhook_id",
                        "webhook body has no webhook_id (a non-empty string)");
  ev->event_type = str(root, "event_type");
  if (!ev->event_type || !ev->event_type[0])
    return truv_err_set(err, TRUV_EPROTOCOL, "missing_event_type",
                        "webhook body has no event_type (a non-empty string)");
  ev->kind = truv_webhook_kind_of(ev->event_type);
  ev->event_created_at = str(root, "event_created_at");
  ev->updated_at_iso = str(root, "updated_at");
  ev->event_created = seconds(ev->event_created_at);
  ev->updated_at = seconds(ev->updated_at_iso);
  if (ev->updated_at == 0) ev->updated_at = ev->event_created;
  ev->user_id = str(root, "user_id");
  ev->template_id = str(root, "template_id");
  ev->order_id = str(root, "order_id");
  ev->order_number = str(root, "order_number");
  ev->employer_id = str(root, "employer_id");
  ev->link_id = str(root, "link_id");
  ev->task_id = str(root, "task_id");
  ev->product = str(root, "product");
  ev->data_source = str(root, "data_source");
  ev->tracking_info = str(root, "tracking_info");
  ev->status = str(root, "status");
  return 0;
}

/* Whether the text stops inside a string, an object or an array: what a
 * body cut short in transit looks like (cJSON only says where it stopped). */
static int ends_early(const char *s, size_t len) {
  size_t i;
  long depth = 0;
  int in_string = 0;
  for (i = 0; i < len; i++) {
    if (in_string) {
      if (s[i] == '\\') i++;
      else if (s[i] == '"') in_string = 0;
    } else if (s[i] == '"') {
      in_string = 1;
    } else if (s[i] == '{' || s[i] == '[') {
      depth++;
    } else if (s[i] == '}' || s[i] == ']') {
      depth--;
    }
  }
  return in_string || depth > 0;
}

/* Says that the JSON error is about a webhook body, and whether the body
 * looks cut short. */
static int body_error(const char *body, size_t len, truv_err *err, int rc) {
  char why[sizeof err->message], code[sizeof err->code];
  if (!err || rc != TRUV_EPROTOCOL) return rc;
  snprintf(why, sizeof why, "%s", err->message);
  snprintf(code, sizeof code, "%s", err->code);
  if (!strstr(why, "truncated") && ends_early(body, len))
    return truv_err_set(err, TRUV_EPROTOCOL, code, "webhook body ends early (truncated?): %s", why);
  return truv_err_set(err, TRUV_EPROTOCOL, code, "webhook body: %s", why);
}

int truv_webhook_parse(const char *body, size_t len, truv_webhook_event *ev, truv_err *err) {
  truv_json *doc;
  int rc;
  memset(ev, 0, sizeof *ev);
  if (!body || len == 0)
    return truv_err_set(err, TRUV_EPROTOCOL, "malformed_json", "webhook body is empty");
  if (!(doc = truv_json_parse(body, len, err)))
    return body_error(body, len, err, err ? (int)err->kind : TRUV_EPROTOCOL);
  if ((rc = read_event(truv_json_root(doc), ev, err))) {
    truv_json_free(doc);
    memset(ev, 0, sizeof *ev);
    return rc;
  }
  ev->doc = doc;
  return 0;
}

void truv_webhook_event_free(truv_webhook_event *ev) {
  if (!ev) return;
  truv_json_free(ev->doc);
  memset(ev, 0, sizeof *ev);
}
