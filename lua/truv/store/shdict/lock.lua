--- The locks of the shared-dictionary stores (truv.store.shdict).
--
-- Atomicity. A shared dictionary offers atomic single operations but no
-- compare-and-set, so every read-decide-write of these stores runs under a
-- lock per record: an entry "<prefix>l<record key>" `safe_add`ed with no
-- expiry, holding the holder's token "<pid> <start> <n>" (the process, its
-- start time from /proc/<pid>/stat, so that a reused pid names another
-- process, and a count of that store's acquisitions there). A lock is never
-- taken from a live holder: there is no lease to run out while its holder
-- is merely slow (preempted, its cached clock stale, a CPU hog beside it),
-- so two workers never decide on one record at once. The locks of a call
-- are taken all at once or not at all, in sorted key order: one found taken
-- makes the caller drop the others it took and try again after a pause, so
-- that nobody holds a lock while waiting for another. The holder checks,
-- before writing anything, that its locks still hold its token (a call that
-- finds one gone writes nothing and fails with "store_busy"), and releases
-- them by `delete`. The section between taking and releasing never yields
-- (only dictionary calls and string work), so light threads of one worker
-- never meet a held lock; another worker's is waited for by a few spins,
-- then by ngx.sleep pauses of 1 to 16 ms (where the phase allows sleeping;
-- elsewhere by spinning on a refreshed clock), for at most `lock_wait`
-- seconds (a store option, default 3), after which the call returns nil,
-- err (kind "internal", code "store_busy").
--
-- A worker that dies holding a lock (killed, crashed) costs little: a caller
-- that finds a lock taken past its spins reads /proc for the holder, and when
-- that process is gone (or a zombie, or another process under the same pid)
-- frees the lock, at once, then takes it (one caller frees a given lock: it
-- first adds a claim "<prefix>b<record key> <token>", kept a day; a warning
-- is logged). Waiters on a dead holder lose a few milliseconds, no
-- record is lost, and nothing is admitted twice. A reserve cut short
-- half-way may leave its entry on the records it had written and not on the
-- others: those entries are counted until they leave the window and are
-- never released (fewer refreshes admitted, never more). Reading /proc needs
-- Linux: a store refuses to open where /proc/self/stat cannot be read.
--
-- A store holds its dictionary and prefixes (truv.store.shdict.dict
-- fields) and, once it has taken a lock in this worker, its token's
-- process part (pid, me, serial): no state lives here but in the stores.
--
--   lock.with_locks(store, lkeys, fn, ...)   fn(store, lkeys, token, ...) under the locks
--   lock.owns(dict, lkeys, token)            do the locks still hold the token?
--   lock.lost_error()                        the error of a lock lost before a write
--   lock.usable()                            can this process's locks be told apart?
local errors = require "truv.errors"

local ngx = ngx
local type, error, tostring = type, error, tostring
local pcall = pcall
local io_open = io.open
local format, gmatch, match = string.format, string.gmatch, string.match

local _M = {}

local SPINS = 32                      -- tries in a row before a pause
local PAUSE_MIN, PAUSE_MAX = 0.001, 0.016
local CHECK_EVERY = 16                -- rounds between two looks at the holder, spinning
local MAX_ROUNDS = 1e6                -- a bound on any wait, whatever the clock does
local CLAIM_TTL_S = 86400             -- how long a freed lock's claim is kept
local WANT_AFTER = 6                  -- rounds (about 30 ms) before a waiter asks priority
local WANT_TTL_S = 0.2                -- how long a request for priority lasts unrenewed

-- Phases where ngx.sleep may yield.
local SLEEP_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}

local function store_error(code, msg)
  return errors.new("internal", code, msg)
end

-- The state letter and start time (field 22) of process `pid`, from
-- /proc/<pid>/stat; or nil and the errno of the failed open (nil when the
-- file said nothing usable).
local function proc_stat(pid)
  local f, _, code = io_open("/proc/" .. pid .. "/stat", "r")
  if not f then return nil, code end
  local text = f:read("*a")
  f:close()
  -- the command name, in parentheses, may hold anything: fields follow the last ")"
  local state, rest = match(text or "", "^.*%) (%S) (.*)$")
  if not state then return nil end
  local i = 3
  for field in gmatch(rest, "%S+") do
    i = i + 1
    if i == 22 then return state, field end
  end
  return nil
end

local ENOENT, ESRCH = 2, 3

--- Is the process that wrote lock token `holder` still running? Unsure
-- (an unreadable /proc entry for another reason) counts as running.
local function holder_alive(holder)
  local pid, start = match(holder, "^(%d+) (%d+) ")
  if not pid then return true end
  local state, other = proc_stat(pid)
  if not state then return not (other == ENOENT or other == ESRCH) end
  if state == "Z" or state == "X" or state == "x" then return false end
  return other == start
end

--- Can this worker's locks be told from a dead worker's (its /proc entry
-- reads)?
function _M.usable()
  return proc_stat(ngx.worker.pid()) ~= nil
end

--- A fresh lock token of this process for `self` (see Atomicity above). A
-- store made before a fork (init_by_lua) learns the worker's pid on first use.
local function new_token(self)
  local pid = ngx.worker.pid()
  if pid ~= self.pid then
    local _, start = proc_stat(pid)
    if not start then return nil end
    self.pid, self.me, self.serial = pid, pid .. " " .. start .. " ", 0
  end
  local n = self.serial + 1
  self.serial = n
  return self.me .. n
end

-- lkeys: one lock key (a string) or a sorted array of distinct ones.
local function count_of(lkeys)
  return type(lkeys) == "string" and 1 or #lkeys
end

local function key_at(lkeys, i)
  if type(lkeys) == "string" then return lkeys end
  return lkeys[i]
end

--- Frees the lock `lkey` if the process holding it is gone. Returns true
-- when the lock is free now (try again at once).
local function free_if_dead(self, lkey)
  local dict = self.dict
  local holder = dict:get(lkey)
  if holder == nil then return true end
  if holder_alive(holder) then return false end
  -- one caller frees it: the one whose claim on that holder's lock is added
  local claim = self.claim_prefix .. lkey:sub(#self.lock_prefix + 1) .. " " .. holder
  if not dict:safe_add(claim, true, CLAIM_TTL_S) then return false end
  -- the dead holder cannot release, no other caller frees it, and nobody
  -- takes a lock that exists: it still holds that token
  if dict:get(lkey) == holder then
    dict:delete(lkey)
    ngx.log(ngx.WARN, "truv: freed a lock of the shared dictionary '", self.name,
            "' held by a process that died (", holder, ")")
  end
  return true
end

local function drop(dict, lkeys, n)
  for i = n, 1, -1 do dict:delete(key_at(lkeys, i)) end
end

-- The key of the request for priority on lock `lkey`.
local function want_key(self, lkey)
  return self.want_prefix .. lkey:sub(#self.lock_prefix + 1)
end

-- One try at every lock of `lkeys`, stepping aside from a lock another
-- caller asked priority on. Returns nil when all are taken with `token`;
-- else, having dropped those it took, the key found taken and "taken" or
-- "wanted"; or false, err when the dictionary failed.
local function try_all(self, lkeys, token)
  local dict = self.dict
  for i = 1, count_of(lkeys) do
    local lkey = key_at(lkeys, i)
    local wanted_by = dict:get(want_key(self, lkey))
    if wanted_by ~= nil and wanted_by ~= token then
      drop(dict, lkeys, i - 1)
      return lkey, "wanted"
    end
    local ok, err = dict:safe_add(lkey, token)
    if not ok then
      drop(dict, lkeys, i - 1)
      if err ~= "exists" then
        return false, store_error("store_failed", "the shared dictionary failed: " ..
                                  tostring(err))
      end
      return lkey, "taken"
    end
  end
  return nil
end

local function unwant(self, wkey, token)
  if wkey and self.dict:get(wkey) == token then self.dict:delete(wkey) end
end

-- Asks priority on lock `lkey` for `token` (or renews it), unless another
-- caller has; returns the request's key (or nil). A hint, not a lock: the
-- others step aside until it lapses (WANT_TTL_S) or is withdrawn.
local function want(self, lkey, token, prev)
  local dict, wkey = self.dict, want_key(self, lkey)
  if prev and prev ~= wkey then unwant(self, prev, token) end
  local cur = dict:get(wkey)
  if cur == nil then
    if dict:safe_add(wkey, token, WANT_TTL_S) then return wkey end
  elseif cur == token then
    dict:safe_set(wkey, token, WANT_TTL_S)
    return wkey
  end
  return nil
end

--- Takes every lock of `lkeys` or none (see Atomicity above); returns the
-- token that holds them, or nil, err. Each round tries SPINS times in a row
-- (another worker busy on the same keys frees them for a moment between
-- two of its calls), looks whether the holder died, then pauses; after a
-- few rounds it asks priority on the lock found taken, so that a worker
-- taking the same locks call after call without yielding lets it in.
local function acquire(self, lkeys)
  local token = new_token(self)
  if not token then
    return nil, store_error("store_failed", "cannot read this process's /proc entry")
  end
  local rounds, deadline, pause, wanted = 0, nil, PAUSE_MIN, nil
  while true do
    local busy, why
    for _ = 1, SPINS do
      busy, why = try_all(self, lkeys, token)
      if not busy then
        unwant(self, wanted, token)
        if busy == false then return nil, why end
        return token
      end
      if why == "wanted" then break end
    end
    rounds = rounds + 1
    local sleeps = SLEEP_PHASES[ngx.get_phase()]
    local freed = why == "taken" and (sleeps or rounds % CHECK_EVERY == 0) and
                  free_if_dead(self, busy)
    if not deadline then
      ngx.update_time()
      deadline = ngx.now() + self.lock_wait
    elseif ngx.now() >= deadline or rounds > MAX_ROUNDS then
      unwant(self, wanted, token)
      return nil, store_error("store_busy", format("a shared-dictionary lock stayed taken " ..
                              "for %g s", self.lock_wait))
    end
    if not freed then
      if why == "taken" and rounds >= WANT_AFTER then
        wanted = want(self, busy, token, wanted)
      end
      if sleeps then
        -- with priority asked, look often: the others wait for us
        ngx.sleep(wanted and PAUSE_MIN or pause)
        if pause < PAUSE_MAX then pause = pause * 2 end
      else
        ngx.update_time()   -- no sleeping here: spin, with a clock that moves
      end
    end
  end
end

--- Do the locks still hold `token`? Checked before anything is written.
function _M.owns(dict, lkeys, token)
  for i = 1, count_of(lkeys) do
    if dict:get(key_at(lkeys, i)) ~= token then return false end
  end
  return true
end

function _M.lost_error()
  return store_error("store_busy", "a shared-dictionary lock was lost before the write " ..
                     "(nothing was written)")
end

local function release(dict, lkeys, token)
  for i = count_of(lkeys), 1, -1 do
    local lkey = key_at(lkeys, i)
    if dict:get(lkey) == token then dict:delete(lkey) end
  end
end

-- The results of a pcall: releases the locks, then passes them on (or
-- raises the error again).
local function after(dict, lkeys, token, ok, a, b, c)
  release(dict, lkeys, token)
  if not ok then error(a, 0) end
  return a, b, c
end

--- Runs fn(self, lkeys, token, ...) holding the locks of `lkeys` (one lock
-- key, or a sorted array of distinct ones); fn checks owns() before its
-- first write. Returns what fn returns, or nil, err when the locks cannot
-- be taken; an error raised by fn is raised again after unlocking.
function _M.with_locks(self, lkeys, fn, ...)
  local token, err = acquire(self, lkeys)
  if not token then return nil, err end
  return after(self.dict, lkeys, token, pcall(fn, self, lkeys, token, ...))
end

return _M
