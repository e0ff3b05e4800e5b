/* Webhook signatures: known HMAC-SHA256 vectors, every refusal, rotation,
 * and what error messages never say.
 *
 * The expected digests were produced once and hard-coded:
 *   - RFC 4231 test cases 1, 2 and 6 (HMAC-SHA-256 column), and
 *   - `printf '%s' BODY | openssl dgst -sha256 -hmac SECRET` for the inline
 *     bodies below, and
 *   - `openssl dgst -sha256 -hmac SECRET -r spec/fixtures/webhooks/NAME`
 *     for the fixtures (editing those files means recomputing these). */
#include "check.h"
#include "truv/webhook.h"

#define SANDBOX_SECRET "sandbox-8f14e45fceea167a5a36dedd4bea2543"
#define PROD_SECRET "prod-3c59dc048e8850243be8079a5c74d079"
#define OLD_SECRET "sandbox-c9f0f895fb98ab9159f51fd0297e236d"

#define INLINE_BODY                                                                              \
  "{\"webhook_id\":\"1a3c5e7f9b0d4f2a8c6e0b2d4f6a8c91\",\"event_type\":\"task-status-updated\"," \
  "\"status\":\"done\"}"
/* openssl dgst -sha256 -hmac SANDBOX_SECRET over INLINE_BODY */
#define INLINE_SIG "9f7b633f31a3eba32a8d15328763014b0b36d43e67a2485bbcd006272633227a"
/* ... over the empty body */
#define EMPTY_SIG "95c40e38d5f6e91a3c8f8d5132289c3dcb03559006d5332fd0dd87db65513c2a"
/* openssl dgst -sha256 -hmac SANDBOX_SECRET -r spec/fixtures/webhooks/task-status-updated.json */
#define TASK_SIG_SANDBOX "415a4db244bbb2b67c0acd71444ab56feaca6cbba06436d13518989159820e79"
/* ... -hmac PROD_SECRET, same file */
#define TASK_SIG_PROD "2dfded982e152843156c6c398b1bf0eb2982e17377053028b85304d598649277"
/* ... -hmac SANDBOX_SECRET -r spec/fixtures/webhooks/order-refresh-failed.json */
#define REFRESH_FAILED_SIG "37d90ef4ffeb3b6e334e6a7260eba9ab22d0b42b211b306a0cf99dccc8b4c44b"

static const char *const one_secret[] = {SANDBOX_SECRET};

static int verify1(const char *body, const char *header, truv_err *err) {
  truv_err_clear(err);
  return truv_webhook_verify(body, strlen(body), header, one_secret, 1, err);
}

static void signs_rfc4231_vectors(void) {
  char out[TRUV_WEBHOOK_SIG_SIZE];
  char key1[21], key6[132];
  memset(key1, 0x0b, 20);
  key1[20] = '\0';
  memset(key6, 0xaa, 131);
  key6[131] = '\0';
  /* case 2: key "Jefe" */
  CHECK_INT(truv_webhook_sign("what do ya want for nothing?", 28, "Jefe", out), 0);
  CHECK_STR(out, "v1=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  /* case 1: key 0x0b x 20 */
  CHECK_INT(truv_webhook_sign("Hi There", 8, key1, out), 0);
  CHECK_STR(out, "v1=b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  /* case 6: a key longer than SHA-256's block (hashed first) */
  CHECK_INT(
    truv_webhook_sign("Test Using Larger Than Block-Size Key - Hash Key First", 54, key6, out), 0);
  CHECK_STR(out, "v1=60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

static void rfc4231_case2_verifies_as_a_webhook(void) {
  static const char *const jefe[] = {"Jefe"};
  static const char sig[] = "v1=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
  truv_err err;
  truv_err_clear(&err);
  CHECK_INT(truv_webhook_verify("what do ya want for nothing?", 28, sig, jefe, 1, &err), 0);
  CHECK_INT(err.kind, TRUV_OK);
}

static void signs_like_openssl_dgst(void) {
  char out[TRUV_WEBHOOK_SIG_SIZE];
  CHECK_INT(truv_webhook_sign(INLINE_BODY, strlen(INLINE_BODY), SANDBOX_SECRET, out), 0);
  CHECK_STR(out, "v1=" INLINE_SIG);
  CHECK_INT(truv_webhook_sign("", 0, SANDBOX_SECRET, out), 0);
  CHECK_STR(out, "v1=" EMPTY_SIG);
  CHECK_INT(truv_webhook_sign(NULL, 0, SANDBOX_SECRET, out), 0);
  CHECK_STR(out, "v1=" EMPTY_SIG);
}

static void fixtures_verify_with_the_digest_openssl_computed(void) {
  size_t len;
  char *task = check_fixture("webhooks/task-status-updated.json", &len);
  char *failed;
  truv_err err;
  static const char *const prod[] = {PROD_SECRET};
  CHECK(task != NULL);
  if (!task) return;
  CHECK_INT(truv_webhook_verify(task, len, "v1=" TASK_SIG_SANDBOX, one_secret, 1, &err), 0);
  CHECK_INT(truv_webhook_verify(task, len, "v1=" TASK_SIG_PROD, prod, 1, &err), 0);
  CHECK_INT(truv_webhook_verify(task, len, "v1=" TASK_SIG_PROD, one_secret, 1, &err), TRUV_EAUTH);
  free(task);
  failed = check_fixture("webhooks/order-refresh-failed.json", &len);
  CHECK(failed != NULL);
  if (!failed) return;
  CHECK_INT(truv_webhook_verify(failed, len, "v1=" REFRESH_FAILED_SIG, one_secret, 1, &err), 0);
  free(failed);
}

static void a_good_signature_passes(void) {
  truv_err err;
  CHECK_INT(verify1(INLINE_BODY, "v1=" INLINE_SIG, &err), 0);
  CHECK_INT(err.kind, TRUV_OK);
}

static void uppercase_hex_passes(void) {
  truv_err err;
  char upper[] = "v1=" INLINE_SIG, mixed[] = "v1=" INLINE_SIG;
  size_t i;
  for (i = 3; upper[i]; i++) {
    if (upper[i] < 'a' || upper[i] > 'f') continue;
    upper[i] = (char)(upper[i] - 'a' + 'A');
    if (i % 2) mixed[i] = upper[i];
  }
  CHECK(strcmp(mixed, "v1=" INLINE_SIG) != 0 && strcmp(mixed, upper) != 0);
  CHECK_INT(verify1(INLINE_BODY, upper, &err), 0);
  CHECK_INT(verify1(INLINE_BODY, mixed, &err), 0);
}

static void blanks_around_the_value_are_ignored(void) {
  truv_err err;
  CHECK_INT(verify1(INLINE_BODY, "  v1=" INLINE_SIG, &err), 0);
  CHECK_INT(verify1(INLINE_BODY, "v1=" INLINE_SIG " \t", &err), 0);
  CHECK_INT(verify1(INLINE_BODY, "\tv1=" INLINE_SIG "\r\n", &err), 0);
}

static void a_tampered_body_is_refused(void) {
  char body[] = INLINE_BODY;
  size_t i;
  truv_err err;
  int refused = 0;
  /* every single-byte change anywhere in the body */
  for (i = 0; i < sizeof body - 1; i++) {
    char was = body[i];
    body[i] = (char)(was ^ 0x01);
    refused += verify1(body, "v1=" INLINE_SIG, &err) == TRUV_EAUTH &&
               strcmp(err.code, "signature_mismatch") == 0;
    body[i] = was;
  }
  CHECK_INT(refused, sizeof body - 1);
  /* one byte more, one byte less */
  truv_err_clear(&err);
  CHECK_INT(truv_webhook_verify(INLINE_BODY " ", strlen(INLINE_BODY) + 1, "v1=" INLINE_SIG,
                                one_secret, 1, &err),
            TRUV_EAUTH);
  CHECK_INT(truv_webhook_verify(INLINE_BODY, strlen(INLINE_BODY) - 1, "v1=" INLINE_SIG, one_secret,
                                1, &err),
            TRUV_EAUTH);
}

static void a_tampered_signature_is_refused(void) {
  char sig[] = "v1=" INLINE_SIG;
  truv_err err;
  sig[40] = sig[40] == '0' ? '1' : '0';
  CHECK_INT(verify1(INLINE_BODY, sig, &err), TRUV_EAUTH);
  CHECK_STR(err.code, "signature_mismatch");
}

static void the_body_is_verified_as_raw_bytes(void) {
  /* an embedded NUL is part of the body, not its end */
  static const char body[] = "{\"a\":1}\0tail";
  char sig[TRUV_WEBHOOK_SIG_SIZE];
  truv_err err;
  CHECK_INT(truv_webhook_sign(body, sizeof body - 1, SANDBOX_SECRET, sig), 0);
  CHECK_INT(truv_webhook_verify(body, sizeof body - 1, sig, one_secret, 1, &err), 0);
  CHECK_INT(truv_webhook_verify(body, 7, sig, one_secret, 1, &err), TRUV_EAUTH);
}

static void each_refusal_has_its_code(void) {
  static const struct {
    const char *header, *code;
  } cases[] = {
    {NULL, "missing_signature"},
    {"", "missing_signature"},
    {"   \t ", "missing_signature"},
    {INLINE_SIG, "bad_prefix"},
    {"sha256=" INLINE_SIG, "bad_prefix"},
    {"v2=" INLINE_SIG, "bad_prefix"},
    {"V1=" INLINE_SIG, "bad_prefix"},
    {"v1", "bad_prefix"},
    {"v1=", "bad_hex"},
    {"v1=abc", "bad_hex"},
    {"v1=" INLINE_SIG "0", "bad_hex"},
    {"v1=" INLINE_SIG " 0", "bad_hex"},
    {"v1=zz7b633f31a3eba32a8d15328763014b0b36d43e67a2485bbcd006272633227a", "bad_hex"},
    {"v1=9f7b633f31a3eba32a8d15328763014b0b36d43e67a2485bbcd006272633227g", "bad_hex"},
    {"v1= 9f7b633f31a3eba32a8d15328763014b0b36d43e67a2485bbcd006272633227", "bad_hex"},
    {"v1=" EMPTY_SIG, "signature_mismatch"},
  };
  size_t i;
  truv_err err;
  for (i = 0; i < sizeof cases / sizeof *cases; i++) {
    CHECK_INT(verify1(INLINE_BODY, cases[i].header, &err), TRUV_EAUTH);
    CHECK_INT(err.kind, TRUV_EAUTH);
    CHECK_STR(err.code, cases[i].code);
    CHECK(err.message[0] != '\0');
  }
}

static void no_usable_secret_is_a_configuration_error(void) {
  static const char *const blank[] = {NULL, ""};
  truv_err err;
  truv_err_clear(&err);
  CHECK_INT(truv_webhook_verify(INLINE_BODY, strlen(INLINE_BODY), "v1=" INLINE_SIG, NULL, 0, &err),
            TRUV_EINVALID);
  CHECK_STR(err.code, "no_secret");
  CHECK_INT(truv_webhook_verify(INLINE_BODY, strlen(INLINE_BODY), "v1=" INLINE_SIG, blank, 2, &err),
            TRUV_EINVALID);
  CHECK_STR(err.code, "no_secret");
  /* reported before anything about the header */
  CHECK_INT(truv_webhook_verify(INLINE_BODY, strlen(INLINE_BODY), NULL, blank, 0, &err),
            TRUV_EINVALID);
  CHECK_STR(err.code, "no_secret");
}

static void signing_needs_a_secret(void) {
  char out[TRUV_WEBHOOK_SIG_SIZE] = "x";
  CHECK_INT(truv_webhook_sign(INLINE_BODY, strlen(INLINE_BODY), "", out), TRUV_EINVALID);
  CHECK_STR(out, "");
  CHECK_INT(truv_webhook_sign(INLINE_BODY, strlen(INLINE_BODY), NULL, out), TRUV_EINVALID);
}

static void any_secret_of_a_rotation_passes(void) {
  static const char *const rotation[] = {OLD_SECRET, SANDBOX_SECRET, PROD_SECRET};
  static const char *const with_gaps[] = {NULL, "", SANDBOX_SECRET};
  static const char *const others[] = {OLD_SECRET, PROD_SECRET};
  char sig[TRUV_WEBHOOK_SIG_SIZE];
  size_t i, len = strlen(INLINE_BODY);
  truv_err err;
  for (i = 0; i < 3; i++) { /* whichever position the signing secret is in */
    CHECK_INT(truv_webhook_sign(INLINE_BODY, len, rotation[i], sig), 0);
    CHECK_INT(truv_webhook_verify(INLINE_BODY, len, sig, rotation, 3, &err), 0);
    CHECK_INT(truv_webhook_verify(INLINE_BODY, len, sig, rotation, 2, &err),
              i < 2 ? 0 : TRUV_EAUTH);
  }
  CHECK_INT(truv_webhook_verify(INLINE_BODY, len, "v1=" INLINE_SIG, with_gaps, 3, &err), 0);
  CHECK_INT(truv_webhook_verify(INLINE_BODY, len, "v1=" INLINE_SIG, others, 2, &err), TRUV_EAUTH);
  CHECK_STR(err.code, "signature_mismatch");
  CHECK_CONTAINS(err.message, "2 secrets");
}

static void messages_never_hold_a_secret_or_a_signature(void) {
  static const char *const rotation[] = {OLD_SECRET, PROD_SECRET};
  static const char *const headers[] = {
    NULL, "x", "v1=", "v1=abc", "v1=" INLINE_SIG, "v1=" EMPTY_SIG, "sha256=" INLINE_SIG};
  char buf[512];
  size_t i;
  truv_err err;
  for (i = 0; i < sizeof headers / sizeof *headers; i++) {
    truv_err_clear(&err);
    CHECK(truv_webhook_verify(INLINE_BODY, strlen(INLINE_BODY), headers[i], rotation, 2, &err) !=
          0);
    truv_err_format(&err, buf, sizeof buf);
    CHECK_NOT_CONTAINS(buf, OLD_SECRET);
    CHECK_NOT_CONTAINS(buf, PROD_SECRET);
    CHECK_NOT_CONTAINS(buf, "8f14e45f");
    CHECK_NOT_CONTAINS(buf, INLINE_SIG);
    CHECK_NOT_CONTAINS(buf, EMPTY_SIG);
    CHECK_NOT_CONTAINS(buf, &INLINE_SIG[40]); /* nor a piece of one */
  }
}

static void a_null_err_is_allowed(void) {
  CHECK_INT(
    truv_webhook_verify(INLINE_BODY, strlen(INLINE_BODY), "v1=" INLINE_SIG, one_secret, 1, NULL),
    0);
  CHECK_INT(truv_webhook_verify(INLINE_BODY, strlen(INLINE_BODY), "v1=x", one_secret, 1, NULL),
            TRUV_EAUTH);
}

static void prepared_keys_verify_like_secrets(void) {
  static const char *const rotation[] = {OLD_SECRET, NULL, "", SANDBOX_SECRET, PROD_SECRET};
  static const char *const others[] = {OLD_SECRET, PROD_SECRET};
  truv_webhook_keys *keys = NULL, *wrong = NULL;
  truv_err err;
  size_t len = strlen(INLINE_BODY);
  int i;
  truv_err_clear(&err);
  CHECK_INT(truv_webhook_keys_new(rotation, 5, &keys, &err), 0);
  CHECK_INT(truv_webhook_keys_count(keys), 3);
  CHECK_INT(truv_webhook_keys_new(others, 2, &wrong, &err), 0);
  /* the same keys, over and over, between successes and failures */
  for (i = 0; i < 3; i++) {
    CHECK_INT(truv_webhook_verify_keys(keys, INLINE_BODY, len, "v1=" INLINE_SIG, &err), 0);
    CHECK_INT(truv_webhook_verify_keys(keys, INLINE_BODY, len - 1, "v1=" INLINE_SIG, &err),
              TRUV_EAUTH);
    CHECK_STR(err.code, "signature_mismatch");
    CHECK_INT(truv_webhook_verify_keys(keys, "", 0, "v1=" EMPTY_SIG, &err), 0);
    CHECK_INT(truv_webhook_verify_keys(wrong, INLINE_BODY, len, "v1=" INLINE_SIG, &err),
              TRUV_EAUTH);
    CHECK_CONTAINS(err.message, "2 secrets");
  }
  CHECK_INT(truv_webhook_verify_keys(keys, INLINE_BODY, len, "v2=x", &err), TRUV_EAUTH);
  CHECK_STR(err.code, "bad_prefix");
  truv_webhook_keys_free(keys);
  truv_webhook_keys_free(wrong);
}

static void keys_need_a_usable_secret(void) {
  static const char *const blank[] = {"", NULL};
  truv_webhook_keys *keys = (truv_webhook_keys *)&keys;
  truv_err err;
  truv_err_clear(&err);
  CHECK_INT(truv_webhook_keys_new(blank, 2, &keys, &err), TRUV_EINVALID);
  CHECK(keys == NULL);
  CHECK_STR(err.code, "no_secret");
  CHECK_INT(truv_webhook_verify_keys(NULL, INLINE_BODY, 3, "v1=" INLINE_SIG, &err), TRUV_EINVALID);
  CHECK_STR(err.code, "no_secret");
  CHECK_INT(truv_webhook_keys_count(NULL), 0);
  truv_webhook_keys_free(NULL);
}

int main(void) {
  RUN(signs_rfc4231_vectors);
  RUN(rfc4231_case2_verifies_as_a_webhook);
  RUN(signs_like_openssl_dgst);
  RUN(fixtures_verify_with_the_digest_openssl_computed);
  RUN(a_good_signature_passes);
  RUN(uppercase_hex_passes);
  RUN(blanks_around_the_value_are_ignored);
  RUN(a_tampered_body_is_refused);
  RUN(a_tampered_signature_is_refused);
  RUN(the_body_is_verified_as_raw_bytes);
  RUN(each_refusal_has_its_code);
  RUN(no_usable_secret_is_a_configuration_error);
  RUN(signing_needs_a_secret);
  RUN(any_secret_of_a_rotation_passes);
  RUN(messages_never_hold_a_secret_or_a_signature);
  RUN(a_null_err_is_allowed);
  RUN(prepared_keys_verify_like_secrets);
  RUN(keys_need_a_usable_secret);
  return CHECK_DONE();
}
