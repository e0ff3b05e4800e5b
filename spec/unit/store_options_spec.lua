-- A store that cannot open is never silently replaced: `quota =
-- truv.quota.sqlite(path)` on a path that cannot be written is nil, which
-- truv.new cannot tell from no option at all, and the client used to run on
-- a private in-memory quota without a word (the same for a receiver's
-- `dedupe`). Now a store is named by a path that truv.new and truv.receiver
-- open themselves (failing loudly), "memory" chooses memory, an absent
-- option is the in-memory default said through the logger, and
-- client:describe() / receiver:describe() tell which store is in use.
local files = require "spec.support.files"
local truv = require "truv"

local CREDS = { client_id = "client-id", secret = "secret", base_url = "http://127.0.0.1:1/v1/" }

local function new(extra)
  local o = {}
  for k, v in pairs(CREDS) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return truv.new(o)
end

describe("the stores a client and a receiver are configured with", function()
  local dir, unwritable
  lazy_setup(function()
    dir = files.tmpdir("truv-store-options")
    -- a path under a regular file: no process can make it, root included
    files.write(dir .. "/plain", "")
    unwritable = dir .. "/plain/quota.db"
  end)
  lazy_teardown(function() os.execute("rm -rf " .. files.quote(dir)) end)

  it("refuses to make a client whose quota store cannot be opened", function()
    local client, err = new{ quota = unwritable }
    assert.is_nil(client)
    assert.equal("internal", err.kind)
    assert.matches("cannot open the quota store " .. unwritable:gsub("%p", "%%%0"), err.message)
    -- a malformed Redis URL is named, not taken for a file
    client, err = new{ quota = "redis://127.0.0.1:99999/0" }
    assert.is_nil(client)
    assert.equal("invalid", err.kind)
    assert.matches("a Redis port is 1 to 65535", err.message)
    -- a Redis nothing answers at fails the client loudly (nothing listens on
    -- a port just released)
    local probe = assert(require("socket").bind("127.0.0.1", 0))
    local _, port = probe:getsockname()
    probe:close()
    client, err = new{ quota = "redis://127.0.0.1:" .. port .. "/0" }
    assert.is_nil(client)
    assert.equal("internal", err.kind)
    assert.equal("store_unavailable", err.code)
    assert.matches("quota store is unavailable", err.message)
    assert.has_error(function() new{ quota = 3 } end)
  end)

  it("opens a quota store from a path, and says which store it uses", function()
    local path = dir .. "/quota.db"
    local client = assert(new{ quota = path })
    assert.same({ base_url = CREDS.base_url, transport = "curl",
                  quota = { kind = "sqlite", path = path, default = false } }, client:describe())
    assert.equal(path, client.quota.path)
    client:close()
    local store = assert(truv.quota.sqlite(path))
    client = assert(new{ quota = store })
    assert.same({ kind = "sqlite", path = path, default = false }, client:describe().quota)
    client:close()
    store:close()
    client = assert(new{ quota = false })
    assert.same({ kind = "none", default = false }, client:describe().quota)
    assert.is_nil(client.quota)
    client:close()
  end)

  it("says in its log when the quota is the in-memory default, and not when chosen", function()
    local logged = {}
    local function logger(level, ev) logged[#logged + 1] = { level = level, event = ev } end
    local client = assert(new{ logger = logger })
    assert.same({ kind = "memory", default = true }, client:describe().quota)
    assert.equal("warn", logged[1].level)
    assert.equal("quota_default", logged[1].event.event)
    assert.matches("lost when the process ends", logged[1].event.message)
    -- the first info line says what the client works with
    assert.equal("client", logged[2].event.event)
    assert.equal("memory", logged[2].event.quota)
    client:close()
    logged = {}
    client = assert(new{ logger = logger, quota = "memory" })
    assert.same({ kind = "memory", default = false }, client:describe().quota)
    for _, l in ipairs(logged) do assert.are_not.equal("warn", l.level) end
    client:close()
    -- and the trap itself: a store that failed to open is nil, the default is used,
    -- and the log says so
    logged = {}
    local failed = truv.quota.sqlite(unwritable)
    assert.is_nil(failed)
    client = assert(new{ logger = logger, quota = failed })
    assert.equal("quota_default", logged[1].event.event)
    client:close()
  end)

  it("refuses a receiver whose dedupe store cannot be opened, and describes the one it uses",
     function()
    local r, err = truv.receiver{ secrets = "s", dedupe = unwritable }
    assert.is_nil(r)
    assert.matches("cannot open the de%-duplication store", err.message)
    local path = dir .. "/hooks.db"
    r = assert(truv.receiver{ secrets = "s", dedupe = path })
    assert.same({ dedupe = { kind = "sqlite", path = path, default = false }, facts = false },
                r:describe())
    local logged = {}
    r = assert(truv.receiver{ secrets = "s",
                              logger = function(level, ev) logged[#logged + 1] = { level, ev } end })
    assert.same({ kind = "memory", default = true }, r:describe().dedupe)
    assert.equal("warn", logged[1][1])
    assert.equal("dedupe_default", logged[1][2].event)
    logged = {}
    r = assert(truv.receiver{ secrets = "s", dedupe = "memory",
                              logger = function(level, ev) logged[#logged + 1] = { level, ev } end })
    assert.same({}, logged)
    assert.same({ kind = "memory", default = false }, r:describe().dedupe)
    assert.has_error(function() truv.receiver{ secrets = "s", dedupe = 42 } end)
  end)

  it("makes a new SQLite store readable by its owner only", function()
    local path = dir .. "/private.db"
    local store = assert(truv.quota.sqlite(path))
    store:close()
    local p = assert(io.popen("stat -c %a " .. files.quote(path)))
    assert.equal("600", p:read("l"))
    p:close()
  end)
end)
