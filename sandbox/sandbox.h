/* sandbox: the process-wide aggregate of truv-sandbox's modules.
 *
 * main.c fills `opt` from the command line (cli.h), starts the modules in
 * dependency order and stops them in reverse. Every handler receives the
 * aggregate. Ownership: each module owns its own memory and lock; lock order
 * is store -> webhooks (events are pushed while the store is locked) and
 * never the reverse; faults, rate limit, clock and stats locks are leaves. */
#ifndef SANDBOX_SANDBOX_H
#define SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "doccache.h"
#include "faults.h"
#include "ratelimit.h"
#include "stats.h"
#include "store.h"
#include "timer.h"
#include "tls.h"
#include "vclock.h"
#include "webhooks.h"

struct sb_options {
  const char *host;
  int port;
  const char *port_file;
  int threads;
  const char *client_id, *secret;
  sb_time start_time;
  bool realtime;
  double time_scale;
  struct sb_settings settings;
  int rate_limit;
  long seed_cases;
  const char *mix;
  uint64_t rng_seed;
  const char *cases_out;
  struct fault_config faults;
  struct webhook_config webhooks;
  bool quiet, verbose;
  bool strict; /* product_type required on refresh tasks, no slash redirects */
  bool tls;    /* HTTPS with a test CA made at start (tls.h) */
  const char *ca_out;
  long parent_pid;
};

struct ticker;

struct sandbox {
  struct sb_options opt;
  struct vclock clock;
  struct store store;
  struct faults faults;
  struct ratelimit limiter;
  struct webhooks hooks;
  struct stats stats;
  struct doccache cache;
  struct timer timer;
  struct ticker *ticker;
  struct tls_material tls; /* with --tls: the test CA and the server's certificate */
  int port;
  uint64_t request_seq; /* atomic: request ids */
  uint64_t request_nonce;
};

#endif
