/* cli: see cli.h. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seed.h"

#ifndef TRUV_VERSION
#define TRUV_VERSION "dev"
#endif

/* in parts: C99 compilers need not take a longer string literal than 4095 bytes */
static const char *const USAGE[] = {
  "Usage: truv-sandbox [OPTIONS]\n"
  "A local server that behaves like Truv's API (orders, data refresh, refresh tasks,\n"
  "bridge tokens, signed webhooks) on a virtual clock, for tests, demos and benchmarks.\n"
  "\n"
  "Server:\n"
  "  --host ADDR                 address to bind (IPv4 or IPv6 literal) [127.0.0.1]\n"
  "  --port N                    port; 0 picks a free one [0]\n"
  "  --port-file FILE            write the bound port there (atomically) once serving\n"
  "  --threads N                 HTTP worker threads (epoll thread pool) [2]\n"
  "  --client-id ID              expected X-Access-Client-Id [sandbox-client-id]\n"
  "  --secret S                  expected X-Access-Secret and webhook signing key;\n"
  "                              must start with \"sandbox-\" [sandbox-secret]\n"
  "  --parent-pid PID            stop (as on SIGTERM) once process PID is gone\n"
  "  --quiet                     nothing on stderr but fatal errors (the default;\n"
  "                              overrides --verbose)\n"
  "  --verbose                   log each request (method, path, outcome, time) and\n"
  "                              HTTP-level errors on stderr\n"
  "  --tls                       serve HTTPS only, with a test CA and a certificate for\n"
  "                              127.0.0.1, ::1 and localhost made at start (in memory)\n"
  "  --ca-out FILE               with --tls: write the test CA (PEM) there, atomically,\n"
  "                              before serving; clients verify against it\n"
  "  --strict                    stricter than Truv's own clients need: product_type\n"
  "                              required on refresh tasks, 404 (not Django's 301) for a\n"
  "                              path without its final slash\n"
  "\n"
  "Virtual clock:\n"
  "  --start-time EPOCH          virtual time at start, Unix seconds [wall clock]\n"
  "  --realtime                  virtual time follows the wall clock from the start time\n"
  "                              (otherwise it stands still until POST /_sandbox/clock)\n"
  "  --time-scale X              with --realtime: virtual seconds per wall second [1]\n"
  "  --task-duration S           virtual seconds from a task's \"new\" to its terminal\n"
  "                              status (the median with a spread); steps are spread\n"
  "                              evenly [20]\n"
  "  --task-duration-spread X    task durations are log-normal: X is the standard\n"
  "                              deviation of their logarithm; 0 = all take the median [0]\n"
  "  --slow-share P              share of connections behind a slow provider [0]\n"
  "  --slow-factor F             their tasks take F times as long [5]\n"
  "  --expiry-days D             lifetime of OAuth connections [180]\n"
  "  --provider-down-s S         how long a provider_down connection stays down [3600]\n"
  "\n"
  "Limits:\n"
  "  --rate-limit N              /v1/ requests per minute per secret, sliding window on\n"
  "                              the monotonic wall clock; 0 = off [300]\n"
  "  --refresh-limit N           refreshes per access_token per rolling 24 h of virtual\n"
  "                              time (the initial task plus N); 0 = off [3]\n"
  "  --refresh-limit-status S    HTTP status of the refresh-limit error: 429 or 400 [429]\n"
  "\n",
  "Seeding:\n"
  "  --seed-cases N              create N completed recertification cases at start [0]\n"
  "  --mix SPEC                  state weights of seeded cases\n"
  "                              [" DEFAULT_MIX "]\n"
  "  --rng-seed S                seed of all generated data [1]\n"
  "  --cases-out FILE            write the case list (.csv or .json) before serving\n"
  "\n"
  "Faults (/v1/ requests only; also POST /_sandbox/faults):\n"
  "  --latency-ms N              delay every answer by N ms [0]\n"
  "  --latency-jitter-ms N       plus a uniform 0..N ms [0]\n"
  "  --fault-5xx P               probability of answering 500/502/503 unprocessed [0]\n"
  "  --fault-reset-before P      probability of closing without processing [0]\n"
  "  --fault-reset-after P       probability of processing, then closing unanswered [0]\n"
  "  --fault-truncate P          probability of a body shorter than its Content-Length [0]\n"
  "  --fault-stall P             probability of sending part of the body, then stalling [0]\n"
  "  --stall-ms N                how long a stalled answer hangs before closing [5000]\n"
  "  --fault-match PREFIX        faults apply only when \"METHOD /path\" starts with\n"
  "                              PREFIX, e.g. \"POST /v1/orders/\" [all /v1/ requests]\n"
  "\n"
  "Webhooks:\n"
  "  --webhook-url URL           deliver signed events to URL [none]\n"
  "  --webhook-retries N         retries of a failed delivery [5]\n"
  "  --webhook-backoff-ms N      first retry delay, doubled each time (wall time) [200]\n"
  "  --webhook-duplicates P      probability of delivering an event twice [0]\n"
  "\n"
  "  --help                      this text\n"
  "  --version                   the version\n"
  "\n"
  "Prints \"truv-sandbox listening on http://HOST:PORT\" (https:// with --tls) on\n"
  "stdout once serving.\n"
  "SIGTERM or SIGINT stops it cleanly (exit 0). Exit 1: cannot bind or start;\n"
  "exit 2: bad command line. Control endpoints: see sandbox/README.md.\n",
  NULL,
};

enum {
  O_HOST = 256,
  O_PORT,
  O_PORT_FILE,
  O_THREADS,
  O_CLIENT_ID,
  O_SECRET,
  O_START_TIME,
  O_REALTIME,
  O_TIME_SCALE,
  O_TASK_DURATION,
  O_TASK_SPREAD,
  O_SLOW_SHARE,
  O_SLOW_FACTOR,
  O_EXPIRY_DAYS,
  O_PROVIDER_DOWN,
  O_RATE_LIMIT,
  O_REFRESH_LIMIT,
  O_REFRESH_STATUS,
  O_SEED_CASES,
  O_MIX,
  O_RNG_SEED,
  O_CASES_OUT,
  O_LATENCY,
  O_JITTER,
  O_5XX,
  O_RESET_BEFORE,
  O_RESET_AFTER,
  O_TRUNCATE,
  O_STALL,
  O_STALL_MS,
  O_MATCH,
  O_WEBHOOK_URL,
  O_WEBHOOK_RETRIES,
  O_WEBHOOK_BACKOFF,
  O_WEBHOOK_DUPS,
  O_QUIET,
  O_VERBOSE,
  O_STRICT,
  O_TLS,
  O_CA_OUT,
  O_PARENT_PID,
  O_HELP,
  O_VERSION
};

static const struct option OPTIONS[] = {
  {"host", required_argument, NULL, O_HOST},
  {"port", required_argument, NULL, O_PORT},
  {"port-file", required_argument, NULL, O_PORT_FILE},
  {"threads", required_argument, NULL, O_THREADS},
  {"client-id", required_argument, NULL, O_CLIENT_ID},
  {"secret", required_argument, NULL, O_SECRET},
  {"start-time", required_argument, NULL, O_START_TIME},
  {"realtime", no_argument, NULL, O_REALTIME},
  {"time-scale", required_argument, NULL, O_TIME_SCALE},
  {"task-duration", required_argument, NULL, O_TASK_DURATION},
  {"task-duration-spread", required_argument, NULL, O_TASK_SPREAD},
  {"slow-share", required_argument, NULL, O_SLOW_SHARE},
  {"slow-factor", required_argument, NULL, O_SLOW_FACTOR},
  {"expiry-days", required_argument, NULL, O_EXPIRY_DAYS},
  {"provider-down-s", required_argument, NULL, O_PROVIDER_DOWN},
  {"rate-limit", required_argument, NULL, O_RATE_LIMIT},
  {"refresh-limit", required_argument, NULL, O_REFRESH_LIMIT},
  {"refresh-limit-status", required_argument, NULL, O_REFRESH_STATUS},
  {"seed-cases", required_argument, NULL, O_SEED_CASES},
  {"mix", required_argument, NULL, O_MIX},
  {"rng-seed", required_argument, NULL, O_RNG_SEED},
  {"cases-out", required_argument, NULL, O_CASES_OUT},
  {"latency-ms", required_argument, NULL, O_LATENCY},
  {"latency-jitter-ms", required_argument, NULL, O_JITTER},
  {"fault-5xx", required_argument, NULL, O_5XX},
  {"fault-reset-before", required_argument, NULL, O_RESET_BEFORE},
  {"fault-reset-after", required_argument, NULL, O_RESET_AFTER},
  {"fault-truncate", required_argument, NULL, O_TRUNCATE},
  {"fault-stall", required_argument, NULL, O_STALL},
  {"stall-ms", required_argument, NULL, O_STALL_MS},
  {"fault-match", required_argument, NULL, O_MATCH},
  {"webhook-url", required_argument, NULL, O_WEBHOOK_URL},
  {"webhook-retries", required_argument, NULL, O_WEBHOOK_RETRIES},
  {"webhook-backoff-ms", required_argument, NULL, O_WEBHOOK_BACKOFF},
  {"webhook-duplicates", required_argument, NULL, O_WEBHOOK_DUPS},
  {"quiet", no_argument, NULL, O_QUIET},
  {"verbose", no_argument, NULL, O_VERBOSE},
  {"strict", no_argument, NULL, O_STRICT},
  {"tls", no_argument, NULL, O_TLS},
  {"ca-out", required_argument, NULL, O_CA_OUT},
  {"parent-pid", required_argument, NULL, O_PARENT_PID},
  {"help", no_argument, NULL, O_HELP},
  {"version", no_argument, NULL, O_VERSION},
  {NULL, 0, NULL, 0},
};

static void defaults(struct sb_options *o) {
  memset(o, 0, sizeof *o);
  o->host = "127.0.0.1";
  o->threads = 2;
  o->client_id = "sandbox-client-id";
  o->secret = "sandbox-secret";
  o->start_time = time_wall_now();
  o->time_scale = 1;
  o->settings.refresh_limit = 3;
  o->settings.refresh_limit_status = 429;
  o->settings.task_duration = 20 * SB_USEC;
  o->settings.slow_factor = 5;
  o->settings.expiry = 180 * SB_DAY;
  o->settings.provider_down = 3600 * SB_USEC;
  o->rate_limit = 300;
  o->mix = DEFAULT_MIX;
  o->rng_seed = 1;
  faults_defaults(&o->faults);
  o->webhooks.retries = 5;
  o->webhooks.backoff_ms = 200;
}

static bool bad(const char *flag, const char *arg, const char *why) {
  fprintf(stderr, "truv-sandbox: --%s %s: %s\n", flag, arg, why);
  return false;
}

static bool num(const char *flag, const char *arg, double lo, double hi, double *out) {
  char *end;
  double v;
  errno = 0;
  v = strtod(arg, &end);
  if (*arg == '\0' || *end != '\0' || errno || !isfinite(v)) return bad(flag, arg, "not a number");
  if (v < lo || v > hi) {
    fprintf(stderr, "truv-sandbox: --%s %s: must be between %g and %g\n", flag, arg, lo, hi);
    return false;
  }
  *out = v;
  return true;
}

static bool integer(const char *flag, const char *arg, double lo, double hi, long *out) {
  double v;
  if (!num(flag, arg, lo, hi, &v)) return false;
  if (v != floor(v)) return bad(flag, arg, "must be a whole number");
  *out = (long)v;
  return true;
}

static bool int_opt(const char *flag, const char *arg, double lo, double hi, int *out) {
  long v;
  bool ok = integer(flag, arg, lo, hi, &v);
  if (ok) *out = (int)v;
  return ok;
}

static bool micros(const char *flag, const char *arg, double lo, double hi, double unit,
                   int64_t *out) {
  double v;
  bool ok = num(flag, arg, lo, hi, &v);
  if (ok) *out = (int64_t)llround(v * unit);
  return ok;
}

static bool apply_server(int c, const char *arg, struct sb_options *o) {
  long v;
  switch (c) {
    case O_HOST: o->host = arg; return true;
    case O_PORT: return int_opt("port", arg, 0, 65535, &o->port);
    case O_PORT_FILE: o->port_file = arg; return true;
    case O_THREADS: return int_opt("threads", arg, 1, 256, &o->threads);
    case O_CLIENT_ID:
      o->client_id = arg;
      return *arg ? true : bad("client-id", "''", "must not be empty");
    case O_SECRET: o->secret = arg; return true;
    case O_QUIET: o->quiet = true; return true;
    case O_VERBOSE: o->verbose = true; return true;
    case O_STRICT: o->strict = true; return true;
    case O_TLS: o->tls = true; return true;
    case O_CA_OUT: o->ca_out = arg; return true;
    case O_PARENT_PID:
      if (!integer("parent-pid", arg, 1, 4194304, &v)) return false;
      o->parent_pid = v;
      return true;
    default: return false;
  }
}

static bool apply_clock(int c, const char *arg, struct sb_options *o) {
  struct sb_settings *s = &o->settings;
  switch (c) {
    case O_START_TIME: return micros("start-time", arg, 0, TIME_MAX_S, SB_USEC, &o->start_time);
    case O_REALTIME: o->realtime = true; return true;
    case O_TIME_SCALE: return num("time-scale", arg, 0, 1e9, &o->time_scale);
    case O_TASK_DURATION:
      return micros("task-duration", arg, 0, TASK_DURATION_MAX_S, SB_USEC, &s->task_duration);
    case O_TASK_SPREAD:
      return num("task-duration-spread", arg, 0, TASK_SPREAD_MAX, &s->task_duration_spread);
    case O_SLOW_SHARE: return num("slow-share", arg, 0, 1, &s->slow_share);
    case O_SLOW_FACTOR: return num("slow-factor", arg, 1, SLOW_FACTOR_MAX, &s->slow_factor);
    case O_EXPIRY_DAYS:
      return micros("expiry-days", arg, 0, EXPIRY_DAYS_MAX, (double)SB_DAY, &s->expiry);
    case O_PROVIDER_DOWN:
      return micros("provider-down-s", arg, 0, PROVIDER_DOWN_MAX_S, SB_USEC, &s->provider_down);
    case O_RATE_LIMIT: return int_opt("rate-limit", arg, 0, RATE_LIMIT_MAX, &o->rate_limit);
    case O_REFRESH_LIMIT:
      return int_opt("refresh-limit", arg, 0, REFRESH_LIMIT_MAX, &s->refresh_limit);
    case O_REFRESH_STATUS:
      if (strcmp(arg, "429") != 0 && strcmp(arg, "400") != 0)
        return bad("refresh-limit-status", arg, "must be 429 or 400");
      s->refresh_limit_status = atoi(arg);
      return true;
    default: return false;
  }
}

static bool apply_seed(int c, const char *arg, struct sb_options *o) {
  long v;
  switch (c) {
    case O_SEED_CASES: return integer("seed-cases", arg, 0, 10000000, &o->seed_cases);
    case O_MIX: o->mix = arg; return true;
    case O_RNG_SEED:
      if (!integer("rng-seed", arg, 0, 9007199254740991.0, &v)) return false;
      o->rng_seed = (uint64_t)v;
      return true;
    case O_CASES_OUT: o->cases_out = arg; return true;
    default: return false;
  }
}

static bool apply_faults(int c, const char *arg, struct sb_options *o) {
  struct fault_config *f = &o->faults;
  struct webhook_config *w = &o->webhooks;
  switch (c) {
    case O_LATENCY: return int_opt("latency-ms", arg, 0, FAULT_MS_MAX, &f->latency_ms);
    case O_JITTER: return int_opt("latency-jitter-ms", arg, 0, FAULT_MS_MAX, &f->jitter_ms);
    case O_5XX: return num("fault-5xx", arg, 0, 1, &f->p5xx);
    case O_RESET_BEFORE: return num("fault-reset-before", arg, 0, 1, &f->reset_before);
    case O_RESET_AFTER: return num("fault-reset-after", arg, 0, 1, &f->reset_after);
    case O_TRUNCATE: return num("fault-truncate", arg, 0, 1, &f->truncate);
    case O_STALL: return num("fault-stall", arg, 0, 1, &f->stall);
    case O_STALL_MS: return int_opt("stall-ms", arg, 0, FAULT_MS_MAX, &f->stall_ms);
    case O_MATCH:
      if (strlen(arg) >= sizeof f->match) return bad("fault-match", arg, "too long");
      snprintf(f->match, sizeof f->match, "%s", arg);
      return true;
    case O_WEBHOOK_URL:
      if (!webhooks_url_valid(arg))
        return bad("webhook-url", arg, "must be an http:// or https:// URL");
      snprintf(w->url, sizeof w->url, "%s", arg);
      return true;
    case O_WEBHOOK_RETRIES:
      return int_opt("webhook-retries", arg, 0, WEBHOOK_RETRIES_MAX, &w->retries);
    case O_WEBHOOK_BACKOFF:
      return int_opt("webhook-backoff-ms", arg, 0, WEBHOOK_BACKOFF_MAX_MS, &w->backoff_ms);
    case O_WEBHOOK_DUPS: return num("webhook-duplicates", arg, 0, 1, &w->duplicates);
    default: return false;
  }
}

static bool check(const struct sb_options *o) {
  struct mix m;
  char err[256];
  if (strncmp(o->secret, "sandbox-", 8) != 0 || o->secret[8] == '\0') {
    fprintf(stderr, "truv-sandbox: --secret must be a sandbox secret (\"sandbox-...\"); "
                    "this server never accepts production or development secrets\n");
    return false;
  }
  if (o->ca_out && !o->tls) {
    fprintf(stderr, "truv-sandbox: --ca-out needs --tls\n");
    return false;
  }
  if (!mix_parse(o->mix, &m, err, sizeof err)) {
    fprintf(stderr, "truv-sandbox: --mix: %s\n", err);
    return false;
  }
  return true;
}

enum cli_result cli_parse(int argc, char **argv, struct sb_options *o) {
  int c;
  defaults(o);
  opterr = 0;
  while ((c = getopt_long(argc, argv, "", OPTIONS, NULL)) != -1) {
    if (c == O_HELP) {
      for (const char *const *part = USAGE; *part; part++) fputs(*part, stdout);
      return CLI_EXIT_OK;
    }
    if (c == O_VERSION) {
      printf("truv-sandbox %s\n", TRUV_VERSION);
      return CLI_EXIT_OK;
    }
    if (c == '?' || c == ':') {
      fprintf(stderr,
              "truv-sandbox: unknown option or missing value: %s\n"
              "Try 'truv-sandbox --help'.\n",
              argv[optind - 1]);
      return CLI_USAGE_ERROR;
    }
    if (!apply_server(c, optarg, o) && !apply_clock(c, optarg, o) && !apply_seed(c, optarg, o) &&
        !apply_faults(c, optarg, o))
      return CLI_USAGE_ERROR;
  }
  if (optind < argc) {
    fprintf(stderr, "truv-sandbox: unexpected argument: %s\n", argv[optind]);
    return CLI_USAGE_ERROR;
  }
  return check(o) ? CLI_RUN : CLI_USAGE_ERROR;
}
