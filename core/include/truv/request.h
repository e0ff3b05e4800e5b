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
  TRUV_REQ_SAFE = 1,      /* no side effect: may be retried freely (the GETs) */
  TRUV_REQ_BILLED = 2,    /* creates a billed refresh: never re-sent blindly */
  TRUV_REQ_RECONCILED = 4 /* an ambiguous outcome ("maybe sent") is read back
                             before anything is sent again (truv.refresh reads
                             the original order's refresh_order and events):
                             may use a kept-alive connection, never re-sent by
                             a transport (truv_request_connection) */
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

/* Which connection a request may use, and whether a transport may send it
 * twice: one rule, read by every transport (libcurl easy and multi,
 * transfer.c; the HTTP/1.1 writer, truv/http1.h, for the cosocket one).
 *
 * A kept-alive connection can die at any moment: the server closes it
 * after its idle timeout, possibly just as a request goes out on it, or
 * after processing the request and before answering. The client then sees
 * no answer and cannot tell whether the request was processed. libcurl
 * re-sends such a request on a new connection by itself (Curl_retry_request,
 * when not a byte of the answer came back): for a GET harmless, for a POST
 * a second refresh, order or bridge token.
 *
 *   TRUV_CONN_REUSE       every SAFE request (the GETs): a kept-alive
 *                         connection, and sent again on a new one when it
 *                         proves dead before any answer.
 *   TRUV_CONN_REUSE_ONCE  a RECONCILED request (refresh_order): may go out
 *                         on a kept-alive connection (idle at most the
 *                         transport's billed_reuse_idle_s; 0 there: fresh),
 *                         but is never sent twice: a loss after any byte of
 *                         it left is an error with maybe_sent = 1, which the
 *                         caller reconciles by reading back before sending
 *                         anything again. libcurl is given the body through
 *                         a read callback that cannot rewind and a
 *                         pre-request callback that refuses a second
 *                         attempt (transfer.c says why this forbids every
 *                         resend); the cosocket transport never re-sends it.
 *   TRUV_CONN_FRESH       every other request (create_order,
 *                         create_refresh_task, create_bridge_token): a
 *                         connection of its own, closed after the answer
 *                         ("Connection: close"). Their ambiguous outcome is
 *                         not read back (an order or a bridge token goes to
 *                         a person; a refresh task's cannot be): a fresh
 *                         connection keeps "maybe sent" to the rare loss of
 *                         a connection that was just opened for them. */
typedef enum truv_conn_rule {
  TRUV_CONN_REUSE,
  TRUV_CONN_REUSE_ONCE,
  TRUV_CONN_FRESH
} truv_conn_rule;

TRUV_API truv_conn_rule truv_request_connection(const truv_request *req);

/* 1 when truv_request_connection(req) is TRUV_CONN_FRESH. */
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
