/* The parses of one case's documents in C, without Lua (bench/parse_case.sh):
 * per document kind, the µs of cJSON's stock parse (malloc per node, then
 * cJSON_Delete), of lua-truv's whole parse (truv_json_parse: cJSON in the
 * document's arena), of yajl scanning the text with no callbacks at all,
 * and of the whole parse then truv_order_read (what "model" mode does in C).
 *
 * yajl's callback parser is the one well-kept C parser (Debian's libyajl)
 * that could build only the fields the order model reads while it validates
 * the rest; its scan alone is the floor of such a parse: a selective parse
 * built on it cannot cost less (bench/README.md, "Parsing only what the
 * model needs").
 *
 *   parse_select DIR [ROUNDS]
 *     DIR holds case-N.original.json, case-N.refresh.json, case-N.poll.json */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl/yajl_parse.h>

#include "truv/json.h"
#include "truv/model.h"

#define MAX_DOCS 4096
#define HOWS 4

typedef struct doc {
  char *s;
  size_t len;
} doc;

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  long n;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
    *len = (size_t)n;
  } else {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  return buf;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static const yajl_callbacks no_callbacks;

static void run(int how, const doc *d) {
  truv_err err;
  switch (how) {
    case 0: cJSON_Delete(cJSON_ParseWithLength(d->s, d->len)); break;
    case 1: truv_json_free(truv_json_parse(d->s, d->len, &err)); break;
    case 2: {
      yajl_handle h = yajl_alloc(&no_callbacks, NULL, NULL);
      yajl_parse(h, (const unsigned char *)d->s, d->len);
      yajl_complete_parse(h);
      yajl_free(h);
      break;
    }
    default: {
      truv_json *doc = truv_json_parse(d->s, d->len, &err);
      truv_order order;
      truv_order_read(truv_json_root(doc), &order, &err);
      truv_order_release(&order);
      truv_json_free(doc);
      break;
    }
  }
}

/* µs per document of `how` over docs, the best of 5 runs of rounds/5. */
static double time_of(int how, const doc *docs, size_t n, int rounds) {
  double best = 1e30, t0, t;
  size_t i;
  int r, k;
  for (i = 0; i < n; i++) run(how, &docs[i]); /* warm up */
  for (k = 0; k < 5; k++) {
    t0 = now();
    for (r = 0; r < rounds / 5; r++)
      for (i = 0; i < n; i++) run(how, &docs[i]);
    t = (now() - t0) / (rounds / 5) / (double)n;
    if (t < best) best = t;
  }
  return best * 1e6;
}

static void row(const char *name, double bytes, const double *t) {
  printf("| %-18s | %5.1f | %8.1f | %8.1f | %8.1f | %10.2f | %13.1f |\n", name, bytes / 1024, t[0],
         t[1], t[2], t[2] / t[1], t[3]);
}

int main(int argc, char **argv) {
  static const char *const kinds[] = {"original", "refresh", "poll"};
  static doc docs[MAX_DOCS];
  int rounds = argc > 2 ? atoi(argv[2]) : 200, k, how;
  double sum[HOWS] = {0, 0, 0, 0}, bytes_sum = 0;
  if (argc < 2 || rounds < 5) {
    fprintf(stderr, "usage: parse_select DIR [ROUNDS >= 5]\n");
    return 2;
  }
  printf("| %-18s | %5s | %8s | %8s | %8s | %10s | %13s |\n", "document", "KB", "cJSON us",
         "whole us", "yajl us", "yajl/whole", "whole+read us");
  printf("|---|---:|---:|---:|---:|---:|---:|\n");
  for (k = 0; k < 3; k++) {
    size_t n = 0, i;
    double t[HOWS], bytes = 0;
    char path[4096];
    for (i = 1; n < MAX_DOCS; i++) {
      snprintf(path, sizeof path, "%s/case-%zu.%s.json", argv[1], i, kinds[k]);
      if (!(docs[n].s = read_file(path, &docs[n].len))) break;
      n++;
    }
    if (!n) {
      fprintf(stderr, "parse_select: no %s documents in %s\n", kinds[k], argv[1]);
      return 1;
    }
    for (i = 0; i < n; i++) bytes += (double)docs[i].len;
    for (how = 0; how < HOWS; how++) sum[how] += t[how] = time_of(how, docs, n, rounds);
    row(kinds[k], bytes / (double)n, t);
    bytes_sum += bytes / (double)n;
    for (i = 0; i < n; i++) free(docs[i].s);
  }
  row("a case (the three)", bytes_sum, sum);
  return 0;
}
