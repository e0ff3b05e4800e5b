/* Webhooks for Lua (see truv/webhook.h).
 *
 *   core.webhook_verify(body, header, secrets) -> true | nil, err
 *     header:  the X-WEBHOOK-SIGN value (a string, or nil when absent), or
 *              the request's headers table, searched case-insensitively
 *              (a header given several times, as a list: the first value)
 *     secrets: the access secret, or a list of them (key rotation), or
 *              keys from core.webhook_keys
 *   core.webhook_keys(secrets) -> keys | nil, err
 *     the secrets prepared once (their keyed HMAC states), for receivers
 *     that verify many deliveries; tostring(keys) shows only the count
 *   core.webhook_sign(body, secret) -> "v1=<hex>" | nil, err
 *   core.webhook_parse(body [, "view"|"table"]) -> event | nil, err
 *     event: { kind = type = event_type = "task-status-updated" (as sent),
 *              category = "task-status-updated" | ... | "data" | "unknown",
 *              webhook_id, updated_at = epoch s (falls back to
 *              event_created_at, else 0), updated_at_iso (as sent),
 *              event_created_at = epoch s (0 when absent or unreadable),
 *              event_created_at_iso, user_id, template_id, order_id,
 *              order_number, employer_id, link_id, task_id, product,
 *              data_source, tracking_info, status,
 *              document = the whole payload }
 *     Optional fields are nil when absent, JSON null or not strings.
 *
 * Wrong argument types raise; bodies, headers and secrets that do not
 * verify or parse return nil, err. */
#include <string.h>
#include <strings.h>

#include "binding.h"
#include "truv/webhook.h"

#define MAX_SECRETS 16
#define KEYS_MT "truv.webhook.keys"
#define HEADER_LOWER "x-webhook-sign"

/* ---- verify ---- */

/* The first value of a header: a string, or the first string of a list. */
static void push_first_value(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TTABLE) lua_rawgeti(L, idx, 1);
  else lua_pushvalue(L, idx);
  if (lua_type(L, -1) != LUA_TSTRING) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
}

/* Replaces the headers table at idx by the X-WEBHOOK-SIGN value (or nil).
 * The lowercase name (nginx, lua-resty-http) is looked up first; otherwise
 * the byte-wise smallest name equal to it ignoring case wins, so that the
 * answer never depends on the table's iteration order. */
static void take_header(lua_State *L, int idx) {
  const char *best = NULL;
  lua_pushliteral(L, HEADER_LOWER);
  lua_rawget(L, idx);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushnil(L); /* the best value so far */
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      size_t n;
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &n) : NULL;
      if (k && n == sizeof HEADER_LOWER - 1 && strcasecmp(k, HEADER_LOWER) == 0 &&
          (!best || strcmp(k, best) < 0)) {
        best = k; /* the key stays alive in the table */
        lua_replace(L, -3);
      } else {
        lua_pop(L, 1);
      }
    }
  }
  push_first_value(L, lua_gettop(L));
  lua_replace(L, idx);
  lua_pop(L, 1);
}

/* Collects the secret or list of secrets at idx; the strings stay alive in
 * the argument. Raises on anything but strings. */
static size_t check_secrets(lua_State *L, int idx, const char *out[MAX_SECRETS]) {
  size_t i, n;
  if (lua_type(L, idx) == LUA_TSTRING) {
    out[0] = lua_tostring(L, idx);
    return 1;
  }
  if (lua_type(L, idx) != LUA_TTABLE)
    luaL_argerror(L, idx,
                  lua_pushfstring(L,
                                  "a secret, a list of secrets or webhook keys "
                                  "expected, got %s",
                                  luaL_typename(L, idx)));
  n = lua_rawlen(L, idx);
  if (n > MAX_SECRETS) luaL_argerror(L, idx, lua_pushfstring(L, "at most %d secrets", MAX_SECRETS));
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (int)i + 1);
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_argerror(L, idx,
                    lua_pushfstring(L, "secret #%d is a %s, a string expected", (int)i + 1,
                                    luaL_typename(L, -1)));
    out[i] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  return n;
}

static int l_webhook_verify(lua_State *L) {
  size_t len, n;
  const char *body = luaL_checklstring(L, 1, &len);
  const char *secrets[MAX_SECRETS];
  truv_webhook_keys **keys;
  truv_err err;
  int t = lua_type(L, 2), rc;
  if (t == LUA_TTABLE) take_header(L, 2);
  else if (t != LUA_TSTRING && t != LUA_TNIL && t != LUA_TNONE)
    luaL_argerror(L, 2,
                  lua_pushfstring(L,
                                  "the X-WEBHOOK-SIGN value or a headers table "
                                  "expected, got %s",
                                  luaL_typename(L, 2)));
  truv_err_clear(&err);
  if ((keys = luaL_testudata(L, 3, KEYS_MT))) {
    rc = truv_webhook_verify_keys(*keys, body, len, lua_tostring(L, 2), &err);
  } else {
    n = check_secrets(L, 3, secrets);
    rc = truv_webhook_verify(body, len, lua_tostring(L, 2), secrets, n, &err);
  }
  if (rc) return truv_fail(L, &err);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- prepared secrets ---- */

/* webhook_keys(secret_or_list) -> keys | nil, err */
static int l_webhook_keys(lua_State *L) {
  const char *secrets[MAX_SECRETS];
  size_t n = check_secrets(L, 1, secrets);
  truv_webhook_keys **slot = lua_newuserdata(L, sizeof *slot);
  truv_err err;
  *slot = NULL;
  luaL_setmetatable(L, KEYS_MT);
  truv_err_clear(&err);
  if (truv_webhook_keys_new(secrets, n, slot, &err)) return truv_fail(L, &err);
  return 1;
}

static int keys_gc(lua_State *L) {
  truv_webhook_keys **slot = luaL_checkudata(L, 1, KEYS_MT);
  truv_webhook_keys_free(*slot);
  *slot = NULL;
  return 0;
}

/* Says how many secrets, never which. */
static int keys_tostring(lua_State *L) {
  truv_webhook_keys **slot = luaL_checkudata(L, 1, KEYS_MT);
  int n = (int)truv_webhook_keys_count(*slot);
  lua_pushfstring(L, "truv.webhook.keys: %d secret%s", n, n == 1 ? "" : "s");
  return 1;
}

/* ---- sign ---- */

static int l_webhook_sign(lua_State *L) {
  size_t len;
  const char *body = luaL_checklstring(L, 1, &len);
  const char *secret = luaL_checkstring(L, 2);
  char sig[TRUV_WEBHOOK_SIG_SIZE];
  truv_err err;
  int rc = truv_webhook_sign(body, len, secret, sig);
  if (rc == 0) {
    lua_pushstring(L, sig);
    return 1;
  }
  truv_err_clear(&err);
  if (rc == TRUV_EINVALID) truv_err_set(&err, TRUV_EINVALID, "no_secret", "an empty secret");
  else truv_err_set(&err, TRUV_EINTERNAL, "crypto", "OpenSSL could not compute an HMAC");
  return truv_fail(L, &err);
}

/* ---- parse ---- */

/* The event's keys, made once into an upvalue of webhook_parse (an array
 * of interned strings): an event sets twenty fields, and fetching a ready
 * key is cheaper than turning a C string into a Lua key each time. */
enum {
  K_KIND = 1,
  K_TYPE,
  K_EVENT_TYPE,
  K_CATEGORY,
  K_WEBHOOK_ID,
  K_UPDATED_AT,
  K_UPDATED_AT_ISO,
  K_EVENT_CREATED_AT,
  K_EVENT_CREATED_AT_ISO,
  K_USER_ID,
  K_TEMPLATE_ID,
  K_ORDER_ID,
  K_ORDER_NUMBER,
  K_EMPLOYER_ID,
  K_LINK_ID,
  K_TASK_ID,
  K_PRODUCT,
  K_DATA_SOURCE,
  K_TRACKING_INFO,
  K_STATUS,
  K_DOCUMENT,
  K_COUNT
};

static const char *const event_keys[K_COUNT] = {
  NULL,         "kind",        "type",           "event_type",       "category",
  "webhook_id", "updated_at",  "updated_at_iso", "event_created_at", "event_created_at_iso",
  "user_id",    "template_id", "order_id",       "order_number",     "employer_id",
  "link_id",    "task_id",     "product",        "data_source",      "tracking_info",
  "status",     "document",
};

static void push_keys(lua_State *L) {
  int k;
  lua_createtable(L, K_COUNT - 1, 0);
  for (k = 1; k < K_COUNT; k++) {
    lua_pushstring(L, event_keys[k]);
    lua_rawseti(L, -2, k);
  }
}

/* event[key] = the value at idx; the event is on top of the stack. */
static void set_value(lua_State *L, int key, int idx) {
  idx = lua_absindex(L, idx);
  lua_rawgeti(L, lua_upvalueindex(1), key);
  lua_pushvalue(L, idx);
  lua_rawset(L, -3);
}

static void set_str(lua_State *L, int key, const char *v) {
  if (!v) return;
  lua_rawgeti(L, lua_upvalueindex(1), key);
  lua_pushlstring(L, v, strlen(v)); /* skips lua_pushstring's cache probe */
  lua_rawset(L, -3);
}

static void set_num(lua_State *L, int key, double v) {
  lua_rawgeti(L, lua_upvalueindex(1), key);
  lua_pushnumber(L, v);
  lua_rawset(L, -3);
}

/* The event's fields; the document is added by the caller. */
static void push_event(lua_State *L, const truv_webhook_event *ev) {
  lua_pushlstring(L, ev->event_type, strlen(ev->event_type));
  lua_createtable(L, 0, K_COUNT);
  set_value(L, K_KIND, -2);
  set_value(L, K_TYPE, -2);
  set_value(L, K_EVENT_TYPE, -2);
  lua_remove(L, -2);
  set_str(L, K_CATEGORY, truv_webhook_kind_name(ev->kind));
  set_str(L, K_WEBHOOK_ID, ev->webhook_id);
  set_num(L, K_UPDATED_AT, ev->updated_at);
  set_str(L, K_UPDATED_AT_ISO, ev->updated_at_iso);
  set_num(L, K_EVENT_CREATED_AT, ev->event_created);
  set_str(L, K_EVENT_CREATED_AT_ISO, ev->event_created_at);
  set_str(L, K_USER_ID, ev->user_id);
  set_str(L, K_TEMPLATE_ID, ev->template_id);
  set_str(L, K_ORDER_ID, ev->order_id);
  set_str(L, K_ORDER_NUMBER, ev->order_number);
  set_str(L, K_EMPLOYER_ID, ev->employer_id);
  set_str(L, K_LINK_ID, ev->link_id);
  set_str(L, K_TASK_ID, ev->task_id);
  set_str(L, K_PRODUCT, ev->product);
  set_str(L, K_DATA_SOURCE, ev->data_source);
  set_str(L, K_TRACKING_INFO, ev->tracking_info);
  set_str(L, K_STATUS, ev->status);
}

/* Owns a parsed document while the event's fields are copied into Lua in
 * table mode (the document is freed once converted), so that an error
 * raised half-way (out of memory) frees it too. */
#define ANCHOR_MT "truv.webhook.anchor"

static int anchor_gc(lua_State *L) {
  truv_json **slot = luaL_checkudata(L, 1, ANCHOR_MT);
  truv_json_free(*slot);
  *slot = NULL;
  return 0;
}

static int l_webhook_parse(lua_State *L) {
  size_t len;
  const char *body = luaL_checklstring(L, 1, &len);
  int mode = truv_check_docmode(L, 2, TRUV_DOC_DEFAULT);
  truv_webhook_event ev;
  truv_json **slot;
  truv_err err;
  truv_err_clear(&err);
  if (truv_webhook_parse(body, len, &ev, &err)) return truv_fail(L, &err);
  if (mode == TRUV_DOC_VIEW) {
    /* the view owns the document from here on; the strings live as long */
    truv_push_document(L, ev.doc, mode);
    push_event(L, &ev);
  } else {
    slot = lua_newuserdata(L, sizeof *slot);
    *slot = ev.doc;
    luaL_setmetatable(L, ANCHOR_MT);
    push_event(L, &ev);
    *slot = NULL;
    truv_push_document(L, ev.doc, mode);
    lua_replace(L, -3); /* the document where the anchor was */
  }
  set_value(L, K_DOCUMENT, -2); /* the stack: document, event */
  return 1;
}

void truv_open_webhook(lua_State *L) {
  static const luaL_Reg funcs[] = {{"webhook_verify", l_webhook_verify},
                                   {"webhook_keys", l_webhook_keys},
                                   {"webhook_sign", l_webhook_sign},
                                   {NULL, NULL}};
  luaL_newmetatable(L, ANCHOR_MT);
  lua_pushcfunction(L, anchor_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, KEYS_MT);
  lua_pushcfunction(L, keys_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, keys_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "truv.webhook.keys");
  lua_setfield(L, -2, "__name");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable"); /* nothing in Lua reaches the key material */
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
  push_keys(L);
  lua_pushcclosure(L, l_webhook_parse, 1);
  lua_setfield(L, -2, "webhook_parse");
  lua_pushliteral(L, TRUV_WEBHOOK_HEADER);
  lua_setfield(L, -2, "WEBHOOK_HEADER");
}
