/* What the quota and de-duplication stores share (see store.h). */
#include "store.h"

#include <math.h>
#include <string.h>

int64_t truv_store_ms(double s) {
  /* round half away from zero, like llround(), without the library call on
   * the hot path; callers checked |s| <= TRUV_STORE_MAX_TIME */
  double ms = s * 1000.0;
  return (int64_t)(ms >= 0 ? ms + 0.5 : ms - 0.5);
}

int truv_store_check_time(double t, const char *what, truv_err *err) {
  if (isfinite(t) && fabs(t) <= TRUV_STORE_MAX_TIME) return 0;
  return truv_err_set(err, TRUV_EINVALID, "invalid_time",
                      "%s must be a finite time in seconds since the epoch", what);
}

int truv_hasher_init(truv_hasher *h, truv_err *err) {
  h->md = NULL;
  if (!(h->ctx = EVP_MD_CTX_new()))
    return truv_err_set(err, TRUV_EINTERNAL, "out_of_memory", "out of memory");
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  /* an explicit fetch saves the implicit one each EVP_sha256() digest does */
  h->md = EVP_MD_fetch(NULL, "SHA256", NULL);
#endif
  return 0;
}

void truv_hasher_free(truv_hasher *h) {
  EVP_MD_CTX_free(h->ctx);
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
  EVP_MD_free(h->md);
#endif
  h->ctx = NULL;
  h->md = NULL;
}

int truv_hash16(truv_hasher *h, const char *prefix, const void *data, size_t len,
                unsigned char out[16], truv_err *err) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *ctx = h ? h->ctx : EVP_MD_CTX_new();
  const EVP_MD *type = h && h->md ? h->md : EVP_sha256();
  int ok = ctx && EVP_DigestInit_ex(ctx, type, NULL) &&
           EVP_DigestUpdate(ctx, prefix, strlen(prefix)) && EVP_DigestUpdate(ctx, data, len) &&
           EVP_DigestFinal_ex(ctx, md, &mdlen) && mdlen >= 16;
  if (!h) EVP_MD_CTX_free(ctx);
  if (!ok) return truv_err_set(err, TRUV_EINTERNAL, "digest", "SHA-256 failed");
  memcpy(out, md, 16);
  return 0;
}
