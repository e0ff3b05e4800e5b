/* A minimal test harness for the C unit tests.
 *
 * Each test file defines test functions and a main() that runs them through
 * RUN(); a failed CHECK prints where and why and marks the run as failed but
 * keeps going, so one run reports every broken behaviour. The exit status is
 * non-zero when anything failed; the last line is "N passed, N failed". */
#ifndef TRUV_TESTS_CHECK_H
#define TRUV_TESTS_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_passed, check_failed, check_current_failed;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
      check_current_failed = 1;                                                \
    }                                                                          \
  } while (0)

#define CHECK_INT(a, b)                                                                     \
  do {                                                                                      \
    long long check_a_ = (long long)(a), check_b_ = (long long)(b);                         \
    if (check_a_ != check_b_) {                                                             \
      fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, \
              check_a_, check_b_);                                                          \
      check_current_failed = 1;                                                             \
    }                                                                                       \
  } while (0)

#define CHECK_DBL(a, b)                                                                     \
  do {                                                                                      \
    double check_a_ = (double)(a), check_b_ = (double)(b);                                  \
    if (!(check_a_ - check_b_ < 1e-9 && check_b_ - check_a_ < 1e-9)) {                      \
      fprintf(stderr, "%s:%d: %s == %s failed: %.9f != %.9f\n", __FILE__, __LINE__, #a, #b, \
              check_a_, check_b_);                                                          \
      check_current_failed = 1;                                                             \
    }                                                                                       \
  } while (0)

#define CHECK_STR(a, b)                                                                         \
  do {                                                                                          \
    const char *check_a_ = (a), *check_b_ = (b);                                                \
    if (!check_a_ || !check_b_ || strcmp(check_a_, check_b_) != 0) {                            \
      fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b, \
              check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");                  \
      check_current_failed = 1;                                                                 \
    }                                                                                           \
  } while (0)

#define CHECK_CONTAINS(hay, needle)                                                  \
  do {                                                                               \
    const char *check_h_ = (hay), *check_n_ = (needle);                              \
    if (!check_h_ || !strstr(check_h_, check_n_)) {                                  \
      fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__, \
              check_h_ ? check_h_ : "(null)", check_n_);                             \
      check_current_failed = 1;                                                      \
    }                                                                                \
  } while (0)

#define CHECK_NOT_CONTAINS(hay, needle)                                                           \
  do {                                                                                            \
    const char *check_h_ = (hay), *check_n_ = (needle);                                           \
    if (check_h_ && strstr(check_h_, check_n_)) {                                                 \
      fprintf(stderr, "%s:%d: \"%s\" contains \"%s\"\n", __FILE__, __LINE__, check_h_, check_n_); \
      check_current_failed = 1;                                                                   \
    }                                                                                             \
  } while (0)

#define RUN(fn)                          \
  do {                                   \
    check_current_failed = 0;            \
    fn();                                \
    if (check_current_failed) {          \
      check_failed++;                    \
      fprintf(stderr, "FAIL %s\n", #fn); \
    } else check_passed++;               \
  } while (0)

#define CHECK_DONE() \
  (printf("%d passed, %d failed\n", check_passed, check_failed), check_failed ? 1 : 0)

/* Reads a whole file (for fixtures); returns NULL if it cannot. */
static inline char *check_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  long n;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) {
      buf[n] = '\0';
      if (len) *len = (size_t)n;
    } else {
      free(buf);
      buf = NULL;
    }
  }
  fclose(f);
  return buf;
}

/* Reads spec/fixtures/<name> through $TRUV_FIXTURES. */
static inline char *check_fixture(const char *name, size_t *len) {
  const char *dir = getenv("TRUV_FIXTURES");
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir ? dir : "spec/fixtures", name);
  return check_read_file(path, len);
}

#endif
