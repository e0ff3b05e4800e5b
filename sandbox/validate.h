/* validate: request-field checks with Truv's (DRF's) messages.
 *
 * Each field_* helper looks at one member of a parsed JSON object, records
 * every problem in an invalid-params list (reply.h) under the field's name
 * and returns the value only when it is valid. Absent and JSON null optional
 * fields are "not given". Strings are trimmed of surrounding whitespace
 * before the blank check, as DRF's CharField does. The format checks
 * (email, phone, SSN) are pure functions. Thread-safe. */
#ifndef SANDBOX_VALIDATE_H
#define SANDBOX_VALIDATE_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "reply.h"

#define MAX_STRING 255

bool valid_email(const char *s);
/* DRF's message for an invalid email address */
extern const char INVALID_EMAIL[];
/* 10..15 digits once spaces, dashes, dots, parentheses and a leading + go */
bool valid_phone(const char *s);
/* Truv takes the last 4 digits or all 9 (dashes allowed among the 9) */
bool valid_ssn(const char *s);
/* Python-ish type name of a JSON value: "str", "int", "list", ... */
const char *json_type_name(const cJSON *j);
size_t utf8_length(const char *s);
/* whether the n bytes are well-formed UTF-8 (no overlongs, no surrogates) */
bool utf8_valid(const char *s, size_t n);

/* a string member; required: absence is an error. max_len counts characters
 * (0 = MAX_STRING). Returns NULL when absent or invalid. */
const char *field_string(struct invalid *v, const cJSON *obj, const char *name, bool required,
                         size_t max_len);
const char *field_email(struct invalid *v, const cJSON *obj, const char *name);
const char *field_phone(struct invalid *v, const cJSON *obj, const char *name);
const char *field_ssn(struct invalid *v, const cJSON *obj, const char *name);
/* the data_sources Truv documents (NULL-terminated); the product names
 * are the store's (PRODUCT_NAMES) */
extern const char *const DATA_SOURCES[];
/* a list of strings, each one of choices (NULL-terminated); errors go to
 * name[i]; the list, or NULL when absent, null or invalid */
const cJSON *field_choices(struct invalid *v, const cJSON *obj, const char *name,
                           const char *const *choices);
/* an object member (NULL when absent, null or invalid) */
const cJSON *field_object(struct invalid *v, const cJSON *obj, const char *name, const char *label);
/* an array member with at most max items (NULL when absent, null or invalid) */
const cJSON *field_array(struct invalid *v, const cJSON *obj, const char *name, const char *label,
                         int max_items, bool allow_empty);
/* a boolean member; *out untouched when absent */
void field_bool(struct invalid *v, const cJSON *obj, const char *name, const char *label);
/* an integer member in [lo, hi] */
void field_int(struct invalid *v, const cJSON *obj, const char *name, const char *label, long lo,
               long hi);
/* a member that must hold an ISO date or datetime string */
void field_datetime(struct invalid *v, const cJSON *obj, const char *name, const char *label);
/* a decimal amount given as a JSON number or a numeric string, >= 0 */
void field_amount(struct invalid *v, const cJSON *obj, const char *name, const char *label);
/* a 32-hex id string; false (and an error) otherwise */
bool field_hex_id(struct invalid *v, const cJSON *obj, const char *name, bool required,
                  unsigned char id[16], bool *given);

#endif
