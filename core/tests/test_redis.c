/* The RESP codec (formatter, reader fed in any chunks) and the connection's
 * refusals that need no server: a bad endpoint, nothing listening. The
 * stores over a real redis-server are the specs' (spec/redis/). */
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "truv/redis.h"

static void formats_a_command_as_bulk_strings(void) {
  const char *argv[3] = {"SET", "k", "a\r\nb"};
  size_t lens[3] = {3, 1, 4};
  char *cmd = NULL;
  size_t len = 0;
  truv_err err;
  CHECK_INT(truv_redis_format(3, argv, lens, &cmd, &len, &err), 0);
  CHECK_INT(len, strlen("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n"));
  CHECK(cmd && memcmp(cmd, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n", len) == 0);
  truv_redis_free_command(cmd);
  CHECK_INT(truv_redis_format(0, argv, lens, &cmd, &len, &err), TRUV_EINVALID);
  CHECK(cmd == NULL);
}

static void reads_replies_fed_byte_by_byte(void) {
  const char *bytes = "*3\r\n:1\r\n$-1\r\n*2\r\n$2\r\nab\r\n+OK\r\n-NOSCRIPT No matching\r\n";
  truv_redis_reader *r = truv_redis_reader_new();
  redisReply *reply = NULL;
  truv_err err;
  size_t i, n = strlen(bytes), got = 0;
  redisReply *replies[2] = {NULL, NULL};
  CHECK(r != NULL);
  for (i = 0; i < n; i++) {
    CHECK_INT(truv_redis_reader_feed(r, bytes + i, 1, &err), 0);
    CHECK_INT(truv_redis_reader_get(r, &reply, &err), 0);
    if (reply) {
      CHECK(got < 2);
      if (got < 2) replies[got++] = reply;
      else freeReplyObject(reply);
    }
  }
  CHECK_INT(got, 2);
  if (got == 2) {
    CHECK_INT(replies[0]->type, REDIS_REPLY_ARRAY);
    CHECK_INT(replies[0]->elements, 3);
    CHECK_INT(replies[0]->element[0]->integer, 1);
    CHECK_INT(replies[0]->element[1]->type, REDIS_REPLY_NIL);
    CHECK_INT(replies[0]->element[2]->elements, 2);
    CHECK_STR(replies[0]->element[2]->element[0]->str, "ab");
    CHECK_INT(replies[0]->element[2]->element[1]->type, REDIS_REPLY_STATUS);
    CHECK_INT(replies[1]->type, REDIS_REPLY_ERROR);
    CHECK_STR(replies[1]->str, "NOSCRIPT No matching");
  }
  freeReplyObject(replies[0]);
  freeReplyObject(replies[1]);
  truv_redis_reader_free(r);
}

static void refuses_bytes_that_are_not_resp(void) {
  truv_redis_reader *r = truv_redis_reader_new();
  redisReply *reply = NULL;
  truv_err err;
  CHECK_INT(truv_redis_reader_feed(r, "HTTP/1.1 200 OK\r\n", 17, &err), 0);
  CHECK_INT(truv_redis_reader_get(r, &reply, &err), TRUV_EPROTOCOL);
  CHECK(reply == NULL);
  CHECK_STR(err.code, "redis_protocol");
  truv_redis_reader_free(r);
  truv_redis_reader_free(NULL);
}

/* hiredis 0.14 callocs an array's element pointers when it reads the
 * header: a reply that only claims 444 444 440 elements must not cost 3.5 GB
 * (fuzz_redis_reply found it). A nested one just under the bound is read. */
static void refuses_an_array_longer_than_any_reply(void) {
  truv_redis_reader *r = truv_redis_reader_new();
  redisReply *reply = NULL;
  truv_err err;
  CHECK_INT(truv_redis_reader_feed(r, "*444444440\r\n", 12, &err), 0);
  CHECK_INT(truv_redis_reader_get(r, &reply, &err), TRUV_EPROTOCOL);
  CHECK(reply == NULL);
  CHECK_STR(err.code, "redis_protocol");
  CHECK(strstr(err.message, "more than 2^20 elements") != NULL);
  truv_redis_reader_free(r);

  r = truv_redis_reader_new();
  CHECK_INT(truv_redis_reader_feed(r, "*1\r\n*1048577\r\n", 14, &err), 0);
  CHECK_INT(truv_redis_reader_get(r, &reply, &err), TRUV_EPROTOCOL);
  CHECK(strstr(err.message, "more than 2^20 elements") != NULL);
  truv_redis_reader_free(r);

  r = truv_redis_reader_new();
  CHECK_INT(truv_redis_reader_feed(r, "*2\r\n*1\r\n:7\r\n$2\r\nok\r\n", 20, &err), 0);
  CHECK_INT(truv_redis_reader_get(r, &reply, &err), 0);
  CHECK(reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2);
  CHECK(reply->element[0]->type == REDIS_REPLY_ARRAY &&
        reply->element[0]->element[0]->integer == 7);
  CHECK_STR(reply->element[1]->str, "ok");
  freeReplyObject(reply);
  truv_redis_reader_free(r);
}

static void refuses_a_bad_endpoint(void) {
  truv_redis_endpoint ep;
  truv_err err;
  memset(&ep, 0, sizeof ep);
  CHECK(truv_redis_conn_new(&ep, &err) == NULL);
  CHECK_INT(err.kind, TRUV_EINVALID);
  ep.host = "127.0.0.1";
  ep.port = 70000;
  CHECK(truv_redis_conn_new(&ep, &err) == NULL);
  ep.port = 0;
  ep.host = NULL;
  ep.unix_path = "/tmp/x.sock";
  ep.tls = 1;
  CHECK(truv_redis_conn_new(&ep, &err) == NULL);
  truv_redis_conn_free(NULL);
}

/* A port nothing listens on: bound then closed. */
static int free_port(void) {
  struct sockaddr_in sa;
  socklen_t sl = sizeof sa;
  int fd = socket(AF_INET, SOCK_STREAM, 0), port;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
      getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
    fprintf(stderr, "cannot bind 127.0.0.1 port 0\n");
    exit(1);
  }
  port = ntohs(sa.sin_port);
  close(fd);
  return port;
}

static void fails_closed_when_nothing_listens(void) {
  truv_redis_endpoint ep;
  truv_redis_conn *c;
  const char *argv[1] = {"PING"};
  size_t lens[1] = {4};
  redisReply *reply = (redisReply *)1;
  truv_err err;
  memset(&ep, 0, sizeof ep);
  ep.host = "127.0.0.1";
  ep.port = free_port();
  ep.password = "hunter2-secret";
  ep.connect_timeout_ms = 500;
  c = truv_redis_conn_new(&ep, &err);
  CHECK(c != NULL);
  if (!c) return;
  CHECK_INT(truv_redis_conn_call(c, 1, argv, lens, &reply, &err), TRUV_EINTERNAL);
  CHECK(reply == NULL);
  CHECK_STR(err.code, "store_unavailable");
  CHECK_INT(err.maybe_sent, 0);
  CHECK(strstr(err.message, "127.0.0.1") != NULL);
  CHECK(strstr(err.message, "hunter2") == NULL);
  CHECK_INT(truv_redis_conn_connected(c), 0);
  CHECK_INT(truv_redis_conn_connects(c), 0);
  truv_redis_conn_free(c);
}

int main(void) {
  RUN(formats_a_command_as_bulk_strings);
  RUN(reads_replies_fed_byte_by_byte);
  RUN(refuses_bytes_that_are_not_resp);
  RUN(refuses_an_array_longer_than_any_reply);
  RUN(refuses_a_bad_endpoint);
  RUN(fails_closed_when_nothing_listens);
  return CHECK_DONE();
}
