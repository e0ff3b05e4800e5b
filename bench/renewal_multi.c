/* renewal_multi: a bare libcurl-multi client making the calls a renewal makes
 * for a case whose connections are active, the anchor of truv-renew's
 * throughput (bench/engine.sh): read the original order (GET
 * /v1/orders/{id}/), refresh it (POST /v1/orders/{id}/, billed, on a fresh
 * connection as lua-truv sends every billed request, or on a reused one),
 * then read the refresh order every POLL_S seconds until none of its
 * connections is pending or sent (the last read is the result). Answers are
 * parsed with cJSON for what the next call needs (the refresh order's id,
 * the connections' statuses); nothing is journaled, nothing is routed.
 * At most INFLIGHT requests at a time and ACTIVE cases in progress (a case
 * waiting between two polls holds no request).
 *
 *   renewal_multi BASE_URL CASES_CSV INFLIGHT ACTIVE POLL_S fresh|reuse [CA_FILE]
 * prints one JSON line: cases, done, requests, errors, connects, wall_s, cpu_s */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

enum step { READ, REFRESH, POLL, FINISHED };

struct rcase {
  char order[64], product[32], kind[32], ids[512], fresh[64];
  enum step step;
  double due; /* monotonic time its next request may start (a poll's pause) */
  int queued;
};

struct xfer {
  CURL *easy;
  struct rcase *c;
  char url[256], *body;
  size_t len, cap;
};

struct run {
  const char *base, *ca_file;
  struct rcase *cases;
  long ncases, next_case, active, done, requests, errors, connects;
  long inflight_max, active_max;
  int fresh;
  double poll_s;
  struct curl_slist *headers;
  CURLM *multi;
};

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static size_t gather(char *p, size_t size, size_t n, void *ud) {
  struct xfer *x = ud;
  size_t add = size * n;
  if (x->len + add + 1 > x->cap) {
    size_t cap = (x->len + add + 1) * 2;
    char *b = realloc(x->body, cap);
    if (!b) return 0;
    x->body = b;
    x->cap = cap;
  }
  memcpy(x->body + x->len, p, add);
  x->len += add;
  x->body[x->len] = '\0';
  return add;
}

/* column `col` (0-based) of a CSV line without quoted fields, into out */
static int field(const char *line, int col, char *out, size_t size) {
  const char *p = line, *end;
  size_t n;
  while (col-- > 0) {
    p = strchr(p, ',');
    if (!p) return -1;
    p++;
  }
  end = p + strcspn(p, ",\r\n");
  n = (size_t)(end - p);
  if (n >= size) return -1;
  memcpy(out, p, n);
  out[n] = '\0';
  return 0;
}

static long read_cases(const char *path, struct rcase **out) {
  char line[4096];
  long n = 0, cap = 1024;
  struct rcase *cases = calloc((size_t)cap, sizeof *cases);
  FILE *f = fopen(path, "r");
  if (!f || !cases || !fgets(line, sizeof line, f)) goto fail; /* the header */
  while (fgets(line, sizeof line, f)) {
    struct rcase *c;
    if (n == cap) {
      struct rcase *more = realloc(cases, (size_t)cap * 2 * sizeof *cases);
      if (!more) goto fail;
      cases = more;
      memset(cases + cap, 0, (size_t)cap * sizeof *cases);
      cap *= 2;
    }
    c = &cases[n];
    if (field(line, 1, c->order, sizeof c->order) || field(line, 3, c->product, sizeof c->product))
      goto fail;
    if (strcmp(c->product, "assets") == 0 || strcmp(c->product, "transactions") == 0) {
      strcpy(c->kind, "financial_accounts");
      if (field(line, 11, c->ids, sizeof c->ids)) c->ids[0] = '\0';
    } else {
      strcpy(c->kind, "employers");
      if (field(line, 10, c->ids, sizeof c->ids)) goto fail;
    }
    n++;
  }
  fclose(f);
  *out = cases;
  return n;
fail:
  if (f) fclose(f);
  free(cases);
  return -1;
}

/* {"products":["income"],"employers":[{"id":"..."},...]} */
static char *refresh_body(const struct rcase *c) {
  cJSON *o = cJSON_CreateObject(), *list;
  char ids[512], *id, *save = NULL, *text;
  cJSON_AddItemToObject(o, "products", cJSON_CreateStringArray((const char *[]){c->product}, 1));
  list = cJSON_AddArrayToObject(o, c->kind);
  strcpy(ids, c->ids);
  for (id = strtok_r(ids, ";", &save); id; id = strtok_r(NULL, ";", &save)) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "id", id);
    cJSON_AddItemToArray(list, e);
  }
  text = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  return text;
}

static void start(struct run *r, struct rcase *c) {
  struct xfer *x = calloc(1, sizeof *x);
  const char *order = c->step == POLL ? c->fresh : c->order;
  x->c = c;
  x->easy = curl_easy_init();
  snprintf(x->url, sizeof x->url, "%sorders/%s/", r->base, order);
  curl_easy_setopt(x->easy, CURLOPT_URL, x->url);
  curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, r->headers);
  curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, gather);
  curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
  curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(x->easy, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, 60000L);
  if (r->ca_file) {
    curl_easy_setopt(x->easy, CURLOPT_CAINFO, r->ca_file);
    /* no CA directory, as lua-truv (core/src/net/transfer.c set_ca): the
     * multi handle's CA cache then reads the file once, not per connection */
    curl_easy_setopt(x->easy, CURLOPT_CAPATH, NULL);
  }
  if (c->step == REFRESH) {
    char *body = refresh_body(c);
    curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, body);
    cJSON_free(body);
    curl_easy_setopt(x->easy, CURLOPT_FRESH_CONNECT, r->fresh ? 1L : 0L);
  }
  curl_multi_add_handle(r->multi, x->easy);
  r->requests++;
}

/* a refresh order is finished once none of its connections is pending or sent */
static int finished(const cJSON *order) {
  const char *kinds[] = {"employers", "financial_accounts"};
  int k, any = 0;
  for (k = 0; k < 2; k++) {
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(order, kinds[k])) {
      const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "status"));
      any = 1;
      if (!s || strcmp(s, "pending") == 0 || strcmp(s, "sent") == 0) return 0;
    }
  }
  return any;
}

/* what an answer means for its case: its next step, or an error (the case ends) */
static void answered(struct run *r, struct xfer *x, CURLcode rc) {
  struct rcase *c = x->c;
  long code = 0, nc = 0;
  cJSON *doc = NULL;
  curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
  curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &nc);
  r->connects += nc;
  if (rc == CURLE_OK && code / 100 == 2 && x->body) doc = cJSON_Parse(x->body);
  if (!cJSON_IsObject(doc)) {
    r->errors++;
    c->step = FINISHED;
  } else if (c->step == READ) {
    c->step = REFRESH;
  } else if (c->step == REFRESH || c->step == POLL) {
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "id"));
    if (c->step == REFRESH && id) snprintf(c->fresh, sizeof c->fresh, "%s", id);
    if (c->step == REFRESH && !id) {
      r->errors++;
      c->step = FINISHED;
    } else if (finished(doc)) {
      c->step = FINISHED;
    } else {
      c->step = POLL;
      c->due = now_s() + r->poll_s;
    }
  }
  cJSON_Delete(doc);
  if (c->step == FINISHED) {
    r->active--;
    r->done++;
  }
  c->queued = 0;
}

int main(int argc, char **argv) {
  struct run r;
  long inflight = 0, i;
  double c0, w0;
  int running;
  memset(&r, 0, sizeof r);
  if (argc < 7 || argc > 8) {
    fprintf(stderr, "usage: renewal_multi BASE_URL CASES_CSV INFLIGHT ACTIVE POLL_S fresh|reuse "
                    "[CA_FILE]\n");
    return 2;
  }
  r.base = argv[1];
  r.inflight_max = atol(argv[3]);
  r.active_max = atol(argv[4]);
  r.poll_s = atof(argv[5]);
  r.fresh = strcmp(argv[6], "fresh") == 0;
  r.ca_file = argc == 8 ? argv[7] : NULL;
  r.ncases = read_cases(argv[2], &r.cases);
  if (r.ncases < 0 || r.inflight_max < 1 || r.active_max < 1) {
    fprintf(stderr, "renewal_multi: bad arguments or cases file %s\n", argv[2]);
    return 2;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  r.multi = curl_multi_init();
  curl_multi_setopt(r.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, r.inflight_max);
  r.headers = curl_slist_append(r.headers, "Content-Type: application/json");
  r.headers = curl_slist_append(r.headers, "Accept: application/json");
  r.headers = curl_slist_append(r.headers, "X-Access-Client-Id: sandbox-client-id");
  r.headers = curl_slist_append(r.headers, "X-Access-Secret: sandbox-secret");
  r.headers = curl_slist_append(r.headers, "Expect:");
  c0 = cpu_s();
  w0 = now_s();
  while (r.done < r.ncases) {
    double now = now_s(), wait = 0.05;
    CURLMsg *m;
    int left;
    while (r.active < r.active_max && r.next_case < r.ncases) {
      r.cases[r.next_case++].step = READ;
      r.active++;
    }
    /* the cases in progress whose next request is due, oldest first */
    for (i = 0; i < r.next_case && inflight < r.inflight_max; i++) {
      struct rcase *c = &r.cases[i];
      if (c->step == FINISHED || c->queued) continue;
      if (c->due > now) {
        if (c->due - now < wait) wait = c->due - now;
        continue;
      }
      c->queued = 1;
      start(&r, c);
      inflight++;
    }
    curl_multi_perform(r.multi, &running);
    while ((m = curl_multi_info_read(r.multi, &left))) {
      struct xfer *x;
      if (m->msg != CURLMSG_DONE) continue;
      curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
      answered(&r, x, m->data.result);
      curl_multi_remove_handle(r.multi, x->easy);
      curl_easy_cleanup(x->easy);
      free(x->body);
      free(x);
      inflight--;
      wait = 0;
    }
    if (wait > 0) curl_multi_poll(r.multi, NULL, 0, (int)(wait * 1000) + 1, NULL);
  }
  printf("{\"cases\":%ld,\"done\":%ld,\"requests\":%ld,\"errors\":%ld,\"connects\":%ld,"
         "\"wall_s\":%.3f,\"cpu_s\":%.3f}\n",
         r.ncases, r.done, r.requests, r.errors, r.connects, now_s() - w0, cpu_s() - c0);
  curl_slist_free_all(r.headers);
  curl_multi_cleanup(r.multi);
  curl_global_cleanup();
  free(r.cases);
  return r.errors > 0;
}
