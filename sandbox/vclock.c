/* vclock: see vclock.h. */
#include "vclock.h"

void vclock_init(struct vclock *c, sb_time start, bool realtime, double scale) {
  pthread_mutex_init(&c->mu, NULL);
  c->base = start;
  c->mono_base = time_mono_us();
  c->realtime = realtime;
  c->scale = scale;
}

void vclock_destroy(struct vclock *c) {
  pthread_mutex_destroy(&c->mu);
}

static sb_time now_locked(struct vclock *c, int64_t mono) {
  if (!c->realtime) return c->base;
  return c->base + (sb_time)((double)(mono - c->mono_base) * c->scale);
}

sb_time vclock_now(struct vclock *c) {
  sb_time t;
  pthread_mutex_lock(&c->mu);
  t = now_locked(c, time_mono_us());
  pthread_mutex_unlock(&c->mu);
  return t;
}

static sb_time rebase(struct vclock *c, sb_time t, int64_t mono) {
  c->base = t;
  c->mono_base = mono;
  return t;
}

sb_time vclock_advance(struct vclock *c, sb_time delta) {
  int64_t mono;
  sb_time t;
  pthread_mutex_lock(&c->mu);
  mono = time_mono_us();
  t = rebase(c, now_locked(c, mono) + delta, mono);
  pthread_mutex_unlock(&c->mu);
  return t;
}

sb_time vclock_set(struct vclock *c, sb_time t) {
  pthread_mutex_lock(&c->mu);
  rebase(c, t, time_mono_us());
  pthread_mutex_unlock(&c->mu);
  return t;
}

bool vclock_is_realtime(struct vclock *c) {
  bool r;
  pthread_mutex_lock(&c->mu);
  r = c->realtime;
  pthread_mutex_unlock(&c->mu);
  return r;
}
