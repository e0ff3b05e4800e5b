/* One libcurl transfer of a truv_request: what the easy and the multi
 * transports share. An easy handle is set up for the request (headers,
 * timeouts, TLS, proxy, the connection rule of truv_request_connection,
 * the callbacks that fill a truv_response), and libcurl's result for it
 * becomes a truv_err. Internal. */
#ifndef TRUV_TRANSFER_H
#define TRUV_TRANSFER_H

#include <curl/curl.h>

#include "truv/http.h"

/* Once per process, thread-safe. Returns 0 or TRUV_EINTERNAL. */
int truv_curl_global(truv_err *err);

/* A TRUV_CONN_REUSE_ONCE request's body as libcurl reads it, and the
 * attempts libcurl made to send it: the caller keeps one per transfer
 * (beside resp), alive as long as the transfer. */
typedef struct truv_transfer_once {
  const char *body;
  size_t len, off;
  int attempts;
} truv_transfer_once;

/* Sets every option for sending req into resp on easy (which may have been
 * used before: the connection cache is kept). *headers receives the list to
 * free with curl_slist_free_all once the transfer is over. */
int truv_transfer_prepare(CURL *easy, const truv_http_options *opts, const truv_request *req,
                          truv_response *resp, truv_transfer_once *once,
                          struct curl_slist **headers, truv_err *err);

/* Fills err for a finished transfer whose result was not CURLE_OK. */
int truv_transfer_error(CURL *easy, CURLcode rc, const char *errbuf, const truv_request *req,
                        truv_err *err);

/* After CURLE_OK: copies the status into resp. */
void truv_transfer_finish(CURL *easy, truv_response *resp);

#endif
