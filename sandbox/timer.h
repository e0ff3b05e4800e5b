/* timer: delayed resumption of suspended MHD connections.
 *
 * This is how latency and stalls cost no thread per connection: a handler
 * calls timer_suspend(), which suspends the connection and records when to
 * resume it; one timer thread keeps a min-heap of deadlines (monotonic
 * clock) and calls MHD_resume_connection() when each is due. Suspension and
 * insertion happen under the timer's mutex, so timer_drain() (shutdown)
 * resumes every suspended connection and refuses new suspensions: MHD may
 * then be stopped with none left suspended. Thread-safe. */
#ifndef SANDBOX_TIMER_H
#define SANDBOX_TIMER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct MHD_Connection;

struct timer_entry {
  int64_t due;
  struct MHD_Connection *conn;
};

struct timer {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  bool started, draining, stop;
  struct timer_entry *heap;
  unsigned n, cap;
};

bool timer_start(struct timer *t);
/* false when draining or out of memory: the caller answers without delay */
bool timer_suspend(struct timer *t, struct MHD_Connection *conn, int64_t delay_us);
void timer_drain(struct timer *t);
void timer_stop(struct timer *t);

#endif
