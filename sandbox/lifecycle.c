/* lifecycle: see lifecycle.h. */
#include "lifecycle.h"

#define MAX_STEPS 5

static const char *const PATHS[TP__COUNT][MAX_STEPS] = {
  [TP_DONE] = {"new", "login", "parse", "full_parse", "done"},
  [TP_LOGIN_ERROR] = {"new", "login", "login_error"},
  [TP_EXPIRED] = {"new", "login", "login_error"},
  [TP_MFA_ERROR] = {"new", "login", "mfa", "mfa_error"},
  [TP_LOCKED] = {"new", "login", "account_locked"},
  [TP_UNAVAILABLE] = {"new", "login", "unavailable"},
  [TP_NO_DATA] = {"new", "login", "parse", "no_data"},
  [TP_NOT_SUPPORTED] = {"new", "not_supported"},
};

static const unsigned NSTEPS[TP__COUNT] = {
  [TP_DONE] = 5,   [TP_LOGIN_ERROR] = 3, [TP_EXPIRED] = 3, [TP_MFA_ERROR] = 4,
  [TP_LOCKED] = 3, [TP_UNAVAILABLE] = 3, [TP_NO_DATA] = 4, [TP_NOT_SUPPORTED] = 2,
};

static const char *const ERRORS[TP__COUNT] = {
  [TP_DONE] = NULL,
  [TP_LOGIN_ERROR] = "Invalid credentials: the user must re-enter them",
  [TP_EXPIRED] = "Connection expired, the user must reconnect",
  [TP_MFA_ERROR] = "Multi-factor authentication was required and not completed",
  [TP_LOCKED] = "The account is locked at the provider",
  [TP_UNAVAILABLE] = "The provider is temporarily unavailable, retry later",
  [TP_NO_DATA] = "The provider returned no data",
  [TP_NOT_SUPPORTED] = "The provider is not supported",
};

unsigned conn_effective_state(const struct sb_conn *c, const struct sb_settings *st, sb_time now) {
  if (c->oauth && now - c->auth_at > st->expiry) return ST_EXPIRED;
  if (c->state == ST_PROVIDER_DOWN && now >= c->down_since + st->provider_down) return ST_ACTIVE;
  return c->state;
}

enum task_path lifecycle_path(const struct sb_conn *c, const struct sb_settings *st, sb_time now,
                              int64_t duration, sb_time *down_until) {
  *down_until = 0;
  switch (conn_effective_state(c, st, now)) {
    case ST_EXPIRED: return TP_EXPIRED;
    case ST_CREDENTIALS: return TP_LOGIN_ERROR;
    case ST_MFA: return TP_MFA_ERROR;
    case ST_LOCKED: return TP_LOCKED;
    case ST_NO_DATA: return TP_NO_DATA;
    case ST_UNSUPPORTED: return TP_NOT_SUPPORTED;
    case ST_PROVIDER_DOWN:
      *down_until = c->down_since + st->provider_down;
      /* the outage decides the outcome if it lasts past the task's end */
      return now + duration < *down_until ? TP_UNAVAILABLE : TP_DONE;
    default: return TP_DONE;
  }
}

static unsigned path_of(const struct sb_task *t) {
  return t->path < TP__COUNT ? t->path : TP_DONE;
}

unsigned task_nsteps(const struct sb_task *t) {
  return NSTEPS[path_of(t)];
}

sb_time task_step_time(const struct sb_task *t, unsigned step) {
  unsigned last = task_nsteps(t) - 1;
  if (step >= last) return t->created_at + t->duration;
  return t->created_at + t->duration * (int64_t)step / (int64_t)last;
}

unsigned task_step_at(const struct sb_task *t, sb_time now) {
  unsigned n = task_nsteps(t), step = 0;
  while (step + 1 < n && task_step_time(t, step + 1) <= now) step++;
  return step;
}

const char *task_step_name(const struct sb_task *t, unsigned step) {
  unsigned n = task_nsteps(t);
  return PATHS[path_of(t)][step < n ? step : n - 1];
}

sb_time task_end_time(const struct sb_task *t) {
  return t->created_at + t->duration;
}

bool task_is_terminal(const struct sb_task *t, sb_time now) {
  return task_end_time(t) <= now;
}

bool task_path_failed(unsigned path) {
  return path != TP_DONE;
}

const char *task_error_message(const struct sb_task *t, sb_time now) {
  return task_is_terminal(t, now) ? ERRORS[path_of(t)] : NULL;
}

enum sub_status task_sub_status(const struct sb_task *t, sb_time now) {
  if (!task_is_terminal(t, now)) return SUB_PENDING;
  switch (path_of(t)) {
    case TP_DONE: return SUB_COMPLETED;
    case TP_NO_DATA: return SUB_NO_DATA;
    default: return SUB_ERROR;
  }
}

const char *sub_status_name(enum sub_status st) {
  switch (st) {
    case SUB_COMPLETED: return "completed";
    case SUB_NO_DATA: return "no_data";
    case SUB_ERROR: return "error";
    default: return "pending";
  }
}

enum sub_status sub_status_at(const struct store *s, uint32_t sub, sb_time now, sb_time *since) {
  const struct sb_task *t;
  enum sub_status st;
  const struct sb_sub *b = &s->subs[sub];
  *since = b->created_at;
  if (b->task == SB_NONE) return SUB_PENDING;
  t = &s->tasks[b->task];
  st = task_sub_status(t, now);
  if (st != SUB_PENDING) *since = task_end_time(t);
  return st;
}

const char *order_status_at(const struct store *s, uint32_t order, sb_time now, sb_time *settled,
                            bool *pending) {
  const struct sb_order *o = &s->orders[order];
  unsigned n = o->n_emp + o->n_fa, completed = 0, no_data = 0;
  *settled = o->created_at;
  *pending = true;
  if (n == 0) return "pending";
  for (unsigned i = 0; i < n; i++) {
    sb_time since;
    enum sub_status st = sub_status_at(s, o->sub_first + i, now, &since);
    if (st == SUB_PENDING) return "pending";
    completed += st == SUB_COMPLETED;
    no_data += st == SUB_NO_DATA;
    if (since > *settled) *settled = since;
  }
  *pending = false;
  if (completed) return "completed";
  return no_data == n ? "no_data" : "error";
}
