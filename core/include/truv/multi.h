/* truv_multi: many requests in flight over one connection pool (libcurl's
 * multi interface), driven by the caller's own loop (a scheduler of Lua
 * coroutines, an event loop, a plain while loop).
 *
 * The model is a completion queue:
 *   truv_multi_add(m, req, tag)   starts a transfer under a tag;
 *   truv_multi_run(m, ms, &ready) moves every transfer forward for at most
 *                                 ms milliseconds, returning as soon as one
 *                                 or more have finished;
 *   truv_multi_next(m, &done)     hands the finished ones out one by one:
 *                                 (tag, request, response) or (tag, request,
 *                                 transport error).
 * The multi only moves bytes: classifying an answer is truv_classify's job,
 * exactly as with truv_http.
 *
 * Transfers behave like truv_http's (truv/http.h) because they are set up
 * the same way: the same options, the same error mapping (err->code and
 * err->maybe_sent) and the same connection rule (truv_request_connection:
 * a refresh_order may ride a kept-alive connection and is never sent
 * twice; every other request but a GET goes out on a fresh one). Besides:
 *   - one connection cache for every transfer (the multi's): HTTP/1.1 with
 *     keep-alive, no pipelining and no HTTP/2 multiplexing, at most
 *     max_in_flight connections in all and max_host_connections to one host;
 *   - at most max_in_flight transfers at once: add() refuses more with
 *     TRUV_EINTERNAL, code "full";
 *   - a transfer queued behind max_host_connections counts that wait against
 *     its timeout; if it times out there, it was never sent (maybe_sent 0);
 *   - easy handles and response buffers are pooled and reused, not made per
 *     request: the memory a transfer in flight costs is its slot (a few
 *     hundred bytes), libcurl's per-transfer state with its receive buffer
 *     (buffer_size) and the answer received so far (its buffer sized once
 *     from Content-Length). An idle slot keeps a response buffer of at
 *     most 16 KB: a refresh's answer is reused in place, a large order
 *     document's is given back.
 *
 * Lifetimes: add() does not copy the request: the caller keeps it alive and
 * unchanged until its transfer is handed out by next() or cancelled. What
 * next() hands out (done->resp) stays valid until the following call of
 * next(), run(), cancel() or free() on the same multi.
 *
 * Waiting is done with epoll over the sockets libcurl reports (its socket
 * interface), so a wakeup costs the sockets that are ready, not every
 * transfer in flight: Linux only, like the rest of the batch tooling.
 *
 * Threads and coroutines: a truv_multi belongs to one thread at a time and
 * shares nothing with other multis or truv_http objects. Any number of
 * coroutines of that thread may put transfers in it: that is what it is
 * for. Calls must not be made from inside libcurl callbacks (there are none
 * for the caller to install). */
#ifndef TRUV_MULTI_H
#define TRUV_MULTI_H

#include "truv/common.h"
#include "truv/err.h"
#include "truv/http.h"
#include "truv/request.h"
#include "truv/response.h"

#define TRUV_MULTI_DEFAULT_IN_FLIGHT 32
#define TRUV_MULTI_MAX_IN_FLIGHT 65536
#define TRUV_MULTI_DEFAULT_BUFFER 8192 /* libcurl's default is 16 KB */

typedef struct truv_multi_options {
  truv_http_options http;   /* timeouts (per transfer), TLS, proxy: as for truv_http */
  int max_in_flight;        /* transfers at once; 0: 32 */
  int max_host_connections; /* connections to one host; 0: max_in_flight */
  long buffer_size;         /* libcurl's receive buffer per transfer, bytes;
                               0: TRUV_MULTI_DEFAULT_BUFFER (1024..524288) */
} truv_multi_options;

typedef struct truv_multi truv_multi;

/* One finished transfer, as next() hands it out. */
typedef struct truv_multi_done {
  void *tag;                 /* what add() was given */
  const truv_request *req;   /* what add() was given */
  const truv_response *resp; /* the answer (any status), or NULL when the
                                exchange failed: then err says how */
  truv_err err;
} truv_multi_done;

typedef struct truv_multi_stats {
  unsigned long long transfers; /* transfers that finished (answered or failed) */
  unsigned long long connects;  /* connections opened for them: transfers -
                                   connects were served on a kept-alive one */
  unsigned long long cancelled; /* transfers removed by cancel() or free() */
} truv_multi_stats;

/* NULL opts: every default. Returns NULL with err set on failure. */
TRUV_API truv_multi *truv_multi_new(const truv_multi_options *opts, truv_err *err);

/* Aborts whatever is in flight (those transfers are never reported; their
 * connections are closed) and releases everything. NULL is allowed. */
TRUV_API void truv_multi_free(truv_multi *m);

/* Starts sending req. The tag names the transfer for next() and cancel():
 * a tag already in use (in flight or not yet handed out) is refused with
 * TRUV_EINVALID "duplicate_tag". Full: TRUV_EINTERNAL "full". */
TRUV_API int truv_multi_add(truv_multi *m, const truv_request *req, void *tag, truv_err *err);

/* Runs the transfers for at most timeout_ms (0: one non-blocking pass),
 * returning early once anything has finished, at once if nothing is in
 * flight, and when a signal interrupts the wait (so that a program that
 * catches one sees it at once; the transfers go on at the next call).
 * *ready receives the number of transfers waiting for next().
 * Fails only when libcurl itself does (TRUV_EINTERNAL). */
TRUV_API int truv_multi_run(truv_multi *m, long timeout_ms, size_t *ready, truv_err *err);

/* Hands out the next finished transfer (oldest first): returns 1 and fills
 * *done, or returns 0 when none is waiting. */
TRUV_API int truv_multi_next(truv_multi *m, truv_multi_done *done);

/* Removes the transfer named tag, wherever it is (in flight, or finished
 * but not handed out): it will never be reported, and a connection it was
 * using is closed. Returns 1 if there was one, else 0. */
TRUV_API int truv_multi_cancel(truv_multi *m, void *tag);

/* Transfers added and not yet handed out or cancelled. */
TRUV_API size_t truv_multi_pending(const truv_multi *m);

TRUV_API void truv_multi_get_stats(const truv_multi *m, truv_multi_stats *stats);

#endif
