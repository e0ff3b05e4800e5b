/* The default routing table: every status Truv documents has its route. */
#include <string.h>

#include "check.h"
#include "truv/route.h"

static const char *route_of(truv_outcome o, const char *name) {
  const truv_route_entry *e = truv_route_lookup(o, name);
  return e ? truv_route_name(e->route) : "(none)";
}

static void every_task_status_routes_as_documented(void) {
  static const char *const waits[] = {"new",        "login",          "mfa", "parse", "base_parse",
                                      "full_parse", "switch_deposit", NULL};
  const char *const *w;
  for (w = waits; *w; w++) CHECK_STR(route_of(TRUV_OUTCOME_TASK, *w), "wait");
  CHECK_STR(route_of(TRUV_OUTCOME_TASK, "done"), "done");
  CHECK_STR(route_of(TRUV_OUTCOME_TASK, "login_error"), "reverify");
  CHECK_STR(route_of(TRUV_OUTCOME_TASK, "mfa_error"), "reverify");
  CHECK_STR(route_of(TRUV_OUTCOME_TASK, "account_locked"), "reverify");
  CHECK_STR(route_of(TRUV_OUTCOME_TASK, "unable_to_reset"), "reverify");
  CHECK_STR(route_of(TRUV_OUTCOME_TASK, "config_error"), "fix");
  CHECK_STR(route_of(TRUV_OUTCOME_TASK, "not_supported"), "fix");
  CHECK_STR(route_of(TRUV_OUTCOME_TASK, "no_data"), "no_data");
  CHECK_STR(route_of(TRUV_OUTCOME_TASK, "unavailable"), "retry");
  CHECK_STR(route_of(TRUV_OUTCOME_TASK, "error"), "retry");
  CHECK(truv_route_lookup(TRUV_OUTCOME_TASK, "unavailable")->delay_s > 0);
  CHECK(truv_route_lookup(TRUV_OUTCOME_TASK, "from_the_future") == NULL);
}

static void suborder_and_order_statuses_route(void) {
  static const char *const statuses[] = {"pending", "sent",    "completed", "error", "canceled",
                                         "expired", "no_data", "skipped",   NULL};
  const char *const *s;
  for (s = statuses; *s; s++) {
    CHECK(truv_route_lookup(TRUV_OUTCOME_SUBORDER, *s) != NULL);
    CHECK(truv_route_lookup(TRUV_OUTCOME_ORDER, *s) != NULL);
  }
  CHECK_STR(route_of(TRUV_OUTCOME_ORDER, "error"), "fix"); /* notification failed */
  CHECK_STR(route_of(TRUV_OUTCOME_SUBORDER, "expired"), "reverify");
  /* a failed refresh whose cause is unknown may be a login_error: a person, never a billed retry */
  CHECK_STR(route_of(TRUV_OUTCOME_SUBORDER, "error"), "fix");
}

static void every_error_kind_routes(void) {
  size_t n, i;
  const truv_route_entry *t = truv_route_table(&n);
  int k, rows = 0;
  for (k = TRUV_EINVALID; k < TRUV_KIND_COUNT; k++)
    CHECK(truv_route_lookup(TRUV_OUTCOME_ERROR, truv_kind_name((truv_kind)k)) != NULL);
  /* and no row for a kind the list does not hold */
  for (i = 0; i < n; i++) {
    if (t[i].outcome != TRUV_OUTCOME_ERROR) continue;
    rows++;
    for (k = TRUV_EINVALID; k < TRUV_KIND_COUNT; k++)
      if (strcmp(t[i].name, truv_kind_name((truv_kind)k)) == 0) break;
    CHECK(k < TRUV_KIND_COUNT);
  }
  CHECK_INT(rows, TRUV_KIND_COUNT - 1);
  CHECK_STR(route_of(TRUV_OUTCOME_ERROR, "handler"), "fix");
  CHECK_STR(route_of(TRUV_OUTCOME_ERROR, "quota"), "defer");
  CHECK_STR(route_of(TRUV_OUTCOME_ERROR, "refresh_limit"), "defer");
  CHECK_STR(route_of(TRUV_OUTCOME_ERROR, "throttled"), "retry");
  CHECK_STR(route_of(TRUV_OUTCOME_ERROR, "expired"), "reverify");
}

static void names_are_stable(void) {
  size_t n, i;
  const truv_route_entry *t = truv_route_table(&n);
  CHECK(n > 40);
  for (i = 0; i < n; i++) CHECK(t[i].route < TRUV_ROUTE_COUNT);
  CHECK_STR(truv_route_name(TRUV_ROUTE_NO_DATA), "no_data");
  CHECK_STR(truv_outcome_name(TRUV_OUTCOME_SUBORDER), "suborder");
}

int main(void) {
  RUN(every_task_status_routes_as_documented);
  RUN(suborder_and_order_statuses_route);
  RUN(every_error_kind_routes);
  RUN(names_are_stable);
  return CHECK_DONE();
}
