-- The READMEs say what exists: every relative link of every README.md
-- resolves to a file of the repository (and an anchor to a heading there),
-- README.md names every option truv.new and the client's methods accept,
-- every truv-renew option its commands use is one truv-renew knows, and the
-- nginx server it shows in front of `truv-renew --listen` passes `nginx -t`.
local files = require "spec.support.files"
local client = require "truv.client"
local refresh = require "truv.refresh"

local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
local q = files.quote

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"exit=$?\""))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("exit=(%d+)%s*$")), out
end

local function readmes()
  local list = {}
  local p = assert(io.popen("cd " .. q(SRC) .. " && find . -name README.md -not -path './build*' " ..
                            "-not -path './.git/*' | sort"))
  for line in p:lines() do list[#list + 1] = line:gsub("^%./", "") end
  p:close()
  assert(#list >= 4, "README.md files not found under " .. SRC)
  return list
end

-- The text outside fenced code blocks, and the fenced blocks by language.
local function split(text)
  local prose, blocks, lang, cur = {}, {}, nil, nil
  for line in (text .. "\n"):gmatch("(.-)\n") do
    local fence = line:match("^```(%S*)")
    if fence and not cur then
      cur, lang = {}, fence
    elseif fence then
      blocks[#blocks + 1] = { lang = lang, text = table.concat(cur, "\n") }
      cur = nil
    elseif cur then
      cur[#cur + 1] = line
    else
      prose[#prose + 1] = line
    end
  end
  return table.concat(prose, "\n"), blocks
end

-- GitHub's anchor for a heading.
local function slug(heading)
  return (heading:lower():gsub("[^%w%s_-]", ""):gsub("%s", "-"))
end

local function anchors(path)
  local set = {}
  local text = files.read(path) or ""
  local prose = split(text)
  for h in prose:gmatch("\n#+%s+([^\n]+)") do set[slug(h)] = true end
  local first = text:match("^#+%s+([^\n]+)")
  if first then set[slug(first)] = true end
  return set
end

local function exists(path)
  return (sh("test -e " .. q(path))) == 0
end

describe("the READMEs", function()
  it("link only to files of the repository, and to headings that exist", function()
    local checked, broken = 0, {}
    for _, readme in ipairs(readmes()) do
      local dir = readme:match("^(.*)/[^/]*$") or "."
      local prose = split(files.read(SRC .. "/" .. readme))
      for target in prose:gmatch("%]%(([^)%s]+)%)") do
        if not target:match("^%a[%w+.-]*:") then        -- not a URL
          checked = checked + 1
          local path, anchor = target:match("^([^#]*)#?(.*)$")
          local full = path == "" and (SRC .. "/" .. readme) or (SRC .. "/" .. dir .. "/" .. path)
          if not exists(full) then
            broken[#broken + 1] = readme .. ": " .. target .. " (no such file)"
          elseif anchor ~= "" and full:match("%.md$") and not anchors(full)[anchor] then
            broken[#broken + 1] = readme .. ": " .. target .. " (no such heading)"
          end
        end
      end
    end
    assert.same({}, broken)
    assert.is_true(checked >= 5, "only " .. checked .. " links found")
  end)

  it("name every option of truv.new and of the client's methods", function()
    local text = files.read(SRC .. "/README.md")
    local spans = {}
    for span in text:gmatch("`([^`\n]+)`") do spans[#spans + 1] = span end
    for _, b in ipairs(select(2, split(text))) do spans[#spans + 1] = b.text end
    local function named(name, plain)
      for _, span in ipairs(spans) do
        if plain and span:find(name, 1, true) then return true end
        if not plain and span:find("%f[%w_]" .. name:gsub("%p", "%%%0") .. "%f[^%w_]") then
          return true
        end
      end
      return false
    end
    local missing = {}
    for name in pairs(client.OPTIONS) do
      if not named(name) then missing[#missing + 1] = name end
    end
    for name in pairs(client.RETRY_OPTIONS) do
      if not named(name) then missing[#missing + 1] = "retry." .. name end
    end
    for name in pairs(refresh.DEFAULTS) do
      if not named("refresh." .. name, true) then missing[#missing + 1] = "refresh." .. name end
    end
    for name in pairs(client.CALL_OPTIONS) do
      if not named(name) then missing[#missing + 1] = "per call: " .. name end
    end
    table.sort(missing)
    assert.same({}, missing)
  end)

  it("use only options truv-renew knows in its commands", function()
    local code, help = sh("cd " .. q(SRC) .. " && lua5.4 bin/truv-renew --help")
    assert.equal(0, code, help)
    local known = {}
    for flag in help:gmatch("%-%-[%w-]+") do known[flag] = true end
    local unknown, used = {}, 0
    for _, readme in ipairs(readmes()) do
      local text = files.read(SRC .. "/" .. readme)
      local lines = {}
      for _, b in ipairs(select(2, split(text))) do
        for line in b.text:gmatch("[^\n]+") do lines[#lines + 1] = line end
      end
      for span in text:gmatch("`([^`\n]+)`") do lines[#lines + 1] = span end
      for _, line in ipairs(lines) do
        local cmd = line:match("truv%-renew%s+(.*)$")
        if cmd then
          for flag in cmd:gmatch("%f[%-]%-%-[%a][%w-]*") do
            used = used + 1
            if not known[flag] then unknown[#unknown + 1] = readme .. ": " .. flag end
          end
        end
      end
    end
    assert.same({}, unknown)
    assert.is_true(used >= 5)
  end)

  it("show an nginx server in front of truv-renew --listen that nginx accepts", function()
    local _, blocks = split(files.read(SRC .. "/README.md"))
    local conf
    for _, b in ipairs(blocks) do
      if b.lang == "nginx" and b.text:find("proxy_pass http://127.0.0.1:8080", 1, true) then
        conf = b.text
      end
    end
    assert(conf, "README.md shows no nginx server for --listen")
    local dir = files.tmpdir("truv-readme-nginx")
    finally(function() os.execute("rm -rf " .. q(dir)) end)
    local code, out = sh(string.format(
      "LD_PRELOAD= openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes " ..
      "-keyout %s/key.pem -out %s/cert.pem -days 1 -subj /CN=renewals.example.org",
      q(dir), q(dir)))
    assert.equal(0, code, out)
    conf = conf:gsub("/etc/letsencrypt/live/renewals%.example%.org/fullchain%.pem", dir .. "/cert.pem")
               :gsub("/etc/letsencrypt/live/renewals%.example%.org/privkey%.pem", dir .. "/key.pem")
    files.write(dir .. "/nginx.conf", table.concat({
      "pid " .. dir .. "/nginx.pid;", "error_log " .. dir .. "/error.log;",
      "events {}", "http {", "access_log off;", conf, "}" }, "\n"))
    code, out = sh(string.format("LD_PRELOAD= /usr/sbin/nginx -t -p %s -c %s/nginx.conf -e %s/error.log",
                                 q(dir), q(dir), q(dir)))
    assert.equal(0, code, out)
    assert.matches("test is successful", out)
  end)
end)
