/* A byte buffer that grows by doubling, NUL-terminated after its bytes: the
 * one way an answer's body (response.c) and the journal's patches
 * (store/journal.c) grow. Internal. */
#ifndef TRUV_BUFFER_H
#define TRUV_BUFFER_H

#include <stddef.h>

/* Appends n bytes of data to *buf, which holds *len bytes in *cap allocated
 * ones (first_cap when it grows from nothing). 0, or -1 when memory runs out
 * (the buffer is left as it was). */
int truv_buffer_append(char **buf, size_t *len, size_t *cap, size_t first_cap, const char *data,
                       size_t n);

#endif
