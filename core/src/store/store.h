/* What the quota and de-duplication stores share (truv/quota.h,
 * truv/dedupe.h): times in whole milliseconds, the times a store accepts,
 * and domain-separated 16-byte hashes. Internal. */
#ifndef TRUV_STORE_H
#define TRUV_STORE_H

#include <stdint.h>

#include <openssl/evp.h>

#include "truv/err.h"
#include "truv/quota.h"

/* Times a store accepts: finite and within +-1e11 s of the epoch (past the
 * year 5000), so that milliseconds fit 48 bits with room for window
 * arithmetic (the memory quota store packs them; see quota_memory.c). */
#define TRUV_STORE_MAX_TIME 1e11

/* Seconds -> whole milliseconds, rounded to nearest. */
int64_t truv_store_ms(double s);
/* 0, or TRUV_EINVALID naming `what` when t is not a usable time. */
int truv_store_check_time(double t, const char *what, truv_err *err);

/* First 16 bytes of SHA-256(prefix || data). A hasher keeps the digest
 * context of one store between calls (several times faster than a one-shot
 * digest on OpenSSL 3); NULL hashes without one. */
typedef struct truv_hasher {
  EVP_MD_CTX *ctx;
  EVP_MD *md; /* fetched once (OpenSSL 3), NULL before */
} truv_hasher;

int truv_hasher_init(truv_hasher *h, truv_err *err);
void truv_hasher_free(truv_hasher *h);
int truv_hash16(truv_hasher *h, const char *prefix, const void *data, size_t len,
                unsigned char out[16], truv_err *err);

/* Quota stores: 1 if keys[i] equals one of keys[0..i): a key listed twice
 * counts once. */
int truv_quota_key_repeats(const truv_quota_key *keys, size_t i);

#endif
