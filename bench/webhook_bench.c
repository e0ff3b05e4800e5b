/* Webhook verify + parse from C, straight on libtruv: what one delivery
 * costs without any Lua in the way.
 *
 *   webhook_bench BODY_FILE SECONDS
 *
 * Each iteration verifies the X-WEBHOOK-SIGN value against the raw body
 * (one secret), parses the event and frees it; the webhook_id is read so
 * the work cannot be skipped. Measured twice: with the secret as a string
 * ("c <ops per second>") and with keys prepared once ("c-keys <ops>").
 * Built and run by bench/webhook.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "truv/webhook.h"

#define SECRET "sandbox-8f14e45fceea167a5a36dedd4bea2543"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static char *read_all(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf = NULL;
  long n;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
      (buf = malloc((size_t)n)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
    *len = (size_t)n;
  } else {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  return buf;
}

static const char *const secrets[] = {SECRET};

/* One delivery, verified with prepared keys when given, else with the
 * secret; returns the webhook_id's length, or -1. */
static long deliver(truv_webhook_keys *keys, const char *body, size_t len, const char *sig) {
  truv_webhook_event ev;
  long n;
  if (keys ? truv_webhook_verify_keys(keys, body, len, sig, NULL)
           : truv_webhook_verify(body, len, sig, secrets, 1, NULL))
    return -1;
  if (truv_webhook_parse(body, len, &ev, NULL)) return -1;
  n = (long)strlen(ev.webhook_id);
  truv_webhook_event_free(&ev);
  return n;
}

/* Deliveries per second over `seconds`; -1 if one failed. */
static double measure(truv_webhook_keys *keys, const char *body, size_t len, const char *sig,
                      double seconds) {
  static volatile long sink; /* keeps the results alive */
  double t0, elapsed;
  long ops = 0, i, n;
  for (i = 0; i < 2000; i++) /* warm up */
    if ((n = deliver(keys, body, len, sig)) < 0) return -1;
  t0 = now();
  do {
    for (i = 0; i < 1000; i++) {
      if ((n = deliver(keys, body, len, sig)) < 0) return -1;
      sink += n;
    }
    ops += 1000;
  } while ((elapsed = now() - t0) < seconds);
  return (double)ops / elapsed;
}

int main(int argc, char **argv) {
  char sig[TRUV_WEBHOOK_SIG_SIZE];
  size_t len = 0;
  char *body = argc > 1 ? read_all(argv[1], &len) : NULL;
  double seconds = argc > 2 ? atof(argv[2]) : 2.0, plain, prepared;
  truv_webhook_keys *keys = NULL;
  if (!body || truv_webhook_sign(body, len, SECRET, sig) ||
      truv_webhook_keys_new(secrets, 1, &keys, NULL)) {
    fprintf(stderr, "usage: webhook_bench BODY_FILE [SECONDS]\n");
    free(body);
    return 2;
  }
  plain = measure(NULL, body, len, sig, seconds);
  prepared = measure(keys, body, len, sig, seconds);
  truv_webhook_keys_free(keys);
  free(body);
  if (plain < 0 || prepared < 0) {
    fprintf(stderr, "webhook_bench: a delivery failed\n");
    return 1;
  }
  printf("c %.0f\nc-keys %.0f\n", plain, prepared);
  return 0;
}
