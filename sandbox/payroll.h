/* payroll: the pay calendar and amounts of a payroll connection.
 *
 * A connection's payroll is an infinite sequence of pay dates anchored at
 * the hire date: weekly, bi-weekly (both from a first pay day a few days
 * after the hire) or semi-monthly (the 15th and the last day of each month
 * from the month after the hire). Frequency, yearly income, hire date and
 * anchor derive from the connection's doc_seed; the amounts of pay period k
 * (regular pay, overtime in about 3 periods in 10, a bonus in about 8 in
 * 100, federal, social security and Medicare taxes, net) from (doc_seed, k)
 * alone, so a refresh shows the same old statements plus the new ones and
 * nothing but the seed is stored. Days count from 1970-01-01, amounts are
 * cents, hours hundredths. Pure functions, thread-safe. */
#ifndef SANDBOX_PAYROLL_H
#define SANDBOX_PAYROLL_H

#include <stdint.h>

#include "store.h"

enum payroll_freq { PAY_BIWEEKLY, PAY_WEEKLY, PAY_SEMIMONTHLY };

struct payroll {
  uint64_t seed; /* the connection's doc_seed */
  enum payroll_freq freq;
  int64_t income;     /* yearly, cents */
  int64_t hire_day;   /* days since the epoch */
  int64_t anchor;     /* first pay day (weekly, bi-weekly) */
  int64_t hire_month; /* year * 12 + month - 1 of the hire */
  int periods;        /* pay periods a year */
};

/* one pay period's amounts */
struct pay {
  int64_t regular, overtime, bonus, gross, federal, socialsec, medicare, net;
  int64_t hours; /* hundredths */
};

void payroll_init(struct payroll *p, const struct sb_conn *c);
/* "BW", "W" or "SM", as Truv's pay_frequency */
const char *payroll_frequency(const struct payroll *p);
/* the day of pay period k (k >= 0) */
int64_t payroll_pay_day(const struct payroll *p, int64_t k);
/* the last pay period on or before day (negative: none yet) */
int64_t payroll_period_at(const struct payroll *p, int64_t day);
void payroll_pay(const struct payroll *p, int64_t k, struct pay *out);

#endif
