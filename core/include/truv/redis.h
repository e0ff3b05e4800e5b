/* Redis: the RESP codec (sans-IO, hiredis's formatter and reply reader) and
 * a blocking connection with millisecond deadlines, for the stores that keep
 * a fleet's quota, de-duplication and rate budget in one Redis (the scripts
 * they run live in core/redis/, the stores in lua/truv/store/redis.lua).
 *
 * Codec. truv_redis_format makes the bytes of one command (RESP2 array of
 * bulk strings); a truv_redis_reader turns bytes fed in any chunks into
 * replies (hiredis's redisReply trees), one at a time. Neither does I/O, so
 * the same codec serves this connection and nginx's cosockets.
 *
 * Connection. truv_redis_conn talks to one server over TCP (optionally TLS,
 * through OpenSSL: Debian's hiredis 0.14 has no TLS of its own) or a Unix
 * socket. It connects lazily (at the first call, and again after a failure,
 * or in a forked child: a connection belongs to the process that made it),
 * then authenticates (AUTH [user] password) and selects the database. Every
 * call has one deadline (timeout_ms) for writing the command and reading
 * its reply; connecting has its own (connect_timeout_ms).
 *
 * Failure. A call that fails on the way (connect refused, reset, a
 * deadline passed) closes the connection: it is never reused, since a
 * command that timed out may still run and its late reply would answer
 * the next command. The error is TRUV_EINTERNAL with code
 *   "store_unavailable"  nothing was sent (no connection): the command did
 *                        not run
 *   "store_timeout"      the command was (maybe) sent and no full reply came
 *                        in time: it may have run or may still run
 * and a message naming the endpoint (never the password). A Redis error
 * reply (-ERR, -NOSCRIPT, -READONLY, -OOM, -LOADING...) is not a failure of
 * the call: it is returned as a reply of type REDIS_REPLY_ERROR.
 *
 * Threads: one thread at a time per connection, never across fork(). */
#ifndef TRUV_REDIS_H
#define TRUV_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "truv/common.h"
#include "truv/err.h"

/* ---- codec ---- */

/* The bytes of one command of argc arguments (argv[i] of lens[i] bytes) in
 * *out (free with truv_redis_free_command), its length in *outlen. 0, or
 * TRUV_EINVALID (argc < 1), TRUV_EINTERNAL (out of memory). */
TRUV_API int truv_redis_format(int argc, const char **argv, const size_t *lens, char **out,
                               size_t *outlen, truv_err *err);
TRUV_API void truv_redis_free_command(char *cmd);

typedef struct truv_redis_reader truv_redis_reader;

/* NULL when out of memory. */
TRUV_API truv_redis_reader *truv_redis_reader_new(void);
/* NULL is allowed. */
TRUV_API void truv_redis_reader_free(truv_redis_reader *r);
/* Appends bytes. 0, or TRUV_EINTERNAL (out of memory). */
TRUV_API int truv_redis_reader_feed(truv_redis_reader *r, const char *buf, size_t len,
                                    truv_err *err);
/* The next complete reply in *reply (free with freeReplyObject), or NULL
 * when more bytes are needed. TRUV_EPROTOCOL when the bytes are not RESP,
 * or declare an array of more than 1 048 576 elements (refused before
 * hiredis allocates for them): the reader is then unusable, drop the
 * connection. */
TRUV_API int truv_redis_reader_get(truv_redis_reader *r, redisReply **reply, truv_err *err);

/* ---- connection ---- */

typedef struct truv_redis_endpoint {
  const char *host;        /* TCP host (name or address), or NULL with unix_path */
  int port;                /* TCP port (1..65535) */
  const char *unix_path;   /* a Unix socket instead of TCP */
  const char *user;        /* ACL user, or NULL ("default") */
  const char *password;    /* NULL: no AUTH */
  int db;                  /* SELECT db when > 0 */
  int tls;                 /* TLS over TCP (rediss://) */
  const char *ca_file;     /* TLS: the CA bundle (NULL: the system's) */
  const char *server_name; /* TLS: the name to verify and send (NULL: host) */
  int insecure;            /* TLS: skip verification (tests only) */
  long connect_timeout_ms; /* 0: 1000 */
  long timeout_ms;         /* per call; 0: 1000 */
} truv_redis_endpoint;

typedef struct truv_redis_conn truv_redis_conn;

/* Copies the endpoint (nothing is connected yet). NULL and err filled
 * (TRUV_EINVALID for a bad endpoint, TRUV_EINTERNAL out of memory). */
TRUV_API truv_redis_conn *truv_redis_conn_new(const truv_redis_endpoint *ep, truv_err *err);
/* NULL is allowed. */
TRUV_API void truv_redis_conn_free(truv_redis_conn *c);
/* Sends one command and reads its reply into *reply (free with
 * freeReplyObject; a Redis error is a reply). 0, or TRUV_EINTERNAL as in
 * "Failure" above (*reply NULL). */
TRUV_API int truv_redis_conn_call(truv_redis_conn *c, int argc, const char **argv,
                                  const size_t *lens, redisReply **reply, truv_err *err);
/* Closes the connection now (the next call connects again). */
TRUV_API void truv_redis_conn_reset(truv_redis_conn *c);
/* "host:port" or the socket path: for messages. */
TRUV_API const char *truv_redis_conn_name(const truv_redis_conn *c);
/* Whether a connection is open in this process, and how many were made. */
TRUV_API int truv_redis_conn_connected(const truv_redis_conn *c);
TRUV_API unsigned long truv_redis_conn_connects(const truv_redis_conn *c);

#endif
