/* truv_response: the bytes a transport received (see truv/response.h). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "truv/response.h"

#include "buffer.h"

void truv_response_init(truv_response *r) {
  memset(r, 0, sizeof *r);
}

void truv_response_reset(truv_response *r) {
  size_t i;
  for (i = 0; i < r->nheaders; i++) {
    free(r->headers[i].name);
    free(r->headers[i].value);
  }
  r->nheaders = 0;
  r->status = 0;
  r->body_len = 0;
  if (r->body) r->body[0] = '\0';
}

void truv_response_free(truv_response *r) {
  truv_response_reset(r);
  free(r->headers);
  free(r->body);
  truv_response_init(r);
}

/* Trims surrounding blanks (and a trailing CR LF) off [s, s+len). */
static void trim(const char **s, size_t *len) {
  while (*len && (**s == ' ' || **s == '\t')) (*s)++, (*len)--;
  while (*len && strchr(" \t\r\n", (*s)[*len - 1])) (*len)--;
}

int truv_response_add_header(truv_response *r, const char *name, size_t nlen, const char *value,
                             size_t vlen) {
  truv_header *h;
  trim(&name, &nlen);
  trim(&value, &vlen);
  if (r->nheaders == r->hcap) {
    size_t cap = r->hcap ? r->hcap * 2 : 16;
    truv_header *grown;
    if (cap > 4096 || !(grown = realloc(r->headers, cap * sizeof *grown))) return TRUV_EINTERNAL;
    r->headers = grown;
    r->hcap = cap;
  }
  h = &r->headers[r->nheaders];
  h->name = malloc(nlen + 1);
  h->value = malloc(vlen + 1);
  if (!h->name || !h->value) {
    free(h->name);
    free(h->value);
    return TRUV_EINTERNAL;
  }
  memcpy(h->name, name, nlen);
  h->name[nlen] = '\0';
  memcpy(h->value, value, vlen);
  h->value[vlen] = '\0';
  r->nheaders++;
  return 0;
}

int truv_response_append(truv_response *r, const char *data, size_t len) {
  if (len > TRUV_MAX_BODY - r->body_len) return TRUV_EINTERNAL;
  if (truv_buffer_append(&r->body, &r->body_len, &r->body_cap, 4096, data, len))
    return TRUV_EINTERNAL;
  return 0;
}

const char *truv_response_header(const truv_response *r, const char *name) {
  size_t i;
  for (i = 0; i < r->nheaders; i++)
    if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
  return NULL;
}
