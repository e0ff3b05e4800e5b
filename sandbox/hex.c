/* hex: see hex.h. */
#include "hex.h"

static const char DIGITS[] = "0123456789abcdef";

void hex_encode(const uint8_t *bytes, size_t n, char *out) {
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = DIGITS[bytes[i] >> 4];
    out[2 * i + 1] = DIGITS[bytes[i] & 15];
  }
  out[2 * n] = '\0';
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool hex_decode(const char *s, uint8_t *bytes, size_t n) {
  for (size_t i = 0; i < n; i++) {
    int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    bytes[i] = (uint8_t)(hi << 4 | lo);
  }
  return s[2 * n] == '\0';
}
