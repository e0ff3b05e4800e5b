/* stats: see stats.h. */
#include "stats.h"

#include <string.h>

static const char *const SLOT_NAMES[OUT__COUNT] = {
  "200", "201", "301", "400", "401",   "404",          "405",         "410",      "413",   "415",
  "429", "500", "502", "503", "other", "reset_before", "reset_after", "truncate", "stall",
};

void stats_init(struct stats *st) {
  memset(st, 0, sizeof *st);
}

enum outcome_slot stats_slot_for_status(int status) {
  switch (status) {
    case 200: return OUT_200;
    case 201: return OUT_201;
    case 301: return OUT_301;
    case 410: return OUT_410;
    case 400: return OUT_400;
    case 401: return OUT_401;
    case 404: return OUT_404;
    case 405: return OUT_405;
    case 413: return OUT_413;
    case 415: return OUT_415;
    case 429: return OUT_429;
    case 500: return OUT_500;
    case 502: return OUT_502;
    case 503: return OUT_503;
    default: return OUT_OTHER;
  }
}

const char *stats_slot_name(enum outcome_slot slot) {
  return slot < OUT__COUNT ? SLOT_NAMES[slot] : "other";
}

void stats_count(struct stats *st, enum endpoint ep, enum method m, enum outcome_slot slot) {
  if (ep < EP__COUNT && m < M__COUNT && slot < OUT__COUNT) counter_add(&st->counts[ep][m][slot], 1);
}

void stats_count_connection(struct stats *st) {
  counter_add(&st->connections, 1);
}

void stats_reset(struct stats *st) {
  counter_zero(&st->connections);
  for (unsigned e = 0; e < EP__COUNT; e++)
    for (unsigned m = 0; m < M__COUNT; m++)
      for (unsigned o = 0; o < OUT__COUNT; o++) counter_zero(&st->counts[e][m][o]);
}

static uint64_t total_of(struct stats *st, unsigned e, unsigned m) {
  uint64_t n = 0;
  for (unsigned o = 0; o < OUT__COUNT; o++) n += counter_get(&st->counts[e][m][o]);
  return n;
}

static void render_key(struct jw *w, unsigned e, unsigned m) {
  char key[96];
  const char *mn = route_method_name((enum method)m), *tpl = route_template((enum endpoint)e);
  size_t ml = strlen(mn), tl = strlen(tpl);
  memcpy(key, mn, ml);
  key[ml] = ' ';
  memcpy(key + ml + 1, tpl, tl + 1);
  jw_key(w, key);
}

void stats_render_requests(struct jw *w, struct stats *st) {
  uint64_t total = 0;
  for (unsigned e = 0; e < EP__COUNT; e++)
    for (unsigned m = 0; route_is_v1((enum endpoint)e) && m < M__COUNT; m++)
      total += total_of(st, e, m);
  jw_kint(w, "total", (long long)total);
  jw_key(w, "by_endpoint");
  jw_obj(w);
  for (unsigned e = 0; e < EP__COUNT; e++)
    for (unsigned m = 0; m < M__COUNT; m++) {
      if (total_of(st, e, m) == 0) continue;
      render_key(w, e, m);
      jw_obj(w);
      for (unsigned o = 0; o < OUT__COUNT; o++) {
        uint64_t n = counter_get(&st->counts[e][m][o]);
        if (n) jw_kint(w, SLOT_NAMES[o], (long long)n);
      }
      jw_obj_end(w);
    }
  jw_obj_end(w);
}

void stats_render_connections(struct jw *w, struct stats *st) {
  jw_kint(w, "accepted", (long long)counter_get(&st->connections));
}
