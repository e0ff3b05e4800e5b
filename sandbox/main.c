/* main: truv-sandbox's process: start the modules, serve, stop on a signal.
 *
 * Start order: command line, modules (clock, store, faults, limits, stats,
 * webhook thread, timer thread), listening socket (exit 1 if it cannot
 * bind), seeding and --cases-out, with --tls the test CA (tls.h) and
 * --ca-out, HTTP server, ticker; then the "listening" line on stdout and the
 * --port-file, in that order, so a reader that sees either can use the
 * server, the case list and the CA. SIGTERM/SIGINT (and the end
 * of --parent-pid) stop it in reverse order and free everything; exit 0. */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "seed.h"
#include "server.h"
#include "ticker.h"

#define PARENT_POLL_MS 500

/* hundreds of delayed connections need descriptors: lift the soft limit */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
  rl.rlim_cur = rl.rlim_max < 65536 ? rl.rlim_max : 65536;
  setrlimit(RLIMIT_NOFILE, &rl);
}

static bool start_modules(struct sandbox *sb) {
  bool ok;
  const struct sb_options *o = &sb->opt;
  sb->request_nonce = (uint64_t)time_wall_now() ^ ((uint64_t)getpid() << 32);
  vclock_init(&sb->clock, o->start_time, o->realtime, o->time_scale);
  stats_init(&sb->stats);
  doccache_init(&sb->cache);
  faults_init(&sb->faults, &o->faults, o->rng_seed);
  ratelimit_init(&sb->limiter, o->rate_limit);
  ok = store_init(&sb->store, &o->settings, o->rng_seed);
  ok = webhooks_start(&sb->hooks, o->secret, &o->webhooks, o->rng_seed) && ok;
  ok = timer_start(&sb->timer) && ok;
  if (!ok) fprintf(stderr, "truv-sandbox: cannot start (out of memory or threads)\n");
  return ok;
}

static void stop_modules(struct sandbox *sb) {
  ticker_stop(sb->ticker);
  webhooks_stop(&sb->hooks);
  timer_stop(&sb->timer);
  store_free(&sb->store);
  doccache_free(&sb->cache);
  ratelimit_destroy(&sb->limiter);
  faults_destroy(&sb->faults);
  vclock_destroy(&sb->clock);
}

static bool seed_initial(struct sandbox *sb) {
  struct mix mix;
  char err[256];
  bool ok = mix_parse(sb->opt.mix, &mix, err, sizeof err);
  if (ok && sb->opt.seed_cases > 0) {
    store_wrlock(&sb->store);
    ok = seed_cases(&sb->store, sb->opt.seed_cases, &mix, sb->opt.rng_seed, vclock_now(&sb->clock));
    store_unlock(&sb->store);
    snprintf(err, sizeof err, "out of memory while seeding");
  }
  if (ok && sb->opt.cases_out) {
    store_rdlock(&sb->store);
    ok = seed_write_cases(&sb->store, sb->opt.cases_out, err, sizeof err);
    store_unlock(&sb->store);
  }
  if (!ok) fprintf(stderr, "truv-sandbox: %s\n", err);
  return ok;
}

static bool write_port_file(const char *path, int port) {
  char tmp[4096];
  FILE *f;
  bool ok;
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  f = fopen(tmp, "w");
  ok = f && fprintf(f, "%d\n", port) > 0;
  ok = f && fclose(f) == 0 && ok;
  ok = ok && rename(tmp, path) == 0;
  if (!ok) {
    fprintf(stderr, "truv-sandbox: cannot write --port-file %s: %s\n", path, strerror(errno));
    unlink(tmp);
  }
  return ok;
}

static bool announce(struct sandbox *sb) {
  const char *h = sb->opt.host;
  bool v6 = strchr(h, ':') != NULL;
  printf("truv-sandbox listening on %s://%s%s%s:%d\n", sb->opt.tls ? "https" : "http",
         v6 ? "[" : "", h, v6 ? "]" : "", sb->port);
  fflush(stdout);
  return !sb->opt.port_file || write_port_file(sb->opt.port_file, sb->port);
}

static bool parent_gone(long pid) {
  return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static void wait_for_stop(const sigset_t *set, long parent_pid) {
  struct timespec poll = {.tv_sec = 0, .tv_nsec = PARENT_POLL_MS * 1000000L};
  for (;;) {
    int sig = parent_pid > 0 ? sigtimedwait(set, NULL, &poll) : sigwaitinfo(set, NULL);
    if (sig == SIGTERM || sig == SIGINT || parent_gone(parent_pid)) return;
  }
}

static int serve(struct sandbox *sb, const sigset_t *stop_signals) {
  char err[256];
  int rc = 1;
  struct MHD_Daemon *daemon = NULL;
  int fd = server_listen(sb->opt.host, sb->opt.port, &sb->port, err, sizeof err);
  if (fd < 0) {
    fprintf(stderr, "truv-sandbox: %s\n", err);
    return 1;
  }
  if (!seed_initial(sb)) goto done;
  if (sb->opt.tls &&
      (!tls_make(&sb->tls, err, sizeof err) ||
       (sb->opt.ca_out && !tls_write_ca(&sb->tls, sb->opt.ca_out, err, sizeof err)))) {
    fprintf(stderr, "truv-sandbox: %s\n", err);
    goto done;
  }
  if (!(daemon = server_start(sb, fd, err, sizeof err))) {
    fprintf(stderr, "truv-sandbox: %s\n", err);
    goto done;
  }
  fd = -1; /* the daemon owns it now */
  if (sb->opt.realtime && !(sb->ticker = ticker_start(sb))) goto done;
  if (!announce(sb)) goto done;
  wait_for_stop(stop_signals, sb->opt.parent_pid);
  rc = 0;
done:
  timer_drain(&sb->timer);
  server_stop(daemon);
  tls_free(&sb->tls);
  if (fd >= 0) close(fd);
  return rc;
}

int main(int argc, char **argv) {
  static struct sandbox sb;
  sigset_t stop_signals;
  int rc;
  switch (cli_parse(argc, argv, &sb.opt)) {
    case CLI_EXIT_OK: return 0;
    case CLI_USAGE_ERROR: return 2;
    default: break;
  }
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, NULL); /* every thread inherits the mask */
  curl_global_init(CURL_GLOBAL_DEFAULT);
  rc = start_modules(&sb) ? serve(&sb, &stop_signals) : 1;
  stop_modules(&sb);
  curl_global_cleanup();
  return rc;
}
