-- make demo as a newcomer sees it without a terminal (CI, `make demo | tee`):
-- a few lines on the screen, the summary among them, and the thousands of
-- case events in a log file whose place the screen tells.
local files = require "spec.support.files"
local cjson = require("cjson").new()

local SRC = os.getenv("TRUV_SOURCE_DIR") or "."
local BUILD = os.getenv("TRUV_BUILD_DIR") or (SRC .. "/build/release")
local q = files.quote

describe("make demo without a terminal", function()
  local dir, code, screen

  lazy_setup(function()
    dir = files.tmpdir("truv-demo")
    local _, _, c = os.execute(string.format("TRUV_DEMO_OUT=%s timeout 240 %s %s >%s 2>&1 </dev/null",
                                             q(dir .. "/demo"), q(SRC .. "/scripts/demo"),
                                             q(BUILD), q(dir .. "/screen")))
    code, screen = c, files.read(dir .. "/screen") or ""
  end)

  lazy_teardown(function()
    if dir then os.execute("rm -rf " .. q(dir)) end
  end)

  it("prints a few lines, the summary among them, and says where the log is", function()
    assert.equal(0, code, screen)
    local n = select(2, screen:gsub("\n", ""))
    assert.is_true(n < 45, n .. " lines on the screen:\n" .. screen)
    assert.is_nil(screen:find("{", 1, true))                    -- no JSON line
    assert.matches("\ntotal +1000 +100%.0%%\n", screen)
    local log = dir .. "/demo/progress.log"
    assert.truthy(screen:find("every case event is logged to " .. log, 1, true))
    assert.truthy(screen:find("log: +" .. log:gsub("%p", "%%%0")))
    assert.truthy(screen:find("report: +" .. (dir .. "/demo/report/report.html"):gsub("%p", "%%%0")))
  end)

  it("runs the cases again waiting for webhooks, which costs fewer requests per case", function()
    local polled, hooked = screen:match("requests to Truv per case: ([%d.]+) polling, ([%d.]+) with webhooks")
    assert.truthy(polled, screen)
    assert.is_true(tonumber(hooked) < tonumber(polled), screen)
    local finished
    for line in assert(files.read(dir .. "/demo/progress-webhooks.log")):gmatch("[^\n]+") do
      if line:find('"event":"run_finished"', 1, true) then finished = line end
    end
    assert.truthy(finished, "the webhook run did not finish")
    assert.matches('"settled":1000', finished)        -- every refresh settled by its webhooks
    assert.matches('"fallbacks":0', finished)
    assert.matches('"routes":{"done":700,', finished)
  end)

  it("keeps every case event in the log, as JSON lines, without a link", function()
    local text = assert(files.read(dir .. "/demo/progress.log"))
    local routed, n = 0, 0
    for line in text:gmatch("[^\n]+") do
      n = n + 1
      local ev = cjson.decode(line)
      if ev.event == "routed" then routed = routed + 1 end
    end
    assert.equal(1000, routed)
    assert.is_true(n > 3000)
    assert.is_nil(text:find("bridge_token", 1, true))
    assert.is_nil(text:find("share_url", 1, true))
  end)
end)
