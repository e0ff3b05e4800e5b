/* server: the HTTP front: libmicrohttpd glue, request pipeline, faults.
 *
 * One MHD daemon, internal epoll thread pool (`threads` workers), keep-alive,
 * suspend/resume enabled. Per request: collect the body (at most 1 MiB),
 * match the route, then for /v1/: draw faults (faults.h), check
 * X-Access-Client-Id / X-Access-Secret (401), the rate limit (429), the
 * method (405), Content-Type for bodies (415) and the JSON (400), and call
 * the handler; /_sandbox/ skips auth, limits and faults. Latency and stalls
 * suspend the connection and let the timer resume it, so hundreds of
 * delayed requests need no thread each. Every answer carries Content-Type:
 * application/json and X-Request-Id (32 hex).
 *
 * server_listen() binds (IPv4 or IPv6 literal; port 0 = any free port) and
 * reports errors with the system's reason; server_start() starts serving on
 * that socket; server_stop() stops (the timer must be drained first). */
#ifndef SANDBOX_SERVER_H
#define SANDBOX_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "sandbox.h"

struct MHD_Daemon;

/* returns the listening socket or -1 (err filled); *port gets the port */
int server_listen(const char *host, int port, int *bound_port, char *err, size_t errlen);
struct MHD_Daemon *server_start(struct sandbox *sb, int fd, char *err, size_t errlen);
void server_stop(struct MHD_Daemon *d);

#endif
