/* The RESP codec: hiredis 0.14's command formatter and reply reader, which
 * do no I/O (see truv/redis.h). */
#include <stdlib.h>

#include "truv/redis.h"

/* hiredis 0.14 allocates an array's element pointers as soon as it reads
 * the array's header, before any element has come: "*444444440\r\n" from a
 * broken or hostile server is a 3.5 GB calloc (found by fuzz_redis_reply).
 * An array declaring more elements than this is refused as a protocol
 * error before that allocation; nesting (hiredis: 7 levels) bounds the rest
 * to a few tens of MB. lua-truv's own replies are arrays of a few items. */
#define MAX_ELEMENTS (1 << 20) /* 2^20, said in the error */

struct truv_redis_reader {
  redisReader *r;
  redisReplyObjectFunctions fn; /* hiredis's own, but createArray */
  void *(*create_array)(const redisReadTask *task, int elements);
  int too_long; /* an array was refused */
};

static void *bounded_array(const redisReadTask *task, int elements) {
  truv_redis_reader *r = task->privdata;
  if (elements > MAX_ELEMENTS) {
    r->too_long = 1;
    return NULL; /* hiredis sets its out-of-memory error; reader_fail tells */
  }
  return r->create_array(task, elements);
}

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
  r->fn = *r->r->fn;
  r->create_array = r->fn.createArray;
  r->fn.createArray = bounded_array;
  r->r->fn = &r->fn;
  r->r->privdata = r; /* each task's privdata: bounded_array's r */
  return r;
}

void truv_redis_reader_free(truv_redis_reader *r) {
  if (!r) return;
  redisReaderFree(r->r);
  free(r);
}

static int reader_fail(truv_redis_reader *r, truv_err *err) {
  if (r->too_long)
    return truv_err_set(err, TRUV_EPROTOCOL, "redis_protocol",
                        "a Redis reply declares an array of more than 2^20 elements: refused");
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
