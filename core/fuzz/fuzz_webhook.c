/* libFuzzer target: webhook verification and event parsing.
 *
 * The input is a webhook body as delivered (the seed corpus is
 * spec/fixtures/webhooks/). Its last line doubles as an X-WEBHOOK-SIGN
 * value, so that the header reader sees arbitrary bytes too. Whatever the
 * bytes:
 *   - parsing ends in an event with a webhook_id and an event_type, or a
 *     protocol error; never a crash or a leak;
 *   - verification against fixed secrets answers 0 or an auth error;
 *   - a body signed with one of the secrets verifies, in either hex case,
 *     and stops verifying when one hex digit of the signature changes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "truv/webhook.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const secrets[] = {"sandbox-8f14e45fceea167a5a36dedd4bea2543",
                                      "prod-3c59dc048e8850243be8079a5c74d079"};

static void check_parse(const char *body, size_t size) {
  truv_webhook_event ev;
  truv_err err;
  truv_err_clear(&err);
  if (truv_webhook_parse(body, size, &ev, &err) == 0) {
    if (!ev.doc || !ev.webhook_id || !ev.webhook_id[0] || !ev.event_type) abort();
    if (ev.updated_at < 0 || ev.event_created < 0) abort();
    if (strcmp(truv_webhook_kind_name(ev.kind), "") == 0) abort();
  } else if (err.kind != TRUV_EPROTOCOL && err.kind != TRUV_EINTERNAL) {
    abort();
  } else if (!err.code[0] || ev.doc) {
    abort();
  }
  truv_webhook_event_free(&ev);
}

/* The bytes after the last newline (all of them without one), as text. */
static char *last_line(const char *body, size_t size) {
  size_t start = size;
  char *line;
  while (start > 0 && body[start - 1] != '\n') start--;
  if (!(line = malloc(size - start + 1))) abort();
  memcpy(line, body + start, size - start);
  line[size - start] = '\0';
  return line;
}

static void check_verify(const char *body, size_t size) {
  char *header = last_line(body, size);
  truv_err err;
  int rc;
  truv_err_clear(&err);
  rc = truv_webhook_verify(body, size, header, secrets, 2, &err);
  if (rc != 0 && (rc != TRUV_EAUTH || !err.code[0])) abort();
  free(header);
}

static void check_round_trip(const char *body, size_t size) {
  char sig[TRUV_WEBHOOK_SIG_SIZE];
  size_t i, flip = 3 + (size ? (unsigned char)body[0] % 64 : 0);
  truv_err err;
  if (truv_webhook_sign(body, size, secrets[size % 2], sig) != 0) abort();
  if (truv_webhook_verify(body, size, sig, secrets, 2, &err) != 0) abort();
  for (i = 3; sig[i]; i++)
    if (sig[i] >= 'a') sig[i] = (char)(sig[i] - 'a' + 'A');
  if (truv_webhook_verify(body, size, sig, secrets, 2, &err) != 0) abort();
  sig[flip] = sig[flip] == '0' ? '1' : '0';
  if (truv_webhook_verify(body, size, sig, secrets, 2, &err) != TRUV_EAUTH) abort();
  if (strcmp(err.code, "signature_mismatch") != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *body = (const char *)data;
  check_parse(body, size);
  check_verify(body, size);
  check_round_trip(body, size);
  return 0;
}
