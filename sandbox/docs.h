/* docs: renders Truv-shaped documents from the store.
 *
 * Order documents follow the field names of Truv's order object (see
 * shared/fixtures/order-example.json). Data behind a connection (employer,
 * job, pay statements, W-2s, direct-deposit accounts, bank accounts and
 * transactions) is generated on demand from the connection's doc_seed and an
 * "as of" time (when the task that fetched it finished), so a given
 * connection and time always produce the same bytes and nothing but the seed
 * is stored. Amounts are strings with two decimals; times are ISO 8601 UTC
 * with microseconds. The caller holds the store lock (shared is enough). */
#ifndef SANDBOX_DOCS_H
#define SANDBOX_DOCS_H

#include "jw.h"
#include "store.h"

/* GET /v1/orders/{id}/ */
void docs_order(struct jw *w, const struct store *s, uint32_t order, sb_time now);
/* the interval [from, until) around now in which docs_order() of `order`
 * stays byte-identical while the store does not change */
void docs_order_stable(const struct store *s, uint32_t order, sb_time now, sb_time *from,
                       sb_time *until);
/* GET /v1/refresh/tasks/{id}/ */
void docs_task(struct jw *w, const struct store *s, uint32_t task, sb_time now);
/* the provider object of a connection */
void docs_provider(struct jw *w, const struct sb_conn *c);
/* "payroll" or "financial_accounts" */
const char *docs_data_source(unsigned kind);

#endif
