/* docs: renders Truv-shaped documents from the store.
 *
 * Every document has the members of Truv's documentation example for its
 * endpoint (spec/fixtures/truv-docs/), no more, no fewer: orders (see also
 * shared/fixtures/order-example.json), refresh tasks, tasks, users, links
 * and link reports. Data behind a connection (employer,
 * job, pay statements, W-2s, direct-deposit accounts, bank accounts and
 * transactions) is generated on demand from the connection's doc_seed and an
 * "as of" time (when the task that fetched it finished), so a given
 * connection and time always produce the same bytes and nothing but the seed
 * is stored. Amounts are strings with two decimals; times are ISO 8601 UTC
 * with microseconds. The caller holds the store lock (shared is enough). */
#ifndef SANDBOX_DOCS_H
#define SANDBOX_DOCS_H

#include "json_writer.h"
#include "store.h"

/* the client_name of the sandbox's API client */
#define DOCS_CLIENT_NAME "Truv Sandbox Client"

/* whose name and email a generated profile shows */
struct person {
  const char *first_name, *last_name, *email;
};

/* GET /v1/orders/{id}/ */
void docs_order(struct jw *w, const struct store *s, uint32_t order, sb_time now);
/* the interval [from, until) around now in which docs_order() of `order`
 * stays byte-identical while the store does not change */
void docs_order_stable(const struct store *s, uint32_t order, sb_time now, sb_time *from,
                       sb_time *until);
/* GET /v1/refresh/tasks/{id}/: id, created_at, refresh_date, status */
void docs_refresh_task(struct jw *w, const struct store *s, uint32_t task, sb_time now);
/* GET /v1/tasks/{id}/: the Task object */
void docs_task(struct jw *w, const struct store *s, uint32_t task, sb_time now);
/* GET /v1/users/{id}/ */
void docs_user(struct jw *w, const struct store *s, uint32_t user);
/* GET /v1/links/{id}/ (the access_token masked) */
void docs_link(struct jw *w, const struct store *s, uint32_t conn, sb_time now);
/* GET /v1/links/{id}/{income|employment}/report/ */
void docs_link_report(struct jw *w, const struct store *s, uint32_t conn, unsigned product,
                      sb_time now);
/* a link's tracking_info value: the id of the order suborder it connected
 * (Truv: "for orders, tracking_info matches the Order's employer_id"), else
 * its bridge token's tracking_info, else null */
void docs_link_tracking_info(struct jw *w, const struct store *s, const struct sb_conn *c);
/* the provider object of a connection, and its id */
void docs_provider(struct jw *w, const struct sb_conn *c);
const char *docs_provider_id(const struct sb_conn *c);
/* "payroll" or "financial_accounts" */
const char *docs_data_source(unsigned kind);

#endif
