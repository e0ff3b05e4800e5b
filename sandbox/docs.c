/* docs: see docs.h. An employment shows the last 12..24 pay periods of the
 * connection's payroll (payroll.h) on or before the "as of" day, with
 * year-to-date sums recomputed from January 1st. */
#include "docs.h"

#include <stdio.h>
#include <string.h>

#include "hex.h"
#include "lifecycle.h"
#include "names.h"
#include "payroll.h"

#define MAX_YEARS 4
#define CDN "https://cdn.truv.com"
#define ORDER_LINK_TTL (72LL * 3600 * SB_USEC) /* Truv's default order expiry */

/* year-to-date sums of one year's statements */
struct ytd {
  int64_t year;
  int64_t regular, overtime, bonus, gross, net;
};

static int64_t year_of(int64_t day) {
  int64_t y;
  unsigned m, d;
  time_civil_from_days(day, &y, &m, &d);
  return y;
}

static void ytd_add(struct ytd *y, const struct pay *p) {
  y->regular += p->regular;
  y->overtime += p->overtime;
  y->bonus += p->bonus;
  y->gross += p->gross;
  y->net += p->net;
}

/* ---- small shared pieces ----------------------------------------------- */

const char *docs_data_source(unsigned kind) {
  return kind == KIND_FINANCIAL ? "financial_accounts" : "payroll";
}

/* the sandbox's providers: the kind of connection (OAuth or session-based)
 * is the provider's, as at Truv */
static const struct provider {
  const char *id, *name;
} PROVIDERS[2][2] = {
  [KIND_EMPLOYER] = {{"truv_payroll", "Truv Payroll Provider"},
                     {"truv_payroll_oauth", "Truv Payroll (OAuth)"}},
  [KIND_FINANCIAL] = {{"truv_bank", "Truv Bank (non-OAuth)"},
                      {"truv_bank_oauth", "Truv Bank (OAuth)"}},
};

static const struct provider *provider_of(const struct sb_conn *c) {
  return &PROVIDERS[c->kind == KIND_FINANCIAL][c->oauth != 0];
}

const char *docs_provider_id(const struct sb_conn *c) {
  return provider_of(c)->id;
}

static void logo_url(struct jw *w, const char *dir, const char *id) {
  char logo[128];
  snprintf(logo, sizeof logo, CDN "/%s/%s.svg", dir, id);
  jw_str(w, logo);
}

void docs_provider(struct jw *w, const struct sb_conn *c) {
  const struct provider *p = provider_of(c);
  jw_obj(w);
  jw_kstr(w, "id", p->id);
  jw_kstr(w, "name", p->name);
  jw_key(w, "logo_url");
  logo_url(w, "providers", p->id);
  jw_obj_end(w);
}

static void url_with_hex(struct jw *w, const char *prefix, const uint8_t id[16],
                         const char *suffix) {
  char buf[160], hex[33];
  size_t pl = strlen(prefix), sl = strlen(suffix);
  hex_encode(id, 16, hex);
  memcpy(buf, prefix, pl);
  memcpy(buf + pl, hex, 32);
  memcpy(buf + pl + 32, suffix, sl + 1);
  jw_str(w, buf);
}

static void digits_str(struct jw *w, uint64_t v, int n) {
  char buf[24];
  for (int i = n - 1; i >= 0; i--, v /= 10) buf[i] = (char)('0' + v % 10);
  jw_strn(w, buf, (size_t)n);
}

static void address(struct jw *w, const char *street, const struct company *co, bool country) {
  jw_obj(w);
  jw_kstr(w, "street", street);
  jw_kstr(w, "city", co->city);
  jw_kstr(w, "state", co->state);
  jw_kstr(w, "zip", co->zip);
  if (country) jw_kstr(w, "country", "US");
  jw_obj_end(w);
}

/* ---- employments ------------------------------------------------------- */

static void deduction(struct jw *w, const char *name, int64_t amount, const char *category) {
  jw_obj(w);
  jw_kstr(w, "name", name);
  jw_kmoney(w, "amount", amount);
  jw_kstr(w, "category", category);
  jw_obj_end(w);
}

static void statement(struct jw *w, const struct payroll *p, int64_t k, const struct pay *pay,
                      const struct ytd *y) {
  int64_t day = payroll_pay_day(p, k), prev = k > 0 ? payroll_pay_day(p, k - 1) : p->hire_day - 1;
  uint8_t id[16];
  jw_obj(w);
  rng_mix_id(p->seed, 2000 + (uint64_t)k, id);
  jw_khex(w, "id", id, 16);
  jw_key(w, "check_number");
  digits_str(w, rng_mix(p->seed, 3000 + (uint64_t)k), 8);
  jw_kdate(w, "pay_date", day);
  jw_kdate(w, "period_start", prev + 1);
  jw_kdate(w, "period_end", day);
  jw_kmoney(w, "gross_pay", pay->gross);
  jw_kmoney(w, "gross_pay_ytd", y->gross);
  jw_kmoney(w, "net_pay", pay->net);
  jw_kmoney(w, "net_pay_ytd", y->net);
  jw_kmoney(w, "regular", pay->regular);
  jw_kmoney(w, "regular_ytd", y->regular);
  jw_kmoney(w, "overtime", pay->overtime);
  jw_kmoney(w, "bonus", pay->bonus);
  jw_kmoney(w, "hours", pay->hours);
  jw_kstr(w, "basis_of_pay", "S");
  jw_key(w, "deductions");
  jw_arr(w);
  deduction(w, "Federal Income Tax", pay->federal, "federal");
  deduction(w, "Social Security Tax", pay->socialsec, "socialsec");
  deduction(w, "Medicare Tax", pay->medicare, "medicare");
  jw_arr_end(w);
  rng_mix_id(p->seed, 4000 + (uint64_t)k, id);
  jw_khex(w, "md5sum", id, 16);
  jw_obj_end(w);
}

/* statements [k_first, k_last] with YTD sums; fills one summary per year */
static unsigned statements(struct jw *w, const struct payroll *p, int64_t k_first, int64_t k_last,
                           struct ytd years[MAX_YEARS]) {
  unsigned n_years = 0;
  jw_key(w, "statements");
  jw_arr(w);
  if (k_last >= k_first) {
    int64_t year = year_of(payroll_pay_day(p, k_first)), j = k_first;
    struct ytd y;
    while (j > 0 && year_of(payroll_pay_day(p, j - 1)) == year) j--;
    y = (struct ytd){.year = year};
    for (; j <= k_last; j++) {
      struct pay pay;
      int64_t yj = year_of(payroll_pay_day(p, j));
      if (yj != y.year) y = (struct ytd){.year = yj};
      payroll_pay(p, j, &pay);
      ytd_add(&y, &pay);
      if (j < k_first) continue;
      statement(w, p, j, &pay, &y);
      if (n_years == 0 || years[n_years - 1].year != y.year) n_years += n_years < MAX_YEARS;
      years[n_years - 1] = y;
    }
  }
  jw_arr_end(w);
  return n_years;
}

static void annual_summary(struct jw *w, const struct payroll *p, const struct ytd *years,
                           unsigned n) {
  jw_key(w, "annual_income_summary");
  jw_arr(w);
  for (unsigned i = 0; i < n; i++) {
    uint8_t id[16];
    rng_mix_id(p->seed, 5000 + (uint64_t)years[i].year, id);
    jw_obj(w);
    jw_khex(w, "id", id, 16);
    jw_kint(w, "year", years[i].year);
    jw_kmoney(w, "regular", years[i].regular);
    jw_kmoney(w, "bonus", years[i].bonus);
    jw_kmoney(w, "commission", 0);
    jw_kmoney(w, "overtime", years[i].overtime);
    jw_kmoney(w, "other_pay", 0);
    jw_kmoney(w, "net_pay", years[i].net);
    jw_kmoney(w, "gross_pay", years[i].gross);
    jw_obj_end(w);
  }
  jw_arr_end(w);
}

static void bank_accounts(struct jw *w, const struct payroll *p) {
  jw_key(w, "bank_accounts");
  jw_arr(w);
  jw_obj(w);
  jw_key(w, "account_number");
  digits_str(w, rng_mix(p->seed, 12), 10);
  jw_key(w, "routing_number");
  digits_str(w, rng_mix(p->seed, 13), 9);
  jw_kstr(w, "account_name", "Checking");
  jw_kstr(w, "account_type", "C");
  jw_kstr(w, "deposit_type", "A");
  jw_kmoney(w, "deposit_value", p->income / p->periods * 70 / 100);
  jw_kstr(w, "bank_name", "Truv Bank");
  jw_obj_end(w);
  jw_arr_end(w);
}

static void w2(struct jw *w, const struct payroll *p, int64_t year) {
  int64_t wages;
  uint8_t md5[16];
  int64_t start = time_days_from_civil(year, 1, 1), days = 365;
  if (p->hire_day > start) days = time_days_from_civil(year + 1, 1, 1) - p->hire_day;
  wages = p->income * days / 365;
  rng_mix_id(p->seed, 6000 + (uint64_t)year, md5);
  jw_obj(w);
  jw_key(w, "file");
  url_with_hex(w, CDN "/w2s/", md5, ".pdf");
  jw_khex(w, "md5sum", md5, 16);
  jw_kint(w, "year", year);
  jw_kmoney(w, "wages", wages);
  jw_kmoney(w, "federal_tax", wages * 12 / 100);
  jw_kmoney(w, "social_security_wages", wages);
  jw_kmoney(w, "social_security_tax", wages * 62 / 1000);
  jw_kmoney(w, "medicare_wages", wages);
  jw_kmoney(w, "medicare_tax", wages * 145 / 10000);
  jw_kmoney(w, "gross_pay", wages);
  jw_obj_end(w);
}

static void w2s(struct jw *w, const struct payroll *p, int64_t as_of_day) {
  int64_t year = year_of(as_of_day), hire_year = year_of(p->hire_day);
  int n = 1 + (int)(rng_mix(p->seed, 15) % 2);
  jw_key(w, "w2s");
  jw_arr(w);
  for (int i = 1; i <= n; i++)
    if (year - i >= hire_year) w2(w, p, year - i);
  jw_arr_end(w);
}

static void profile(struct jw *w, const struct payroll *p, const struct person *who,
                    const struct company *co, sb_time as_of) {
  uint8_t id[16];
  char full[256];
  char ssn[10];
  uint64_t v;
  rng_mix_id(p->seed, 9, id);
  jw_key(w, "profile");
  jw_obj(w);
  jw_khex(w, "id", id, 16);
  jw_ktime(w, "created_at", as_of);
  jw_ktime(w, "updated_at", as_of);
  jw_kstr(w, "first_name", who->first_name);
  jw_kstr(w, "last_name", who->last_name);
  jw_key(w, "full_name");
  snprintf(full, sizeof full, "%s%s%s", who->first_name ? who->first_name : "",
           who->first_name && who->last_name ? " " : "", who->last_name ? who->last_name : "");
  jw_str(w, full);
  jw_knull(w, "middle_initials");
  jw_kstr(w, "email", who->email);
  jw_key(w, "ssn"); /* synthetic: the 9xx area is never issued */
  v = rng_mix(p->seed, 11);
  ssn[0] = '9';
  for (int i = 8; i >= 1; i--, v /= 10) ssn[i] = (char)('0' + v % 10);
  jw_strn(w, ssn, 9);
  jw_kdate(w, "date_of_birth", p->hire_day - 365 * rng_mix_range(p->seed, 16, 20, 45));
  jw_key(w, "home_address");
  address(w, names_street(rng_mix(p->seed, 10)), co, true);
  jw_obj_end(w);
}

static void company_obj(struct jw *w, const struct company *co) {
  jw_key(w, "company");
  jw_obj(w);
  jw_kstr(w, "name", co->name);
  jw_key(w, "address");
  address(w, co->street, co, true);
  jw_kstr(w, "phone", co->phone);
  jw_kstr(w, "ein", co->ein);
  jw_obj_end(w);
}

/* statements, summaries, deposit accounts, W-2s; empty lists without `full` */
static void pay_data(struct jw *w, const struct payroll *p, int64_t as_of_day, bool full) {
  int64_t k_last;
  int64_t k_first;
  unsigned n_years;
  static const char *const EMPTY[] = {"statements", "annual_income_summary", "bank_accounts",
                                      "w2s"};
  struct ytd years[MAX_YEARS];
  if (!full) {
    for (unsigned i = 0; i < 4; i++) {
      jw_key(w, EMPTY[i]);
      jw_arr(w);
      jw_arr_end(w);
    }
    return;
  }
  k_last = payroll_period_at(p, as_of_day);
  k_first = k_last - rng_mix_range(p->seed, 6, 12, 24) + 1;
  n_years = statements(w, p, k_first < 0 ? 0 : k_first, k_last, years);
  annual_summary(w, p, years, n_years);
  bank_accounts(w, p);
  w2s(w, p, as_of_day);
}

/* one employment as the provider shows it at as_of; `full` adds pay data
 * (income product), otherwise only employment facts (employment product) */
static void employment(struct jw *w, const struct sb_conn *c, const struct person *who,
                       sb_time as_of, bool full) {
  struct payroll p;
  const struct company *co;
  uint8_t id[16];
  int64_t as_of_day;
  payroll_init(&p, c);
  co = names_company(rng_mix(p.seed, 1));
  as_of_day = time_day_of(as_of);
  jw_obj(w);
  jw_kmoney(w, "income", p.income);
  jw_kstr(w, "income_unit", "YEARLY");
  jw_kmoney(w, "pay_rate", p.income / p.periods);
  jw_kstr(w, "pay_frequency", payroll_frequency(&p));
  pay_data(w, &p, as_of_day, full);
  rng_mix_id(p.seed, 7, id);
  jw_khex(w, "id", id, 16);
  jw_kbool(w, "is_active", true);
  jw_kstr(w, "job_title", names_job_title(rng_mix(p.seed, 2)));
  jw_kstr(w, "job_type", "F");
  jw_kdate(w, "start_date", p.hire_day);
  jw_kdate(w, "original_hire_date", p.hire_day);
  jw_knull(w, "end_date");
  jw_kdate(w, "external_last_updated", as_of_day);
  jw_kbool(w, "dates_from_statements", false);
  jw_key(w, "derived_fields");
  jw_arr(w);
  jw_arr_end(w);
  jw_key(w, "missing_data_fields");
  jw_arr(w);
  jw_arr_end(w);
  jw_kstr(w, "manager_name", names_manager(rng_mix(p.seed, 8)));
  profile(w, &p, who, co, as_of);
  company_obj(w, co);
  jw_obj_end(w);
}

/* ---- financial accounts ------------------------------------------------ */

/* an account as an order shows it: id, type, subtype, mask */
static void bank_account(struct jw *w, const struct sb_conn *c, unsigned a) {
  uint64_t v;
  char mask[16] = "******";
  uint64_t seed = c->doc_seed;
  uint8_t id[16];
  rng_mix_id(seed, 30 + a, id);
  jw_obj(w);
  jw_khex(w, "id", id, 16);
  jw_kstr(w, "type", a == 0 ? "CHECKING" : "SAVINGS");
  jw_knull(w, "subtype");
  v = rng_mix(seed, 40 + a);
  for (int i = 9; i >= 6; i--, v /= 10) mask[i] = (char)('0' + v % 10);
  mask[10] = '\0';
  jw_kstr(w, "mask", mask);
  jw_obj_end(w);
}

/* ---- suborders --------------------------------------------------------- */

/* opens suborder sub's object with the members every suborder has; its
 * status at now, and its connection in *conn (NULL: none yet) */
static enum sub_status sub_begin(struct jw *w, const struct store *s, uint32_t sub, sb_time now,
                                 const struct sb_conn **conn) {
  const struct sb_sub *b = &s->subs[sub];
  const struct sb_order *o = &s->orders[b->order];
  const struct sb_conn *c = b->conn == SB_NONE ? NULL : &s->conns[b->conn];
  sb_time since;
  enum sub_status st = sub_status_at(s, sub, now, &since);
  *conn = c;
  jw_obj(w);
  jw_khex(w, "id", b->id, 16);
  jw_kstr(w, "product_type", product_name(b->product));
  jw_kstr(w, "status", sub_status_name(st));
  jw_key(w, "suborder_number");
  jw_uint_str(w, b->number);
  jw_ktime(w, "created_at", b->created_at);
  jw_khex(w, "bridge_token", o->bridge_token, 16);
  jw_khex(w, "link_id", c ? c->link : NULL, 16);
  jw_khex(w, "access_token", c ? c->token : NULL, 16);
  jw_key(w, "pdf_report");
  if (st == SUB_COMPLETED) url_with_hex(w, CDN "/reports/", b->id, ".pdf");
  else jw_null(w);
  jw_kstr(w, "data_source", c ? docs_data_source(b->kind) : NULL);
  jw_key(w, "provider");
  if (c) docs_provider(w, c);
  else jw_null(w);
  jw_kbool(w, "is_suspicious", false);
  return st;
}

static sb_time data_as_of(const struct store *s, const struct sb_sub *b) {
  return b->task == SB_NONE ? b->created_at : task_end_time(&s->tasks[b->task]);
}

static void order_person(const struct sb_order *o, struct person *who) {
  who->first_name = o->first_name;
  who->last_name = o->last_name;
  who->email = o->email;
}

static void employer(struct jw *w, const struct store *s, uint32_t sub, sb_time now) {
  struct payroll p;
  const struct company *co;
  const struct sb_sub *b = &s->subs[sub];
  const struct sb_conn *c;
  enum sub_status st = sub_begin(w, s, sub, now, &c);
  if (!c) {
    jw_knull(w, "start_date");
    jw_knull(w, "end_date");
    jw_kstr(w, "company_name", b->label);
    jw_knull(w, "company_address");
    jw_knull(w, "company_logo");
    jw_knull(w, "company_domain");
    jw_key(w, "employments");
    jw_arr(w);
    jw_arr_end(w);
    jw_obj_end(w);
    return;
  }
  payroll_init(&p, c);
  co = names_company(rng_mix(c->doc_seed, 1));
  jw_kdate(w, "start_date", p.hire_day);
  jw_knull(w, "end_date");
  jw_kstr(w, "company_name", b->label ? b->label : co->name);
  jw_key(w, "company_address");
  address(w, co->street, co, false);
  jw_key(w, "company_logo");
  jw_str(w, CDN "/logos/default.svg");
  jw_kstr(w, "company_domain", co->domain);
  jw_key(w, "employments");
  jw_arr(w);
  if (st == SUB_COMPLETED) {
    struct person who;
    order_person(&s->orders[b->order], &who);
    employment(w, c, &who, data_as_of(s, b), b->product != PROD_EMPLOYMENT);
  }
  jw_arr_end(w);
  jw_obj_end(w);
}

static void financial_account(struct jw *w, const struct store *s, uint32_t sub, sb_time now) {
  const struct sb_conn *c;
  enum sub_status st = sub_begin(w, s, sub, now, &c);
  jw_key(w, "accounts");
  jw_arr(w);
  if (c && st == SUB_COMPLETED) {
    unsigned n = 1 + (unsigned)(rng_mix(c->doc_seed, 20) % 2);
    for (unsigned a = 0; a < n; a++) bank_account(w, c, a);
  }
  jw_arr_end(w);
  jw_obj_end(w);
}

/* ---- orders ------------------------------------------------------------ */

static void share_urls(struct jw *w, const struct sb_order *o) {
  char url[160], hex[33];
  static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  static const char SHORT[] = "https://truv.com/s/";
  size_t n = 0;
  static const char A[] = "https://cdn.truv.com/employment.html?bridge_token=";
  static const char B[] = "&order_group_id=";
  memcpy(url, A, sizeof A - 1);
  n = sizeof A - 1;
  hex_encode(o->share_token, 16, url + n);
  n += 32;
  memcpy(url + n, B, sizeof B - 1);
  n += sizeof B - 1;
  hex_encode(o->id, 16, hex);
  memcpy(url + n, hex, 33);
  jw_kstr(w, "share_url", url);
  memcpy(url, SHORT, sizeof SHORT - 1);
  n = sizeof SHORT - 1;
  for (int i = 0; i < 8; i++) url[n++] = B62[o->share_token[i] % 62];
  url[n] = '\0';
  jw_kstr(w, "short_share_url", url);
}

static void order_ref(struct jw *w, const char *key, const struct store *s, uint32_t i) {
  jw_khex(w, key, i == SB_NONE ? NULL : s->orders[i].id, 16);
}

static sb_time order_updated_at(const struct store *s, const struct sb_order *o, sb_time now) {
  sb_time t = o->created_at > o->refreshed_at ? o->created_at : o->refreshed_at;
  for (unsigned i = 0; i < (unsigned)(o->n_emp + o->n_fa); i++) {
    sb_time since;
    sub_status_at(s, o->sub_first + i, now, &since);
    if (since > t) t = since;
  }
  return t;
}

static void order_head(struct jw *w, const struct store *s, const struct sb_order *o) {
  jw_khex(w, "id", o->id, 16);
  jw_key(w, "products");
  jw_arr(w);
  for (unsigned i = 0; i < o->n_products; i++) jw_str(w, product_name(o->products[i]));
  jw_arr_end(w);
  jw_kstr(w, "source", "internal"); /* [U] the value of an API-created order */
  jw_kstr(w, "order_number", o->order_number);
  jw_knull(w, "custom_field");
  jw_kstr(w, "client_name", DOCS_CLIENT_NAME);
  jw_kstr(w, "first_name", o->first_name);
  jw_kstr(w, "last_name", o->last_name);
  jw_khex(w, "user_id", s->users[o->user].id, 16);
  jw_khex(w, "bridge_token", o->bridge_token, 16);
  share_urls(w, o);
}

/* the members of the Order object, in the order of Truv's example
 * (GET /v1/orders/{id}/): no status, email, phone or external_user_id */
void docs_order(struct jw *w, const struct store *s, uint32_t order, sb_time now) {
  const struct sb_order *o = &s->orders[order];
  sb_time settled, expired_at = o->created_at + ORDER_LINK_TTL;
  bool pending;
  const char *status = order_status_at(s, order, now, &settled, &pending);
  jw_obj(w);
  order_head(w, s, o);
  jw_ktime(w, "created_at", o->created_at);
  jw_ktime(w, "updated_at", order_updated_at(s, o, now));
  jw_knull(w, "canceled_at");
  jw_key(w, "completed_at");
  jw_time_or_null(w, settled, strcmp(status, "completed") == 0);
  jw_ktime(w, "expired_at", expired_at);
  jw_kbool(w, "is_expired", now >= expired_at);
  jw_key(w, "user_consent_at");
  jw_time_or_null(w, o->consent_at, o->consent_at != 0);
  order_ref(w, "initial_order", s, o->initial);
  order_ref(w, "refresh_order", s, o->refresh_order);
  jw_key(w, "employers");
  jw_arr(w);
  for (unsigned i = 0; i < o->n_emp; i++) employer(w, s, o->sub_first + i, now);
  jw_arr_end(w);
  jw_knull(w, "insurance");
  jw_key(w, "manager");
  if (o->manager) jw_raw(w, o->manager, strlen(o->manager));
  else jw_null(w);
  jw_key(w, "financial_accounts");
  jw_arr(w);
  for (unsigned i = 0; i < o->n_fa; i++) financial_account(w, s, o->sub_first + o->n_emp + i, now);
  jw_arr_end(w);
  jw_knull(w, "loan");
  jw_kstr(w, "template_id", o->template_id);
  if (o->extra) {
    jw_text(w, ",", 1);
    jw_text(w, o->extra, strlen(o->extra));
  } else {
    jw_key(w, "cc_emails");
    jw_arr(w);
    jw_arr_end(w);
    jw_knull(w, "notes");
  }
  jw_knull(w, "voie_report_id");
  jw_knull(w, "voa_report_id");
  jw_knull(w, "income_insights_report_id");
  jw_knull(w, "aim_check_report_id");
  jw_obj_end(w);
}

static void change_point(sb_time t, sb_time now, sb_time *from, sb_time *until) {
  if (t <= now && t > *from) *from = t;
  else if (t > now && t < *until) *until = t;
}

void docs_order_stable(const struct store *s, uint32_t order, sb_time now, sb_time *from,
                       sb_time *until) {
  const struct sb_order *o = &s->orders[order];
  *from = INT64_MIN;
  *until = INT64_MAX;
  change_point(o->created_at + ORDER_LINK_TTL, now, from, until);
  for (unsigned i = 0; i < (unsigned)(o->n_emp + o->n_fa); i++) {
    uint32_t task = s->subs[o->sub_first + i].task;
    if (task != SB_NONE) change_point(task_end_time(&s->tasks[task]), now, from, until);
  }
}

/* ---- tasks ------------------------------------------------------------- */

static const char *task_status(const struct sb_task *t, sb_time now) {
  return task_step_name(t, task_step_at(t, now));
}

void docs_refresh_task(struct jw *w, const struct store *s, uint32_t task, sb_time now) {
  const struct sb_task *t = &s->tasks[task];
  jw_obj(w);
  jw_khex(w, "id", t->id, 16);
  jw_ktime(w, "created_at", t->created_at);
  jw_kdate(w, "refresh_date", time_day_of(t->created_at));
  jw_kstr(w, "status", task_status(t, now));
  jw_obj_end(w);
}

/* the link's tracking_info: its order suborder's id, or the bridge token's */
void docs_link_tracking_info(struct jw *w, const struct store *s, const struct sb_conn *c) {
  if (c->origin_sub != SB_NONE) jw_hex(w, s->subs[c->origin_sub].id, 16);
  else jw_str(w, c->bridge == SB_NONE ? NULL : s->bridges[c->bridge].tracking_info);
}

void docs_task(struct jw *w, const struct store *s, uint32_t task, sb_time now) {
  const struct sb_task *t = &s->tasks[task];
  const struct sb_conn *c = &s->conns[t->conn];
  const struct sb_sub *b = t->sub == SB_NONE ? NULL : &s->subs[t->sub];
  const uint8_t *bridge = NULL;
  if (b) bridge = s->orders[b->order].bridge_token;
  else if (t->origin == TASK_INITIAL && c->bridge != SB_NONE) bridge = s->bridges[c->bridge].id;
  jw_obj(w);
  jw_khex(w, "id", t->id, 16);
  jw_kstr(w, "status", task_status(t, now));
  jw_kstr(w, "product_type", product_name(t->product));
  jw_key(w, "provider");
  docs_provider(w, c);
  jw_ktime(w, "created_at", t->created_at);
  jw_ktime(w, "updated_at", task_step_time(t, task_step_at(t, now)));
  jw_khex(w, "link_id", c->link, 16);
  jw_khex(w, "user_id", s->users[c->user].id, 16);
  jw_kstr(w, "error_message", task_error_message(t, now));
  jw_key(w, "tracking_info");
  if (b) jw_hex(w, b->id, 16);
  else docs_link_tracking_info(w, s, c);
  jw_khex(w, "bridge_token", bridge, 16);
  jw_kstr(w, "data_source", docs_data_source(c->kind));
  jw_kbool(w, "is_suspicious", false);
  jw_khex(w, "order_id", b ? s->orders[b->order].id : NULL, 16);
  jw_obj_end(w);
}

/* ---- users and links ---------------------------------------------------- */

void docs_user(struct jw *w, const struct store *s, uint32_t user) {
  const struct sb_user *u = &s->users[user];
  jw_obj(w);
  jw_khex(w, "id", u->id, 16);
  jw_kstr(w, "external_user_id", u->external_id);
  jw_kstr(w, "first_name", u->first_name);
  jw_kstr(w, "last_name", u->last_name);
  jw_kstr(w, "email", u->email);
  jw_kstr(w, "phone", u->phone);
  jw_kstr(w, "ssn", u->ssn);
  jw_ktime(w, "created_at", u->created_at);
  jw_ktime(w, "updated_at", u->created_at);
  jw_obj_end(w);
}

/* the newest task of c that exists at now, and the newest one that ended
 * done (SB_NONE when none) */
static void last_tasks(const struct store *s, const struct sb_conn *c, sb_time now, uint32_t *last,
                       uint32_t *last_done, uint32_t *last_refresh) {
  *last = *last_done = *last_refresh = SB_NONE;
  for (uint32_t i = c->last_task; i != SB_NONE; i = s->tasks[i].prev_of_conn) {
    const struct sb_task *t = &s->tasks[i];
    if (t->created_at > now) continue;
    if (*last == SB_NONE) *last = i;
    if (*last_refresh == SB_NONE && t->origin != TASK_INITIAL) *last_refresh = i;
    if (*last_done == SB_NONE && task_sub_status(t, now) == SUB_COMPLETED) *last_done = i;
    if (*last_done != SB_NONE && *last_refresh != SB_NONE) return;
  }
}

static const char *link_status(const struct store *s, const struct sb_conn *c, sb_time now) {
  uint32_t last, done, refresh;
  last_tasks(s, c, now, &last, &done, &refresh);
  return last == SB_NONE ? "new" : task_status(&s->tasks[last], now);
}

static void masked_token(struct jw *w, const uint8_t token[16]) {
  char hex[33];
  hex_encode(token, 16, hex);
  memset(hex, '*', 28);
  jw_str(w, hex);
}

static void allowed_products(struct jw *w, const struct store *s, const struct sb_conn *c) {
  const char *given = c->bridge == SB_NONE ? NULL : s->bridges[c->bridge].allowed_products;
  if (given) {
    jw_raw(w, given, strlen(given));
    return;
  }
  jw_arr(w);
  jw_str(w, product_name(c->product));
  jw_arr_end(w);
}

void docs_link(struct jw *w, const struct store *s, uint32_t conn, sb_time now) {
  const struct sb_conn *c = &s->conns[conn];
  uint8_t hash[16];
  rng_mix_id(c->doc_seed, 17, hash);
  jw_obj(w);
  jw_khex(w, "id", c->link, 16);
  jw_key(w, "access_token");
  masked_token(w, c->token);
  jw_ktime(w, "created_at", c->origin_at);
  jw_ktime(w, "updated_at", c->auth_at > c->origin_at ? c->auth_at : c->origin_at);
  jw_knull(w, "deleted_at");
  jw_key(w, "tracking_info");
  docs_link_tracking_info(w, s, c);
  jw_kstr(w, "status", link_status(s, c, now));
  jw_kstr(w, "user_external_id", s->users[c->user].external_id);
  jw_kstr(w, "provider_id", docs_provider_id(c));
  jw_key(w, "provider");
  docs_provider(w, c);
  jw_key(w, "company_mapping");
  if (c->kind == KIND_EMPLOYER) {
    const struct company *co = names_company(rng_mix(c->doc_seed, 1));
    uint8_t mapping[16];
    rng_mix_id(c->doc_seed, 18, mapping);
    jw_obj(w);
    jw_khex(w, "id", mapping, 16);
    jw_kstr(w, "name", co->name);
    jw_key(w, "logo_url");
    jw_str(w, CDN "/logos/default.svg");
    jw_obj_end(w);
  } else {
    jw_null(w);
  }
  jw_khex(w, "link_hash", hash, 16);
  jw_key(w, "allowed_products");
  allowed_products(w, s, c);
  jw_kstr(w, "initial_product_type", product_name(c->product));
  jw_kstr(w, "data_source", docs_data_source(c->kind));
  jw_kbool(w, "is_suspicious", false);
  jw_kbool(w, "is_dds_available", false);
  jw_obj_end(w);
}

static void conn_person(const struct store *s, const struct sb_conn *c, struct person *who) {
  const struct sb_user *u;
  if (c->origin_sub != SB_NONE) {
    order_person(&s->orders[s->subs[c->origin_sub].order], who);
    return;
  }
  u = &s->users[c->user];
  who->first_name = u->first_name;
  who->last_name = u->last_name;
  who->email = u->email;
}

/* GET /v1/links/{id}/{income|employment}/report/: the data of the last task
 * that ended done (employments empty while there is none) */
void docs_link_report(struct jw *w, const struct store *s, uint32_t conn, unsigned product,
                      sb_time now) {
  const struct sb_task *td;
  const struct sb_task *tl;
  const struct sb_conn *c = &s->conns[conn];
  uint32_t last, done, refresh;
  last_tasks(s, c, now, &last, &done, &refresh);
  td = done == SB_NONE ? NULL : &s->tasks[done];
  tl = last == SB_NONE ? NULL : &s->tasks[last];
  jw_obj(w);
  jw_khex(w, "id", td ? td->id : c->link, 16);
  jw_kstr(w, "status", tl ? task_status(tl, now) : "new");
  jw_key(w, "finished_at");
  jw_time_or_null(w, tl ? task_end_time(tl) : 0, tl && task_is_terminal(tl, now));
  jw_key(w, "completed_at");
  jw_time_or_null(w, td ? task_end_time(td) : 0, td != NULL);
  jw_khex(w, "access_token", c->token, 16);
  jw_key(w, "tracking_info");
  docs_link_tracking_info(w, s, c);
  jw_kbool(w, "is_suspicious", false);
  jw_kstr(w, "refresh_status", refresh == SB_NONE ? NULL : task_status(&s->tasks[refresh], now));
  jw_key(w, "employments");
  jw_arr(w);
  if (td && c->kind == KIND_EMPLOYER) {
    struct person who;
    conn_person(s, c, &who);
    employment(w, c, &who, task_end_time(td), product != PROD_EMPLOYMENT);
  }
  jw_arr_end(w);
  jw_key(w, "pdf_report");
  if (td) url_with_hex(w, CDN "/reports/", td->id, ".pdf");
  else jw_null(w);
  jw_kstr(w, "provider", docs_provider_id(c));
  jw_kstr(w, "data_source", docs_data_source(c->kind));
  jw_obj_end(w);
}
