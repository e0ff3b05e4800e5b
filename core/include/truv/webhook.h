/* Webhooks: verifying Truv's signature and reading the event it signs.
 *
 * Signature. Truv sends `X-WEBHOOK-SIGN: v1=<hex>`, the hex being
 * HMAC-SHA256 with the account's access secret as key over the raw body
 * bytes (never a re-serialised document). truv_webhook_verify() computes
 * the HMAC for every secret it is given (several during a key rotation)
 * and compares each, in constant time, with the one received; it does all
 * of that work whichever secret matches, so timing tells nothing about
 * which one did. The scheme carries no timestamp: replays are the
 * receiver's business (de-duplicate by webhook_id, order by updated_at).
 * No error message ever holds a secret or a computed signature.
 *
 * Events. truv_webhook_parse() parses the body once (truv_json) and reads
 * the common fields and the ids the workflow routes on. The event keeps the
 * whole document, so unknown fields and unknown event types survive: a
 * type this version does not know is TRUV_WEBHOOK_UNKNOWN with the raw
 * event_type kept. Every string points into the document: valid until
 * truv_webhook_event_free() (or until the document is taken, see there).
 *
 * Both functions are reentrant; an event may be read from any thread. */
#ifndef TRUV_WEBHOOK_H
#define TRUV_WEBHOOK_H

#include "truv/common.h"
#include "truv/err.h"
#include "truv/json.h"

/* The header Truv signs with (HTTP header names are case-insensitive). */
#define TRUV_WEBHOOK_HEADER "X-WEBHOOK-SIGN"

/* "v1=" + 64 hex digits + NUL. */
#define TRUV_WEBHOOK_SIG_SIZE 68

/* Checks `header_value` (the X-WEBHOOK-SIGN value; blanks around it are
 * ignored, the hex may be upper or lower case) against the HMAC of
 * [body, body+len) under each usable secret (NULL and "" entries are
 * skipped). Returns 0 when any secret matches, otherwise:
 *   TRUV_EINVALID "no_secret"          no usable secret was given
 *   TRUV_EINVALID "no_body"            body is NULL but len is not 0
 *   TRUV_EAUTH    "missing_signature"  header_value is NULL or blank
 *   TRUV_EAUTH    "bad_prefix"         the value does not start with "v1="
 *   TRUV_EAUTH    "bad_hex"            not exactly 64 hex digits after "v1="
 *   TRUV_EAUTH    "signature_mismatch" well formed, but no secret matches
 *   TRUV_EINTERNAL "crypto"            OpenSSL failed (out of memory)
 * A missing secret is checked first: it is a configuration error, and
 * blaming the sender for it would hide it. */
TRUV_API int truv_webhook_verify(const char *body, size_t len, const char *header_value,
                                 const char *const *secrets, size_t nsecrets, truv_err *err);

/* Prepared secrets: each secret's keyed HMAC state, made once, so that
 * verifying many deliveries skips the key setup (fetching OpenSSL's HMAC
 * and SHA-256, hashing the key's pads: a third of the HMAC of a 2 KB
 * body). Verification re-initialises the states, so a truv_webhook_keys
 * belongs to one thread at a time. It holds key material: free it when
 * the secrets are retired (truv_webhook_keys_free cleanses it). */
typedef struct truv_webhook_keys truv_webhook_keys;

/* Prepares the usable secrets (NULL and "" skipped) into *out. Returns 0,
 * TRUV_EINVALID "no_secret" when none is usable, TRUV_EINTERNAL "crypto". */
TRUV_API int truv_webhook_keys_new(const char *const *secrets, size_t nsecrets,
                                   truv_webhook_keys **out, truv_err *err);

/* How many secrets the keys hold. */
TRUV_API size_t truv_webhook_keys_count(const truv_webhook_keys *keys);

TRUV_API void truv_webhook_keys_free(truv_webhook_keys *keys);

/* truv_webhook_verify with prepared secrets: the same answers and errors
 * (a NULL keys is "no_secret"). */
TRUV_API int truv_webhook_verify_keys(truv_webhook_keys *keys, const char *body, size_t len,
                                      const char *header_value, truv_err *err);

/* Writes "v1=<64 lowercase hex>" for [body, body+len) under `secret` into
 * out (NUL-terminated). Returns 0, TRUV_EINVALID for a NULL or empty
 * secret, TRUV_EINTERNAL if OpenSSL fails; out is then "". */
TRUV_API int truv_webhook_sign(const char *body, size_t len, const char *secret,
                               char out[TRUV_WEBHOOK_SIG_SIZE]);

typedef enum truv_webhook_kind {
  TRUV_WEBHOOK_UNKNOWN = 0, /* a type this version does not know */
  TRUV_WEBHOOK_ORDER_CREATED,
  TRUV_WEBHOOK_ORDER_STATUS_UPDATED,
  TRUV_WEBHOOK_ORDER_REFRESH_FAILED,
  TRUV_WEBHOOK_ORDER_FINALIZED,
  TRUV_WEBHOOK_TASK_STATUS_UPDATED,
  TRUV_WEBHOOK_LINK_CONNECTED,
  TRUV_WEBHOOK_LINK_DISCONNECTED, /* the link failed during a refresh task */
  TRUV_WEBHOOK_LINK_DELETED,
  TRUV_WEBHOOK_CERTIFICATION_COMPLETED,
  TRUV_WEBHOOK_DATA, /* employment-, profile-, statements-, shifts-,
                        bank-accounts- -created / -updated */
  TRUV_WEBHOOK_KIND_COUNT
} truv_webhook_kind;

typedef struct truv_webhook_event {
  truv_json *doc; /* the whole payload, owned by the event */
  truv_webhook_kind kind;
  const char *event_type;       /* as sent, never NULL after a successful parse */
  const char *webhook_id;       /* never NULL after a successful parse */
  const char *event_created_at; /* ISO text as sent, or NULL */
  const char *updated_at_iso;   /* ISO text as sent, or NULL (even if malformed) */
  double event_created;         /* epoch s of event_created_at, 0 if absent or malformed */
  double updated_at;            /* epoch s of updated_at; if that is absent or malformed,
                                   of event_created_at; else 0 */
  /* Optional fields: NULL when absent, JSON null or not a string. */
  const char *user_id;
  const char *template_id;
  const char *order_id;
  const char *order_number;
  const char *employer_id;
  const char *link_id;
  const char *task_id;
  const char *product;
  const char *data_source;
  const char *tracking_info;
  const char *status;
} truv_webhook_event;

/* Parses one event from [body, body+len). On success returns 0 and fills
 * *ev (the caller releases it with truv_webhook_event_free). On failure
 * *ev holds nothing to free, and the error is TRUV_EPROTOCOL with code
 *   "malformed_json"      empty, truncated or invalid JSON
 *   "unexpected_shape"    valid JSON, but not an object
 *   "missing_webhook_id"  no non-empty string webhook_id
 *   "missing_event_type"  no non-empty string event_type
 * or TRUV_EINTERNAL when out of memory. */
TRUV_API int truv_webhook_parse(const char *body, size_t len, truv_webhook_event *ev,
                                truv_err *err);

/* Frees the event's document (the strings die with it). To keep the
 * document beyond the event, take ev->doc and set it to NULL first. */
TRUV_API void truv_webhook_event_free(truv_webhook_event *ev);

/* "order-created", ..., "data" for data events, "unknown". */
TRUV_API const char *truv_webhook_kind_name(truv_webhook_kind kind);

/* The kind of an event_type string (TRUV_WEBHOOK_UNKNOWN for NULL). */
TRUV_API truv_webhook_kind truv_webhook_kind_of(const char *event_type);

#endif
