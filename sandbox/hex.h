/* hex: ids and digests as lowercase hexadecimal text.
 *
 * Truv's ids are 16 bytes shown as 32 lowercase hex digits; the sandbox
 * accepts exactly that form (uppercase is refused, as unknown ids are). Pure
 * functions, thread-safe. */
#ifndef SANDBOX_HEX_H
#define SANDBOX_HEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* lowercase hex of n bytes into out (2n + 1 bytes) */
void hex_encode(const uint8_t *bytes, size_t n, char *out);
/* parses exactly 2n lowercase hex digits (the form Truv ids take); false otherwise */
bool hex_decode(const char *s, uint8_t *bytes, size_t n);

#endif
