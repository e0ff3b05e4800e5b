/* The RESP codec: hiredis 0.14's command formatter and reply reader, which
 * do no I/O (see truv/redis.h). */
#include <stdlib.h>

#include "truv/redis.h"

struct truv_redis_reader {
  redisReader *r;
};

int truv_redis_format(int argc, const char **argv, const size_t *lens, char **out, size_t *outlen,
                      truv_err *err) {
  int n;
  *out = NULL;
  *outlen = 0;
  if (argc < 1 || !argv || !lens)
    return truv_err_set(err, TRUV_EINVALID, "invalid_command", "a Redis command needs a name");
  n = redisFormatCommandArgv(out, argc, argv, lens);
  if (n < 0 || !*out) {
    *out = NULL;
    return truv_err_set(err, TRUV_EINTERNAL, "out_of_memory",
                        "out of memory formatting a Redis command");
  }
  *outlen = (size_t)n;
  return 0;
}

void truv_redis_free_command(char *cmd) {
  if (cmd) redisFreeCommand(cmd);
}

truv_redis_reader *truv_redis_reader_new(void) {
  truv_redis_reader *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->r = redisReaderCreate();
  if (!r->r) {
    free(r);
    return NULL;
  }
  return r;
}

void truv_redis_reader_free(truv_redis_reader *r) {
  if (!r) return;
  redisReaderFree(r->r);
  free(r);
}

static int reader_fail(truv_redis_reader *r, truv_err *err) {
  if (r->r->err == REDIS_ERR_OOM)
    return truv_err_set(err, TRUV_EINTERNAL, "out_of_memory",
                        "out of memory reading a Redis reply");
  return truv_err_set(err, TRUV_EPROTOCOL, "redis_protocol", "not a Redis reply (RESP2): %s",
                      r->r->errstr);
}

int truv_redis_reader_feed(truv_redis_reader *r, const char *buf, size_t len, truv_err *err) {
  if (len == 0) return 0;
  if (redisReaderFeed(r->r, buf, len) != REDIS_OK) return reader_fail(r, err);
  return 0;
}

int truv_redis_reader_get(truv_redis_reader *r, redisReply **reply, truv_err *err) {
  void *out = NULL;
  *reply = NULL;
  if (redisReaderGetReply(r->r, &out) != REDIS_OK) {
    if (out) freeReplyObject(out);
    return reader_fail(r, err);
  }
  *reply = out;
  return 0;
}
