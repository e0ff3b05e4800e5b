-- The two rockspecs: truv-scm-1 (a checkout) and truv-0.1.0-1 (the release)
-- differ only in version and source; the release names the git tag of the
-- project's version, passes `luarocks lint`, and builds as `luarocks build`
-- does for a user: cloned at its tag, built, truv, truv-renew and
-- truv-sandbox installed. Done with a temporary clone and tree.
local files = require "spec.support.files"

local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
local q = files.quote

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("exit=(%d+)%s*$")), out
end

-- A rockspec's fields (it is Lua assigning globals).
local function load_rockspec(path)
  local env = {}
  local chunk = assert(loadfile(path, "t", env))
  chunk()
  return env
end

local function without(t, keys)
  local c = {}
  for k, v in pairs(t) do
    if not keys[k] then c[k] = v end
  end
  return c
end

local SCM = SRC .. "/rockspec/truv-scm-1.rockspec"
local RELEASE = SRC .. "/rockspec/truv-0.1.0-1.rockspec"

describe("the rockspecs", function()
  it("differ only in version and source", function()
    local scm, release = load_rockspec(SCM), load_rockspec(RELEASE)
    local skip = { version = true, source = true }
    assert.same(without(scm, skip), without(release, skip))
    assert.equal("scm-1", scm.version)
    assert.equal(scm.source.url, release.source.url)
    assert.is_nil(scm.source.tag)
  end)

  it("release the project's version from its git tag", function()
    local release = load_rockspec(RELEASE)
    local cmake = files.read(SRC .. "/CMakeLists.txt")
    local version = cmake:match("project%(lua%-truv VERSION ([%d.]+)")
    assert.equal(version .. "-1", release.version)
    assert.equal(version, require("truv")._VERSION)
    assert.equal("v" .. version, release.source.tag)
    assert.matches("^git%+https://", release.source.url)
    assert.equal("truv-" .. release.version .. ".rockspec", RELEASE:match("[^/]+$"))
  end)

  it("pass luarocks lint", function()
    for _, path in ipairs{ SCM, RELEASE } do
      local code, out = sh("env -u LUA_PATH -u LUA_CPATH -u LD_PRELOAD luarocks lint " .. q(path))
      assert.equal(0, code, path .. ": " .. out)
    end
  end)

  it("build the release from its tag, as luarocks build does", function()
    local tmp = files.tmpdir("truv-release")
    finally(function() os.execute("rm -rf " .. q(tmp)) end)
    local release = load_rockspec(RELEASE)
    -- the repository at the tag: the files a rock is built from, committed
    -- and tagged in a clone named as the real one
    local repo = tmp .. "/" .. release.source.url:match("([^/]+)%.git$")
    local git = "git -c user.name=spec -c user.email=spec@example.invalid -c init.defaultBranch=main"
    local code, out = sh(string.format(
      "mkdir -p %s && cd %s && cp -r CMakeLists.txt core lua sandbox bin rockspec README.md %s/ && " ..
      "cd %s && %s init -q && %s add -A && %s commit -qm release && %s tag %s",
      q(repo), q(SRC), q(repo), q(repo), git, git, git, git, release.source.tag))
    assert.equal(0, code, out)
    -- the rockspec as released, its source pointed at that clone
    local text = files.read(RELEASE)
    local local_url = "git+file://" .. repo
    text = text:gsub('url = "[^"]*"', function() return 'url = "' .. local_url .. '"' end, 1)
    files.write(tmp .. "/" .. RELEASE:match("[^/]+$"), text)
    code, out = sh(string.format(
      "cd %s && env -u LUA_PATH -u LUA_CPATH -u LD_PRELOAD luarocks --lua-version=5.4 --tree=%s " ..
      "build %s --deps-mode=none", q(tmp), q(tmp .. "/tree"), q(RELEASE:match("[^/]+$"))))
    assert.equal(0, code, out)
    -- git's note about cloning a local path (a real release clones over https)
    local build_log = out:gsub("warning: %-%-depth is ignored in local clones[^\n]*\n", "")
    assert.is_nil(build_log:lower():find("warning", 1, true), out)
    local paths = string.format("eval \"$(env -u LUA_PATH -u LUA_CPATH luarocks --lua-version=5.4 " ..
                                "--tree=%s path)\"", q(tmp .. "/tree"))
    code, out = sh(string.format("cd / && env -u LD_PRELOAD sh -c %s", q(paths ..
      " && lua5.4 -e 'print(require(\"truv\")._VERSION)' && " .. tmp .. "/tree/bin/truv-renew " ..
      "--version && " .. tmp .. "/tree/bin/truv-sandbox --version")))
    assert.equal(0, code, out)
    assert.matches("^0%.1%.0\ntruv%-renew 0%.1%.0\ntruv%-sandbox 0%.1%.0", out)
  end)
end)
