/* The blocking libcurl transport (see truv/http.h). */
#include "truv/http.h"

#include <stdlib.h>
#include <string.h>

#include "transfer.h"

struct truv_http {
  CURL *easy;
  truv_http_options opts;
  char *ca_file, *ca_path, *proxy, *no_proxy; /* owned copies of the option strings */
  truv_transfer_once once;                    /* a refresh_order's body, read by libcurl */
  char errbuf[CURL_ERROR_SIZE];
};

static int copy_opt(char **dst, const char *src) {
  *dst = NULL;
  return src && !(*dst = strdup(src)) ? -1 : 0;
}

truv_http *truv_http_new(const truv_http_options *opts, truv_err *err) {
  truv_http *http;
  truv_http_options none;
  if (truv_curl_global(err)) return NULL;
  if (!opts) {
    memset(&none, 0, sizeof none);
    opts = &none;
  }
  if (opts->billed_reuse_idle_s > TRUV_MAX_BILLED_REUSE_IDLE_S) {
    truv_err_clear(err);
    truv_err_invalid(err, "billed_reuse_idle_s", "must be at most %ld seconds",
                     TRUV_MAX_BILLED_REUSE_IDLE_S);
    return NULL;
  }
  if (!(http = calloc(1, sizeof *http))) goto nomem;
  http->opts = *opts;
  if (copy_opt(&http->ca_file, opts->ca_file) || copy_opt(&http->ca_path, opts->ca_path) ||
      copy_opt(&http->proxy, opts->proxy) || copy_opt(&http->no_proxy, opts->no_proxy) ||
      !(http->easy = curl_easy_init()))
    goto nomem;
  http->opts.ca_file = http->ca_file;
  http->opts.ca_path = http->ca_path;
  http->opts.proxy = http->proxy;
  http->opts.no_proxy = http->no_proxy;
  return http;

nomem:
  truv_http_free(http);
  truv_err_set(err, TRUV_EINTERNAL, "nomem", "out of memory creating an HTTP client");
  return NULL;
}

void truv_http_free(truv_http *http) {
  if (!http) return;
  if (http->easy) curl_easy_cleanup(http->easy);
  free(http->ca_file);
  free(http->ca_path);
  free(http->proxy);
  free(http->no_proxy);
  free(http);
}

int truv_http_send(truv_http *http, const truv_request *req, truv_response *resp, truv_err *err) {
  struct curl_slist *headers = NULL;
  CURLcode rc;
  int result = 0;
  truv_err_clear(err);
  if ((result =
         truv_transfer_prepare(http->easy, &http->opts, req, resp, &http->once, &headers, err)))
    return result;
  http->errbuf[0] = '\0';
  curl_easy_setopt(http->easy, CURLOPT_ERRORBUFFER, http->errbuf);
  rc = curl_easy_perform(http->easy);
  if (rc == CURLE_OK) truv_transfer_finish(http->easy, resp);
  else result = truv_transfer_error(http->easy, rc, http->errbuf, req, err);
  curl_easy_setopt(http->easy, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(headers);
  return result;
}
