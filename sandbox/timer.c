/* timer: see timer.h. */
#include "timer.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <time.h>

#include "timeutil.h"

static void sift_up(struct timer_entry *h, unsigned i) {
  while (i > 0) {
    struct timer_entry tmp;
    unsigned parent = (i - 1) / 2;
    if (h[parent].due <= h[i].due) break;
    tmp = h[parent];
    h[parent] = h[i];
    h[i] = tmp;
    i = parent;
  }
}

static void sift_down(struct timer_entry *h, unsigned n, unsigned i) {
  for (;;) {
    struct timer_entry tmp;
    unsigned l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && h[l].due < h[m].due) m = l;
    if (r < n && h[r].due < h[m].due) m = r;
    if (m == i) return;
    tmp = h[m];
    h[m] = h[i];
    h[i] = tmp;
    i = m;
  }
}

static struct MHD_Connection *pop(struct timer *t) {
  struct MHD_Connection *c = t->heap[0].conn;
  t->heap[0] = t->heap[--t->n];
  sift_down(t->heap, t->n, 0);
  return c;
}

static void wait_until(struct timer *t, int64_t due_mono) {
  /* the condition variable uses CLOCK_MONOTONIC (see timer_start) */
  struct timespec ts = {.tv_sec = (time_t)(due_mono / 1000000),
                        .tv_nsec = (long)(due_mono % 1000000) * 1000};
  pthread_cond_timedwait(&t->cv, &t->mu, &ts);
}

static void *run(void *arg) {
  struct timer *t = arg;
  pthread_mutex_lock(&t->mu);
  while (!t->stop) {
    int64_t now;
    if (t->n == 0) {
      pthread_cond_wait(&t->cv, &t->mu);
      continue;
    }
    now = time_mono_us();
    if (t->heap[0].due > now) {
      wait_until(t, t->heap[0].due);
      continue;
    }
    while (t->n > 0 && t->heap[0].due <= now) MHD_resume_connection(pop(t));
  }
  pthread_mutex_unlock(&t->mu);
  return NULL;
}

bool timer_start(struct timer *t) {
  pthread_condattr_t attr;
  t->heap = NULL;
  t->n = t->cap = 0;
  t->draining = t->stop = t->started = false;
  pthread_mutex_init(&t->mu, NULL);
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&t->cv, &attr);
  pthread_condattr_destroy(&attr);
  t->started = pthread_create(&t->thread, NULL, run, t) == 0;
  return t->started;
}

static bool grow(struct timer *t) {
  unsigned cap;
  struct timer_entry *h;
  if (t->n < t->cap) return true;
  cap = t->cap ? t->cap * 2 : 256;
  h = realloc(t->heap, cap * sizeof *h);
  if (!h) return false;
  t->heap = h;
  t->cap = cap;
  return true;
}

bool timer_suspend(struct timer *t, struct MHD_Connection *conn, int64_t delay_us) {
  bool ok = false;
  pthread_mutex_lock(&t->mu);
  if (!t->draining && grow(t)) {
    MHD_suspend_connection(conn);
    t->heap[t->n] = (struct timer_entry){time_mono_us() + delay_us, conn};
    sift_up(t->heap, t->n++);
    pthread_cond_signal(&t->cv);
    ok = true;
  }
  pthread_mutex_unlock(&t->mu);
  return ok;
}

void timer_drain(struct timer *t) {
  pthread_mutex_lock(&t->mu);
  t->draining = true;
  while (t->n > 0) MHD_resume_connection(pop(t));
  pthread_mutex_unlock(&t->mu);
}

void timer_stop(struct timer *t) {
  pthread_mutex_lock(&t->mu);
  t->draining = t->stop = true;
  while (t->n > 0) MHD_resume_connection(pop(t));
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
  if (t->started) pthread_join(t->thread, NULL);
  t->started = false;
  free(t->heap);
  t->heap = NULL;
  pthread_cond_destroy(&t->cv);
  pthread_mutex_destroy(&t->mu);
}
