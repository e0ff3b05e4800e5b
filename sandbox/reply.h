/* reply: an HTTP answer under construction, and Truv's error shapes.
 *
 * Handlers fill a reply; server.c turns it into an MHD response with
 * Content-Type: application/json (or the reply's own), X-Request-Id and the
 * optional Allow / Retry-After / Location headers. The body is malloc'd and owned by the reply
 * until server.c hands it to MHD. Error bodies (Truv / Django REST framework): 400
 * {"error":{"code":"incorrect_parameters","message":"...",
 *                 "extra":{"invalid-params":[{"field","message"}...]}}}
 *   401 {"error":{"code":"authentication_failed","message":"..."}}
 *   404 {"detail":"Not Found."}   405 {"detail":"Method \"PUT\" not allowed."}
 *   404 {"detail":"Invalid page."} (a list's page that does not exist)
 *   415 {"detail":"Unsupported media type \"text/plain\" in request."}
 *   429 {"error":{"code":"throttled","message":"Request was throttled.
 *        Expected available in N seconds."}} + Retry-After: N
 *   410 {"error":{"code":"expired_token","message":"..."}}
 *   301 (Django's APPEND_SLASH) an empty text/html body + Location
 * The invalid-params list collects EVERY offending field before answering. */
#ifndef SANDBOX_REPLY_H
#define SANDBOX_REPLY_H

#include <stdbool.h>
#include <stddef.h>

#include "json_writer.h"

struct reply {
  int status;
  char *body;
  size_t len;
  const char *allow;        /* static string or NULL */
  int retry_after;          /* seconds; 0 = no header */
  char *location;           /* malloc'd Location header value, or NULL */
  const char *content_type; /* static; NULL = application/json */
};

struct invalid {
  struct jw items; /* the invalid-params array under construction */
  unsigned n;
};

void reply_init(struct reply *r);
void reply_free(struct reply *r);
/* takes the writer's buffer; OOM becomes a 500 */
void reply_json(struct reply *r, int status, struct jw *w);
void reply_static(struct reply *r, int status, const char *json);
void reply_not_found(struct reply *r);
void reply_invalid_page(struct reply *r);
void reply_detail(struct reply *r, int status, const char *detail);
void reply_auth_failed(struct reply *r);
void reply_method_not_allowed(struct reply *r, const char *method, const char *allow);
void reply_unsupported_media(struct reply *r, const char *content_type);
void reply_throttled(struct reply *r, int wait_s);
void reply_refresh_limit(struct reply *r, int status);
void reply_expired_token(struct reply *r, const char *message);
/* 301 to location (taken over: malloc'd) */
void reply_redirect(struct reply *r, char *location);
void reply_error(struct reply *r, int status, const char *code, const char *message);
void reply_server_error(struct reply *r);
/* a 400 with a single invalid-params entry */
void reply_bad_field(struct reply *r, const char *field, const char *message);

void invalid_init(struct invalid *v);
void invalid_free(struct invalid *v);
void invalid_add(struct invalid *v, const char *field, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
/* renders the 400 and frees v */
void reply_invalid(struct reply *r, struct invalid *v, const char *message);

#endif
