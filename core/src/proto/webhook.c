/* Webhook signatures: HMAC-SHA256 over the raw body, hex in X-WEBHOOK-SIGN
 * (see truv/webhook.h).
 *
 * The received hex is decoded to 32 bytes and compared with CRYPTO_memcmp
 * against the HMAC under every usable secret; the loop never stops early,
 * so the time taken depends on how many secrets there are, not on which
 * one matched. Decoding the received value may branch on its bytes: they
 * came from the sender and are no secret. */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/params.h>

#include "truv/webhook.h"

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "libtruv needs OpenSSL 3.0 or later (EVP_MAC)"
#endif

#define PREFIX "v1="
#define PREFIX_LEN 3
#define MAC_LEN 32
#define HEX_LEN (2 * MAC_LEN)

/* ---- HMAC ---- */

/* A MAC context set to HMAC-SHA256, not keyed yet; NULL when OpenSSL
 * fails. The implementation is fetched per call rather than cached: the
 * fetch is a lookup in OpenSSL's own method cache (a few percent of a 2 KB
 * verification; prepared keys skip it), and a process-wide cache would
 * outlive a truv.core unloaded by lua_close, leaking it. */
static EVP_MAC_CTX *mac_new(void) {
  OSSL_PARAM params[2];
  EVP_MAC *impl = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
  EVP_MAC_CTX *ctx = impl ? EVP_MAC_CTX_new(impl) : NULL;
  EVP_MAC_free(impl); /* the context holds its own reference */
  if (!ctx) return NULL;
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
  params[1] = OSSL_PARAM_construct_end();
  if (!EVP_MAC_CTX_set_params(ctx, params)) {
    EVP_MAC_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* HMAC of the body into out. ctx must be keyed: restarting it reuses the
 * key's pads. Returns 0 or -1. */
static int mac_compute(EVP_MAC_CTX *ctx, const char *body, size_t len, unsigned char out[MAC_LEN]) {
  size_t n = 0;
  if (!EVP_MAC_init(ctx, NULL, 0, NULL)) return -1;
  if (len && !EVP_MAC_update(ctx, (const unsigned char *)body, len)) return -1;
  if (!EVP_MAC_final(ctx, out, &n, MAC_LEN) || n != MAC_LEN) return -1;
  return 0;
}

/* A context keyed with the secret, or NULL. */
static EVP_MAC_CTX *mac_keyed(const char *secret) {
  EVP_MAC_CTX *ctx = mac_new();
  if (ctx && !EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), NULL)) {
    EVP_MAC_CTX_free(ctx);
    ctx = NULL;
  }
  return ctx;
}

static int usable(const char *secret) {
  return secret && secret[0];
}

static size_t count_usable(const char *const *secrets, size_t nsecrets) {
  size_t i, n = 0;
  for (i = 0; secrets && i < nsecrets; i++) n += usable(secrets[i]) ? 1 : 0;
  return n;
}

/* ---- errors ---- */

static int no_secret(truv_err *err) {
  return truv_err_set(err, TRUV_EINVALID, "no_secret",
                      "no access secret to verify the webhook with (give at least one "
                      "non-empty secret)");
}

static int no_body(truv_err *err) {
  return truv_err_set(err, TRUV_EINVALID, "no_body", "no webhook body given");
}

static int crypto_failed(truv_err *err) {
  return truv_err_set(err, TRUV_EINTERNAL, "crypto", "OpenSSL could not compute an HMAC");
}

static int mismatch(truv_err *err, size_t nsecrets) {
  if (nsecrets == 1)
    return truv_err_set(err, TRUV_EAUTH, "signature_mismatch",
                        TRUV_WEBHOOK_HEADER " does not match the body under the secret given "
                                            "(a tampered body, or the wrong access secret)");
  return truv_err_set(err, TRUV_EAUTH, "signature_mismatch",
                      TRUV_WEBHOOK_HEADER " does not match the body under any of the %zu secrets "
                                          "given (a tampered body, or the wrong access secrets)",
                      nsecrets);
}

/* ---- the header ---- */

static int hex_value(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static int is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Reads "v1=<64 hex>" (blanks around it allowed) into mac. */
static int read_header(const char *value, unsigned char mac[MAC_LEN], truv_err *err) {
  const char *s = value, *end;
  size_t i;
  if (s)
    while (is_blank(*s)) s++;
  if (!s || !*s)
    return truv_err_set(err, TRUV_EAUTH, "missing_signature",
                        "no " TRUV_WEBHOOK_HEADER " header: the webhook is not signed");
  end = s + strlen(s);
  while (end > s && is_blank(end[-1])) end--;
  if ((size_t)(end - s) < PREFIX_LEN || memcmp(s, PREFIX, PREFIX_LEN) != 0)
    return truv_err_set(err, TRUV_EAUTH, "bad_prefix",
                        TRUV_WEBHOOK_HEADER " does not start with \"" PREFIX
                                            "\" (the only signature scheme Truv uses)");
  s += PREFIX_LEN;
  if ((size_t)(end - s) != HEX_LEN)
    return truv_err_set(err, TRUV_EAUTH, "bad_hex",
                        TRUV_WEBHOOK_HEADER ": expected %d hex digits after \"" PREFIX
                                            "\", got %zu characters",
                        HEX_LEN, (size_t)(end - s));
  for (i = 0; i < MAC_LEN; i++) {
    int hi = hex_value((unsigned char)s[2 * i]), lo = hex_value((unsigned char)s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return truv_err_set(err, TRUV_EAUTH, "bad_hex",
                          TRUV_WEBHOOK_HEADER ": a character that is not a hex digit at "
                                              "position %zu after \"" PREFIX "\"",
                          2 * i + (hi < 0 ? 1 : 2));
    mac[i] = (unsigned char)(hi << 4 | lo);
  }
  return 0;
}

/* ---- prepared secrets ----
 * Layout: the count, then one keyed MAC context per usable secret, in the
 * order given. */
struct truv_webhook_keys {
  size_t n;
  EVP_MAC_CTX *ctx[];
};

void truv_webhook_keys_free(truv_webhook_keys *keys) {
  size_t i;
  if (!keys) return;
  for (i = 0; i < keys->n; i++) EVP_MAC_CTX_free(keys->ctx[i]); /* cleanses the key */
  free(keys);
}

size_t truv_webhook_keys_count(const truv_webhook_keys *keys) {
  return keys ? keys->n : 0;
}

int truv_webhook_keys_new(const char *const *secrets, size_t nsecrets, truv_webhook_keys **out,
                          truv_err *err) {
  size_t i, n = count_usable(secrets, nsecrets);
  truv_webhook_keys *keys;
  *out = NULL;
  if (!n) return no_secret(err);
  if (!(keys = calloc(1, sizeof *keys + n * sizeof keys->ctx[0]))) goto fail;
  for (i = 0; i < nsecrets; i++) {
    if (!usable(secrets[i])) continue;
    if (!(keys->ctx[keys->n] = mac_keyed(secrets[i]))) goto fail;
    keys->n++;
  }
  *out = keys;
  return 0;
fail:
  truv_webhook_keys_free(keys);
  return crypto_failed(err);
}

/* ---- verification ---- */

/* Compares `received` with the HMAC under every prepared secret, all of
 * them, always. Sets *matched to 1 if any matched. Returns 0 or -1. */
static int match_any(truv_webhook_keys *keys, const char *body, size_t len,
                     const unsigned char received[MAC_LEN], int *matched) {
  unsigned char mac[MAC_LEN];
  size_t i;
  int rc = 0, any = 0;
  for (i = 0; i < keys->n && rc == 0; i++) {
    rc = mac_compute(keys->ctx[i], body, len, mac);
    any |= CRYPTO_memcmp(mac, received, MAC_LEN) == 0;
  }
  OPENSSL_cleanse(mac, sizeof mac);
  *matched = any && rc == 0;
  return rc;
}

/* The common end of both verifications, once the header has been read. */
static int check(truv_webhook_keys *keys, const char *body, size_t len,
                 const unsigned char received[MAC_LEN], truv_err *err) {
  int matched = 0;
  if (match_any(keys, body, len, received, &matched)) return crypto_failed(err);
  return matched ? 0 : mismatch(err, keys->n);
}

int truv_webhook_verify_keys(truv_webhook_keys *keys, const char *body, size_t len,
                             const char *header_value, truv_err *err) {
  unsigned char received[MAC_LEN];
  int rc;
  if (!body && len) return no_body(err);
  if (!keys || !keys->n) return no_secret(err);
  if ((rc = read_header(header_value, received, err))) return rc;
  return check(keys, body, len, received, err);
}

int truv_webhook_verify(const char *body, size_t len, const char *header_value,
                        const char *const *secrets, size_t nsecrets, truv_err *err) {
  unsigned char received[MAC_LEN];
  truv_webhook_keys *keys = NULL;
  int rc;
  if (!body && len) return no_body(err);
  /* the cheap refusals first: nothing is keyed for a request that cannot pass */
  if (!count_usable(secrets, nsecrets)) return no_secret(err);
  if ((rc = read_header(header_value, received, err))) return rc;
  if ((rc = truv_webhook_keys_new(secrets, nsecrets, &keys, err))) return rc;
  rc = check(keys, body, len, received, err);
  truv_webhook_keys_free(keys);
  return rc;
}

/* ---- signing ---- */

int truv_webhook_sign(const char *body, size_t len, const char *secret,
                      char out[TRUV_WEBHOOK_SIG_SIZE]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char mac[MAC_LEN];
  EVP_MAC_CTX *ctx;
  size_t i;
  int rc;
  out[0] = '\0';
  if (!usable(secret) || (!body && len)) return TRUV_EINVALID;
  if (!(ctx = mac_keyed(secret))) return TRUV_EINTERNAL;
  rc = mac_compute(ctx, body, len, mac) ? TRUV_EINTERNAL : 0;
  EVP_MAC_CTX_free(ctx);
  if (rc) return rc;
  memcpy(out, PREFIX, PREFIX_LEN);
  for (i = 0; i < MAC_LEN; i++) {
    out[PREFIX_LEN + 2 * i] = hex[mac[i] >> 4];
    out[PREFIX_LEN + 2 * i + 1] = hex[mac[i] & 15];
  }
  out[PREFIX_LEN + HEX_LEN] = '\0';
  return 0;
}
