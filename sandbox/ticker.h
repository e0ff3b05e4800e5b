/* ticker: announces task steps while the virtual clock runs by itself.
 *
 * Only needed in --realtime mode (otherwise time moves only through
 * POST /_sandbox/clock, which announces due steps itself). Every
 * TICKER_PERIOD_MS of wall time it calls events_tick() under the store's
 * exclusive lock when tasks are waiting to be announced. */
#ifndef SANDBOX_TICKER_H
#define SANDBOX_TICKER_H

#include "sandbox.h"

#define TICKER_PERIOD_MS 20

struct ticker *ticker_start(struct sandbox *sb);
void ticker_stop(struct ticker *t);

#endif
