/* The incremental HTTP/1.1 response parser: the same result wherever the
 * bytes are split, every framing Truv (or a proxy in front of it) may use,
 * HTTP/1.1's keep-alive rules, and a clear error for truncated, malformed or
 * oversized answers. The request writer: bytes a server reads as the
 * request that was built, a connection of its own for every request but a
 * GET, the proxy's forms. */
#include <http_parser.h>

#include "check.h"
#include "truv/classify.h"
#include "truv/http1.h"

#define NOW 1800000000.0

/* What parsing a whole input gave. */
typedef struct outcome {
  int rc; /* 0 or the error kind */
  char code[48];
  int done, keepalive, status;
  char body[4096];
  size_t body_len;
  char request_id[64];
  size_t nheaders;
} outcome;

/* Feeds `s` in pieces cut at `cuts` (ascending offsets), then the end of the
 * connection when `eof`. */
static outcome parse_cut(const char *s, size_t len, const size_t *cuts, size_t ncuts, int eof,
                         const truv_http1_limits *limits) {
  outcome o;
  truv_err err;
  truv_http1 *p = truv_http1_new(limits, &err);
  truv_response *r;
  size_t at = 0, i;
  const char *rid;
  memset(&o, 0, sizeof o);
  if (!p) {
    o.rc = -1;
    return o;
  }
  for (i = 0; i <= ncuts && !o.rc; i++) {
    size_t end = i < ncuts ? cuts[i] : len;
    o.rc = truv_http1_feed(p, s + at, end - at, &err);
    at = end;
  }
  if (!o.rc && eof) o.rc = truv_http1_eof(p, &err);
  if (o.rc) snprintf(o.code, sizeof o.code, "%s", err.code);
  r = truv_http1_response(p);
  o.done = truv_http1_done(p);
  o.keepalive = truv_http1_keepalive(p);
  o.status = r->status;
  o.body_len = r->body_len < sizeof o.body ? r->body_len : sizeof o.body - 1;
  if (r->body_len) memcpy(o.body, r->body, o.body_len);
  rid = truv_response_header(r, "x-request-id");
  snprintf(o.request_id, sizeof o.request_id, "%s", rid ? rid : "");
  o.nheaders = r->nheaders;
  truv_http1_free(p);
  return o;
}

static outcome parse_all(const char *s, int eof) {
  return parse_cut(s, strlen(s), NULL, 0, eof, NULL);
}

static outcome parse_lim(const char *s, const truv_http1_limits *limits) {
  return parse_cut(s, strlen(s), NULL, 0, 0, limits);
}

static int same(const outcome *a, const outcome *b) {
  return a->rc == b->rc && strcmp(a->code, b->code) == 0 && a->done == b->done &&
         a->keepalive == b->keepalive && a->status == b->status && a->body_len == b->body_len &&
         memcmp(a->body, b->body, a->body_len) == 0 && strcmp(a->request_id, b->request_id) == 0 &&
         a->nheaders == b->nheaders;
}

/* Every single split point, every pair of split points, and one byte at a
 * time all give what one feed gives. */
static void check_splits(const char *s, int eof) {
  size_t len = strlen(s), i, j, cuts[2];
  size_t *each = malloc((len + 1) * sizeof *each);
  outcome whole = parse_all(s, eof), o;
  for (i = 1; i < len; i++) {
    cuts[0] = i;
    o = parse_cut(s, len, cuts, 1, eof, NULL);
    if (!same(&whole, &o)) {
      fprintf(stderr, "split at %zu differs\n", i);
      CHECK(0);
      break;
    }
  }
  for (i = 1; i < len; i += 3) {
    for (j = i + 1; j < len; j += 5) {
      cuts[0] = i, cuts[1] = j;
      o = parse_cut(s, len, cuts, 2, eof, NULL);
      if (!same(&whole, &o)) {
        fprintf(stderr, "splits at %zu, %zu differ\n", i, j);
        CHECK(0);
        i = len;
        break;
      }
    }
  }
  for (i = 0; i < len; i++) each[i] = i + 1;
  o = parse_cut(s, len, each, len ? len - 1 : 0, eof, NULL);
  CHECK(same(&whole, &o));
  free(each);
}

static const char CL_RESPONSE[] = "HTTP/1.1 200 OK\r\n"
                                  "Content-Type: application/json\r\n"
                                  "X-Request-Id:   req-1  \r\n"
                                  "Content-Length: 13\r\n"
                                  "\r\n"
                                  "{\"id\":\"abc\"}\n";

static void a_content_length_response_is_complete_and_reusable(void) {
  outcome o = parse_all(CL_RESPONSE, 0);
  CHECK_INT(o.rc, 0);
  CHECK(o.done);
  CHECK(o.keepalive);
  CHECK_INT(o.status, 200);
  CHECK_INT(o.body_len, 13);
  CHECK(memcmp(o.body, "{\"id\":\"abc\"}\n", 13) == 0);
  CHECK_STR(o.request_id, "req-1");
  CHECK_INT(o.nheaders, 3);
}

static void splitting_a_content_length_response_anywhere_changes_nothing(void) {
  check_splits(CL_RESPONSE, 0);
}

static const char CHUNKED_RESPONSE[] = "HTTP/1.1 201 Created\r\n"
                                       "Transfer-Encoding: chunked\r\n"
                                       "X-Request-Id: req-2\r\n"
                                       "\r\n"
                                       "5;name=value;other=\"quoted\"\r\n"
                                       "hello\r\n"
                                       "6\r\n"
                                       " world\r\n"
                                       "A\r\n"
                                       "0123456789\r\n"
                                       "0\r\n"
                                       "X-Checksum: abc\r\n"
                                       "X-Request-Id: from-the-trailer\r\n"
                                       "\r\n";

static void a_chunked_body_is_joined_and_its_trailers_never_replace_headers(void) {
  outcome o = parse_all(CHUNKED_RESPONSE, 0);
  CHECK_INT(o.rc, 0);
  CHECK(o.done);
  CHECK(o.keepalive);
  CHECK_INT(o.status, 201);
  CHECK_INT(o.body_len, 21);
  CHECK(memcmp(o.body, "hello world0123456789", 21) == 0);
  CHECK_STR(o.request_id, "req-2");
  CHECK_INT(o.nheaders, 2);
}

static void splitting_a_chunked_response_anywhere_changes_nothing(void) {
  check_splits(CHUNKED_RESPONSE, 0);
}

static void a_body_framed_by_the_close_ends_only_at_eof(void) {
  const char *s = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":1}";
  outcome o = parse_all(s, 0);
  CHECK_INT(o.rc, 0);
  CHECK(!o.done);
  o = parse_all(s, 1);
  CHECK_INT(o.rc, 0);
  CHECK(o.done);
  CHECK(!o.keepalive);
  CHECK_INT(o.body_len, 7);
  check_splits(s, 1);
}

static void keepalive_follows_http_1_1(void) {
  CHECK(parse_all("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0).keepalive);
  CHECK(
    !parse_all("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 0).keepalive);
  CHECK(
    !parse_all("HTTP/1.1 200 OK\r\nConnection: CLOSE\r\nContent-Length: 0\r\n\r\n", 0).keepalive);
  CHECK(!parse_all("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 0).keepalive);
  CHECK(parse_all("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 0)
          .keepalive);
  CHECK(parse_all("HTTP/1.1 204 No Content\r\n\r\n", 0).keepalive);
  CHECK(parse_all("HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n", 0).keepalive);
}

static void bytes_after_the_response_are_not_consumed_and_forbid_reuse(void) {
  const char *two =
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  outcome o = parse_all(two, 0);
  CHECK_INT(o.rc, 0);
  CHECK(o.done);
  CHECK(!o.keepalive);
  CHECK_INT(o.body_len, 2);
  /* also when the extra bytes come in a later feed */
  {
    size_t cuts[1] = {39};
    o = parse_cut(two, strlen(two), cuts, 1, 0, NULL);
    CHECK(o.done);
    CHECK(!o.keepalive);
  }
}

static void interim_answers_are_skipped(void) {
  const char *s = "HTTP/1.1 100 Continue\r\n\r\n"
                  "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
                  "HTTP/1.1 200 OK\r\nX-Request-Id: final\r\nContent-Length: 2\r\n\r\nok";
  outcome o = parse_all(s, 0);
  CHECK_INT(o.rc, 0);
  CHECK(o.done);
  CHECK_INT(o.status, 200);
  CHECK_STR(o.request_id, "final");
  CHECK_INT(o.nheaders, 2);
  check_splits(s, 0);
}

static void the_end_of_the_connection_inside_a_response_is_an_error(void) {
  outcome o = parse_all("", 1);
  CHECK_INT(o.rc, TRUV_ENETWORK);
  CHECK_STR(o.code, "reset");
  o = parse_all("HTTP/1.1 200 OK\r\nContent-Le", 1);
  CHECK_INT(o.rc, TRUV_ENETWORK);
  CHECK_STR(o.code, "reset");
  o = parse_all("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234", 1);
  CHECK_INT(o.rc, TRUV_ENETWORK);
  CHECK_STR(o.code, "truncated_body");
  CHECK(!o.done);
  o = parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 1);
  CHECK_STR(o.code, "truncated_body");
  o = parse_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", 1);
  CHECK_STR(o.code, "truncated_body");
}

static void network_errors_may_have_been_sent(void) {
  truv_err err;
  truv_http1 *p = truv_http1_new(NULL, &err);
  CHECK_INT(truv_http1_eof(p, &err), TRUV_ENETWORK);
  CHECK_INT(err.maybe_sent, 1);
  truv_http1_free(p);
}

static void malformed_answers_are_network_errors(void) {
  static const char *bad[] = {
    "garbage\r\n\r\n",
    "HTTP/1.1 abc OK\r\n\r\n",
    "HTTP/1.1 200 OK\r\nBad\001Name: x\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n-1\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
  };
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    outcome o = parse_all(bad[i], 1);
    if (o.rc != TRUV_ENETWORK || strcmp(o.code, "network") != 0)
      fprintf(stderr, "bad[%zu]: rc %d code %s\n", i, o.rc, o.code);
    CHECK_INT(o.rc, TRUV_ENETWORK);
    CHECK_STR(o.code, "network");
    CHECK(!o.done);
    CHECK(!o.keepalive);
  }
}

static void an_error_is_repeated_by_every_later_call(void) {
  truv_err err;
  truv_http1 *p = truv_http1_new(NULL, &err);
  CHECK_INT(truv_http1_feed(p, "nonsense\r\n", 10, &err), TRUV_ENETWORK);
  CHECK_CONTAINS(err.message, "malformed HTTP response");
  memset(&err, 0, sizeof err);
  CHECK_INT(truv_http1_feed(p, "HTTP/1.1 200 OK\r\n\r\n", 19, &err), TRUV_ENETWORK);
  CHECK_STR(err.code, "network");
  CHECK_INT(truv_http1_eof(p, &err), TRUV_ENETWORK);
  CHECK(!truv_http1_done(p));
  /* reset makes it usable again */
  truv_http1_reset(p);
  CHECK_INT(truv_http1_feed(p, "HTTP/1.1 204 No Content\r\n\r\n", 27, &err), 0);
  CHECK(truv_http1_done(p));
  truv_http1_free(p);
}

static void too_many_interim_answers_are_refused(void) {
  char buf[1024] = "";
  int i;
  for (i = 0; i < 20; i++) strcat(buf, "HTTP/1.1 100 Continue\r\n\r\n");
  {
    outcome o = parse_all(buf, 0);
    CHECK_INT(o.rc, TRUV_ENETWORK);
    CHECK_STR(o.code, "network");
  }
}

static void headers_are_bounded(void) {
  truv_http1_limits lim = {256, 4, 0};
  char big[2048];
  outcome o;
  snprintf(big, sizeof big, "HTTP/1.1 200 OK\r\nX-Big: %0300d\r\nContent-Length: 0\r\n\r\n", 7);
  o = parse_cut(big, strlen(big), NULL, 0, 0, &lim);
  CHECK_INT(o.rc, TRUV_EPROTOCOL);
  CHECK_STR(o.code, "headers_too_large");
  o = parse_lim("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", &lim);
  CHECK_INT(o.rc, TRUV_EPROTOCOL);
  CHECK_STR(o.code, "headers_too_large");
  /* trailers count too */
  {
    const char *s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
                    "T1: a\r\nT2: b\r\nT3: c\r\nT4: d\r\n\r\n";
    o = parse_cut(s, strlen(s), NULL, 0, 0, &lim);
    CHECK_INT(o.rc, TRUV_EPROTOCOL);
    CHECK_STR(o.code, "headers_too_large");
  }
  /* exactly at the limits is fine */
  lim.max_headers = 5;
  o =
    parse_lim("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nContent-Length: 0\r\n\r\n", &lim);
  CHECK_INT(o.rc, 0);
  CHECK(o.done);
}

static void the_default_header_limit_is_64_kib(void) {
  size_t n = 70000, i;
  char *s = malloc(n + 64);
  strcpy(s, "HTTP/1.1 200 OK\r\nX-Big: ");
  i = strlen(s);
  memset(s + i, 'a', n);
  strcpy(s + i + n, "\r\n\r\n");
  {
    outcome o = parse_cut(s, strlen(s), NULL, 0, 0, NULL);
    CHECK_INT(o.rc, TRUV_EPROTOCOL);
    CHECK_STR(o.code, "headers_too_large");
  }
  free(s);
}

static void bodies_are_bounded(void) {
  truv_http1_limits lim = {0, 0, 10};
  outcome o = parse_lim("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n", &lim);
  CHECK_INT(o.rc, TRUV_EPROTOCOL);
  CHECK_STR(o.code, "body_too_large");
  o = parse_lim("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999\r\n\r\n", NULL);
  CHECK_INT(o.rc, TRUV_EPROTOCOL);
  CHECK_STR(o.code, "body_too_large");
  {
    const char *s = "HTTP/1.1 200 OK\r\nTransfer-Encoding: "
                    "chunked\r\n\r\n6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n";
    o = parse_cut(s, strlen(s), NULL, 0, 0, &lim);
    CHECK_INT(o.rc, TRUV_EPROTOCOL);
    CHECK_STR(o.code, "body_too_large");
    lim.max_body = 12;
    o = parse_cut(s, strlen(s), NULL, 0, 0, &lim);
    CHECK_INT(o.rc, 0);
    CHECK_INT(o.body_len, 12);
  }
  {
    const char *s = "HTTP/1.1 200 OK\r\n\r\n0123456789AB";
    lim.max_body = 10;
    o = parse_cut(s, strlen(s), NULL, 0, 1, &lim);
    CHECK_STR(o.code, "body_too_large");
  }
}

static void a_parser_is_reused_after_reset(void) {
  truv_err err;
  truv_http1 *p = truv_http1_new(NULL, &err);
  truv_response *r;
  int round;
  for (round = 0; round < 3; round++) {
    CHECK_INT(truv_http1_feed(p, CL_RESPONSE, strlen(CL_RESPONSE), &err), 0);
    CHECK(truv_http1_done(p));
    CHECK(truv_http1_keepalive(p));
    CHECK_INT(truv_http1_received(p), strlen(CL_RESPONSE));
    r = truv_http1_response(p);
    CHECK_INT(r->nheaders, 3);
    CHECK_INT(r->body_len, 13);
    truv_http1_reset(p);
    CHECK(!truv_http1_done(p));
    CHECK_INT(truv_http1_received(p), 0);
    CHECK_INT(truv_http1_response(p)->nheaders, 0);
  }
  truv_http1_free(p);
  truv_http1_free(NULL);
}

/* The parsed response feeds the classifier exactly as libcurl's does. */
static void a_parsed_answer_classifies_like_any_other(void) {
  static const truv_config cfg = {"https://prod.truv.com/v1/", "cid", "prod-very-secret", NULL};
  const char *s = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nX-Request-Id: rq\r\n"
                  "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "20\r\n{\"error\":{\"code\":\"throttled\",\"me\r\n"
                  "20\r\nssage\":\"Request was throttled\"}}\r\n0\r\n\r\n";
  truv_request req;
  truv_json *doc = NULL;
  truv_err err;
  truv_http1 *p = truv_http1_new(NULL, &err);
  CHECK_INT(truv_request_build(&cfg, TRUV_OP_GET_ORDER, "o1", NULL, NULL, &req, &err), 0);
  CHECK_INT(truv_http1_feed(p, s, strlen(s), &err), 0);
  CHECK(truv_http1_done(p));
  CHECK_INT(truv_classify(&req, truv_http1_response(p), NOW, &doc, &err), TRUV_ETHROTTLED);
  CHECK_STR(err.code, "throttled");
  CHECK_STR(err.request_id, "rq");
  CHECK_DBL(err.retry_at, NOW + 7);
  CHECK(doc == NULL);
  truv_request_free(&req);
  truv_http1_free(p);
}

/* ---------------------------------------------------------------- writing */

typedef struct parsed_request {
  char url[256];
  char body[256];
  size_t body_len;
  int complete, keepalive;
  unsigned method;
} parsed_request;

static int req_url(http_parser *hp, const char *at, size_t len) {
  parsed_request *r = hp->data;
  size_t have = strlen(r->url);
  if (have + len < sizeof r->url) memcpy(r->url + have, at, len);
  return 0;
}

static int req_body(http_parser *hp, const char *at, size_t len) {
  parsed_request *r = hp->data;
  if (r->body_len + len < sizeof r->body) memcpy(r->body + r->body_len, at, len);
  r->body_len += len;
  return 0;
}

static int req_complete(http_parser *hp) {
  parsed_request *r = hp->data;
  r->complete = 1;
  r->keepalive = http_should_keep_alive(hp);
  r->method = hp->method;
  return 0;
}

/* What an HTTP/1.1 server makes of the bytes (nodejs/http-parser). */
static parsed_request parse_request(const char *bytes, size_t len) {
  static const http_parser_settings settings = {
    .on_url = req_url, .on_body = req_body, .on_message_complete = req_complete};
  parsed_request r;
  http_parser hp;
  memset(&r, 0, sizeof r);
  http_parser_init(&hp, HTTP_REQUEST);
  hp.data = &r;
  CHECK_INT(http_parser_execute(&hp, &settings, bytes, len), len);
  CHECK_INT(HTTP_PARSER_ERRNO(&hp), HPE_OK);
  return r;
}

static const truv_config wire_cfg = {"http://127.0.0.1:8080/v1/", "cid", "sandbox-s3cret", NULL};

/* A GET may share a pooled connection; every other request asks for a
 * connection of its own, which the server closes after the answer. */
static void every_request_but_a_get_closes_its_connection(void) {
  int op;
  for (op = 0; op < TRUV_OP_COUNT; op++) {
    cJSON *params = NULL;
    truv_request req;
    truv_err err;
    parsed_request r;
    size_t len = 0;
    char *bytes;
    if (op == TRUV_OP_CREATE_ORDER)
      params = cJSON_Parse("{\"products\":[\"income\"],\"first_name\":\"A\",\"last_name\":\"B\"}");
    else if (op == TRUV_OP_REFRESH_ORDER) params = cJSON_Parse("{\"products\":[\"income\"]}");
    else if (op == TRUV_OP_CREATE_REFRESH_TASK || op == TRUV_OP_CREATE_BRIDGE_TOKEN)
      params = cJSON_Parse("{\"access_token\":\"tok\",\"product_type\":\"income\"}");
    CHECK_INT(truv_request_build(&wire_cfg, (truv_op)op, "o1", params, NULL, &req, &err), 0);
    cJSON_Delete(params);
    bytes = truv_http1_request(&req, NULL, &len, &err);
    CHECK(bytes != NULL);
    CHECK_INT(strlen(bytes), len);
    r = parse_request(bytes, len);
    CHECK(r.complete);
    CHECK_STR(r.url, req.target);
    CHECK_INT(r.keepalive, !truv_request_fresh(&req));
    /* a GET and a refresh_order (read back when ambiguous) may be kept alive */
    CHECK_INT(truv_request_fresh(&req),
              strcmp(req.method, "GET") != 0 && op != TRUV_OP_REFRESH_ORDER);
    CHECK_INT(truv_request_connection(&req), strcmp(req.method, "GET") == 0 ? TRUV_CONN_REUSE
                                             : op == TRUV_OP_REFRESH_ORDER  ? TRUV_CONN_REUSE_ONCE
                                                                            : TRUV_CONN_FRESH);
    CHECK_INT(r.method, strcmp(req.method, "GET") == 0 ? HTTP_GET : HTTP_POST);
    if (req.body) {
      CHECK_INT(r.body_len, req.body_len);
      CHECK(memcmp(r.body, req.body, req.body_len) == 0);
    } else {
      CHECK_INT(r.body_len, 0);
    }
    CHECK_CONTAINS(bytes, "\r\nHost: 127.0.0.1:8080\r\n");
    CHECK_CONTAINS(bytes, "\r\nX-Access-Client-Id: cid\r\n");
    free(bytes);
    truv_request_free(&req);
  }
}

/* A refresh_order may ride a kept-alive connection (truv_request_connection):
 * no "Connection: close"; its body whole after the head. */
static void a_refresh_goes_out_whole_and_may_be_kept_alive(void) {
  cJSON *params = cJSON_Parse("{\"products\":[\"income\"]}");
  truv_request req;
  truv_err err;
  size_t len = 0;
  char *bytes;
  CHECK_INT(truv_request_build(&wire_cfg, TRUV_OP_REFRESH_ORDER, "o1", params, NULL, &req, &err),
            0);
  cJSON_Delete(params);
  bytes = truv_http1_request(&req, NULL, &len, &err);
  CHECK(strncmp(bytes, "POST /v1/orders/o1/ HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Access", 59) ==
        0);
  CHECK(strstr(bytes, "Connection:") == NULL);
  CHECK_CONTAINS(bytes, "\r\nContent-Type: application/json\r\nContent-Length: 23\r\n\r\n"
                        "{\"products\":[\"income\"]}");
  CHECK_INT(len, strlen(bytes));
  free(bytes);
  truv_request_free(&req);
}

/* To a plain-HTTP proxy: the absolute URL, and the proxy's credentials. */
static void through_a_proxy_the_target_is_the_whole_url(void) {
  truv_http1_proxy proxy = {"Basic dXNlcjpwYXNz"};
  truv_http1_proxy bad = {"Basic x\r\nX-Injected: 1"};
  truv_request req;
  truv_err err;
  parsed_request r;
  size_t len = 0;
  char *bytes;
  CHECK_INT(truv_request_build(&wire_cfg, TRUV_OP_GET_ORDER, "o1", NULL, NULL, &req, &err), 0);
  bytes = truv_http1_request(&req, &proxy, &len, &err);
  CHECK(strncmp(bytes, "GET http://127.0.0.1:8080/v1/orders/o1/ HTTP/1.1\r\n", 50) == 0);
  CHECK_CONTAINS(bytes, "\r\nProxy-Authorization: Basic dXNlcjpwYXNz\r\n");
  r = parse_request(bytes, len);
  CHECK_STR(r.url, "http://127.0.0.1:8080/v1/orders/o1/");
  CHECK(r.keepalive);
  free(bytes);
  CHECK(truv_http1_request(&req, &bad, &len, &err) == NULL);
  CHECK_INT(err.kind, TRUV_EINVALID);
  CHECK_STR(err.code, "header");
  truv_request_free(&req);
}

static void a_tunnel_is_asked_for_by_host_and_port(void) {
  truv_http1_proxy proxy = {"Basic dXNlcjpwYXNz"};
  truv_err err;
  size_t len = 0;
  char *bytes = truv_http1_connect("prod.truv.com", 443, NULL, &len, &err);
  CHECK_STR(bytes, "CONNECT prod.truv.com:443 HTTP/1.1\r\nHost: prod.truv.com:443\r\n\r\n");
  CHECK_INT(len, strlen(bytes));
  free(bytes);
  bytes = truv_http1_connect("::1", 8443, &proxy, &len, &err);
  CHECK_STR(bytes, "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n"
                   "Proxy-Authorization: Basic dXNlcjpwYXNz\r\n\r\n");
  free(bytes);
  CHECK(truv_http1_connect("a\r\nb", 443, NULL, &len, &err) == NULL);
  CHECK_INT(err.kind, TRUV_EINVALID);
  CHECK(truv_http1_connect("prod.truv.com", 0, NULL, &len, &err) == NULL);
  CHECK(truv_http1_connect("", 443, NULL, &len, &err) == NULL);
}

/* Random bytes, random cuts: never a crash, and a verdict every time. */
static void garbage_never_crashes(void) {
  unsigned seed = 12345;
  char buf[512];
  int round;
  for (round = 0; round < 2000; round++) {
    size_t len, i, ncuts = 0, cuts[4];
    outcome o;
    seed = seed * 1103515245u + 12345u;
    len = (seed >> 8) % sizeof buf;
    if (round % 2 == 0) {
      memcpy(buf, CHUNKED_RESPONSE, sizeof CHUNKED_RESPONSE - 1);
      len = sizeof CHUNKED_RESPONSE - 1;
    }
    for (i = 0; i < len; i++) {
      seed = seed * 1103515245u + 12345u;
      if (round % 2 == 1 || (seed >> 16) % 40 == 0) buf[i] = (char)(seed >> 16);
    }
    for (i = 0; i < 4 && len > 1; i++) {
      seed = seed * 1103515245u + 12345u;
      cuts[ncuts] = 1 + (seed >> 8) % (len - 1);
      if (ncuts == 0 || cuts[ncuts] > cuts[ncuts - 1]) ncuts++;
    }
    o = parse_cut(buf, len, cuts, ncuts, 1, NULL);
    CHECK(o.rc != 0 || o.done);
    CHECK(!(o.rc != 0 && o.keepalive));
  }
}

int main(void) {
  RUN(a_content_length_response_is_complete_and_reusable);
  RUN(splitting_a_content_length_response_anywhere_changes_nothing);
  RUN(a_chunked_body_is_joined_and_its_trailers_never_replace_headers);
  RUN(splitting_a_chunked_response_anywhere_changes_nothing);
  RUN(a_body_framed_by_the_close_ends_only_at_eof);
  RUN(keepalive_follows_http_1_1);
  RUN(bytes_after_the_response_are_not_consumed_and_forbid_reuse);
  RUN(interim_answers_are_skipped);
  RUN(the_end_of_the_connection_inside_a_response_is_an_error);
  RUN(network_errors_may_have_been_sent);
  RUN(malformed_answers_are_network_errors);
  RUN(an_error_is_repeated_by_every_later_call);
  RUN(too_many_interim_answers_are_refused);
  RUN(headers_are_bounded);
  RUN(the_default_header_limit_is_64_kib);
  RUN(bodies_are_bounded);
  RUN(a_parser_is_reused_after_reset);
  RUN(a_parsed_answer_classifies_like_any_other);
  RUN(garbage_never_crashes);
  RUN(every_request_but_a_get_closes_its_connection);
  RUN(a_refresh_goes_out_whole_and_may_be_kept_alive);
  RUN(through_a_proxy_the_target_is_the_whole_url);
  RUN(a_tunnel_is_asked_for_by_host_and_port);
  return CHECK_DONE();
}
