/* truv_listener: an embedded HTTP endpoint that receives Truv's webhooks
 * for a program that has no web server of its own (a renewal batch that
 * waits for its refreshes by webhook rather than by polling).
 *
 * It binds an address (127.0.0.1 by default; port 0 takes a free port and
 * truv_listener_port() says which), serves HTTP/1.1 on one thread of its
 * own (libmicrohttpd), and accepts exactly one thing: `POST <path>` with a
 * body of at most max_body bytes and a valid X-WEBHOOK-SIGN. Each accepted
 * delivery (the raw body and the headers the consumer needs) goes into a
 * bounded queue and is answered 200 at once; the consumer takes the queue
 * with truv_listener_drain() whenever its own loop comes round. The
 * listener never waits for the consumer, so Truv always gets its answer
 * well within its 10 s.
 *
 * Answers:
 *   200  queued
 *   401  no X-WEBHOOK-SIGN, or one that matches no secret (nothing queued)
 *   404  another path (the query string is ignored)
 *   405  another method on the path (with Allow: POST)
 *   413  a Content-Length over max_body (before the body is read); a
 *        chunked body that passes the limit has its connection closed
 *        unanswered instead (an answer cannot be sent while the body is
 *        coming in, and the rest is not worth reading); both count as
 *        too_large
 *   503  the queue is full (with Retry-After: 1): Truv retries later
 *
 * Where the signature is checked, and why here. Truv treats any 2xx as
 * "delivered" and never sends that event again, so a 200 must mean "we
 * have an authentic event". The listener therefore verifies before it
 * answers, with the same truv_webhook_verify_keys() the receiver uses
 * (constant time, several secrets for rotation), rather than queueing
 * whatever arrives and leaving verification to the consumer:
 *   - only authentic deliveries take room in the bounded queue: anyone who
 *     can reach the port could otherwise fill it with junk, and Truv's real
 *     deliveries would get 503s until their retries ran out;
 *   - a wrong or stale secret (a rotation the program missed) shows up as
 *     401s in Truv's delivery log (GET /v1/webhook-requests/), and Truv
 *     retries them, instead of 200s silently dropped later;
 *   - it adds no exposure: the secret is already in the process (every API
 *     request carries it), the listener keeps only keyed HMAC states, and
 *     truv_listener_free() cleanses them.
 * The consumer still verifies again (the receiver always does: cheap, and
 * a listener and a receiver configured with different secrets then fail
 * loudly rather than trust each other), and it does everything that needs
 * state: parsing, de-duplication by webhook_id, ordering by updated_at,
 * routing. An authentic delivery that the consumer cannot use (not a Truv
 * event) is logged and dropped there; Truv could not fix it by retrying.
 * What the early 200 costs: an event queued but not yet handled when the
 * process dies is lost, as with any receiver that acknowledges before it
 * commits; a renewal covers that by polling a refresh whose webhooks do not
 * come (its fallback), and a resumed run polls what it finds in flight.
 *
 * Memory: at most max_queue deliveries of at most max_body bytes each, all
 * of them authentic. Nothing is shared with other listeners.
 *
 * Threads: the listener's own thread runs the HTTP side; every function
 * here may be called from any one other thread (one at a time per
 * listener). A drained delivery belongs to the caller. */
#ifndef TRUV_LISTENER_H
#define TRUV_LISTENER_H

#include "truv/common.h"
#include "truv/err.h"

#define TRUV_LISTENER_DEFAULT_HOST "127.0.0.1"
#define TRUV_LISTENER_DEFAULT_PATH "/truv/webhooks"
#define TRUV_LISTENER_DEFAULT_QUEUE 4096
#define TRUV_LISTENER_DEFAULT_BODY (1024 * 1024)
#define TRUV_LISTENER_MAX_QUEUE 1000000
#define TRUV_LISTENER_MAX_BODY (64 * 1024 * 1024)

typedef struct truv_listener_options {
  const char *host;           /* IPv4 or IPv6 literal; NULL: 127.0.0.1 */
  int port;                   /* 0: a free port */
  const char *path;           /* must start with '/'; NULL: /truv/webhooks */
  size_t max_queue;           /* deliveries waiting for drain(); 0: 4096 */
  size_t max_body;            /* bytes; 0: 1 MiB */
  const char *const *secrets; /* the access secret(s) Truv signs with; NULL and ""
                                 entries are skipped, at least one is required */
  size_t nsecrets;
} truv_listener_options;

/* One accepted delivery. A single allocation: every string lives in it. */
typedef struct truv_delivery {
  struct truv_delivery *next; /* the next one of a drained list, or NULL */
  const char *body;           /* the raw bytes as received, NUL-terminated */
  size_t len;                 /* bytes of body (the NUL not counted) */
  const char *signature;      /* the X-WEBHOOK-SIGN value (always present) */
  const char *content_type;   /* Content-Type, or NULL */
  const char *user_agent;     /* User-Agent, or NULL */
  double received_at;         /* epoch seconds */
} truv_delivery;

typedef struct truv_listener_stats {
  unsigned long long accepted;     /* 200: queued */
  unsigned long long unauthorized; /* 401 */
  unsigned long long not_found;    /* 404 */
  unsigned long long bad_method;   /* 405 */
  unsigned long long too_large;    /* 413 */
  unsigned long long full;         /* 503 */
  size_t queued;                   /* waiting for drain() now */
} truv_listener_stats;

typedef struct truv_listener truv_listener;

/* Binds, listens and starts serving. Returns 0 and *out, or:
 *   TRUV_EINVALID "no_secret"      no usable secret
 *   TRUV_EINVALID "invalid_option" a host that is not an address literal, a
 *                                  port outside 0..65535, a path not starting
 *                                  with '/', a limit above the maxima
 *   TRUV_ENETWORK "bind"           the address cannot be bound (in use,
 *                                  not local, no permission)
 *   TRUV_EINTERNAL                 out of memory, OpenSSL or the HTTP
 *                                  server could not start */
TRUV_API int truv_listener_new(const truv_listener_options *opts, truv_listener **out,
                               truv_err *err);

/* Stops serving (connections in progress are closed unanswered; Truv
 * retries them), frees what is queued and cleanses the keys. NULL is
 * allowed. */
TRUV_API void truv_listener_free(truv_listener *l);

/* The port bound (the one chosen when the options said 0). */
TRUV_API int truv_listener_port(const truv_listener *l);

/* Takes up to max deliveries (0: all) off the queue, oldest first, as a
 * list in *list (NULL when none); returns how many. Never blocks beyond a
 * short lock the listener's thread holds only to append. */
TRUV_API size_t truv_listener_drain(truv_listener *l, size_t max, truv_delivery **list);

/* Frees a list of deliveries (a delivery with next == NULL is a list of
 * one). NULL is allowed. */
TRUV_API void truv_deliveries_free(truv_delivery *list);

TRUV_API void truv_listener_get_stats(truv_listener *l, truv_listener_stats *stats);

#endif
