-- bin/truv-renew run as a user runs it, for the specs:
--   local renew = require("spec.support.renew").run
--   local code, out, err = renew(dir, { "--journal", ..., cases }, env)
-- env: { NAME = value | false (unset) } on top of the sandbox's default
-- credentials (TRUV_CLIENT_ID, TRUV_SECRET). Standard input is empty;
-- stdout and stderr go to DIR/out and DIR/err and are returned with the
-- exit code.
local files = require "spec.support.files"

local quote, read = files.quote, files.read

local M = {
  BIN = (os.getenv("TRUV_SOURCE_DIR") or ".") .. "/bin/truv-renew",
  CLIENT_ID = "sandbox-client-id",
  SECRET = "sandbox-secret",
}

function M.run(dir, args, env)
  local set, unset = {}, {}
  local vars = { TRUV_CLIENT_ID = M.CLIENT_ID, TRUV_SECRET = M.SECRET }
  for k, v in pairs(env or {}) do vars[k] = v end
  for k, v in pairs(vars) do
    if v == false then unset[#unset + 1] = "-u " .. k else set[#set + 1] = k .. "=" .. quote(v) end
  end
  local argv = {}
  for i, a in ipairs(args) do argv[i] = quote(a) end
  -- env wants its -u options first
  local cmd = string.format("env %s %s lua5.4 %s %s >%s/out 2>%s/err </dev/null",
                            table.concat(unset, " "), table.concat(set, " "), quote(M.BIN),
                            table.concat(argv, " "), quote(dir), quote(dir))
  local _, _, code = os.execute(cmd)
  return code, read(dir .. "/out") or "", read(dir .. "/err") or ""
end

return M
