/* names: the synthetic vocabulary of generated documents.
 *
 * Fixed tables (people, employers, job titles, streets)
 * indexed modulo their length, so any 64-bit value picks an entry. Every
 * entry is fictional; addresses use real city/state/zip combinations only
 * for plausibility. Read-only, thread-safe. */
#ifndef SANDBOX_NAMES_H
#define SANDBOX_NAMES_H

#include <stdint.h>

struct company {
  const char *name, *street, *city, *state, *zip, *domain, *phone, *ein;
};

const char *names_first(uint64_t v);
const char *names_last(uint64_t v);
const struct company *names_company(uint64_t v);
const char *names_job_title(uint64_t v);
const char *names_manager(uint64_t v);
const char *names_street(uint64_t v);

#endif
