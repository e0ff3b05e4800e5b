std = "lua54+luajit"
globals = {}
read_globals = { "ngx" }
max_line_length = 110
files["spec/"] = { std = "+busted" }
files["lua/truv/transport/cosocket.lua"] = { read_globals = { "ngx" } }
exclude_files = { "build/", "build-*/" }
-- OpenResty handlers set ngx.status and ngx.header
files["examples/openresty/"] = { globals = { "ngx" } }
files["spec/openresty/lua/"] = { globals = { "ngx" } }
