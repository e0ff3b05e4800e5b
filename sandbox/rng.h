/* rng: small deterministic pseudo-random generators.
 *
 * xoshiro256** seeded through splitmix64. Not thread-safe: each generator
 * belongs to one owner (the store's id stream under the store lock, a seeding
 * batch, the webhook thread). rng_mix() is a stateless 64-bit hash used to
 * derive values from (seed, index) pairs so generated documents need no
 * stored state. All functions are total: no failure modes. */
#ifndef SANDBOX_RNG_H
#define SANDBOX_RNG_H

#include <stdint.h>

struct rng {
  uint64_t s[4];
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* uniform integer in [lo, hi] (inclusive); lo <= hi */
int64_t rng_range(struct rng *r, int64_t lo, int64_t hi);
/* uniform double in [0, 1) */
double rng_unit(struct rng *r);
/* 16 random bytes (an id) */
void rng_id(struct rng *r, uint8_t id[16]);

/* stateless: a well-mixed 64-bit function of (a, b) */
uint64_t rng_mix(uint64_t a, uint64_t b);
/* stateless: value of rng_mix(a, b) mapped into [lo, hi] */
int64_t rng_mix_range(uint64_t a, uint64_t b, int64_t lo, int64_t hi);
/* stateless: 16 bytes derived from (a, b) */
void rng_mix_id(uint64_t a, uint64_t b, uint8_t id[16]);

#endif
