/* ticker: see ticker.h. */
#include "ticker.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "events.h"

struct ticker {
  struct sandbox *sb;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
};

static void tick(struct sandbox *sb) {
  store_wrlock(&sb->store);
  if (sb->store.n_live > 0) events_tick(sb, vclock_now(&sb->clock));
  store_unlock(&sb->store);
}

static void *run(void *arg) {
  struct ticker *t = arg;
  pthread_mutex_lock(&t->mu);
  while (!t->stop) {
    int64_t due = time_mono_us() + TICKER_PERIOD_MS * 1000;
    struct timespec ts = {.tv_sec = (time_t)(due / 1000000),
                          .tv_nsec = (long)(due % 1000000) * 1000};
    pthread_cond_timedwait(&t->cv, &t->mu, &ts);
    if (t->stop) break;
    pthread_mutex_unlock(&t->mu);
    tick(t->sb);
    pthread_mutex_lock(&t->mu);
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

struct ticker *ticker_start(struct sandbox *sb) {
  struct ticker *t = calloc(1, sizeof *t);
  pthread_condattr_t attr;
  if (!t) return NULL;
  t->sb = sb;
  pthread_mutex_init(&t->mu, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&t->cv, &attr);
  pthread_condattr_destroy(&attr);
  if (pthread_create(&t->thread, NULL, run, t) != 0) {
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return NULL;
  }
  return t;
}

void ticker_stop(struct ticker *t) {
  if (!t) return;
  pthread_mutex_lock(&t->mu);
  t->stop = true;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  pthread_join(t->thread, NULL);
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
  free(t);
}
