/* payroll: see payroll.h. */
#include "payroll.h"

#include <string.h>

#include "rng.h"
#include "timeutil.h"

static int64_t floor_div(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* year * 12 + month - 1 */
static int64_t month_index(int64_t day) {
  int64_t y;
  unsigned m, d;
  time_civil_from_days(day, &y, &m, &d);
  return y * 12 + (m - 1);
}

static int64_t month_last_day(int64_t mi) {
  int64_t next = mi + 1;
  return time_days_from_civil(next / 12, (unsigned)(next % 12) + 1, 1) - 1;
}

void payroll_init(struct payroll *p, const struct sb_conn *c) {
  static const int PERIODS[] = {26, 52, 24};
  p->seed = c->doc_seed;
  p->freq = (enum payroll_freq)(rng_mix(p->seed, 4) % 3);
  p->periods = PERIODS[p->freq];
  p->income = rng_mix_range(p->seed, 3, 350, 1800) * 10000;
  p->hire_day = time_day_of(c->origin_at) - rng_mix_range(p->seed, 5, 400, 3650);
  p->anchor = p->hire_day + rng_mix_range(p->seed, 14, 3, 16);
  p->hire_month = month_index(p->hire_day);
}

const char *payroll_frequency(const struct payroll *p) {
  return p->freq == PAY_BIWEEKLY ? "BW" : p->freq == PAY_WEEKLY ? "W" : "SM";
}

int64_t payroll_pay_day(const struct payroll *p, int64_t k) {
  int64_t mi;
  if (p->freq != PAY_SEMIMONTHLY) return p->anchor + k * (p->freq == PAY_WEEKLY ? 7 : 14);
  mi = p->hire_month + 1 + k / 2;
  if (k % 2 == 0) return time_days_from_civil(mi / 12, (unsigned)(mi % 12) + 1, 15);
  return month_last_day(mi);
}

int64_t payroll_period_at(const struct payroll *p, int64_t day) {
  int64_t mi, k;
  if (p->freq != PAY_SEMIMONTHLY) return floor_div(day - p->anchor, p->freq == PAY_WEEKLY ? 7 : 14);
  mi = month_index(day);
  k = (mi - p->hire_month - 1) * 2;
  if (day >= month_last_day(mi)) return k + 1;
  return day >= payroll_pay_day(p, k) ? k : k - 1;
}

void payroll_pay(const struct payroll *p, int64_t k, struct pay *out) {
  static const int64_t HOURS[] = {8000, 4000, 8667};
  uint64_t r = rng_mix(p->seed, 1000 + (uint64_t)k);
  int64_t hourly = p->income / 2080;
  memset(out, 0, sizeof *out);
  out->regular = p->income / p->periods;
  out->hours = HOURS[p->freq];
  if (r % 10 < 3) {
    int64_t ot = (int64_t)((r >> 8) % 10) + 1;
    out->overtime = ot * hourly * 3 / 2;
    out->hours += ot * 100;
  }
  if ((r >> 16) % 100 < 8) out->bonus = (int64_t)((r >> 24) % 19 + 2) * 10000;
  out->gross = out->regular + out->overtime + out->bonus;
  out->federal = out->gross * 12 / 100;
  out->socialsec = out->gross * 62 / 1000;
  out->medicare = out->gross * 145 / 10000;
  out->net = out->gross - out->federal - out->socialsec - out->medicare;
}
