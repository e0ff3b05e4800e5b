/* Webhook events: one parse of the body, then a typed view over it (see
 * truv/webhook.h). Field names and event types follow truv-api.md §6. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "truv/time.h"
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

/* The string members an event exposes, and where each goes. One walk over
 * the object's members fills them all (a lookup per field would compare
 * every name with every member); as with cJSON_GetObjectItem, the first
 * member of a name counts, and a value that is not a string reads as NULL. */
static const struct field {
  const char *name;
  size_t offset;
} fields[] = {
#define FIELD(f) \
  { #f, offsetof(truv_webhook_event, f) }
  FIELD(webhook_id),       FIELD(event_type),
  FIELD(event_created_at), {"updated_at", offsetof(truv_webhook_event, updated_at_iso)},
  FIELD(user_id),          FIELD(template_id),
  FIELD(order_id),         FIELD(order_number),
  FIELD(employer_id),      FIELD(link_id),
  FIELD(task_id),          FIELD(product),
  FIELD(data_source),      FIELD(tracking_info),
  FIELD(status),
#undef FIELD
};

#define NFIELDS (sizeof fields / sizeof *fields)
#define ALL_FIELDS ((1ul << NFIELDS) - 1)

static void read_fields(const cJSON *root, truv_webhook_event *ev) {
  const cJSON *m;
  unsigned long seen = 0;
  size_t i;
  cJSON_ArrayForEach(m, root) {
    for (i = 0; m->string && i < NFIELDS; i++) {
      if ((seen >> i & 1) || m->string[0] != fields[i].name[0] ||
          strcmp(m->string, fields[i].name) != 0)
        continue;
      seen |= 1ul << i;
      if (cJSON_IsString(m)) *(const char **)((char *)ev + fields[i].offset) = m->valuestring;
      break;
    }
    if (seen == ALL_FIELDS) break;
  }
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
  read_fields(root, ev);
  if (!ev->webhook_id || !ev->webhook_id[0])
    return truv_err_set(err, TRUV_EPROTOCOL, "missing_webhook_id",
                        "webhook body has no webhook_id (a non-empty string)");
  if (!ev->event_type || !ev->event_type[0])
    return truv_err_set(err, TRUV_EPROTOCOL, "missing_event_type",
                        "webhook body has no event_type (a non-empty string)");
  ev->kind = truv_webhook_kind_of(ev->event_type);
  ev->event_created = seconds(ev->event_created_at);
  ev->updated_at = seconds(ev->updated_at_iso);
  if (ev->updated_at == 0) ev->updated_at = ev->event_created;
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
