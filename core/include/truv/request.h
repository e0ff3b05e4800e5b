/* Requests as data: (configuration, operation, parameters) -> a request
 * value that any transport can send (libcurl, libcurl multi, a cosocket).
 *
 * truv_request_build() validates the parameters against Truv's API rules
 * before anything is sent: on a violation it returns TRUV_EINVALID with every
 * offending field in err->fields and builds nothing. Unknown parameters are
 * passed through untouched (the API grows; the client should not block new
 * fields). Paths always keep Truv's trailing slash.
 *
 * The request owns all its strings; truv_request_free() releases them. It
 * lists the secret values it carries (the access secret, access tokens, SSNs)
 * in `redact`, so that anything derived from the exchange can be scrubbed
 * before it reaches an error or a log. */
#ifndef TRUV_REQUEST_H
#define TRUV_REQUEST_H

#include <cjson/cJSON.h>

#include "truv/common.h"
#include "truv/err.h"

#define TRUV_DEFAULT_BASE_URL "https://prod.truv.com/v1/"

typedef struct truv_config {
  const char *base_url;   /* NULL: TRUV_DEFAULT_BASE_URL; a missing final '/' is added */
  const char *client_id;  /* X-Access-Client-Id */
  const char *secret;     /* X-Access-Secret */
  const char *user_agent; /* NULL: "lua-truv/<version>"; else appended after it */
} truv_config;

/* The operations: one row each in the operation table
 * (core/src/proto/operation.c), which holds the method, the path, the path
 * parameter, where the parameters go, their checks and the answer's shape. */
typedef enum truv_op {
  TRUV_OP_CREATE_ORDER,        /* POST orders/ */
  TRUV_OP_GET_ORDER,           /* GET  orders/{id}/ */
  TRUV_OP_REFRESH_ORDER,       /* POST orders/{id}/          billed */
  TRUV_OP_LIST_ORDER_EVENTS,   /* GET  orders/{id}/events/ */
  TRUV_OP_CREATE_REFRESH_TASK, /* POST refresh/tasks/        billed */
  TRUV_OP_GET_REFRESH_TASK,    /* GET  refresh/tasks/{id}/ */
  TRUV_OP_CREATE_BRIDGE_TOKEN, /* POST users/{id}/tokens/ */
  TRUV_OP_LIST_TASKS, /* GET  tasks/ (?user_id=...: a user's tasks, error_message included) */
  TRUV_OP_GET_TASK,   /* GET  tasks/{id}/ */
  TRUV_OP_COUNT
} truv_op;

/* Request flags. */
enum {
  TRUV_REQ_SAFE = 1,  /* no side effect: may be retried freely (the GETs) */
  TRUV_REQ_BILLED = 2 /* creates a billed refresh: never re-sent blindly;
                         like every request that is not SAFE, never sent on
                         a reused connection (truv_request_fresh) */
};

/* How long one request may take, in milliseconds; 0 leaves the transport's
 * own setting. A caller sets them after building (per-call timeouts); every
 * transport honours them as closely as it can (truv/http.h says how
 * libcurl maps them). */
typedef struct truv_request_timeouts {
  long connect_ms; /* TCP connect and TLS handshake */
  long send_ms;    /* a send that makes no progress */
  long read_ms;    /* a wait for the next bytes of the answer */
  long total_ms;   /* the whole exchange */
} truv_request_timeouts;

#define TRUV_REQ_MAX_HEADERS 8
#define TRUV_REQ_MAX_REDACT 8

typedef struct truv_request {
  truv_op op;
  const char *method; /* static string: "GET", "POST" */
  unsigned flags;
  char *url;    /* absolute URL */
  char *target; /* origin-form for HTTP/1.1: "/v1/orders/ab12/" (+ query) */
  char *host;   /* "prod.truv.com" or "127.0.0.1:8080" (Host header) */
  char *path;   /* relative to the base URL, e.g. "orders/ab12/": safe to log */
  char *headers[TRUV_REQ_MAX_HEADERS]; /* "Name: value"; NULL-terminated */
  size_t nheaders;
  char *body; /* JSON, or NULL */
  size_t body_len;
  char *redact[TRUV_REQ_MAX_REDACT];
  size_t nredact;
  truv_request_timeouts timeouts; /* zero after building */
} truv_request;

/* Facts about the original order that refine validation of a refresh; pass
 * NULL when they are unknown (the rule is then left to Truv). */
typedef struct truv_order_facts {
  const char *const *products; /* the original order's products */
  size_t nproducts;
} truv_order_facts;

/* Operation metadata. */
TRUV_API const char *truv_op_name(truv_op op);    /* "refresh_order", ... */
TRUV_API int truv_op_from_name(const char *name); /* -1 if unknown */
TRUV_API unsigned truv_op_flags(truv_op op);

/* Builds the request for `op`. `id` is the path parameter (order id, task
 * id, user id) for the operations that take one, else ignored. `params` is
 * the JSON body for POSTs and the query parameters (strings, numbers,
 * booleans) for GETs; it may be NULL. `facts` may be NULL. */
TRUV_API int truv_request_build(const truv_config *cfg, truv_op op, const char *id,
                                const cJSON *params, const truv_order_facts *facts,
                                truv_request *out, truv_err *err);

TRUV_API void truv_request_free(truv_request *req);

/* 1 when req must go out on a fresh connection, closed after its answer:
 * every request that is not TRUV_REQ_SAFE, i.e. every one but a GET,
 * creates something at Truv (a refresh, an order, a bridge token). On a
 * reused connection that the server closed after processing the request, a
 * client would see no answer and could send it again on a new one (libcurl
 * does so silently): a second refresh, or a second link to the applicant.
 * On a fresh connection such a loss is an error (maybe_sent) that the
 * caller reconciles. Every transport applies it: libcurl's
 * (CURLOPT_FRESH_CONNECT) and the HTTP/1.1 writer (Connection: close,
 * truv/http1.h). */
TRUV_API int truv_request_fresh(const truv_request *req);

/* Validation alone (what truv_request_build runs first). */
TRUV_API int truv_validate(truv_op op, const char *id, const cJSON *params,
                           const truv_order_facts *facts, truv_err *err);

/* The rules validation applies, for the layers above to read rather than
 * write again (the Lua binding's core.lists). */
#define TRUV_MAX_CONNECTIONS 5 /* employers or financial accounts per order */
#define TRUV_MAX_ID 128        /* bytes of an id in a path or a selection */
/* Truv's id rule: 1 to TRUV_MAX_ID letters, digits, '-' and '_'. */
TRUV_API int truv_valid_id(const char *id);
/* The i-th of Truv's products, NULL past the last. */
TRUV_API const char *truv_product_name(size_t i);
/* 1 when `op`'s body takes `product` (products, product_type), else 0. */
TRUV_API int truv_product_takes(truv_op op, const char *product);
/* The connections a refresh of `product` refreshes: "employers" or
 * "financial_accounts"; NULL for a product that is not refreshed. */
TRUV_API const char *truv_product_refreshes(const char *product);

#endif
