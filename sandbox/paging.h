/* paging: Django REST framework's page-number pagination, as Truv's lists
 * answer (GET /v1/tasks/, GET /v1/orders/{id}/events/).
 *
 * Pages hold PAGE_SIZE items and are numbered from 1; ?page= absent is page
 * 1. A page that is not a positive integer, or past the last page, is
 * answered 404 {"detail":"Invalid page."} (reply_invalid_page); an empty
 * list still has its page 1. The envelope is {"count", "next", "previous",
 * "results": [...]}: next and previous are absolute URLs (null at either
 * end), the first page's without page=. Pure functions, thread-safe. */
#ifndef SANDBOX_PAGING_H
#define SANDBOX_PAGING_H

#include <stdbool.h>
#include <stddef.h>

#include "json_writer.h"

#define PAGE_SIZE 100

/* the ?page= argument (NULL: absent); false when it names no page */
bool page_parse(const char *text, long *page);
/* whether page exists in a list of n items */
bool page_exists(long page, size_t n);
/* the index of page's first item */
size_t page_first(long page);
/* writes {"count":n,"next":...,"previous":...,"results":[ for page of a list
 * of n items whose first page is base_url; the caller writes the items,
 * then page_end() */
void page_begin(struct jw *w, size_t n, long page, const char *base_url);
void page_end(struct jw *w);

#endif
