/* paging: see paging.h. */
#include "paging.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool page_parse(const char *text, long *page) {
  char *end;
  long v;
  if (!text) return (*page = 1), true;
  v = strtol(text, &end, 10);
  if (*text == '\0' || *end != '\0' || v < 1) return false;
  *page = v;
  return true;
}

static long page_count(size_t n) {
  return n == 0 ? 1 : (long)((n + PAGE_SIZE - 1) / PAGE_SIZE);
}

bool page_exists(long page, size_t n) {
  return page >= 1 && page <= page_count(n);
}

size_t page_first(long page) {
  return (size_t)(page - 1) * PAGE_SIZE;
}

/* key: null (page < 1), base_url (page 1), else base_url with page=N
 * appended to its query */
static void page_link(struct jw *w, const char *key, const char *base_url, long page) {
  char url[600];
  jw_key(w, key);
  if (page < 1) {
    jw_null(w);
    return;
  }
  if (page == 1) snprintf(url, sizeof url, "%s", base_url);
  else snprintf(url, sizeof url, "%s%cpage=%ld", base_url, strchr(base_url, '?') ? '&' : '?', page);
  jw_str(w, url);
}

void page_begin(struct jw *w, size_t n, long page, const char *base_url) {
  jw_obj(w);
  jw_kint(w, "count", (long long)n);
  page_link(w, "next", base_url, page < page_count(n) ? page + 1 : 0);
  page_link(w, "previous", base_url, page - 1);
  jw_key(w, "results");
  jw_arr(w);
}

void page_end(struct jw *w) {
  jw_arr_end(w);
  jw_obj_end(w);
}
