/* tls_reuse: the client's CPU per billed request over TLS, on a fresh
 * connection each (lua-truv's rule today for every non-GET) or on one reused
 * connection: the same POST, the same libcurl settings as core/src/net/transfer.c
 * (peer and host verified against a CA file and no CA directory, no Expect), only
 * CURLOPT_FRESH_CONNECT differs.
 *
 *   tls_reuse URL CA_FILE BODY N fresh|reuse
 * prints: "<mode> requests=N connects=C cpu_us_per_request=X wall_us_per_request=Y" */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static size_t sink(char *p, size_t size, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return size * n;
}

static double cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static double wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  CURL *easy;
  struct curl_slist *h = NULL;
  long n, connects = 0, code = 0, i;
  int fresh;
  double c0, w0;
  if (argc != 6) {
    fprintf(stderr, "usage: tls_reuse URL CA_FILE BODY N fresh|reuse\n");
    return 2;
  }
  n = atol(argv[4]);
  fresh = strcmp(argv[5], "fresh") == 0;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  easy = curl_easy_init();
  h = curl_slist_append(h, "Content-Type: application/json");
  h = curl_slist_append(h, "X-Access-Client-Id: sandbox-client-id");
  h = curl_slist_append(h, "X-Access-Secret: sandbox-secret");
  h = curl_slist_append(h, "Expect:");
  curl_easy_setopt(easy, CURLOPT_URL, argv[1]);
  curl_easy_setopt(easy, CURLOPT_CAINFO, argv[2]);
  curl_easy_setopt(easy, CURLOPT_CAPATH, NULL); /* as lua-truv: the CA file read once */
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h);
  curl_easy_setopt(easy, CURLOPT_POSTFIELDS, argv[3]);
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink);
  curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, fresh ? 1L : 0L);
  c0 = cpu_us();
  w0 = wall_us();
  for (i = 0; i < n; i++) {
    long nc = 0;
    CURLcode rc = curl_easy_perform(easy);
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK || code != 200) {
      fprintf(stderr, "tls_reuse: request %ld: %s (HTTP %ld)\n", i, curl_easy_strerror(rc), code);
      return 1;
    }
    curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &nc);
    connects += nc;
  }
  printf("%s requests=%ld connects=%ld cpu_us_per_request=%.0f wall_us_per_request=%.0f\n",
         fresh ? "fresh" : "reuse", n, connects, (cpu_us() - c0) / (double)n,
         (wall_us() - w0) / (double)n);
  curl_slist_free_all(h);
  curl_easy_cleanup(easy);
  curl_global_cleanup();
  return 0;
}
