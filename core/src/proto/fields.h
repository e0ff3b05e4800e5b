/* Truv's rules for the fields of a request, one checker per kind of field,
 * for the operation table's checks (operation.c). A checker records what
 * is wrong in err (truv_err_invalid: every violation, not just the first)
 * and returns nothing; an absent value (NULL) passes unless the checker
 * says it is required. Internal. */
#ifndef TRUV_FIELDS_H
#define TRUV_FIELDS_H

#include <cjson/cJSON.h>

#include "truv/err.h"
#include "truv/request.h"

/* The products each request accepts (NULL-terminated). */
extern const char *const truv_refresh_products[]; /* a refresh of an order */
extern const char *const truv_order_products[];   /* a new order */
extern const char *const truv_task_products[];    /* product_type of a task or token */

/* 1 when s is one of set's names (NULL-terminated; NULL: none). */
int truv_in_set(const char *s, const char *const *set);

/* 1 when s (NULL: none) holds a control character, which would end a
 * header line early: refused in every value written into a request's head
 * (credentials, user agent, base URL, a proxy's authorization, a tunnel's
 * host). */
int truv_has_ctl(const char *s);

void truv_check_string(const cJSON *v, const char *name, int required, truv_err *err);
void truv_check_bool(const cJSON *v, const char *name, truv_err *err);
void truv_check_object(const cJSON *v, const char *name, truv_err *err);
void truv_check_email(const cJSON *v, const char *name, truv_err *err);
void truv_check_phone(const cJSON *v, const char *name, truv_err *err);
/* The last 4 digits of an SSN or all 9 (dashes allowed); reported as "ssn". */
void truv_check_ssn(const cJSON *v, truv_err *err);
void truv_check_notes(const cJSON *v, truv_err *err);
void truv_check_cc_emails(const cJSON *v, truv_err *err);
/* products (required): distinct names from `set`; exactly one for a refresh. */
void truv_check_products(const cJSON *v, const char *const *set, int exactly_one, truv_err *err);
/* Income orders refresh as income or employment, employment orders only as
 * employment; nothing is checked without facts. */
void truv_check_product_rule(const cJSON *products, const truv_order_facts *facts, truv_err *err);
/* The connections a refresh selects: [{id} and/or {suborder_number}]. */
void truv_check_selection(const cJSON *v, const char *name, truv_err *err);
/* The connections a new order makes: objects with key1 or key2. */
void truv_check_new_connections(const cJSON *v, const char *name, const char *key1,
                                const char *key2, truv_err *err);
/* reports.voa of a refresh. */
void truv_check_voa(const cJSON *reports, truv_err *err);
/* product_type (required) of a refresh task or a bridge token. */
void truv_check_product_type(const cJSON *v, truv_err *err);
/* Query parameters: strings, numbers or booleans. */
void truv_check_query(const cJSON *params, truv_err *err);

#endif
