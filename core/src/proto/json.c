/* Arena-backed cJSON documents (see truv/json.h).
 *
 * Layout: a truv_json is the head of a chain of blocks; the first block is
 * sized from the input (cJSON needs roughly 2.5 bytes of nodes and strings
 * per byte of typical JSON), later blocks double. Allocations are 16-byte
 * aligned bumps. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "truv/json.h"

typedef struct block {
  struct block *next;
  size_t size, used;
  /* data follows, 16-byte aligned */
} block;

#define BLOCK_HEAD ((sizeof(block) + 15) & ~(size_t)15)

struct truv_json {
  cJSON *root;
  block *blocks; /* newest first */
  size_t total;
  int arena_used; /* 0: the hooks were replaced; root is a plain cJSON tree */
  int failed;     /* the arena could not grow */
  int counted;    /* included in the live accounting */
};

/* The parse in progress on this thread. initial-exec: one pointer of static
 * TLS (glibc keeps a surplus for libraries loaded later, like truv.core),
 * read without a __tls_get_addr call on every allocation of a parse. */
static __thread truv_json *current __attribute__((tls_model("initial-exec")));
static size_t live_bytes, live_docs; /* accounting, updated atomically */

static void *hook_malloc(size_t n) {
  truv_json *doc = current;
  block *b;
  if (!doc) return malloc(n);
  n = (n + 15) & ~(size_t)15;
  b = doc->blocks;
  if (!b || b->size - b->used < n) {
    /* the first block was sized from the input; running past it means the
     * estimate was a little short: add half as much again, not double */
    size_t size = b ? b->size / 2 : 4096;
    if (size < n) size = n;
    if (!(b = malloc(BLOCK_HEAD + size))) {
      doc->failed = 1;
      return NULL;
    }
    b->next = doc->blocks;
    b->size = size;
    b->used = 0;
    doc->blocks = b;
    doc->total += size;
  }
  doc->arena_used = 1;
  b->used += n;
  return (char *)b + BLOCK_HEAD + b->used - n;
}

static void hook_free(void *p) {
  if (!current) free(p);
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

static void install_hooks(void) {
  cJSON_Hooks hooks = {hook_malloc, hook_free};
  cJSON_InitHooks(&hooks);
}

void truv_json_init(void) {
  pthread_once(&hooks_once, install_hooks);
}

static void free_blocks(block *b) {
  while (b) {
    block *next = b->next;
    free(b);
    b = next;
  }
}

truv_json *truv_json_parse(const char *s, size_t len, truv_err *err) {
  truv_json *doc;
  const char *end = NULL;
  block *first;
  size_t size = len * 3 + 512;

  truv_json_init();
  if (!(doc = calloc(1, sizeof *doc))) goto nomem;
  if (size > (1u << 20)) size = 1u << 20;
  if (!(first = malloc(BLOCK_HEAD + size))) goto nomem;
  first->next = NULL;
  first->size = size;
  first->used = 0;
  doc->blocks = first;
  doc->total = size;

  current = doc;
  doc->root = cJSON_ParseWithLengthOpts(s, len, &end, 0);
  current = NULL;

  if (doc->root && !doc->arena_used) {
    /* someone replaced cJSON's hooks: this is an ordinary tree */
    free_blocks(doc->blocks);
    doc->blocks = NULL;
    doc->total = 0;
  }
  if (doc->failed) goto nomem;
  if (doc->root) {
    for (; end && (size_t)(end - s) < len; end++) {
      if (!strchr(" \t\r\n", *end)) {
        truv_err_set(err, TRUV_EPROTOCOL, "malformed_json",
                     "data after the JSON value (at byte %zu of %zu)", (size_t)(end - s), len);
        truv_json_free(doc);
        return NULL;
      }
    }
    doc->counted = 1;
    __atomic_add_fetch(&live_docs, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&live_bytes, doc->total, __ATOMIC_RELAXED);
    return doc;
  }
  {
    size_t at = end && end >= s ? (size_t)(end - s) : 0;
    truv_err_set(err, TRUV_EPROTOCOL, "malformed_json", "%s (at byte %zu of %zu)",
                 at + 1 >= len ? "JSON ends early (truncated?)" : "not valid JSON", at, len);
  }
  truv_json_free(doc);
  return NULL;

nomem:
  truv_json_free(doc);
  truv_err_set(err, TRUV_EINTERNAL, "nomem", "out of memory parsing JSON");
  return NULL;
}

cJSON *truv_json_root(const truv_json *doc) {
  return doc ? doc->root : NULL;
}

void truv_json_live(size_t *docs, size_t *bytes) {
  if (docs) *docs = __atomic_load_n(&live_docs, __ATOMIC_RELAXED);
  if (bytes) *bytes = __atomic_load_n(&live_bytes, __ATOMIC_RELAXED);
}

size_t truv_json_size(const truv_json *doc) {
  return doc ? doc->total : 0;
}

void truv_json_free(truv_json *doc) {
  if (!doc) return;
  if (doc->counted) {
    __atomic_sub_fetch(&live_docs, 1, __ATOMIC_RELAXED);
    __atomic_sub_fetch(&live_bytes, doc->total, __ATOMIC_RELAXED);
  }
  if (doc->blocks) free_blocks(doc->blocks);
  else cJSON_Delete(doc->root);
  free(doc);
}
