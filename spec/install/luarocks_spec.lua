-- The README's install line works: `luarocks --lua-version=5.4 make
-- rockspec/truv-scm-1.rockspec --deps-mode=none` builds and installs a
-- module that `require "truv"` finds from any directory, and the
-- truv-renew command. Done in a copy of the sources and a private tree, so
-- nothing outside a temporary directory changes.
local files = require "spec.support.files"

local SRC = os.getenv("TRUV_SOURCE_DIR") or "."

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  local code = tonumber(out:match("exit=(%d+)%s*$"))
  return code, out
end

local q = files.quote

describe("luarocks make", function()
  local tmp
  setup(function()
    tmp = files.tmpdir("truv-rock")
  end)
  teardown(function() if tmp then os.execute("rm -rf " .. q(tmp)) end end)

  it("installs truv and truv-renew into a tree, usable from anywhere", function()
    local src = tmp .. "/src"
    local code, out = sh(string.format(
      "mkdir -p %s && cd %s && cp -r CMakeLists.txt core lua sandbox bin rockspec %s/",
      q(src), q(SRC), q(src)))
    assert.equal(0, code, out)
    code, out = sh(string.format(
      "cd %s && env -u LUA_PATH -u LUA_CPATH -u LD_PRELOAD luarocks --lua-version=5.4 --tree=%s "
      .. "make rockspec/truv-scm-1.rockspec --deps-mode=none", q(src), q(tmp .. "/tree")))
    assert.equal(0, code, out)
    assert.is_nil(out:lower():find("warning", 1, true), out)
    local paths = string.format("eval \"$(env -u LUA_PATH -u LUA_CPATH luarocks --lua-version=5.4 "
                                .. "--tree=%s path)\"", q(tmp .. "/tree"))
    code, out = sh(string.format(
      "cd / && env -u LD_PRELOAD sh -c %s", q(paths .. " && lua5.4 -e 'local t = require \"truv\"; "
      .. "print(t._VERSION, t.route({ task = \"login_error\" }).route, "
      .. "package.searchpath(\"truv.core\", package.cpath))'")))
    assert.equal(0, code, out)
    assert.matches("0%.1%.0%s+reverify%s+" .. tmp:gsub("%p", "%%%0") .. "/tree/", out)
    -- every Lua module of the sources is installed in the tree
    local names = {}
    local find = assert(io.popen("cd " .. q(SRC .. "/lua") .. " && find truv -name '*.lua'"))
    for rel in find:lines() do names[#names + 1] = rel:gsub("%.lua$", ""):gsub("/", ".") end
    find:close()
    assert.is_true(#names > 20)
    code, out = sh(string.format("cd / && env -u LD_PRELOAD sh -c %s", q(paths .. " && lua5.4 -e '"
      .. "for m in (\"" .. table.concat(names, " ") .. "\"):gmatch(\"%S+\") do "
      .. "local p = package.searchpath(m, package.path) "
      .. "print(m, p and p:find(\"" .. tmp .. "/tree/\", 1, true) and \"installed\" or \"missing\") end'")))
    assert.equal(0, code, out)
    for _, m in ipairs(names) do assert.matches(m:gsub("%p", "%%%0") .. "%s+installed", out) end
    code, out = sh(string.format("cd / && env -u LD_PRELOAD sh -c %s",
                                 q(paths .. " && " .. tmp .. "/tree/bin/truv-renew --version")))
    assert.equal(0, code, out)
    assert.matches("truv%-renew 0%.1%.0", out)
    -- the sandbox comes with the rock, to test an integration against
    code, out = sh(string.format("cd / && env -u LD_PRELOAD %s/tree/bin/truv-sandbox --version",
                                 q(tmp)))
    assert.equal(0, code, out)
    assert.matches("truv%-sandbox 0%.1%.0", out)
  end)

  -- The OpenResty target: luarocks for Lua 5.1 builds the LuaJIT flavour,
  -- without a compiler warning (plain Lua 5.1 headers lack what LuaJIT has),
  -- and documents are plain tables there, as the README says.
  it("builds the LuaJIT flavour for luarocks --lua-version=5.1, warning-free", function()
    local src = tmp .. "/src51"
    local code, out = sh(string.format(
      "mkdir -p %s && cd %s && cp -r CMakeLists.txt core lua sandbox bin rockspec %s/",
      q(src), q(SRC), q(src)))
    assert.equal(0, code, out)
    code, out = sh(string.format(
      "cd %s && env -u LUA_PATH -u LUA_CPATH -u LD_PRELOAD luarocks --lua-version=5.1 --tree=%s "
      .. "make rockspec/truv-scm-1.rockspec --deps-mode=none", q(src), q(tmp .. "/tree51")))
    assert.equal(0, code, out)
    -- neither the compiler's "warning:" nor CMake's "CMake Warning"
    assert.is_nil(out:lower():find("warning", 1, true), out)
    local paths = string.format("eval \"$(env -u LUA_PATH -u LUA_CPATH luarocks --lua-version=5.1 "
                                .. "--tree=%s path)\"", q(tmp .. "/tree51"))
    code, out = sh(string.format("cd / && env -u LD_PRELOAD sh -c %s", q(paths ..
      " && luajit -e 'local t = require \"truv\"; local core = require \"truv.core\"; " ..
      "print(t._VERSION, type(core.decode(\"{\\\"a\\\":[1]}\")), " ..
      "package.searchpath(\"truv.core\", package.cpath))'")))
    assert.equal(0, code, out)
    assert.matches("0%.1%.0%s+table%s+" .. tmp:gsub("%p", "%%%0") .. "/tree51/lib/lua/5%.1/", out)
  end)
end)
