/* billing: see billing.h. */
#include "billing.h"

#include <stdlib.h>
#include <string.h>

#include "durations.h"
#include "lifecycle.h"

/* ---- the refresh window ------------------------------------------------ */

static bool in_window(sb_time t, sb_time now) {
  return now - t < BILLING_WINDOW;
}

/* drops the entries that left the window (the oldest come first) */
static void window_prune(struct sb_conn *c, sb_time now) {
  unsigned drop = 0;
  while (drop < c->n_window && !in_window(c->window[drop], now)) drop++;
  if (drop == 0) return;
  memmove(c->window, c->window + drop, (c->n_window - drop) * sizeof *c->window);
  c->n_window = (uint16_t)(c->n_window - drop);
}

static bool window_add(struct sb_conn *c, sb_time t) {
  unsigned i;
  if (c->n_window == UINT16_MAX) return true; /* the limit is far below; keep counting the newest */
  if (c->n_window == c->cap_window) {
    sb_time *w;
    unsigned cap = c->cap_window ? c->cap_window * 2u : 4u;
    if (cap > UINT16_MAX) cap = UINT16_MAX;
    w = realloc(c->window, cap * sizeof *w);
    if (!w) return false;
    c->window = w;
    c->cap_window = (uint16_t)cap;
  }
  /* keep the log sorted: the clock may have been set backwards */
  i = c->n_window;
  while (i > 0 && c->window[i - 1] > t) {
    c->window[i] = c->window[i - 1];
    i--;
  }
  c->window[i] = t;
  c->n_window++;
  return true;
}

void billing_window(const struct sb_conn *c, const struct sb_settings *st, sb_time now,
                    struct billing_window *out) {
  unsigned first = 0;
  out->used = 0;
  for (unsigned i = 0; i < c->n_window; i++)
    out->used += in_window(c->window[i], now); /* later entries (clock set back) count */
  out->size = st->refresh_limit > 0 ? (unsigned)st->refresh_limit + 1 : 0;
  out->full = out->size > 0 && out->used >= out->size;
  out->frees_at = 0;
  if (!out->full) return;
  /* once the (used - size + 1)-th oldest entry still inside turns 24 h old
   * (the log may hold entries that left it: skip them) */
  while (first < c->n_window && !in_window(c->window[first], now)) first++;
  if (first + out->used - out->size < c->n_window)
    out->frees_at = c->window[first + out->used - out->size] + BILLING_WINDOW;
}

bool billing_allows(struct store *s, const uint32_t *conns, unsigned n, sb_time now) {
  struct billing_window w;
  for (unsigned i = 0; i < n; i++) {
    struct sb_conn *c = &s->conns[conns[i]];
    window_prune(c, now);
    billing_window(c, &s->settings, now, &w);
    if (w.full) return false;
  }
  return true;
}

/* ---- tasks ------------------------------------------------------------- */

/* a task on conn that counts in its window and is announced as it moves */
static uint32_t new_task(struct store *s, uint32_t conn, uint32_t sub, unsigned product,
                         unsigned origin, unsigned path, int64_t duration, sb_time now) {
  struct sb_task *task;
  uint32_t t = store_add_task(s, NULL);
  if (t == SB_NONE) return SB_NONE;
  task = &s->tasks[t];
  task->created_at = now;
  task->duration = duration;
  task->path = (uint8_t)path;
  task->sub = sub;
  task->product = (uint8_t)product;
  task->origin = (uint8_t)origin;
  store_task_attach(s, t, conn);
  if (!window_add(&s->conns[conn], now) || !store_add_live(s, t, now)) return SB_NONE;
  return t;
}

uint32_t billing_refresh_task(struct store *s, uint32_t conn, uint32_t sub, unsigned product,
                              unsigned origin, sb_time now) {
  sb_time down_until;
  struct sb_conn *c;
  /* the task's index is the next one: its duration decides an outage's outcome */
  int64_t duration = duration_draw(&s->settings, s->seed, conn, s->n_tasks);
  unsigned path = lifecycle_path(&s->conns[conn], &s->settings, now, duration, &down_until);
  uint32_t t = new_task(s, conn, sub, product, origin, path, duration, now);
  if (t == SB_NONE) return SB_NONE;
  c = &s->conns[conn];
  s->tasks[t].down_until = down_until;
  c->stat_created++;
  c->stat_billed++;
  s->stat_tasks_created++;
  s->stat_billed++;
  return t;
}

bool billing_initial_task(struct store *s, uint32_t conn, uint32_t sub, sb_time now) {
  const struct sb_conn *c = &s->conns[conn];
  int64_t duration = duration_draw(&s->settings, s->seed, conn, s->n_tasks);
  uint32_t t = new_task(s, conn, sub, c->product, TASK_INITIAL, TP_DONE, duration, now);
  if (t != SB_NONE && sub != SB_NONE) s->subs[sub].task = t;
  return t != SB_NONE;
}
