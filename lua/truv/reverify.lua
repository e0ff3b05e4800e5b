--- Re-verification: what a user needs to reconnect when a refresh cannot
-- go through (an expired connection, changed credentials, MFA, a locked
-- account): either a bridge token in update mode for each link (the app
-- opens Bridge with it), or a new order copying the applicant's name,
-- products, employers and order_number, whose share_url reaches the
-- applicant.
--
--   local link, err = client:reverify(original_order, {     -- a document or its model
--     mode = "order" | "bridge",     -- default "order" (Truv's renewals guide)
--     connections = { "<suborder id>", ... },   -- default: every connection
--     contact = { email = "...", phone = "..." },  -- where Truv sends the new link
--     order = { ... },               -- extra fields for the new order (notes, cc_emails,
--                                    -- email, phone: these win over `contact`)
--   })
--   order mode  -> { mode = "order", order_id =, share_url =, order = <document>,
--                    contact = true | false }
--   bridge mode -> { mode = "bridge", tokens = { { connection_id =, link_id =, bridge_token = } } }
--
-- The contact comes from the caller: Truv's Order has no email or phone to
-- copy (they are request fields only). A new order without one is created
-- all the same, and `contact = false` says that Truv was given nowhere to
-- send the link: nobody was notified, and the caller must send share_url
-- itself.
local core = require "truv.core"
local errors = require "truv.errors"
local refresh = require "truv.refresh"

local type, ipairs, pairs = type, ipairs, pairs

local _M = {}

local MAX_EMPLOYERS = core.lists.limits.connections   -- per order, as the core checks

local function wanted(model, ids)
  if not ids then return model.connections end
  local set, list = {}, {}
  for _, id in ipairs(ids) do set[id] = true end
  for _, c in ipairs(model.connections) do
    if set[c.id] then list[#list + 1] = c end
  end
  return list
end

local function new_order(client, model, conns, contact, extra)
  if not model.first_name or not model.last_name then
    return nil, errors.invalid({ { field = "order", message =
      "the original order has no applicant name to copy" } })
  end
  local params = {
    products = model.products,
    first_name = model.first_name,
    last_name = model.last_name,
    order_number = model.order_number,
  }
  if contact then
    params.email, params.phone = contact.email, contact.phone
  end
  local employers = {}
  for _, c in ipairs(conns) do
    if c.kind == "employers" and c.company_name and #employers < MAX_EMPLOYERS then
      employers[#employers + 1] = { company_name = c.company_name }
    end
  end
  if #employers > 0 then params.employers = employers end
  for k, v in pairs(extra or {}) do params[k] = v end
  local doc, err = client:create_order(params)
  if not doc then return nil, err end
  return { mode = "order", order_id = doc.id, share_url = doc.share_url, order = doc,
           contact = params.email ~= nil or params.phone ~= nil }
end

local function bridge_tokens(client, model, conns)
  if not model.user_id then
    return nil, errors.invalid({ { field = "user_id", message = "the order has no user_id" } })
  end
  local tokens = {}
  for _, c in ipairs(conns) do
    if c.access_token then
      local tok, err = client:create_bridge_token(model.user_id, {
        product_type = c.product_type or model.products[1] or "income",
        access_token = c.access_token,
      })
      if not tok then return nil, err end
      tokens[#tokens + 1] = { connection_id = c.id, link_id = c.link_id,
                              bridge_token = tok.bridge_token }
    end
  end
  if #tokens == 0 then
    return nil, errors.invalid({ { field = "connections", message = "no connected link to update" } })
  end
  return { mode = "bridge", tokens = tokens }
end

_M.is_model = refresh.is_model   -- (kept: this module named it first)

--- Checks reverify's options; raises at `level` (as for error(), from
-- this function) on a wrong one. client:reverify calls it before anything
-- is read or sent.
function _M.check_options(opts, fname, level)
  if opts == nil then return end
  local contact = opts.contact
  if contact ~= nil then
    if type(contact) ~= "table" then
      error("bad option 'contact' to '" .. fname .. "' (table expected, got " .. type(contact) ..
            ")", level)
    end
    for _, k in ipairs{ "email", "phone" } do
      if contact[k] ~= nil and type(contact[k]) ~= "string" then
        error("bad option 'contact." .. k .. "' to '" .. fname .. "' (string expected)", level)
      end
    end
  end
  local mode = opts.mode
  if mode ~= nil and mode ~= "order" and mode ~= "bridge" then
    error("bad option 'mode' to '" .. fname .. "' (\"order\" or \"bridge\" expected)", level)
  end
  if opts.connections ~= nil and type(opts.connections) ~= "table" then
    error("bad option 'connections' to '" .. fname .. "' (a list of suborder ids expected)", level)
  end
end

-- client:reverify checked the options (check_options).
function _M.reverify(client, order, opts)
  opts = opts or {}
  local model, err = refresh.model(order)
  if not model then return nil, err end
  local contact = opts.contact
  if contact ~= nil and (contact.email == "" or contact.phone == "") then
    contact = { email = contact.email ~= "" and contact.email or nil,
                phone = contact.phone ~= "" and contact.phone or nil }
  end
  local conns = wanted(model, opts.connections)
  if opts.mode == "bridge" then return bridge_tokens(client, model, conns) end
  return new_order(client, model, conns, contact, opts.order)
end

return _M
