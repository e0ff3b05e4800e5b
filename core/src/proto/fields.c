/* Truv's field rules (see fields.h). Every violation is recorded, not just
 * the first, so that a caller can fix a request in one go.
 *
 * Sources: truv-api.md §2 (refresh order fields and the income/employment
 * rule), §3 (create order), §4 (refresh tasks), §10 (bridge tokens). */
#include "fields.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define MAX_CONNECTIONS TRUV_MAX_CONNECTIONS
#define MAX_CC_EMAILS 15
#define MAX_NOTES 2000
#define MAX_VOA_DAYS 730

const char *const truv_refresh_products[] = {"income",    "employment",   "assets",
                                             "insurance", "transactions", NULL};
const char *const truv_order_products[] = {"income",       "employment",     "assets", "insurance",
                                           "transactions", "deposit_switch", "pll",    NULL};
const char *const truv_task_products[] = {"income",    "employment",   "deposit_switch", "pll",
                                          "insurance", "transactions", "assets",         NULL};

/* The connections a refresh of each product refreshes: the payroll
 * products an order's employers, the bank products its financial accounts
 * (deposit_switch and pll are not refreshed). */
static const struct {
  const char *product;
  const char *connections;
} refreshes[] = {
  {"income", "employers"},
  {"employment", "employers"},
  {"insurance", "employers"},
  {"assets", "financial_accounts"},
  {"transactions", "financial_accounts"},
};

int truv_in_set(const char *s, const char *const *set) {
  for (; s && set && *set; set++)
    if (strcmp(s, *set) == 0) return 1;
  return 0;
}

/* An order takes every product. */
const char *truv_product_name(size_t i) {
  size_t n = 0;
  while (n < i && truv_order_products[n]) n++;
  return truv_order_products[n];
}

const char *truv_product_refreshes(const char *product) {
  size_t i;
  for (i = 0; product && i < sizeof refreshes / sizeof refreshes[0]; i++)
    if (strcmp(refreshes[i].product, product) == 0) return refreshes[i].connections;
  return NULL;
}

int truv_valid_id(const char *s) {
  size_t n = 0;
  if (!s) return 0;
  for (; s[n]; n++)
    if (!isalnum((unsigned char)s[n]) && s[n] != '-' && s[n] != '_') return 0;
  return n > 0 && n <= TRUV_MAX_ID;
}

int truv_has_ctl(const char *s) {
  for (; s && *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) return 1;
  return 0;
}

/* local@domain.tld, no spaces, at most 254 bytes: the shape, not deliverability. */
static int valid_email(const char *s) {
  const char *at, *dot, *p;
  size_t n = strlen(s);
  if (n < 3 || n > 254) return 0;
  for (p = s; *p; p++)
    if (isspace((unsigned char)*p) || *p == ',' || *p == ';' || *p == '<' || *p == '>') return 0;
  at = strchr(s, '@');
  if (!at || at == s || strchr(at + 1, '@')) return 0;
  dot = strrchr(at + 1, '.');
  return dot && dot > at + 1 && dot[1] != '\0';
}

/* 10 to 15 digits once spaces, dashes, dots, parentheses and a leading '+'
 * are set aside ("4155554193", "(111)111-1111", "+1 415 555 4193"). */
static int valid_phone(const char *s) {
  int digits = 0;
  if (*s == '+') s++;
  for (; *s; s++) {
    if (isdigit((unsigned char)*s)) digits++;
    else if (!strchr(" -.()", *s)) return 0;
  }
  return digits >= 10 && digits <= 15;
}

/* The last 4 digits, or all 9 (dashes allowed: "991-91-9991"). */
static int valid_ssn(const char *s) {
  int digits = 0, dashes = 0;
  for (; *s; s++) {
    if (isdigit((unsigned char)*s)) digits++;
    else if (*s == '-') dashes++;
    else return 0;
  }
  return digits == 9 || (digits == 4 && dashes == 0);
}

static size_t utf8_len(const char *s) {
  size_t n = 0;
  for (; *s; s++)
    if (((unsigned char)*s & 0xC0) != 0x80) n++;
  return n;
}

/* ---- checkers: each returns nothing and records what is wrong ---- */

void truv_check_string(const cJSON *v, const char *name, int required, truv_err *err) {
  if (!v) {
    if (required) truv_err_invalid(err, name, "is required");
  } else if (!cJSON_IsString(v)) {
    truv_err_invalid(err, name, "must be a string");
  } else if (required && !v->valuestring[0]) {
    truv_err_invalid(err, name, "must not be empty");
  }
}

void truv_check_bool(const cJSON *v, const char *name, truv_err *err) {
  if (v && !cJSON_IsBool(v)) truv_err_invalid(err, name, "must be true or false");
}

void truv_check_object(const cJSON *v, const char *name, truv_err *err) {
  if (v && !cJSON_IsObject(v)) truv_err_invalid(err, name, "must be an object");
}

void truv_check_email(const cJSON *v, const char *name, truv_err *err) {
  if (!v) return;
  if (!cJSON_IsString(v)) truv_err_invalid(err, name, "must be a string");
  else if (!valid_email(v->valuestring))
    truv_err_invalid(err, name, "is not a valid email address");
}

void truv_check_phone(const cJSON *v, const char *name, truv_err *err) {
  if (!v) return;
  if (!cJSON_IsString(v)) truv_err_invalid(err, name, "must be a string");
  else if (!valid_phone(v->valuestring))
    truv_err_invalid(err, name, "must be a phone number of 10 to 15 digits");
}

void truv_check_ssn(const cJSON *v, truv_err *err) {
  if (v && !(cJSON_IsString(v) && valid_ssn(v->valuestring)))
    truv_err_invalid(err, "ssn", "must be the last 4 digits or all 9 (dashes allowed)");
}

void truv_check_notes(const cJSON *v, truv_err *err) {
  size_t n;
  if (!v) return;
  if (!cJSON_IsString(v)) {
    truv_err_invalid(err, "notes", "must be a string");
    return;
  }
  n = utf8_len(v->valuestring);
  if (n < 1 || n > MAX_NOTES)
    truv_err_invalid(err, "notes", "must be 1 to %d characters (got %zu)", MAX_NOTES, n);
}

void truv_check_cc_emails(const cJSON *v, truv_err *err) {
  const cJSON *e;
  int i = 0;
  char name[32];
  if (!v) return;
  if (!cJSON_IsArray(v)) {
    truv_err_invalid(err, "cc_emails", "must be an array of email addresses");
    return;
  }
  if (cJSON_GetArraySize(v) > MAX_CC_EMAILS)
    truv_err_invalid(err, "cc_emails", "at most %d addresses (got %d)", MAX_CC_EMAILS,
                     cJSON_GetArraySize(v));
  cJSON_ArrayForEach(e, v) {
    snprintf(name, sizeof name, "cc_emails[%d]", ++i);
    truv_check_email(e, name, err);
  }
}

/* products: an array of distinct names from `set`; `exactly_one` for refreshes. */
void truv_check_products(const cJSON *v, const char *const *set, int exactly_one, truv_err *err) {
  const cJSON *p, *q;
  int n;
  if (!v) {
    truv_err_invalid(err, "products", "is required");
    return;
  }
  if (!cJSON_IsArray(v)) {
    truv_err_invalid(err, "products", "must be an array");
    return;
  }
  n = cJSON_GetArraySize(v);
  if (exactly_one && n != 1) {
    truv_err_invalid(err, "products", "a refresh takes exactly one product (got %d)", n);
    return;
  }
  if (n == 0) {
    truv_err_invalid(err, "products", "must name at least one product");
    return;
  }
  cJSON_ArrayForEach(p, v) {
    if (!cJSON_IsString(p)) {
      truv_err_invalid(err, "products", "must contain strings");
      return;
    }
    if (!truv_in_set(p->valuestring, set)) {
      truv_err_invalid(err, "products", "unknown product \"%.40s\"", p->valuestring);
      return;
    }
    for (q = v->child; q != p; q = q->next)
      if (strcmp(q->valuestring, p->valuestring) == 0) {
        truv_err_invalid(err, "products", "\"%.40s\" is listed twice", p->valuestring);
        return;
      }
  }
}

/* A refresh selects connections as [{"id": ...} | {"suborder_number": ...}],
 * or by both at once, as Truv's own request example does (that they name
 * the same connection is checked against the order, truv.refresh). */
void truv_check_selection(const cJSON *v, const char *name, truv_err *err) {
  const cJSON *e;
  int i = 0;
  char fname[48];
  if (!v) return;
  if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0) {
    truv_err_invalid(err, name,
                     "must be a non-empty array of {id} and/or {suborder_number} "
                     "(omit it to refresh every connection)");
    return;
  }
  if (cJSON_GetArraySize(v) > MAX_CONNECTIONS)
    truv_err_invalid(err, name, "at most %d per order (got %d)", MAX_CONNECTIONS,
                     cJSON_GetArraySize(v));
  cJSON_ArrayForEach(e, v) {
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
    const cJSON *sn = cJSON_GetObjectItemCaseSensitive(e, "suborder_number");
    snprintf(fname, sizeof fname, "%s[%d]", name, ++i);
    if (!cJSON_IsObject(e))
      truv_err_invalid(err, fname, "must be an object with id or suborder_number");
    else if (!id && !sn) truv_err_invalid(err, fname, "give id or suborder_number (or both)");
    else {
      if (id && !(cJSON_IsString(id) && truv_valid_id(id->valuestring)))
        truv_err_invalid(err, fname, "id must be a non-empty id string");
      if (sn && !((cJSON_IsString(sn) && sn->valuestring[0]) ||
                  (cJSON_IsNumber(sn) && sn->valuedouble >= 0)))
        truv_err_invalid(err, fname, "suborder_number must be a string or a number");
    }
  }
}

/* Income orders refresh as income or employment; employment orders only as
 * employment (truv-api.md §2). Other products: no documented rule. */
void truv_check_product_rule(const cJSON *products, const truv_order_facts *facts, truv_err *err) {
  const char *want;
  size_t i;
  int has_income = 0, has_employment = 0;
  if (!facts || !facts->nproducts || !cJSON_IsArray(products) ||
      cJSON_GetArraySize(products) != 1 || !cJSON_IsString(products->child))
    return;
  want = products->child->valuestring;
  for (i = 0; i < facts->nproducts; i++) {
    if (!facts->products[i]) continue;
    has_income |= strcmp(facts->products[i], "income") == 0;
    has_employment |= strcmp(facts->products[i], "employment") == 0;
  }
  if (has_income && strcmp(want, "income") != 0 && strcmp(want, "employment") != 0)
    truv_err_invalid(err, "products",
                     "an income order refreshes as income or employment, "
                     "not %.40s",
                     want);
  else if (!has_income && has_employment && strcmp(want, "employment") != 0)
    truv_err_invalid(err, "products",
                     "an employment order refreshes only as employment, "
                     "not %.40s",
                     want);
}

static int is_amount(const cJSON *v) {
  const char *s;
  if (cJSON_IsNumber(v)) return v->valuedouble >= 0;
  if (!cJSON_IsString(v) || !v->valuestring[0]) return 0;
  for (s = v->valuestring; *s; s++)
    if (!isdigit((unsigned char)*s) && *s != '.') return 0;
  return 1;
}

void truv_check_voa(const cJSON *reports, truv_err *err) {
  const cJSON *voa, *v, *e;
  if (!reports) return;
  if (!cJSON_IsObject(reports)) {
    truv_err_invalid(err, "reports", "must be an object");
    return;
  }
  voa = cJSON_GetObjectItemCaseSensitive(reports, "voa");
  if (!voa) return;
  if (!cJSON_IsObject(voa)) {
    truv_err_invalid(err, "reports.voa", "must be an object");
    return;
  }
  v = cJSON_GetObjectItemCaseSensitive(voa, "days_requested");
  if (v && !(cJSON_IsNumber(v) && v->valuedouble == (double)(int)v->valuedouble &&
             v->valueint >= 1 && v->valueint <= MAX_VOA_DAYS))
    truv_err_invalid(err, "reports.voa.days_requested",
                     "must be a whole number of days "
                     "from 1 to %d",
                     MAX_VOA_DAYS);
  v = cJSON_GetObjectItemCaseSensitive(voa, "as_of_date");
  if (v && !(cJSON_IsString(v) && strlen(v->valuestring) >= 10))
    truv_err_invalid(err, "reports.voa.as_of_date", "must be an ISO 8601 date or date-time");
  truv_check_bool(cJSON_GetObjectItemCaseSensitive(voa, "is_voe"), "reports.voa.is_voe", err);
  truv_check_bool(cJSON_GetObjectItemCaseSensitive(voa, "request_extended_history"),
                  "reports.voa.request_extended_history", err);
  v = cJSON_GetObjectItemCaseSensitive(voa, "account_ids");
  if (v) {
    int ok = cJSON_IsArray(v);
    if (ok) cJSON_ArrayForEach(e, v) ok &= cJSON_IsString(e) && e->valuestring[0];
    if (!ok) truv_err_invalid(err, "reports.voa.account_ids", "must be an array of account ids");
  }
  v = cJSON_GetObjectItemCaseSensitive(voa, "large_deposit_threshold");
  if (v) {
    static const char *const amounts[] = {"fixed_amount", "sales_price",
                                          "qualifying_monthly_income", NULL};
    const char *const *a;
    char fname[80];
    if (!cJSON_IsObject(v)) {
      truv_err_invalid(err, "reports.voa.large_deposit_threshold", "must be an object");
      return;
    }
    for (a = amounts; *a; a++) {
      e = cJSON_GetObjectItemCaseSensitive(v, *a);
      snprintf(fname, sizeof fname, "reports.voa.large_deposit_threshold.%s", *a);
      if (e && !is_amount(e)) truv_err_invalid(err, fname, "must be a non-negative amount");
    }
    truv_check_string(cJSON_GetObjectItemCaseSensitive(v, "loan_type"),
                      "reports.voa.large_deposit_threshold.loan_type", 0, err);
  }
}

void truv_check_new_connections(const cJSON *v, const char *name, const char *key1,
                                const char *key2, truv_err *err) {
  const cJSON *e;
  int i = 0;
  char fname[48];
  if (!v) return;
  if (!cJSON_IsArray(v)) {
    truv_err_invalid(err, name, "must be an array");
    return;
  }
  if (cJSON_GetArraySize(v) > MAX_CONNECTIONS)
    truv_err_invalid(err, name, "at most %d per order (got %d)", MAX_CONNECTIONS,
                     cJSON_GetArraySize(v));
  cJSON_ArrayForEach(e, v) {
    snprintf(fname, sizeof fname, "%s[%d]", name, ++i);
    if (!cJSON_IsObject(e) ||
        (!cJSON_GetObjectItemCaseSensitive(e, key1) && !cJSON_GetObjectItemCaseSensitive(e, key2)))
      truv_err_invalid(err, fname, "must be an object with %s or %s", key1, key2);
  }
}

void truv_check_product_type(const cJSON *v, truv_err *err) {
  if (!v) truv_err_invalid(err, "product_type", "is required");
  else if (!cJSON_IsString(v) || !truv_in_set(v->valuestring, truv_task_products))
    truv_err_invalid(err, "product_type",
                     "must be one of income, employment, deposit_switch, "
                     "pll, insurance, transactions, assets");
}

void truv_check_query(const cJSON *p, truv_err *err) {
  const cJSON *e;
  cJSON_ArrayForEach(e, p) {
    if (!cJSON_IsString(e) && !cJSON_IsNumber(e) && !cJSON_IsBool(e))
      truv_err_invalid(err, e->string ? e->string : "query",
                       "a query parameter must be a string, a number or a boolean");
  }
}
