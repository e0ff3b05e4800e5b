/* seed: synthetic recertification cases.
 *
 * A case is a completed original order whose connections all share one
 * state drawn from a mix ("active=70,expired=10,..."): the counts per state
 * follow the weights exactly (largest remainder), and a deterministic
 * shuffle spreads them. Everything a batch creates (ids, tokens, names,
 * dates, document seeds) comes from a generator seeded with (rng_seed,
 * number of the batch's first case), so the same seed, start time and call
 * sequence give byte-identical documents, and two batches never share ids.
 * Connections are 1..150 days old (older than the expiry horizon for
 * `expired`), so their initial task is outside the 24 h refresh window;
 * `expired` and 40% of the others are OAuth ("Truv Bank (OAuth)").
 * Products: ~60% income (20% of them with 1-2 financial accounts too), 30%
 * employment, 10% assets (1-2 financial accounts, no employer).
 * seed_cases() needs the store lock exclusively; the renderers a shared one. */
#ifndef SANDBOX_SEED_H
#define SANDBOX_SEED_H

#include <stdbool.h>
#include <stddef.h>

#include "json_writer.h"
#include "store.h"

#define DEFAULT_MIX \
  "active=70,expired=10,credentials=5,mfa=5,provider_down=4,no_data=3,locked=2,unsupported=1"

struct mix {
  double weights[ST__COUNT];
};

/* false with a message in err on a malformed mix */
bool mix_parse(const char *text, struct mix *out, char *err, size_t errlen);
/* adds n cases; false when memory runs out */
bool seed_cases(struct store *s, long n, const struct mix *m, uint64_t seed, sb_time now);
/* one case object */
void seed_render_case(struct jw *w, const struct store *s, uint32_t order);
/* {"cases":[...]} for s->cases[first..n_cases) */
void seed_render_cases(struct jw *w, const struct store *s, uint32_t first);
/* writes every case to path (.csv or .json), atomically (temp + rename) */
bool seed_write_cases(const struct store *s, const char *path, char *err, size_t errlen);

#endif
