/* tls: a test CA and a server certificate made with OpenSSL; see tls.h. */
#include "tls.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOT_BEFORE_S (-3600L)
#define LIFETIME_S (30L * 86400L)

static EVP_PKEY *new_key(void) {
  return EVP_EC_gen("P-256");
}

/* one X509v3 extension from its OpenSSL configuration text */
static bool add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509_EXTENSION *ext;
  bool ok;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
  ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  ok = ext && X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

static bool set_serial(X509 *cert) {
  unsigned char bytes[16];
  BIGNUM *bn = NULL;
  bool ok;
  if (RAND_bytes(bytes, sizeof bytes) != 1) return false;
  bytes[0] &= 0x7f; /* positive */
  bn = BN_bin2bn(bytes, sizeof bytes, NULL);
  ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != NULL;
  BN_free(bn);
  return ok;
}

/* a certificate for `key` named `cn`, signed by issuer_key (issuer NULL: itself) */
static X509 *new_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key) {
  X509 *cert = X509_new();
  X509_NAME *name;
  bool ok = cert && X509_set_version(cert, 2) == 1 && set_serial(cert) &&
            X509_gmtime_adj(X509_getm_notBefore(cert), NOT_BEFORE_S) &&
            X509_gmtime_adj(X509_getm_notAfter(cert), LIFETIME_S) &&
            X509_set_pubkey(cert, key) == 1;
  name = ok ? X509_get_subject_name(cert) : NULL;
  ok =
    name &&
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"truv-sandbox", -1,
                               -1, 0) == 1 &&
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) == 1;
  ok = ok && X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name) == 1;
  if (ok && !issuer) {
    ok = add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE") &&
         add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") &&
         add_ext(cert, cert, NID_subject_key_identifier, "hash");
  } else if (ok) {
    ok = add_ext(cert, issuer, NID_basic_constraints, "critical,CA:FALSE") &&
         add_ext(cert, issuer, NID_key_usage, "critical,digitalSignature") &&
         add_ext(cert, issuer, NID_ext_key_usage, "serverAuth") &&
         add_ext(cert, issuer, NID_subject_alt_name, "IP:127.0.0.1,IP:::1,DNS:localhost") &&
         add_ext(cert, issuer, NID_authority_key_identifier, "keyid:always");
  }
  ok = ok && X509_sign(cert, issuer_key, EVP_sha256()) > 0;
  if (!ok) {
    X509_free(cert);
    return NULL;
  }
  return cert;
}

/* the PEM text a writer puts in a memory BIO, NUL-terminated, or NULL */
static char *bio_text(BIO *bio) {
  char *data, *out;
  long n = bio ? BIO_get_mem_data(bio, &data) : 0;
  if (n <= 0 || !(out = malloc((size_t)n + 1))) return NULL;
  memcpy(out, data, (size_t)n);
  out[n] = '\0';
  return out;
}

static char *cert_pem(X509 *cert) {
  BIO *bio = BIO_new(BIO_s_mem());
  char *out = bio && PEM_write_bio_X509(bio, cert) == 1 ? bio_text(bio) : NULL;
  BIO_free(bio);
  return out;
}

static char *key_pem(EVP_PKEY *key) {
  BIO *bio = BIO_new(BIO_s_mem());
  char *out = bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1
                ? bio_text(bio)
                : NULL;
  BIO_free(bio);
  return out;
}

bool tls_make(struct tls_material *m, char *err, size_t errlen) {
  EVP_PKEY *ca_key = new_key(), *key = new_key();
  X509 *ca = NULL, *cert = NULL;
  bool ok = false;
  memset(m, 0, sizeof *m);
  if (!ca_key || !key) goto cleanup;
  ca = new_cert(ca_key, "truv-sandbox test CA", NULL, ca_key);
  cert = ca ? new_cert(key, "127.0.0.1", ca, ca_key) : NULL;
  if (!cert) goto cleanup;
  m->ca_pem = cert_pem(ca);
  m->cert_pem = cert_pem(cert);
  m->key_pem = key_pem(key);
  ok = m->ca_pem && m->cert_pem && m->key_pem;
cleanup:
  if (!ok) {
    snprintf(err, errlen, "cannot make the test certificates (OpenSSL)");
    tls_free(m);
  }
  X509_free(cert);
  X509_free(ca);
  EVP_PKEY_free(key);
  EVP_PKEY_free(ca_key);
  return ok;
}

bool tls_write_ca(const struct tls_material *m, const char *path, char *err, size_t errlen) {
  char tmp[4096];
  FILE *f;
  bool ok;
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  f = fopen(tmp, "w");
  ok = f && fputs(m->ca_pem, f) >= 0;
  ok = f && fclose(f) == 0 && ok;
  ok = ok && rename(tmp, path) == 0;
  if (!ok) {
    snprintf(err, errlen, "cannot write --ca-out %s: %s", path, strerror(errno));
    unlink(tmp);
  }
  return ok;
}

void tls_free(struct tls_material *m) {
  if (m->key_pem) OPENSSL_cleanse(m->key_pem, strlen(m->key_pem));
  free(m->key_pem);
  free(m->cert_pem);
  free(m->ca_pem);
  memset(m, 0, sizeof *m);
}
