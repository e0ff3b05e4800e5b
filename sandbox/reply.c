/* reply: see reply.h. */
#include "reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char SERVER_ERROR[] = "{\"detail\":\"A server error occurred.\"}";

void reply_init(struct reply *r) {
  memset(r, 0, sizeof *r);
}

void reply_free(struct reply *r) {
  free(r->body);
  free(r->location);
  r->body = r->location = NULL;
  r->len = 0;
}

static void set_body(struct reply *r, int status, char *body, size_t len) {
  free(r->body);
  r->status = status;
  r->body = body;
  r->len = len;
}

void reply_static(struct reply *r, int status, const char *json) {
  size_t len = strlen(json);
  char *body = malloc(len + 1);
  if (!body) {
    set_body(r, 500, NULL, 0);
    return;
  }
  memcpy(body, json, len + 1);
  set_body(r, status, body, len);
}

void reply_json(struct reply *r, int status, struct jw *w) {
  size_t len = 0;
  char *body = jw_finish(w, &len);
  if (!body) {
    reply_server_error(r);
    return;
  }
  set_body(r, status, body, len);
}

void reply_server_error(struct reply *r) {
  reply_static(r, 500, SERVER_ERROR);
}

void reply_detail(struct reply *r, int status, const char *detail) {
  struct jw w;
  jw_init(&w, 128);
  jw_obj(&w);
  jw_kstr(&w, "detail", detail);
  jw_obj_end(&w);
  reply_json(r, status, &w);
}

void reply_not_found(struct reply *r) {
  reply_static(r, 404, "{\"detail\":\"Not Found.\"}");
}

void reply_invalid_page(struct reply *r) {
  reply_detail(r, 404, "Invalid page.");
}

void reply_error(struct reply *r, int status, const char *code, const char *message) {
  struct jw w;
  jw_init(&w, 160);
  jw_obj(&w);
  jw_key(&w, "error");
  jw_obj(&w);
  jw_kstr(&w, "code", code);
  jw_kstr(&w, "message", message);
  jw_obj_end(&w);
  jw_obj_end(&w);
  reply_json(r, status, &w);
}

void reply_auth_failed(struct reply *r) {
  reply_error(r, 401, "authentication_failed",
              "Authentication credentials were not provided or are invalid.");
}

void reply_method_not_allowed(struct reply *r, const char *method, const char *allow) {
  char detail[96];
  snprintf(detail, sizeof detail, "Method \"%.32s\" not allowed.", method);
  reply_detail(r, 405, detail);
  r->allow = allow;
}

void reply_unsupported_media(struct reply *r, const char *content_type) {
  char detail[256];
  snprintf(detail, sizeof detail, "Unsupported media type \"%.200s\" in request.",
           content_type ? content_type : "");
  reply_detail(r, 415, detail);
}

void reply_throttled(struct reply *r, int wait_s) {
  /* Django REST framework's wording, singular included */
  char msg[128];
  snprintf(msg, sizeof msg, "Request was throttled. Expected available in %d second%s.", wait_s,
           wait_s == 1 ? "" : "s");
  reply_error(r, 429, "throttled", msg);
  r->retry_after = wait_s;
}

void reply_refresh_limit(struct reply *r, int status) {
  reply_error(r, status, status == 429 ? "throttled" : "incorrect_parameters",
              "Refresh limit for the access_token exceeded");
}

void reply_expired_token(struct reply *r, const char *message) {
  reply_error(r, 410, "expired_token", message);
}

void reply_redirect(struct reply *r, char *location) {
  reply_static(r, 301, "");
  free(r->location);
  r->location = location;
  r->content_type = "text/html; charset=utf-8";
}

void invalid_init(struct invalid *v) {
  jw_init(&v->items, 256);
  jw_arr(&v->items);
  v->n = 0;
}

void invalid_free(struct invalid *v) {
  jw_free(&v->items);
}

void invalid_add(struct invalid *v, const char *field, const char *fmt, ...) {
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  jw_obj(&v->items);
  jw_kstr(&v->items, "field", field);
  jw_kstr(&v->items, "message", msg);
  jw_obj_end(&v->items);
  v->n++;
}

void reply_invalid(struct reply *r, struct invalid *v, const char *message) {
  char *items;
  struct jw w;
  size_t len = 0;
  jw_arr_end(&v->items);
  items = jw_finish(&v->items, &len);
  jw_init(&w, len + 160);
  jw_obj(&w);
  jw_key(&w, "error");
  jw_obj(&w);
  jw_kstr(&w, "code", "incorrect_parameters");
  jw_kstr(&w, "message", message ? message : "Invalid parameters");
  jw_key(&w, "extra");
  jw_obj(&w);
  jw_key(&w, "invalid-params");
  if (items) jw_raw(&w, items, len);
  else w.oom = true;
  jw_obj_end(&w);
  jw_obj_end(&w);
  jw_obj_end(&w);
  free(items);
  reply_json(r, 400, &w);
}

void reply_bad_field(struct reply *r, const char *field, const char *message) {
  struct invalid v;
  invalid_init(&v);
  invalid_add(&v, field, "%s", message);
  reply_invalid(r, &v, NULL);
}
