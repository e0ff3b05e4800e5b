--- Quota and de-duplication stores on an nginx shared dictionary
-- (`lua_shared_dict`), shared by every worker of one nginx: the contracts
-- of truv.quota and truv.dedupe, checked by the same conformance specs as
-- the C stores.
--
--   # nginx.conf, http block
--   lua_shared_dict truv_quota 10m;       # about 150 bytes per connection
--   lua_shared_dict truv_webhooks 20m;    # about 120 bytes per webhook_id kept
--
--   local shdict = require "truv.store.shdict"
--   local quota = shdict.quota("truv_quota")             -- { limit =, window = }
--   local dedupe = shdict.dedupe("truv_webhooks")
--   local client = truv.new{ ..., quota = quota }
--   local receiver = truv.receiver{ ..., dedupe = dedupe }
--   local counters = shdict.counters("truv_metrics")      -- truv.counters, for /metrics
--
-- Each store keeps its own part: truv.store.shdict.quota (the refresh
-- quota and the connection facts), .dedupe (webhook ids and the order of
-- events), .counters (metrics); the locks every read-decide-write runs
-- under are truv.store.shdict.lock's (what they promise is said there: no
-- two workers ever decide on one record at once, and a worker that dies
-- holding a lock costs its waiters milliseconds), and the dictionary a
-- store opens, holding one kind of store only, truv.store.shdict.dict's.
--
-- Expiry: records carry an nginx expiry (real time) so that the dictionary
-- forgets idle connections and old webhooks by itself. The stores' logic
-- uses the `now` it is given; the clock given to the client or receiver
-- should follow real time (ngx.now, the default inside nginx).
local quota = require "truv.store.shdict.quota"
local dedupe = require "truv.store.shdict.dedupe"
local counters = require "truv.store.shdict.counters"

return {
  --- shdict.quota(dict_name [, opts]) -> store (see truv.store.shdict.quota)
  quota = quota.new,
  --- shdict.dedupe(dict_name [, opts]) -> store (see truv.store.shdict.dedupe)
  dedupe = dedupe.new,
  --- shdict.counters(dict_name [, opts]) -> a counters object (truv.counters)
  counters = counters.new,
  Quota = quota.Quota, Dedupe = dedupe.Dedupe, Counters = counters.Counters,
}
