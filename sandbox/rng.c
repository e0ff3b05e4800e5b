/* rng: xoshiro256** + splitmix64; see rng.h for the contract. */
#include "rng.h"

#include <string.h>

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

void rng_seed(struct rng *r, uint64_t seed) {
  uint64_t x = seed;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

uint64_t rng_next(struct rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

static int64_t scale(uint64_t v, int64_t lo, int64_t hi) {
  uint64_t span = (uint64_t)(hi - lo) + 1;
  if (span == 0) /* the full 64-bit range */
    return (int64_t)v;
  return lo + (int64_t)(v % span);
}

int64_t rng_range(struct rng *r, int64_t lo, int64_t hi) {
  return scale(rng_next(r), lo, hi);
}

double rng_unit(struct rng *r) {
  return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

void rng_id(struct rng *r, uint8_t id[16]) {
  uint64_t a = rng_next(r), b = rng_next(r);
  memcpy(id, &a, 8);
  memcpy(id + 8, &b, 8);
}

uint64_t rng_mix(uint64_t a, uint64_t b) {
  uint64_t x = a ^ rotl(b, 29) ^ 0x6a09e667f3bcc909ULL;
  uint64_t y = splitmix64(&x);
  x ^= b;
  return y ^ splitmix64(&x);
}

int64_t rng_mix_range(uint64_t a, uint64_t b, int64_t lo, int64_t hi) {
  return scale(rng_mix(a, b), lo, hi);
}

void rng_mix_id(uint64_t a, uint64_t b, uint8_t id[16]) {
  uint64_t x = rng_mix(a, b), y = rng_mix(x, b ^ 0x5bd1e995ULL);
  memcpy(id, &x, 8);
  memcpy(id + 8, &y, 8);
}
