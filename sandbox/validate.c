/* validate: see validate.h. */
#include "validate.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "timeutil.h"

static const char REQUIRED[] = "This field is required.";

const char *json_type_name(const cJSON *j) {
  if (cJSON_IsString(j)) return "str";
  if (cJSON_IsBool(j)) return "bool";
  if (cJSON_IsNumber(j))
    return j->valuedouble == (double)(long long)j->valuedouble ? "int" : "float";
  if (cJSON_IsArray(j)) return "list";
  if (cJSON_IsObject(j)) return "dict";
  return "NoneType";
}

size_t utf8_length(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
  return n;
}

bool utf8_valid(const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s, *end = p + n;
  while (p < end) {
    uint32_t cp;
    static const uint32_t MIN[] = {0, 0, 0x80, 0x800, 0x10000};
    unsigned c = *p;
    unsigned len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || (size_t)(end - p) < len) return false;
    cp = len == 1 ? c : c & (0x7Fu >> len);
    for (unsigned i = 1; i < len; i++) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if (cp < MIN[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    p += len;
  }
  return true;
}

static bool local_char(char c) {
  return isalnum((unsigned char)c) || strchr("!#$%&'*+/=?^_`{|}~.-", c) != NULL;
}

static bool valid_domain(const char *d) {
  size_t tld;
  size_t label = 0, labels = 0;
  const char *last = d;
  if (*d == '\0' || strlen(d) > 253) return false;
  for (const char *p = d;; p++) {
    if (*p == '.' || *p == '\0') {
      if (label == 0 || label > 63 || p[-1] == '-' || *last == '-') return false;
      labels++;
      if (*p == '\0') break;
      last = p + 1;
      label = 0;
      continue;
    }
    if (!isalnum((unsigned char)*p) && *p != '-') return false;
    label++;
  }
  tld = strlen(last);
  for (size_t i = 0; i < tld; i++)
    if (!isalpha((unsigned char)last[i])) return false;
  return labels >= 2 && tld >= 2;
}

bool valid_email(const char *s) {
  const char *at = strchr(s, '@');
  size_t local = at ? (size_t)(at - s) : 0;
  if (!at || strchr(at + 1, '@') || local == 0 || local > 64 || strlen(s) > 254) return false;
  if (s[0] == '.' || at[-1] == '.') return false;
  for (size_t i = 0; i < local; i++)
    if (!local_char(s[i]) || (s[i] == '.' && s[i + 1] == '.')) return false;
  return valid_domain(at + 1);
}

bool valid_phone(const char *s) {
  size_t digits = 0;
  if (*s == '+') s++;
  for (; *s; s++) {
    if (isdigit((unsigned char)*s)) digits++;
    else if (!strchr(" -.()", *s)) return false;
  }
  return digits >= 10 && digits <= 15;
}

bool valid_ssn(const char *s) {
  size_t digits = 0, dashes = 0;
  for (; *s; s++) {
    if (isdigit((unsigned char)*s)) digits++;
    else if (*s == '-') dashes++;
    else return false;
  }
  return digits == 9 || (digits == 4 && dashes == 0);
}

/* the member, or NULL when absent or JSON null */
static const cJSON *member(const cJSON *obj, const char *name) {
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, name);
  return cJSON_IsNull(j) ? NULL : j;
}

static bool blank(const char *s) {
  for (; *s; s++)
    if (!isspace((unsigned char)*s)) return false;
  return true;
}

const char *field_string(struct invalid *v, const cJSON *obj, const char *name, bool required,
                         size_t max_len) {
  size_t max;
  const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, name);
  if (!j) {
    if (required) invalid_add(v, name, "%s", REQUIRED);
    return NULL;
  }
  if (cJSON_IsNull(j)) {
    if (required) invalid_add(v, name, "This field may not be null.");
    return NULL;
  }
  if (!cJSON_IsString(j)) {
    invalid_add(v, name, "Not a valid string.");
    return NULL;
  }
  if (blank(j->valuestring)) {
    invalid_add(v, name, "This field may not be blank.");
    return NULL;
  }
  max = max_len ? max_len : MAX_STRING;
  if (utf8_length(j->valuestring) > max) {
    invalid_add(v, name, "Ensure this field has no more than %zu characters.", max);
    return NULL;
  }
  return j->valuestring;
}

const char INVALID_EMAIL[] = "Enter a valid email address.";

/* an optional string of at most max characters in the format `valid` checks */
static const char *formatted(struct invalid *v, const cJSON *obj, const char *name, size_t max,
                             bool (*valid)(const char *), const char *message) {
  const char *s = field_string(v, obj, name, false, max);
  if (s && !valid(s)) {
    invalid_add(v, name, "%s", message);
    return NULL;
  }
  return s;
}

const char *field_email(struct invalid *v, const cJSON *obj, const char *name) {
  return formatted(v, obj, name, 254, valid_email, INVALID_EMAIL);
}

const char *field_phone(struct invalid *v, const cJSON *obj, const char *name) {
  return formatted(v, obj, name, 32, valid_phone, "Enter a valid phone number (10 to 15 digits).");
}

const char *field_ssn(struct invalid *v, const cJSON *obj, const char *name) {
  return formatted(v, obj, name, 11, valid_ssn, "Enter a valid SSN (the last 4 digits or all 9).");
}

const char *const DATA_SOURCES[] = {
  "payroll", "docs", "tax", "financial_accounts", "insurance", "scoring_attributes", NULL};

const cJSON *field_choices(struct invalid *v, const cJSON *obj, const char *name,
                           const char *const *choices) {
  char field[64];
  unsigned before = v->n;
  const cJSON *arr = field_array(v, obj, name, name, 0, true);
  int i = 0;
  for (const cJSON *e = arr ? arr->child : NULL; e; e = e->next, i++) {
    bool ok = false;
    for (unsigned k = 0; cJSON_IsString(e) && choices[k]; k++)
      ok = ok || strcmp(e->valuestring, choices[k]) == 0;
    snprintf(field, sizeof field, "%.40s[%d]", name, i);
    if (!ok)
      invalid_add(v, field, "\"%.64s\" is not a valid choice.",
                  cJSON_IsString(e) ? e->valuestring : json_type_name(e));
  }
  return v->n == before ? arr : NULL;
}

const cJSON *field_object(struct invalid *v, const cJSON *obj, const char *name,
                          const char *label) {
  const cJSON *j = member(obj, name);
  if (j && !cJSON_IsObject(j)) {
    invalid_add(v, label, "Expected a dictionary of items but got type \"%s\".", json_type_name(j));
    return NULL;
  }
  return j;
}

const cJSON *field_array(struct invalid *v, const cJSON *obj, const char *name, const char *label,
                         int max_items, bool allow_empty) {
  int n;
  const cJSON *j = member(obj, name);
  if (!j) return NULL;
  if (!cJSON_IsArray(j)) {
    invalid_add(v, label, "Expected a list of items but got type \"%s\".", json_type_name(j));
    return NULL;
  }
  n = cJSON_GetArraySize(j);
  if (n == 0 && !allow_empty) {
    invalid_add(v, label, "This list may not be empty.");
    return NULL;
  }
  if (max_items > 0 && n > max_items) {
    invalid_add(v, label, "Ensure this field has no more than %d elements.", max_items);
    return NULL;
  }
  return j;
}

void field_bool(struct invalid *v, const cJSON *obj, const char *name, const char *label) {
  const cJSON *j = member(obj, name);
  if (j && !cJSON_IsBool(j)) invalid_add(v, label, "Must be a valid boolean.");
}

void field_int(struct invalid *v, const cJSON *obj, const char *name, const char *label, long lo,
               long hi) {
  const cJSON *j = member(obj, name);
  if (!j) return;
  if (!cJSON_IsNumber(j) || j->valuedouble != (double)(long)j->valuedouble) {
    invalid_add(v, label, "A valid integer is required.");
    return;
  }
  if (j->valuedouble < (double)lo)
    invalid_add(v, label, "Ensure this value is greater than or equal to %ld.", lo);
  else if (j->valuedouble > (double)hi)
    invalid_add(v, label, "Ensure this value is less than or equal to %ld.", hi);
}

void field_datetime(struct invalid *v, const cJSON *obj, const char *name, const char *label) {
  const cJSON *j = member(obj, name);
  sb_time t;
  if (j && (!cJSON_IsString(j) || !time_parse_iso(j->valuestring, &t)))
    invalid_add(
      v, label,
      "Datetime has wrong format. Use YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|Z].");
}

static bool decimal_string(const char *s) {
  bool digits = false, dot = false;
  for (; *s; s++) {
    if (isdigit((unsigned char)*s)) digits = true;
    else if (*s == '.' && !dot) dot = true;
    else return false;
  }
  return digits;
}

void field_amount(struct invalid *v, const cJSON *obj, const char *name, const char *label) {
  bool ok;
  const cJSON *j = member(obj, name);
  if (!j) return;
  ok = (cJSON_IsNumber(j) && j->valuedouble >= 0) ||
       (cJSON_IsString(j) && decimal_string(j->valuestring));
  if (!ok) invalid_add(v, label, "A valid non-negative number is required.");
}

bool field_hex_id(struct invalid *v, const cJSON *obj, const char *name, bool required,
                  unsigned char id[16], bool *given) {
  const char *s = field_string(v, obj, name, required, 64);
  *given = cJSON_GetObjectItemCaseSensitive(obj, name) != NULL && !cJSON_IsNull(member(obj, name));
  if (!s) return false;
  if (strlen(s) != 32 || !hex_decode(s, id, 16)) {
    invalid_add(v, name, "Invalid %s.", name);
    return false;
  }
  return true;
}
