-- A journal that cannot be written stops the run, with a clear error, before
-- anything more is sent to Truv: on a full disk no refresh goes out without
-- a durable record (the write-ahead), and the run does not report success; a
-- read-only journal is refused before the first refresh. The journal lives
-- on a small tmpfs this spec mounts (and removes) itself, so it needs root.
local sandbox = require "spec.support.sandbox"
local files = require "spec.support.files"
local core = require "truv.core"
local renewal = require "truv.renewal"

local q = files.quote
local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
local BIN = SRC .. "/bin/truv-renew"
local CASES = 60

local function sh(cmd)
  return os.execute("LD_PRELOAD= " .. cmd .. " >/dev/null 2>&1") == true
end

local is_root = (function()
  local p = io.popen("id -u")
  local uid = p:read("l")
  p:close()
  return uid == "0"
end)()

-- Fills the file system at `dir` but for about `keep` bytes.
local function fill(dir, keep)
  assert(sh(string.format("dd if=/dev/zero of=%s bs=4096 count=%d", q(dir .. "/spare"),
                          math.ceil(keep / 4096))))
  sh(string.format("dd if=/dev/zero of=%s bs=65536", q(dir .. "/filler")))   -- until ENOSPC
  os.remove(dir .. "/spare")
end

local function describe_root(name, fn)
  if is_root then return describe(name, fn) end
  describe(name, function()
    pending("needs root to mount a tmpfs (run as root, as CI does)")
  end)
end

describe_root("a journal that cannot be written", function()
  local sb, dir, fs

  lazy_setup(function()
    dir = files.tmpdir("truv-journal-full")
    fs = dir .. "/fs"
    assert(sh("mkdir " .. q(fs)))
    assert(sh("mount -t tmpfs -o size=4m tmpfs " .. q(fs)), "cannot mount a tmpfs")
    sb = sandbox.start{ args = { "--seed-cases", tostring(CASES), "--rng-seed", "23",
      "--mix", "active=1", "--rate-limit", "0", "--realtime", "--time-scale", "100",
      "--cases-out", dir .. "/cases.csv" } }
  end)
  lazy_teardown(function()
    if sb then sb:shutdown() end
    if fs then
      sh("umount " .. q(fs))
      sh("umount " .. q(fs))   -- the read-only remount, if one is left
    end
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  local client
  before_each(function()
    client = { client_id = sb.client_id, secret = sb.secret, base_url = sb.base_url }
  end)
  after_each(function()
    sh("mount -o remount,rw " .. q(fs))
    os.remove(fs .. "/filler")
  end)

  -- One run on a disk that fills once the cases are in; the quota store
  -- beside the journal (as truv-renew keeps it) or elsewhere.
  local function full_disk_run(name, quota_beside, keep)
    local own = sandbox.start{ args = { "--seed-cases", tostring(CASES), "--rng-seed", "23",
      "--mix", "active=1", "--rate-limit", "0", "--realtime", "--time-scale", "100",
      "--cases-out", dir .. "/" .. name .. ".csv" } }
    local c = { client_id = own.client_id, secret = own.secret, base_url = own.base_url }
    local journal = fs .. "/" .. name .. ".journal"
    local quota = not quota_beside and assert(require("truv.quota").sqlite(dir .. "/" .. name ..
                                                                            ".quota")) or nil
    local events = {}
    local summary, err = renewal.run{
      cases = dir .. "/" .. name .. ".csv", journal = journal, client = c, quota = quota,
      rate_per_minute = 0, concurrency = 4, poll = { interval_s = 0.05 },
      on_event = function(ev)
        events[#events + 1] = ev.event
        -- the cases are in; now only a few commits fit
        if ev.event == "run_started" then fill(fs, keep) end
      end,
    }
    assert.is_nil(summary, "the run reported success on a full disk")
    assert.equal("internal", err.kind)
    assert.matches(quota_beside and "full" or "journal.*full", tostring(err))
    assert.equal("run_stopped", events[#events])
    os.remove(fs .. "/filler")

    -- every refresh Truv made has its write-ahead in the journal
    local stats = own:stats()
    local j = assert(core.journal_open(journal))
    local recorded = {}
    for rec in j:each{} do
      if rec.sent_at then recorded[rec.order_id] = rec end
    end
    j:close()
    local refreshed = 0
    for order_id in pairs(stats.refresh.by_order) do
      refreshed = refreshed + 1
      assert.is_truthy(recorded[order_id], "order " .. order_id .. " was refreshed with no record")
    end
    -- the disk filled in the middle of the run, not before it
    assert.is_true(refreshed > 0 and refreshed < CASES, refreshed .. " refreshed")

    -- with room again, the same journal finishes the run: nothing refreshed twice
    summary = assert(renewal.run{ journal = journal, client = c, quota = quota,
                                  rate_per_minute = 0, concurrency = 4,
                                  poll = { interval_s = 0.05 } })
    assert.equal(CASES, summary.routes.done)
    stats = own:stats()
    assert.equal(CASES, stats.refresh.order_refreshes)
    for order_id, s in pairs(stats.refresh.by_order) do
      assert.equal(1, s.refresh_orders, "order " .. order_id .. " refreshed twice")
    end
    if quota then quota:close() end
    own:shutdown()
    os.execute("rm -f " .. q(journal) .. "*")   -- room for the next test
  end

  it("stops a run when the disk fills, and no refresh goes out without a record", function()
    -- room for the first commits (every case started journals the original
    -- order's model it read, some 600 bytes) and a few refreshes
    full_disk_run("journal-only", false, 96 * 1024)
  end)

  it("stops it too when the quota store beside the journal is the first to fail", function()
    full_disk_run("both", true, 160 * 1024)
  end)

  it("refuses a read-only journal before sending anything", function()
    local journal = fs .. "/ro.journal"
    -- a journal that exists, on a file system that went read-only
    local j, jerr = core.journal_open(journal)
    if not j then   -- say what holds the space, should it be missing
      local p = io.popen("LD_PRELOAD= du -ak " .. q(fs) .. " 2>&1")
      error(tostring(jerr) .. "\n" .. p:read("a"))
    end
    j:close()
    assert(sh("mount -o remount,ro " .. q(fs)))
    local before = sb:stats().requests.total
    local summary, err = renewal.run{ cases = dir .. "/cases.csv", journal = journal,
                                      client = client, rate_per_minute = 0 }
    assert.is_nil(summary)
    assert.equal("read_only", err.code)
    -- the command says so and exits 1
    local cmd = string.format("TRUV_CLIENT_ID=%s TRUV_SECRET=%s lua5.4 %s --journal %s "
      .. "--base-url %s %s >%s 2>&1", q(sb.client_id), q(sb.secret), q(BIN), q(journal),
      q(sb.base_url), q(dir .. "/cases.csv"), q(dir .. "/ro.out"))
    local _, _, code = os.execute(cmd)
    assert.equal(1, code)
    assert.matches("[Rr]ead%-only", files.read(dir .. "/ro.out"))
    assert.equal(before, sb:stats().requests.total)
    assert(sh("mount -o remount,rw " .. q(fs)))
  end)
end)
