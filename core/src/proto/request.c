/* The request builder (see truv/request.h): the operation's row of the
 * table (operation.h) gives the method, the path and where the parameters
 * go; this file makes the URL, the headers and the body. */
#include "truv/request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fields.h"
#include "operation.h"
#include "truv/version.h"

__attribute__((format(printf, 1, 2))) static char *dup_printf(const char *fmt, ...) {
  va_list ap;
  int n;
  char *s;
  va_start(ap, fmt);
  n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !(s = malloc((size_t)n + 1))) return NULL;
  va_start(ap, fmt);
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return s;
}

/* Splits "scheme://authority/base/path/" into authority and base path (which
 * always starts and ends with '/'). */
static int split_base(const char *base, char **authority, char **path) {
  const char *a, *p;
  size_t plen;
  if (strncmp(base, "https://", 8) == 0) a = base + 8;
  else if (strncmp(base, "http://", 7) == 0) a = base + 7;
  else return -1;
  p = strchr(a, '/');
  if (!p) p = a + strlen(a);
  if (p == a) return -1;
  *authority = dup_printf("%.*s", (int)(p - a), a);
  plen = strlen(p);
  *path = dup_printf("%s%s%s", *p ? "" : "/", p, plen && p[plen - 1] != '/' ? "/" : "");
  if (!*authority || !*path) {
    free(*authority);
    free(*path);
    return -1;
  }
  return 0;
}

/* Percent-encodes s at q (which has room for 3 * strlen(s)); returns the end. */
static char *pct_encode(char *q, const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~') {
      *q++ = (char)c;
    } else {
      *q++ = '%';
      *q++ = hex[c >> 4];
      *q++ = hex[c & 15];
    }
  }
  return q;
}

/* "k=v&..." for a flat object of strings, numbers and booleans (validated). */
static char *query_string(const cJSON *params) {
  const cJSON *e;
  size_t cap = 1;
  char *q, *end, num[64];
  const char *v;
  cJSON_ArrayForEach(e, params) cap +=
    3 * (strlen(e->string) + sizeof num + (cJSON_IsString(e) ? strlen(e->valuestring) : 0)) + 2;
  if (!(q = malloc(cap))) return NULL;
  end = q;
  cJSON_ArrayForEach(e, params) {
    if (cJSON_IsString(e)) {
      v = e->valuestring;
    } else if (cJSON_IsBool(e)) {
      v = cJSON_IsTrue(e) ? "true" : "false";
    } else {
      double d = e->valuedouble;
      if (d == (double)(long long)d) snprintf(num, sizeof num, "%lld", (long long)d);
      else snprintf(num, sizeof num, "%.17g", d);
      v = num;
    }
    if (end != q) *end++ = '&';
    end = pct_encode(end, e->string);
    *end++ = '=';
    end = pct_encode(end, v);
  }
  *end = '\0';
  return q;
}

static void add_redact(truv_request *req, const cJSON *params, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(params, key);
  if (cJSON_IsString(v) && v->valuestring[0] && req->nredact < TRUV_REQ_MAX_REDACT)
    req->redact[req->nredact++] = strdup(v->valuestring);
}

int truv_request_build(const truv_config *cfg, truv_op op, const char *id, const cJSON *params,
                       const truv_order_facts *facts, truv_request *out, truv_err *err) {
  const truv_operation *o;
  const char *base = cfg->base_url ? cfg->base_url : TRUV_DEFAULT_BASE_URL;
  char *authority = NULL, *base_path = NULL, *path = NULL, *query = NULL;
  const char *scheme_end;
  int rc;

  memset(out, 0, sizeof *out);
  if ((rc = truv_validate(op, id, params, facts, err))) return rc;
  if (!cfg->client_id || !cfg->client_id[0] || truv_has_ctl(cfg->client_id))
    return truv_err_invalid(err, "client_id", "is required (no control characters)");
  if (!cfg->secret || !cfg->secret[0] || truv_has_ctl(cfg->secret))
    return truv_err_invalid(err, "secret", "is required (no control characters)");
  if (truv_has_ctl(cfg->user_agent))
    return truv_err_invalid(err, "user_agent", "must not contain control characters");
  if (truv_has_ctl(base) || split_base(base, &authority, &base_path))
    return truv_err_invalid(err, "base_url", "must be an http:// or https:// URL");

  o = truv_operation_of(op);
  out->op = op;
  out->method = o->method;
  out->flags = o->flags;
  out->host = authority;
  authority = NULL;
  {
    const char *hole = strstr(o->path, "{id}");
    path =
      hole ? dup_printf("%.*s%s%s", (int)(hole - o->path), o->path, id, hole + 4) : strdup(o->path);
  }
  if (!path) goto nomem;
  if (o->params == TRUV_PARAMS_QUERY && params && params->child) {
    if (!(query = query_string(params))) goto nomem;
    out->path = dup_printf("%s?%s", path, query);
  } else {
    out->path = strdup(path);
  }
  if (!out->path) goto nomem;
  scheme_end = strstr(base, "://") + 3;
  out->target = dup_printf("%s%s", base_path, out->path);
  out->url = dup_printf("%.*s%s%s", (int)(scheme_end - base), base, out->host, out->target);
  if (!out->target || !out->url) goto nomem;

  out->headers[out->nheaders++] = dup_printf("X-Access-Client-Id: %s", cfg->client_id);
  out->headers[out->nheaders++] = dup_printf("X-Access-Secret: %s", cfg->secret);
  out->headers[out->nheaders++] = strdup("Accept: application/json");
  out->headers[out->nheaders++] =
    cfg->user_agent && cfg->user_agent[0]
      ? dup_printf("User-Agent: lua-truv/%s %s", truv_version(), cfg->user_agent)
      : dup_printf("User-Agent: lua-truv/%s", truv_version());
  if (o->params != TRUV_PARAMS_QUERY) {
    cJSON *empty = NULL;
    out->headers[out->nheaders++] = strdup("Content-Type: application/json");
    if (!params && !(empty = cJSON_CreateObject())) goto nomem;
    out->body = cJSON_PrintUnformatted(params ? params : empty);
    cJSON_Delete(empty);
    if (!out->body) goto nomem;
    out->body_len = strlen(out->body);
  }
  for (size_t i = 0; i < out->nheaders; i++)
    if (!out->headers[i]) goto nomem;

  out->redact[out->nredact++] = strdup(cfg->secret);
  add_redact(out, params, "access_token");
  add_redact(out, params, "ssn");
  add_redact(out, params, "social_security_number");
  for (size_t i = 0; i < out->nredact; i++)
    if (!out->redact[i]) goto nomem;

  free(base_path);
  free(path);
  free(query);
  return 0;

nomem:
  free(authority);
  free(base_path);
  free(path);
  free(query);
  truv_request_free(out);
  return truv_err_set(err, TRUV_EINTERNAL, "nomem", "out of memory building a request");
}

void truv_request_free(truv_request *req) {
  size_t i;
  if (!req) return;
  free(req->url);
  free(req->target);
  free(req->host);
  free(req->path);
  for (i = 0; i < req->nheaders; i++) free(req->headers[i]);
  free(req->body);
  for (i = 0; i < req->nredact; i++) free(req->redact[i]);
  memset(req, 0, sizeof *req);
}

truv_conn_rule truv_request_connection(const truv_request *req) {
  if (req->flags & TRUV_REQ_SAFE) return TRUV_CONN_REUSE;
  if (req->flags & TRUV_REQ_RECONCILED) return TRUV_CONN_REUSE_ONCE;
  return TRUV_CONN_FRESH;
}

int truv_request_fresh(const truv_request *req) {
  return truv_request_connection(req) == TRUV_CONN_FRESH;
}
