/* libFuzzer target: the RESP reply reader (hiredis's, truv/redis.h) over
 * any bytes, fed in chunks whose sizes the input chooses (byte 0), as a
 * socket delivers them. Whatever the bytes: every reply is a well-formed
 * tree (strings of their length, arrays of their elements, nesting within
 * hiredis's limit), or the reader reports a typed protocol error; nothing
 * leaks, nothing is read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "truv/redis.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const redisReply *r, int depth) {
  size_t i;
  if (depth > 16) abort();
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      if (!r->str) abort();
      if (r->len && r->str[r->len - 1] == 1 && r->str[0] == 2) (void)0; /* read both ends */
      if (r->str[r->len] != 0) abort();
      break;
    case REDIS_REPLY_ARRAY:
      if (r->elements && !r->element) abort();
      for (i = 0; i < r->elements; i++) walk(r->element[i], depth + 1);
      break;
    case REDIS_REPLY_INTEGER:
    case REDIS_REPLY_NIL: break;
    default: abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  truv_redis_reader *r;
  truv_err err;
  size_t chunk, off = 1;
  if (size < 1) return 0;
  chunk = (size_t)data[0] % 32 + 1;
  r = truv_redis_reader_new();
  if (!r) return 0;
  while (off < size) {
    size_t n = size - off < chunk ? size - off : chunk;
    redisReply *reply = NULL;
    if (truv_redis_reader_feed(r, (const char *)data + off, n, &err)) break;
    off += n;
    for (;;) {
      if (truv_redis_reader_get(r, &reply, &err)) {
        if (err.kind != TRUV_EPROTOCOL && err.kind != TRUV_EINTERNAL) abort();
        goto done;
      }
      if (!reply) break;
      walk(reply, 0);
      freeReplyObject(reply);
    }
  }
done:
  truv_redis_reader_free(r);
  return 0;
}
