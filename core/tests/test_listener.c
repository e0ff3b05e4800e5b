/* The webhook listener, from the outside: libcurl posts to it as Truv
 * would, and the tests look at the answers, the queue and the counters. */
#define _DEFAULT_SOURCE /* usleep */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "truv/listener.h"
#include "truv/webhook.h"

#define SECRET "sandbox-secret"
#define BODY \
  "{\"webhook_id\":\"w1\",\"event_type\":\"order-status-updated\",\"status\":\"completed\"}"

static const char *const one_secret[] = {SECRET};

/* ---- helpers ---- */

static truv_listener *start(size_t max_queue, size_t max_body) {
  truv_listener_options o = {0};
  truv_listener *l = NULL;
  truv_err err;
  o.secrets = one_secret;
  o.nsecrets = 1;
  o.max_queue = max_queue;
  o.max_body = max_body;
  if (truv_listener_new(&o, &l, &err)) fprintf(stderr, "listener: %s\n", err.message);
  return l;
}

typedef struct answer {
  long status;
  char allow[64], retry_after[16];
} answer;

static size_t discard(char *p, size_t size, size_t n, void *ud) {
  (void)p, (void)ud;
  return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  answer *a = ud;
  size_t len = size * n;
  char line[256];
  if (len >= sizeof line) return len;
  memcpy(line, p, len);
  line[len] = '\0';
  line[strcspn(line, "\r\n")] = '\0';
  if (strncasecmp(line, "Allow: ", 7) == 0) snprintf(a->allow, sizeof a->allow, "%.60s", line + 7);
  if (strncasecmp(line, "Retry-After: ", 13) == 0)
    snprintf(a->retry_after, sizeof a->retry_after, "%.12s", line + 13);
  return len;
}

typedef struct post_opts {
  const char *method; /* default POST */
  const char *path;   /* default /truv/webhooks */
  const char *sign;   /* default: the right signature; "" for none */
  int chunked;
} post_opts;

/* Sends body to the listener with a handle the caller may reuse (keep-alive). */
static answer send_with(CURL *h, int port, const char *body, size_t len, const post_opts *po) {
  answer a = {0};
  char url[256], sig[TRUV_WEBHOOK_SIG_SIZE], hdr[128];
  struct curl_slist *headers = NULL;
  const char *method = po && po->method ? po->method : "POST";
  snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port,
           po && po->path ? po->path : TRUV_LISTENER_DEFAULT_PATH);
  if (po && po->sign) {
    snprintf(sig, sizeof sig, "%s", po->sign);
  } else {
    truv_webhook_sign(body, len, SECRET, sig);
  }
  headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "User-Agent: Truv-Webhook-Service/2.0");
  headers = curl_slist_append(headers, "Expect:");
  if (sig[0]) {
    snprintf(hdr, sizeof hdr, "X-WEBHOOK-SIGN: %s", sig);
    headers = curl_slist_append(headers, hdr);
  }
  if (po && po->chunked) headers = curl_slist_append(headers, "Transfer-Encoding: chunked");
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (strcmp(method, "GET") != 0) {
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, po && po->chunked ? -1L : (long)len);
  } else {
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &a);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a.status);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
  curl_slist_free_all(headers);
  return a;
}

static answer send_body(int port, const char *body, size_t len, const post_opts *po) {
  CURL *h = curl_easy_init();
  answer a = send_with(h, port, body, len, po);
  curl_easy_cleanup(h);
  return a;
}

static long post(int port, const char *body) {
  return send_body(port, body, strlen(body), NULL).status;
}

static size_t drain_all(truv_listener *l) {
  truv_delivery *list;
  size_t n = truv_listener_drain(l, 0, &list);
  truv_deliveries_free(list);
  return n;
}

/* ---- tests ---- */

static void test_a_signed_post_is_queued_with_its_headers(void) {
  truv_listener *l = start(0, 0);
  truv_delivery *d;
  truv_listener_stats st;
  char sig[TRUV_WEBHOOK_SIG_SIZE];
  CHECK(l != NULL);
  if (!l) return;
  CHECK(truv_listener_port(l) > 0);
  CHECK_INT(post(truv_listener_port(l), BODY), 200);
  CHECK_INT(truv_listener_drain(l, 0, &d), 1);
  CHECK(d != NULL);
  if (d) {
    truv_webhook_sign(BODY, strlen(BODY), SECRET, sig);
    CHECK_INT(d->len, strlen(BODY));
    CHECK_STR(d->body, BODY);
    CHECK_STR(d->signature, sig);
    CHECK_STR(d->content_type, "application/json");
    CHECK_STR(d->user_agent, "Truv-Webhook-Service/2.0");
    CHECK(d->received_at > 1.6e9);
    CHECK(d->next == NULL);
  }
  truv_deliveries_free(d);
  CHECK_INT(truv_listener_drain(l, 0, &d), 0);
  CHECK(d == NULL);
  truv_listener_get_stats(l, &st);
  CHECK_INT(st.accepted, 1);
  CHECK_INT(st.queued, 0);
  truv_listener_free(l);
}

static void test_a_query_string_does_not_change_the_path(void) {
  truv_listener *l = start(0, 0);
  post_opts po = {0};
  if (!l) return;
  po.path = TRUV_LISTENER_DEFAULT_PATH "?source=truv";
  CHECK_INT(send_body(truv_listener_port(l), BODY, strlen(BODY), &po).status, 200);
  CHECK_INT(drain_all(l), 1);
  truv_listener_free(l);
}

static void test_bad_or_missing_signatures_are_refused_and_not_queued(void) {
  truv_listener *l = start(0, 0);
  post_opts po = {0};
  truv_listener_stats st;
  char sig[TRUV_WEBHOOK_SIG_SIZE];
  int port;
  if (!l) return;
  port = truv_listener_port(l);
  truv_webhook_sign(BODY, strlen(BODY), SECRET, sig);
  po.sign = sig; /* the right signature over another body: tampered */
  CHECK_INT(send_body(port, "{\"webhook_id\":\"w2\"}", 19, &po).status, 401);
  po.sign = "";
  CHECK_INT(send_body(port, BODY, strlen(BODY), &po).status, 401);
  po.sign = "v1=zz";
  CHECK_INT(send_body(port, BODY, strlen(BODY), &po).status, 401);
  truv_webhook_sign(BODY, strlen(BODY), "sandbox-other", sig);
  po.sign = sig;
  CHECK_INT(send_body(port, BODY, strlen(BODY), &po).status, 401);
  CHECK_INT(drain_all(l), 0);
  truv_listener_get_stats(l, &st);
  CHECK_INT(st.unauthorized, 4);
  CHECK_INT(st.accepted, 0);
  truv_listener_free(l);
}

static void test_rotated_secrets_are_all_accepted(void) {
  const char *const secrets[] = {"sandbox-new", NULL, "", SECRET};
  truv_listener_options o = {0};
  truv_listener *l = NULL;
  truv_err err;
  o.secrets = secrets;
  o.nsecrets = 4;
  CHECK_INT(truv_listener_new(&o, &l, &err), 0);
  if (!l) return;
  CHECK_INT(post(truv_listener_port(l), BODY), 200);
  CHECK_INT(drain_all(l), 1);
  truv_listener_free(l);
}

static void test_other_paths_are_404(void) {
  truv_listener *l = start(0, 0);
  post_opts po = {0};
  truv_listener_stats st;
  if (!l) return;
  po.path = "/truv/webhooks/";
  CHECK_INT(send_body(truv_listener_port(l), BODY, strlen(BODY), &po).status, 404);
  po.path = "/";
  CHECK_INT(send_body(truv_listener_port(l), BODY, strlen(BODY), &po).status, 404);
  po.path = "/other";
  po.method = "GET";
  CHECK_INT(send_body(truv_listener_port(l), "", 0, &po).status, 404);
  CHECK_INT(drain_all(l), 0);
  truv_listener_get_stats(l, &st);
  CHECK_INT(st.not_found, 3);
  truv_listener_free(l);
}

static void test_other_methods_are_405_with_allow(void) {
  truv_listener *l = start(0, 0);
  post_opts po = {0};
  answer a;
  if (!l) return;
  po.method = "GET";
  a = send_body(truv_listener_port(l), "", 0, &po);
  CHECK_INT(a.status, 405);
  CHECK_STR(a.allow, "POST");
  po.method = "PUT";
  CHECK_INT(send_body(truv_listener_port(l), BODY, strlen(BODY), &po).status, 405);
  po.method = "DELETE";
  CHECK_INT(send_body(truv_listener_port(l), "", 0, &po).status, 405);
  CHECK_INT(drain_all(l), 0);
  truv_listener_free(l);
}

static char *filled(size_t n) {
  char *b = malloc(n + 1);
  memset(b, 'x', n);
  b[n] = '\0';
  return b;
}

static void test_bodies_over_the_limit_are_413(void) {
  truv_listener *l = start(0, 1024);
  post_opts po = {0};
  char *big = filled(64 * 1024), *exact = filled(1024);
  truv_listener_stats st;
  int port;
  if (!l) goto done;
  port = truv_listener_port(l);
  CHECK_INT(send_body(port, big, 1025, NULL).status, 413); /* by Content-Length */
  CHECK_INT(send_body(port, big, 64 * 1024, NULL).status, 413);
  po.chunked = 1;
  CHECK_INT(send_body(port, big, 64 * 1024, &po).status, 0); /* closed while reading */
  CHECK_INT(send_body(port, exact, 1024, NULL).status, 200); /* the limit itself */
  CHECK_INT(send_body(port, exact, 1024, &po).status, 200);  /* chunked, small */
  truv_listener_get_stats(l, &st);
  CHECK_INT(st.too_large, 3);
  CHECK_INT(drain_all(l), 2);
  /* the listener is still healthy */
  CHECK_INT(post(port, BODY), 200);
  CHECK_INT(drain_all(l), 1);
  truv_listener_free(l);
done:
  free(big);
  free(exact);
}

static void test_a_full_queue_answers_503_until_drained(void) {
  truv_listener *l = start(2, 0);
  truv_listener_stats st;
  answer a;
  int port;
  if (!l) return;
  port = truv_listener_port(l);
  CHECK_INT(post(port, BODY), 200);
  CHECK_INT(post(port, BODY), 200);
  a = send_body(port, BODY, strlen(BODY), NULL);
  CHECK_INT(a.status, 503);
  CHECK_STR(a.retry_after, "1");
  truv_listener_get_stats(l, &st);
  CHECK_INT(st.full, 1);
  CHECK_INT(st.queued, 2);
  CHECK_INT(drain_all(l), 2);
  CHECK_INT(post(port, BODY), 200); /* room again */
  CHECK_INT(drain_all(l), 1);
  truv_listener_free(l);
}

static void test_drain_takes_at_most_max_oldest_first(void) {
  truv_listener *l = start(0, 0);
  truv_delivery *d;
  char body[64];
  int i, port;
  if (!l) return;
  port = truv_listener_port(l);
  for (i = 0; i < 5; i++) {
    snprintf(body, sizeof body, "{\"n\":%d}", i);
    CHECK_INT(post(port, body), 200);
  }
  CHECK_INT(truv_listener_drain(l, 2, &d), 2);
  CHECK_STR(d->body, "{\"n\":0}");
  CHECK_STR(d->next->body, "{\"n\":1}");
  CHECK(d->next->next == NULL);
  truv_deliveries_free(d);
  CHECK_INT(truv_listener_drain(l, 0, &d), 3);
  CHECK_STR(d->body, "{\"n\":2}");
  truv_deliveries_free(d);
  truv_listener_free(l);
}

/* Posters on threads of their own, each over one kept-alive connection. */
#define POSTERS 8
#define POSTS 40

typedef struct poster {
  int port, id, ok;
} poster;

static void *post_many(void *arg) {
  poster *p = arg;
  CURL *h = curl_easy_init();
  char body[64];
  int i;
  for (i = 0; i < POSTS; i++) {
    snprintf(body, sizeof body, "{\"poster\":%d,\"n\":%d}", p->id, i);
    if (send_with(h, p->port, body, strlen(body), NULL).status == 200) p->ok++;
  }
  curl_easy_cleanup(h);
  return NULL;
}

static void test_concurrent_posts_are_each_queued_once(void) {
  truv_listener *l = start(0, 0);
  pthread_t t[POSTERS];
  poster p[POSTERS];
  int next[POSTERS] = {0};
  truv_delivery *list, *d;
  size_t n = 0;
  int i, in_order = 1;
  if (!l) return;
  for (i = 0; i < POSTERS; i++) {
    p[i].port = truv_listener_port(l);
    p[i].id = i;
    p[i].ok = 0;
    pthread_create(&t[i], NULL, post_many, &p[i]);
  }
  /* drained while the posts come in, as a consumer's loop would */
  for (i = 0; i < 200 && n < POSTERS * POSTS; i++) {
    size_t k = truv_listener_drain(l, 0, &list);
    for (d = list; d; d = d->next) {
      int who = -1, num = -1;
      if (sscanf(d->body, "{\"poster\":%d,\"n\":%d}", &who, &num) == 2 && who >= 0 &&
          who < POSTERS) {
        if (num != next[who]) in_order = 0;
        next[who] = num + 1;
      }
    }
    truv_deliveries_free(list);
    n += k;
    usleep(5000);
  }
  for (i = 0; i < POSTERS; i++) {
    pthread_join(t[i], NULL);
    CHECK_INT(p[i].ok, POSTS);
  }
  n += drain_all(l);
  CHECK_INT(n, POSTERS * POSTS);
  CHECK(in_order); /* each poster's deliveries, in the order it sent them */
  truv_listener_free(l);
}

static void test_freeing_with_deliveries_queued_and_a_client_mid_request(void) {
  truv_listener *l = start(0, 0);
  struct sockaddr_in a;
  const char *head = "POST /truv/webhooks HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{";
  int fd;
  if (!l) return;
  CHECK_INT(post(truv_listener_port(l), BODY), 200);
  CHECK_INT(post(truv_listener_port(l), BODY), 200);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)truv_listener_port(l));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
  CHECK(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
  usleep(50000);
  truv_listener_free(l); /* valgrind: nothing of either may leak */
  close(fd);
}

static void test_options_are_checked(void) {
  truv_listener_options o = {0};
  truv_listener *l = NULL, *other = NULL;
  truv_err err;
  CHECK_INT(truv_listener_new(&o, &l, &err), TRUV_EINVALID); /* no secret */
  CHECK_STR(err.code, "no_secret");
  CHECK(l == NULL);
  o.secrets = one_secret;
  o.nsecrets = 1;
  o.host = "localhost"; /* a name, not an address */
  CHECK_INT(truv_listener_new(&o, &l, &err), TRUV_EINVALID);
  CHECK_STR(err.code, "invalid_option");
  o.host = NULL;
  o.path = "truv";
  CHECK_INT(truv_listener_new(&o, &l, &err), TRUV_EINVALID);
  o.path = NULL;
  o.port = 70000;
  CHECK_INT(truv_listener_new(&o, &l, &err), TRUV_EINVALID);
  o.port = 0;
  o.max_body = (size_t)TRUV_LISTENER_MAX_BODY + 1;
  CHECK_INT(truv_listener_new(&o, &l, &err), TRUV_EINVALID);
  o.max_body = 0;
  o.host = "192.0.2.1"; /* not an address of this machine */
  CHECK_INT(truv_listener_new(&o, &l, &err), TRUV_ENETWORK);
  CHECK_STR(err.code, "bind");
  o.host = NULL;
  CHECK_INT(truv_listener_new(&o, &l, &err), 0);
  if (!l) return;
  o.port = truv_listener_port(l); /* taken */
  CHECK_INT(truv_listener_new(&o, &other, &err), TRUV_ENETWORK);
  CHECK(other == NULL);
  CHECK_NOT_CONTAINS(err.message, SECRET);
  truv_listener_free(l);
  truv_listener_free(NULL);
}

static void test_a_custom_path_and_ipv6_loopback(void) {
  truv_listener_options o = {0};
  truv_listener *l = NULL;
  truv_err err;
  CURL *h;
  char url[128], sig[TRUV_WEBHOOK_SIG_SIZE], hdr[100];
  struct curl_slist *headers = NULL;
  long status = 0;
  o.secrets = one_secret;
  o.nsecrets = 1;
  o.host = "::1";
  o.path = "/hooks/truv";
  if (truv_listener_new(&o, &l, &err)) {
    fprintf(stderr, "  (no IPv6 loopback here: %s)\n", err.message);
    return;
  }
  snprintf(url, sizeof url, "http://[::1]:%d/hooks/truv", truv_listener_port(l));
  truv_webhook_sign(BODY, strlen(BODY), SECRET, sig);
  snprintf(hdr, sizeof hdr, "X-Webhook-Sign: %s", sig); /* any case */
  headers = curl_slist_append(headers, hdr);
  h = curl_easy_init();
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, BODY);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
  if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  CHECK_INT(status, 200);
  CHECK_INT(drain_all(l), 1);
  curl_easy_cleanup(h);
  curl_slist_free_all(headers);
  truv_listener_free(l);
}

int main(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
  RUN(test_a_signed_post_is_queued_with_its_headers);
  RUN(test_a_query_string_does_not_change_the_path);
  RUN(test_bad_or_missing_signatures_are_refused_and_not_queued);
  RUN(test_rotated_secrets_are_all_accepted);
  RUN(test_other_paths_are_404);
  RUN(test_other_methods_are_405_with_allow);
  RUN(test_bodies_over_the_limit_are_413);
  RUN(test_a_full_queue_answers_503_until_drained);
  RUN(test_drain_takes_at_most_max_oldest_first);
  RUN(test_concurrent_posts_are_each_queued_once);
  RUN(test_freeing_with_deliveries_queued_and_a_client_mid_request);
  RUN(test_options_are_checked);
  RUN(test_a_custom_path_and_ipv6_loopback);
  curl_global_cleanup();
  return CHECK_DONE();
}
