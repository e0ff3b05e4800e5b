/* A byte buffer that grows by doubling (buffer.h). */
#include "buffer.h"

#include <stdlib.h>
#include <string.h>

int truv_buffer_append(char **buf, size_t *len, size_t *cap, size_t first_cap, const char *data,
                       size_t n) {
  if (*len + n + 1 > *cap) {
    size_t c = *cap ? *cap : first_cap;
    char *grown;
    while (c < *len + n + 1) c *= 2;
    if (!(grown = realloc(*buf, c))) return -1;
    *buf = grown;
    *cap = c;
  }
  memcpy(*buf + *len, data, n);
  *len += n;
  (*buf)[*len] = '\0';
  return 0;
}
