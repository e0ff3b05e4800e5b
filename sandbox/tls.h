/* tls: the test certificate authority of `--tls`.
 *
 * tls_make() makes, in memory, a CA (an EC P-256 key and a self-signed
 * certificate, CA:TRUE, valid from an hour ago for 30 days of wall time)
 * and a server certificate it signs for 127.0.0.1, ::1 and localhost
 * (serverAuth), with their keys, as PEM text: the server certificate and
 * key for libmicrohttpd (which serves them through GnuTLS), the CA for
 * clients (`--ca-out`). Nothing is read from disk and no external command
 * runs. The material is new at every start: a client that trusts a CA from
 * an earlier run fails to verify, as it should. tls_write_ca() writes the
 * CA atomically (temp + rename). tls_free() releases and wipes the keys;
 * it accepts a zeroed or half-made struct. */
#ifndef SANDBOX_TLS_H
#define SANDBOX_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct tls_material {
  char *ca_pem;   /* the CA certificate */
  char *cert_pem; /* the server certificate */
  char *key_pem;  /* the server's private key (PKCS#8) */
};

bool tls_make(struct tls_material *m, char *err, size_t errlen);
bool tls_write_ca(const struct tls_material *m, const char *path, char *err, size_t errlen);
void tls_free(struct tls_material *m);

#endif
