/* router: see router.h. */
#include "router.h"

#include <string.h>

#include "hex.h"
#include "store.h"

#define BIT(m) (1u << (m))

struct endpoint_info {
  const char *template;
  unsigned methods;
  const char *allow;
};

static const struct endpoint_info INFO[EP__COUNT] = {
  [EP_V1_ORDERS] = {"/v1/orders/", BIT(M_POST), "POST"},
  [EP_V1_ORDER] = {"/v1/orders/{id}/", BIT(M_GET) | BIT(M_HEAD) | BIT(M_POST), "GET, POST, HEAD"},
  [EP_V1_ORDER_EVENTS] = {"/v1/orders/{id}/events/", BIT(M_GET) | BIT(M_HEAD), "GET, HEAD"},
  [EP_V1_REFRESH_TASKS] = {"/v1/refresh/tasks/", BIT(M_POST), "POST"},
  [EP_V1_REFRESH_TASK] = {"/v1/refresh/tasks/{id}/", BIT(M_GET) | BIT(M_HEAD), "GET, HEAD"},
  [EP_V1_USERS] = {"/v1/users/", BIT(M_POST), "POST"},
  [EP_V1_USER] = {"/v1/users/{id}/", BIT(M_GET) | BIT(M_HEAD), "GET, HEAD"},
  [EP_V1_USER_TOKENS] = {"/v1/users/{id}/tokens/", BIT(M_POST), "POST"},
  [EP_V1_LINK_TOKENS] = {"/v1/link-access-tokens/", BIT(M_POST), "POST"},
  [EP_V1_LINK] = {"/v1/links/{id}/", BIT(M_GET) | BIT(M_HEAD), "GET, HEAD"},
  [EP_V1_LINK_REPORT] = {"/v1/links/{id}/{product}/report/", BIT(M_GET) | BIT(M_HEAD), "GET, HEAD"},
  [EP_V1_TASKS] = {"/v1/tasks/", BIT(M_GET) | BIT(M_HEAD), "GET, HEAD"},
  [EP_V1_TASK] = {"/v1/tasks/{id}/", BIT(M_GET) | BIT(M_HEAD), "GET, HEAD"},
  [EP_V1_UNKNOWN] = {"/v1/(unknown)", 0, ""},
  [EP_SB_CLOCK] = {"/_sandbox/clock", BIT(M_GET) | BIT(M_POST), "GET, POST"},
  [EP_SB_SEED] = {"/_sandbox/seed", BIT(M_POST), "POST"},
  [EP_SB_CASES] = {"/_sandbox/cases", BIT(M_GET), "GET"},
  [EP_SB_CONN_STATE] = {"/_sandbox/connections/state", BIT(M_POST), "POST"},
  [EP_SB_CONNECTIONS] = {"/_sandbox/connections", BIT(M_GET), "GET"},
  [EP_SB_FAULTS] = {"/_sandbox/faults", BIT(M_GET) | BIT(M_POST), "GET, POST"},
  [EP_SB_CONFIG] = {"/_sandbox/config", BIT(M_GET) | BIT(M_POST), "GET, POST"},
  [EP_SB_STATS] = {"/_sandbox/stats", BIT(M_GET), "GET"},
  [EP_SB_STATS_RESET] = {"/_sandbox/stats/reset", BIT(M_POST), "POST"},
  [EP_SB_WEBHOOKS] = {"/_sandbox/webhooks", BIT(M_GET), "GET"},
  [EP_SB_ORDER_COMPLETE] = {"/_sandbox/orders/complete", BIT(M_POST), "POST"},
  [EP_SB_BRIDGE_COMPLETE] = {"/_sandbox/bridge/complete", BIT(M_POST), "POST"},
  [EP_SB_UNKNOWN] = {"/_sandbox/(unknown)", 0, ""},
  [EP_OTHER] = {"(unknown)", 0, ""},
};

static const char *const METHODS[M__COUNT] = {
  "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER",
};

enum method route_method(const char *method) {
  for (unsigned i = 0; i < M_OTHER; i++)
    if (strcmp(method, METHODS[i]) == 0) return (enum method)i;
  return M_OTHER;
}

const char *route_method_name(enum method m) {
  return m < M__COUNT ? METHODS[m] : "OTHER";
}

/* consumes one path segment (an id) followed by '/'; p points after it */
static const char *segment(const char *p, struct route *out) {
  size_t n;
  char hex[33];
  const char *slash = strchr(p, '/');
  if (!slash || slash == p) return NULL;
  n = (size_t)(slash - p);
  out->id_valid = false;
  if (n == 32) {
    memcpy(hex, p, 32);
    hex[32] = '\0';
    out->id_valid = hex_decode(hex, out->id, 16);
  }
  return slash + 1;
}

/* "" -> list, "{id}/" -> item, "{id}/<sub>" -> sub_ep (no sub: NULL): the
 * shape of most resources */
struct resource {
  const char *prefix;
  enum endpoint list, item;
  const char *sub;
  enum endpoint sub_ep;
};

static enum endpoint match_resource(const char *p, struct route *out, const struct resource *r) {
  const char *rest;
  if (*p == '\0') return r->list;
  rest = segment(p, out);
  if (!rest) return EP_V1_UNKNOWN;
  if (*rest == '\0') return r->item;
  return r->sub && strcmp(rest, r->sub) == 0 ? r->sub_ep : EP_V1_UNKNOWN;
}

static enum endpoint match_links(const char *p, struct route *out) {
  const char *rest = segment(p, out);
  if (!rest) return EP_V1_UNKNOWN;
  if (*rest == '\0') return EP_V1_LINK;
  if (strcmp(rest, "income/report/") == 0) {
    out->product = PROD_INCOME;
    return EP_V1_LINK_REPORT;
  }
  if (strcmp(rest, "employment/report/") == 0) {
    out->product = PROD_EMPLOYMENT;
    return EP_V1_LINK_REPORT;
  }
  return EP_V1_UNKNOWN;
}

static enum endpoint match_v1(const char *p, struct route *out) {
  static const struct resource RESOURCES[] = {
    {"orders/", EP_V1_ORDERS, EP_V1_ORDER, "events/", EP_V1_ORDER_EVENTS},
    {"refresh/tasks/", EP_V1_REFRESH_TASKS, EP_V1_REFRESH_TASK, NULL, EP_V1_UNKNOWN},
    {"users/", EP_V1_USERS, EP_V1_USER, "tokens/", EP_V1_USER_TOKENS},
    {"tasks/", EP_V1_TASKS, EP_V1_TASK, NULL, EP_V1_UNKNOWN},
  };
  static const char LINKS[] = "links/";
  for (unsigned i = 0; i < sizeof RESOURCES / sizeof *RESOURCES; i++) {
    size_t n = strlen(RESOURCES[i].prefix);
    if (strncmp(p, RESOURCES[i].prefix, n) == 0) return match_resource(p + n, out, &RESOURCES[i]);
  }
  if (strncmp(p, LINKS, sizeof LINKS - 1) == 0) return match_links(p + sizeof LINKS - 1, out);
  return strcmp(p, "link-access-tokens/") == 0 ? EP_V1_LINK_TOKENS : EP_V1_UNKNOWN;
}

static enum endpoint match_control(const char *p) {
  static const struct {
    const char *path;
    enum endpoint ep;
  } CONTROL[] = {
    {"clock", EP_SB_CLOCK},
    {"seed", EP_SB_SEED},
    {"cases", EP_SB_CASES},
    {"connections/state", EP_SB_CONN_STATE},
    {"connections", EP_SB_CONNECTIONS},
    {"faults", EP_SB_FAULTS},
    {"config", EP_SB_CONFIG},
    {"stats", EP_SB_STATS},
    {"stats/reset", EP_SB_STATS_RESET},
    {"webhooks", EP_SB_WEBHOOKS},
    {"orders/complete", EP_SB_ORDER_COMPLETE},
    {"bridge/complete", EP_SB_BRIDGE_COMPLETE},
  };
  size_t n = strlen(p);
  if (n > 0 && p[n - 1] == '/') /* control paths accept an optional final slash */
    n--;
  for (unsigned i = 0; i < sizeof CONTROL / sizeof CONTROL[0]; i++)
    if (strlen(CONTROL[i].path) == n && strncmp(p, CONTROL[i].path, n) == 0) return CONTROL[i].ep;
  return EP_SB_UNKNOWN;
}

void route_match(const char *path, struct route *out) {
  static const char V1[] = "/v1/", CONTROL[] = "/_sandbox/";
  memset(out, 0, sizeof *out);
  if (strncmp(path, V1, sizeof V1 - 1) == 0) out->ep = match_v1(path + sizeof V1 - 1, out);
  else if (strncmp(path, CONTROL, sizeof CONTROL - 1) == 0)
    out->ep = match_control(path + sizeof CONTROL - 1);
  else out->ep = strcmp(path, "/v1") == 0 ? EP_V1_UNKNOWN : EP_OTHER;
}

bool route_wants_slash(const char *path) {
  char slashed[2048];
  struct route r;
  size_t n = strlen(path);
  if (n == 0 || path[n - 1] == '/' || n + 2 > sizeof slashed) return false;
  memcpy(slashed, path, n);
  slashed[n] = '/';
  slashed[n + 1] = '\0';
  route_match(slashed, &r);
  return route_is_v1(r.ep) && r.ep != EP_V1_UNKNOWN;
}

bool route_allows(enum endpoint ep, enum method m) {
  return ep < EP__COUNT && (INFO[ep].methods & BIT(m)) != 0;
}

const char *route_allow_header(enum endpoint ep) {
  return ep < EP__COUNT ? INFO[ep].allow : "";
}

const char *route_template(enum endpoint ep) {
  return ep < EP__COUNT ? INFO[ep].template : "(unknown)";
}

bool route_is_v1(enum endpoint ep) {
  return ep <= EP_V1_UNKNOWN;
}
