/* Webhook signatures: HMAC-SHA256 over the raw body, hex in X-WEBHOOK-SIGN
 * (see truv/webhook.h).
 *
 * The received hex is decoded to 32 bytes and compared with CRYPTO_memcmp
 * against the HMAC under every usable secret; the loop never stops early,
 * so the time taken depends on how many secrets there are, not on which
 * one matched. Decoding the received value may branch on its bytes: they
 * came from the sender and are no secret. */
#include <pthread.h>
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

/* The HMAC implementation is looked up once per process: fetching it is a
 * locked search of OpenSSL's provider tables, a tenth of the cost of a
 * whole 2 KB verification. The fetched object is immutable and shared. */
static EVP_MAC *hmac_impl;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;

static void fetch_hmac(void) {
  hmac_impl = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
}

/* A MAC context set to SHA-256, not keyed yet; NULL when OpenSSL fails. */
static EVP_MAC_CTX *mac_new(void) {
  OSSL_PARAM params[2];
  EVP_MAC_CTX *ctx;
  pthread_once(&hmac_once, fetch_hmac);
  if (!hmac_impl || !(ctx = EVP_MAC_CTX_new(hmac_impl))) return NULL;
  params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
  params[1] = OSSL_PARAM_construct_end();
  if (!EVP_MAC_CTX_set_params(ctx, params)) {
    EVP_MAC_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

/* HMAC(secret, body) into out; re-keys ctx, so one context serves every
 * secret of a call. Returns 0 or -1. */
static int mac_compute(EVP_MAC_CTX *ctx, const char *secret, const char *body, size_t len,
                       unsigned char out[MAC_LEN]) {
  size_t n = 0;
  if (!EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), NULL)) return -1;
  if (len && !EVP_MAC_update(ctx, (const unsigned char *)body, len)) return -1;
  if (!EVP_MAC_final(ctx, out, &n, MAC_LEN) || n != MAC_LEN) return -1;
  return 0;
}

static int usable(const char *secret) {
  return secret && secret[0];
}

static size_t count_usable(const char *const *secrets, size_t nsecrets) {
  size_t i, n = 0;
  for (i = 0; secrets && i < nsecrets; i++) n += usable(secrets[i]) ? 1 : 0;
  return n;
}

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
                        "\", got %zu characters", HEX_LEN, (size_t)(end - s));
  for (i = 0; i < MAC_LEN; i++) {
    int hi = hex_value((unsigned char)s[2 * i]), lo = hex_value((unsigned char)s[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return truv_err_set(err, TRUV_EAUTH, "bad_hex",
                          TRUV_WEBHOOK_HEADER ": a character that is not a hex digit at "
                          "position %zu after \"" PREFIX "\"", 2 * i + (hi < 0 ? 1 : 2));
    mac[i] = (unsigned char)(hi << 4 | lo);
  }
  return 0;
}

/* Compares `received` with the HMAC under every usable secret, all of
 * them, always. Sets *matched to 1 if any matched. Returns 0 or -1. */
static int match_any(const char *body, size_t len, const char *const *secrets, size_t nsecrets,
                     const unsigned char received[MAC_LEN], int *matched) {
  unsigned char mac[MAC_LEN];
  EVP_MAC_CTX *ctx = mac_new();
  size_t i;
  int rc = -1, any = 0;
  if (!ctx) goto done;
  for (i = 0; i < nsecrets; i++) {
    if (!usable(secrets[i])) continue;
    if (mac_compute(ctx, secrets[i], body, len, mac)) goto done;
    any |= CRYPTO_memcmp(mac, received, MAC_LEN) == 0;
  }
  *matched = any;
  rc = 0;
done:
  OPENSSL_cleanse(mac, sizeof mac);
  EVP_MAC_CTX_free(ctx);
  return rc;
}

static int mismatch(truv_err *err, size_t nsecrets) {
  if (nsecrets == 1)
    return truv_err_set(err, TRUV_EAUTH, "signature_mismatch",
                        TRUV_WEBHOOK_HEADER " does not match the body under the secret given "
                        "(a tampered body, or the wrong access secret)");
  return truv_err_set(err, TRUV_EAUTH, "signature_mismatch",
                      TRUV_WEBHOOK_HEADER " does not match the body under any of the %zu secrets "
                      "given (a tampered body, or the wrong access secrets)", nsecrets);
}

int truv_webhook_verify(const char *body, size_t len, const char *header_value,
                        const char *const *secrets, size_t nsecrets, truv_err *err) {
  unsigned char received[MAC_LEN];
  int rc, matched = 0;
  if (!body && len) return truv_err_set(err, TRUV_EINVALID, "no_body", "no webhook body given");
  if (!count_usable(secrets, nsecrets))
    return truv_err_set(err, TRUV_EINVALID, "no_secret",
                        "no access secret to verify the webhook with (give at least one "
                        "non-empty secret)");
  if ((rc = read_header(header_value, received, err))) return rc;
  if (match_any(body, len, secrets, nsecrets, received, &matched))
    return truv_err_set(err, TRUV_EINTERNAL, "crypto", "OpenSSL could not compute an HMAC");
  if (!matched) return mismatch(err, count_usable(secrets, nsecrets));
  return 0;
}

int truv_webhook_sign(const char *body, size_t len, const char *secret,
                      char out[TRUV_WEBHOOK_SIG_SIZE]) {
  static const char hex[] = "0123456789abcdef";
  unsigned char mac[MAC_LEN];
  EVP_MAC_CTX *ctx;
  size_t i;
  int rc;
  out[0] = '\0';
  if (!usable(secret) || (!body && len)) return TRUV_EINVALID;
  if (!(ctx = mac_new())) return TRUV_EINTERNAL;
  rc = mac_compute(ctx, secret, body, len, mac) ? TRUV_EINTERNAL : 0;
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
