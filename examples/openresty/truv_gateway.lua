--- A Truv gateway for OpenResty: receives Truv's webhooks and lets internal
-- services trigger refreshes, without ever blocking an nginx worker.
--
--   init_worker_by_lua_block { require("truv_gateway").configure{ handlers = "truv_handlers" } }
--   location = /truv/webhooks { content_by_lua_block { require("truv_gateway").webhook() } }
--   location ~ ^/renewals/([^/]+)/refresh$ {
--     content_by_lua_block { require("truv_gateway").refresh(ngx.var[1]) }
--   }
--
-- POST /truv/webhooks: Truv's deliveries. The raw body is verified
-- (X-WEBHOOK-SIGN, every secret of a rotation), de-duplicated by webhook_id
-- in a shared dictionary (every worker sees every id), ordered by
-- updated_at, correlated with the refresh this gateway started, routed, and
-- handed to the script's handler for its route. A refresh started here
-- reaches the handlers once, when every one of its connections has an
-- outcome: on the route of them all (truv.route.combine: a connection the
-- user must fix makes it reverify, never retry), with decision.connections
-- and decision.by_route saying what each connection needs; its other
-- events go to the `wait` handler (truv.tracker). One new link per case and
-- refresh, and no retry that would refresh a connection only the user can
-- fix. Answers: 200 (handled,
-- duplicate or stale), 401 (bad signature), 400 (not a Truv event), 500
-- (the handler failed: the id is forgotten so that Truv's retry is handled
-- again). Truv waits 10 s at most: a handler must be quick and push slow
-- work to gateway.later(fn, ...) (ngx.timer.at), where cosockets work.
--
-- POST /renewals/{case}/refresh, body {"order_id": "...", "product":
-- "income", "employers": [{"id": "..."}]?}: refreshes the case's original
-- order through cosockets, inside the refresh quota kept in a shared
-- dictionary (3 per connection per 24 h across all workers). Answers 202
-- {"case", "route": "wait", "refresh_order_id", "original_order_id"} when
-- Truv created the refresh (its outcome arrives later as webhooks), or 200
-- {"case", "route", "reason", "not_before"?, "retry_at"?, "error"} when no
-- refresh was created (defer: the quota is spent until not_before;
-- reverify: the connection is known to need the user, kind "expired", code
-- "connection_dead": a webhook already said so; fix; retry), 400 for a
-- malformed request.
--
-- The webhooks' news about each link (a refresh failed with login_error,
-- link-disconnected, link-connected, a completed refresh) is kept as
-- connection facts in the quota's shared dictionary (truv.facts), so a
-- refresh of a link known dead is refused without being billed.
--
-- GET /metrics: the counters of every worker (truv.counters, kept in the
-- `truv_metrics` shared dictionary) in Prometheus' text format: requests
-- to Truv, billed requests, retries, 429s, failed exchanges, routes (of
-- webhooks and of refreshes refused), webhooks by result, and the webhook
-- records a full dictionary evicted (truv_store_evictions_total: a
-- non-zero value means de-duplication lost ids; also logged at warn).
--
-- Logs (nginx's error_log): what an operator acts on at `warn` (a refresh
-- refused or failed, a webhook with a bad signature; the handlers log new
-- verification links, retries, deferrals and cases to fix there too), the
-- gateway's own failures at `error` (a handler that raised, a client that
-- cannot be made, a store that fails), the rest at `info`. nginx keeps
-- `error` and above unless told otherwise: nginx.conf sets `error_log ...
-- warn;`.
--
-- Configuration (configure{...}, defaults from the environment, which nginx
-- passes only for variables named by `env` directives): client_id
-- (TRUV_CLIENT_ID), secret (TRUV_SECRET; Truv signs webhooks with it),
-- previous_secrets (TRUV_PREVIOUS_SECRETS, comma-separated, accepted on
-- webhooks during a rotation), base_url (TRUV_BASE_URL, default Truv's),
-- quota_dict ("truv_quota"), webhook_dict ("truv_webhooks"), handlers (a
-- table, or a module name, of functions per route: done, reverify, retry,
-- defer, no_data, fix, wait; each called as fn(decision, case, event,
-- gateway)), timeout_ms, connect_timeout_ms, send_timeout_ms,
-- read_timeout_ms, proxy (an HTTP proxy to Truv, "http://host:port"),
-- no_proxy, metrics_dict ("truv_metrics"; without that dictionary each
-- worker counts alone and /metrics shows the worker that answers), redis
-- (TRUV_REDIS_URL: redis://[[user]:password@]host[:port][/db], rediss://,
-- unix:///path: the quota and the webhook ids live in that Redis, shared
-- by every gateway host and truv-renew, under {truv:<client id>}; Redis
-- down: a refresh is refused with 500 and nothing is sent, a webhook is
-- answered 500 so that Truv delivers it again; Truv's rate budget is
-- shared too, see truv.ratelimit: refresh triggers are interactive work and
-- wait at most 2 s for a slot), redis_timeout_ms (1000), per_minute (300).
local truv = require "truv"
local shdict = require "truv.store.shdict"
local cosocket = require "truv.transport.cosocket"
local counters_mod = require "truv.counters"
local route_mod = require "truv.route"

local ngx = ngx
local type, ipairs, tostring, pcall, require = type, ipairs, tostring, pcall, require
local getenv = os.getenv
local gmatch = string.gmatch

local _M = { _VERSION = "0.1.0" }

local CORRELATION_TTL_S = 30 * 86400   -- how long a refresh's ids are remembered

local gw   -- this worker's gateway, made by configure()

local function list_from_env(name)
  local out = {}
  for s in gmatch(getenv(name) or "", "[^,%s]+") do out[#out + 1] = s end
  return out
end

--- Runs fn(...) in a timer, after the current request has answered:
-- where slow work goes (cosockets work there). Errors are logged.
function _M.later(fn, ...)
  local ok, err = ngx.timer.at(0, function(premature, ...)
    if premature then return end
    local fine, ferr = pcall(fn, ...)
    if not fine then ngx.log(ngx.ERR, "truv gateway: deferred work failed: ", tostring(ferr)) end
  end, ...)
  if not ok then ngx.log(ngx.ERR, "truv gateway: cannot start a timer: ", err) end
  return ok, err
end

-- ------------------------------------------------------------ correlation

-- The case and original order of a refresh order (or one of its
-- suborders) this gateway started: the receiver's tracker keeps them in
-- the webhook dictionary, with each connection's outcome until the refresh
-- is decided (truv.tracker).
local function recall(id)
  local rec = gw.receiver:tracked(id)
  if not rec then return nil end
  return rec.case_id, rec.original_order_id
end

-- ---------------------------------------------------------------- set-up

local function load_handlers(h)
  if type(h) == "string" then h = require(h) end
  h = h or {}
  if type(h) ~= "table" then error("truv gateway: handlers must be a table or a module name", 3) end
  return h
end

-- The router's handler for one route: counts the route, then the
-- script's, with the gateway. A refresh this gateway started reaches it
-- once, on its combined route (case.case_id set by the tracker); other
-- events as they come.
local function handler_for(route, handlers)
  local fn = handlers[route]
  return function(decision, case, event)
    gw.counters:incr("route:" .. route)
    if fn then return fn(decision, case, event, _M) end
  end
end

--- Sets up this worker's gateway (call it from init_worker_by_lua).
function _M.configure(opts)
  opts = opts or {}
  local secret = opts.secret or getenv("TRUV_SECRET")
  local client_id = opts.client_id or getenv("TRUV_CLIENT_ID")
  if not secret or secret == "" or not client_id or client_id == "" then
    error("truv gateway: TRUV_CLIENT_ID and TRUV_SECRET must be set (and named by `env` " ..
          "directives in nginx.conf)", 2)
  end
  local secrets = { secret }
  for _, s in ipairs(opts.previous_secrets or list_from_env("TRUV_PREVIOUS_SECRETS")) do
    secrets[#secrets + 1] = s
  end
  local handlers = load_handlers(opts.handlers)
  local spec = {}
  for _, r in ipairs(route_mod.NAMES) do spec[r] = handler_for(r, handlers) end

  local webhook_dict = opts.webhook_dict or "truv_webhooks"
  local transport = assert(cosocket.new{
    timeout_ms = opts.timeout_ms, connect_timeout_ms = opts.connect_timeout_ms,
    send_timeout_ms = opts.send_timeout_ms, read_timeout_ms = opts.read_timeout_ms,
    proxy = opts.proxy, no_proxy = opts.no_proxy,
  })
  local metrics_dict = opts.metrics_dict or "truv_metrics"
  local counters
  if ngx.shared[metrics_dict] then
    counters = shdict.counters(metrics_dict)
  else
    counters = counters_mod.memory()
    ngx.log(ngx.WARN, "truv gateway: no shared dictionary '", metrics_dict, "': each worker ",
            "counts alone (add `lua_shared_dict ", metrics_dict, " 1m;` for /metrics)")
  end
  local base_url = opts.base_url or getenv("TRUV_BASE_URL")
  if base_url == "" then base_url = nil end
  local redis_url = opts.redis or getenv("TRUV_REDIS_URL")
  if redis_url == "" then redis_url = nil end
  local quota, dedupe, ratelimit
  if redis_url then
    -- one quota and one memory of webhooks for the whole fleet (cosockets)
    local ropts = { url = redis_url, namespace = "truv:" .. client_id,
                    timeout_ms = opts.redis_timeout_ms, connect_timeout_ms = opts.redis_timeout_ms }
    local qerr, derr
    quota, qerr = truv.quota.redis(ropts)
    if not quota then error("truv gateway: redis: " .. tostring(qerr), 2) end
    dedupe, derr = truv.dedupe.redis(ropts)
    if not dedupe then error("truv gateway: redis: " .. tostring(derr), 2) end
    -- Truv's 300 requests a minute per secret, shared with every host and
    -- truv-renew; refresh triggers go first (interactive), waiting at most 2 s
    local rerr
    ratelimit, rerr = require("truv.ratelimit").redis{
      url = redis_url, namespace = "truv:" .. client_id, per_minute = opts.per_minute or 300,
      max_wait = 2, timeout_ms = opts.redis_timeout_ms,
      log = function(level, msg) ngx.log(level == "warn" and ngx.WARN or ngx.ERR, msg) end }
    if not ratelimit then error("truv gateway: redis: " .. tostring(rerr), 2) end
  else
    quota = shdict.quota(opts.quota_dict or "truv_quota")
    -- a full dictionary's evictions counted ("evicted:<dict>", 0 shown from the start)
    counters:incr("evicted:" .. webhook_dict, 0)
    dedupe = shdict.dedupe(webhook_dict, { counters = counters })
  end
  gw = {
    client_options = {
      client_id = client_id, secret = secret, base_url = base_url, transport = transport,
      quota = quota, user_agent = "truv-gateway", counters = counters,
      ratelimit = ratelimit, priority = ratelimit and "interactive" or nil,
    },
    handlers = handlers,
    counters = counters,
  }
  gw.receiver = assert(truv.receiver{
    secrets = secrets,
    router = truv.router(spec),
    dedupe = dedupe,
    facts = quota,    -- what webhooks say about links, for the next refresh
    -- the refreshes started here, followed to one decision per case and refresh
    tracker = truv.tracker.new(ngx.shared[webhook_dict], { ttl = CORRELATION_TTL_S }),
  })
  return _M
end

--- A client for one request: they share the transport (nginx's connection
-- pool) and the quota store (the shared dictionary).
function _M.client()
  return truv.new(gw.client_options)
end

-- -------------------------------------------------------------- handlers

local function respond(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Cache-Control"] = "no-store"
  ngx.print(truv.encode(body))
  return ngx.exit(status)
end

local function raw_body()
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then return body end
  local file = ngx.req.get_body_file()   -- larger than client_body_buffer_size
  if not file then return "" end
  local f = io.open(file, "rb")
  if not f then return nil end
  body = f:read("*a")
  f:close()
  return body
end

local function not_configured()
  ngx.log(ngx.ERR, "truv gateway: configure{} was not called (init_worker_by_lua)")
  return respond(503, { error = "the Truv gateway is not configured" })
end

local function post_only()
  ngx.header["Allow"] = "POST"
  return respond(405, { error = "POST only" })
end

--- content handler: POST /truv/webhooks
function _M.webhook()
  if not gw then return not_configured() end
  if ngx.req.get_method() ~= "POST" then return post_only() end
  local body = raw_body()
  if not body then return respond(500, { error = "cannot read the request body" }) end
  -- the one header the receiver reads (cheaper than every header as a table)
  local status, res = gw.receiver:handle(body, ngx.var.http_x_webhook_sign)
  local ev = res.event
  local answer = { webhook_id = ev and ev.webhook_id }
  local result
  if status == 200 then
    answer.result = res.duplicate and "duplicate" or res.stale and "stale" or "handled"
    answer.route = res.decision and res.decision.route
    result = answer.result
  else
    answer.error = res.error and (res.error.code or res.error.kind) or "failed"
    if status >= 500 then
      result = "failed"
      ngx.log(ngx.ERR, "truv gateway: webhook ", tostring(answer.webhook_id), " failed: ",
              tostring(res.error))
    elseif status == 401 then
      result = "bad_signature"
      ngx.log(ngx.WARN, "truv gateway: a webhook with a missing or wrong signature was refused ",
              "(from ", tostring(ngx.var.remote_addr), ")")
    else
      result = "invalid"
    end
  end
  gw.counters:incr("webhook:" .. result)
  return respond(status, answer)
end

local function bad_request(msg)
  return respond(400, { error = msg })
end

--- content handler: POST /renewals/{case}/refresh
function _M.refresh(case_id)
  if not gw then return not_configured() end
  if ngx.req.get_method() ~= "POST" then return post_only() end
  local text = raw_body()
  local ok, req = pcall(truv.decode, text or "", "table")
  if not ok or type(req) ~= "table" then return bad_request("the body must be a JSON object") end
  if type(req.order_id) ~= "string" or req.order_id == "" then
    return bad_request("order_id (the case's original order) is required")
  end
  if type(req.product) ~= "string" then return bad_request("product is required") end
  if req.employers ~= nil and type(req.employers) ~= "table" then
    return bad_request("employers must be a list")
  end

  local client, cerr = _M.client()
  if not client then
    ngx.log(ngx.ERR, "truv gateway: cannot make a client: ", cerr)
    return respond(500, { error = tostring(cerr) })
  end
  local params = { products = { req.product }, employers = req.employers }
  local fresh, err = client:refresh_order(req.order_id, params)
  if fresh then
    local kept, kerr = gw.receiver:track(fresh, { case_id = case_id,
                                                  original_order_id = req.order_id })
    if not kept then
      -- the refresh exists (billed): its webhooks will come untracked
      ngx.log(ngx.ERR, "truv gateway: cannot track refresh ", fresh.id, " of case ", case_id,
              ": ", tostring(kerr))
    end
    ngx.log(ngx.INFO, "truv gateway: case ", case_id, ": refresh order ", fresh.id, " created")
    return respond(202, { case = case_id, route = "wait", refresh_order_id = fresh.id,
                          original_order_id = req.order_id })
  end
  local d = truv.route(err)
  local answer = { case = case_id, route = d.route, reason = d.reason, not_before = d.not_before,
                   retry_at = d.retry_at, error = tostring(err), kind = err.kind }
  -- nothing was refreshed: an operator sees why (the error never holds a secret)
  ngx.log(err.kind == "internal" and ngx.ERR or ngx.WARN, "truv gateway: case ", case_id,
          ": no refresh of order ", req.order_id, ": ", d.route, " (", tostring(d.reason), "): ",
          err)
  if err.kind == "internal" then return respond(500, answer) end
  return respond(200, answer)
end

--- content handler: GET /metrics (Prometheus' text format)
function _M.metrics()
  if not gw then return not_configured() end
  ngx.status = 200
  ngx.header["Content-Type"] = "text/plain; version=0.0.4"
  ngx.header["Cache-Control"] = "no-store"
  ngx.print(counters_mod.prometheus(gw.counters:snapshot()))
end

--- The case and original order remembered for a refresh order or suborder id.
function _M.recall(id)
  return recall(id)
end

return _M
