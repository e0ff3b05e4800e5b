/* Documents: Truv's JSON as Lua values.
 *
 * A document is parsed once by cJSON. It reaches Lua in one of two forms:
 *
 *  - a view (the default where the interpreter honours __pairs): a read-only
 *    userdata over one node of the parsed tree. Indexing materialises only
 *    what is touched: scalars become Lua values, objects and arrays become
 *    further views. #, ipairs (5.4), pairs and == work; totable() makes a
 *    plain, mutable copy.
 *  - plain tables, converted in full.
 *
 * Layout of a view: { node, root, cursor }. `root` is shared by every view
 * of one parse and counts them; the tree is freed when the last view is
 * collected. `cursor`/`cursor_i` remember the last array element visited, so
 * walking an array in order is linear although cJSON arrays are linked lists.
 *
 * JSON null is lightuserdata NULL in both forms, equal to cjson.null.
 * Integral numbers within the exact range push as integers (5.4). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "binding.h"

#define VIEW_MT "truv.document"
#define ANCHOR_MT "truv.document.anchor"
#define ARRAY_MT "truv.document.array" /* { __jsontype = "array" } for empty arrays */
#define MAX_DEPTH 1000                 /* cJSON's own nesting limit */

typedef struct doc_root {
  truv_json *doc;
  long refs;
} doc_root;

typedef struct doc_view {
  cJSON *node;
  doc_root *root;
  cJSON *cursor;
  int cursor_i;
} doc_view;

static void push_node(lua_State *L, cJSON *node, doc_root *root, int mode);

static void push_number(lua_State *L, double d) {
  if (d == floor(d) && fabs(d) <= TRUV_MAX_EXACT_INT) lua_pushinteger(L, (lua_Integer)d);
  else lua_pushnumber(L, d);
}

static void push_view(lua_State *L, cJSON *node, doc_root *root) {
  doc_view *v = lua_newuserdata(L, sizeof *v);
  v->node = node;
  v->root = root;
  v->cursor = NULL;
  v->cursor_i = -1;
  root->refs++;
  luaL_setmetatable(L, VIEW_MT);
}

static void push_table(lua_State *L, cJSON *node) {
  cJSON *e;
  int i = 0;
  luaL_checkstack(L, 4, "document nested too deeply");
  if (cJSON_IsArray(node)) {
    lua_createtable(L, cJSON_GetArraySize(node), 0);
    cJSON_ArrayForEach(e, node) {
      push_node(L, e, NULL, TRUV_DOC_TABLE);
      lua_rawseti(L, -2, ++i);
    }
    if (i == 0) { /* an empty table is an object to truv_to_json: keep [] an array */
      if (luaL_newmetatable(L, ARRAY_MT)) {
        lua_pushliteral(L, "array");
        lua_setfield(L, -2, "__jsontype");
      }
      lua_setmetatable(L, -2);
    }
  } else {
    lua_createtable(L, 0, 8);
    cJSON_ArrayForEach(e, node) {
      lua_pushstring(L, e->string);
      push_node(L, e, NULL, TRUV_DOC_TABLE);
      lua_rawset(L, -3);
    }
  }
}

static void push_node(lua_State *L, cJSON *node, doc_root *root, int mode) {
  switch (node->type & 0xff) {
    case cJSON_NULL: lua_pushlightuserdata(L, NULL); break;
    case cJSON_False: lua_pushboolean(L, 0); break;
    case cJSON_True: lua_pushboolean(L, 1); break;
    case cJSON_Number: push_number(L, node->valuedouble); break;
    case cJSON_String: lua_pushstring(L, node->valuestring); break;
    case cJSON_Array:
    case cJSON_Object:
      if (mode == TRUV_DOC_VIEW) push_view(L, node, root);
      else push_table(L, node);
      break;
    default: lua_pushnil(L); break;
  }
}

/* While a whole tree converts to tables, an anchor on the stack owns it, so
 * that an error half-way (out of memory) still frees it. */
typedef struct anchor {
  truv_json *doc; /* a parsed document being converted, or */
  cJSON *tree;    /* a tree being built from Lua values */
} anchor;

static int anchor_gc(lua_State *L) {
  anchor *a = luaL_checkudata(L, 1, ANCHOR_MT);
  truv_json_free(a->doc);
  cJSON_Delete(a->tree);
  a->doc = NULL;
  a->tree = NULL;
  return 0;
}

static anchor *push_anchor(lua_State *L) {
  anchor *a = lua_newuserdata(L, sizeof *a);
  a->doc = NULL;
  a->tree = NULL;
  luaL_setmetatable(L, ANCHOR_MT);
  return a;
}

/* The arena is memory the collector does not see: without telling it, a
 * loop of requests keeps thousands of collectable documents alive. Each
 * view's arena is owed to the collector as debt, its whole size (as if Lua
 * had allocated it: the garbage documents then hold about what the heap's
 * own garbage may, a quarter let 75 000 small ones live beside a 20 MB
 * heap), and paid by one step once GC_STEP_BYTES are owed. The debt is
 * kept per Lua state (in the registry), so small documents add up instead
 * of each asking for a step of its own: a step of 0 KB is a full basic
 * step, which for documents under 4 KB cost half a webhook receiver's CPU
 * and let Lua 5.4's heap grow without bound. */
#define GC_DEBT_KEY "truv.document.gcdebt"
#define GC_STEP_BYTES ((size_t)16 << 10)

static void gc_debt(lua_State *L, size_t arena) {
  size_t *debt;
  lua_getfield(L, LUA_REGISTRYINDEX, GC_DEBT_KEY);
  debt = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!debt) {
    debt = lua_newuserdata(L, sizeof *debt);
    *debt = 0;
    lua_setfield(L, LUA_REGISTRYINDEX, GC_DEBT_KEY);
  }
  *debt += arena;
  if (*debt < GC_STEP_BYTES) return;
  lua_gc(L, LUA_GCSTEP, (int)(*debt >> 10));
  *debt &= 1023; /* what the whole kilobytes left */
}

void truv_push_document(lua_State *L, truv_json *doc, int mode) {
  cJSON *tree = truv_json_root(doc);
  doc_root *r;
  anchor *a;
  if (!tree) {
    truv_json_free(doc);
    lua_pushnil(L);
    return;
  }
  if (mode == TRUV_DOC_VIEW && (cJSON_IsArray(tree) || cJSON_IsObject(tree))) {
    if (!(r = malloc(sizeof *r))) {
      truv_json_free(doc);
      luaL_error(L, "truv: out of memory");
      return;
    }
    r->doc = doc;
    r->refs = 0;
    push_view(L, tree, r);
    gc_debt(L, truv_json_size(doc));
    return;
  }
  a = push_anchor(L);
  a->doc = doc;
  push_node(L, tree, NULL, TRUV_DOC_TABLE);
  truv_json_free(a->doc);
  a->doc = NULL;
  lua_remove(L, -2);
}

static doc_view *check_view(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, VIEW_MT);
}

/* A view whose document is still there (see l_release). */
static doc_view *check_live(lua_State *L, int idx) {
  doc_view *v = luaL_checkudata(L, idx, VIEW_MT);
  if (!v->root || !v->root->doc) luaL_error(L, "truv: this document was released");
  return v;
}

const cJSON *truv_doc_node(lua_State *L, int idx) {
  doc_view *v = luaL_testudata(L, idx, VIEW_MT);
  if (v && (!v->root || !v->root->doc)) luaL_error(L, "truv: this document was released");
  return v ? v->node : NULL;
}

/* release(doc): frees the document now instead of at its collection. For a
 * loop that reads many large answers (polling) and keeps none: the memory
 * the collector cannot see is returned at once. Every view of the document
 * raises from then on. Releasing twice does nothing. */
static int l_release(lua_State *L) {
  doc_view *v = check_view(L, 1);
  if (v->root && v->root->doc) {
    truv_json_free(v->root->doc);
    v->root->doc = NULL;
  }
  return 0;
}

static int view_gc(lua_State *L) {
  doc_view *v = check_view(L, 1);
  if (v->root && --v->root->refs == 0) {
    truv_json_free(v->root->doc); /* NULL when released: nothing to free */
    free(v->root);
  }
  v->root = NULL;
  v->node = NULL;
  return 0;
}

/* The i-th (0-based) element of an array view, using the cursor. */
static cJSON *array_at(doc_view *v, int i) {
  cJSON *e;
  int at;
  if (i < 0) return NULL;
  if (v->cursor && v->cursor_i <= i) {
    e = v->cursor;
    at = v->cursor_i;
  } else {
    e = v->node->child;
    at = 0;
  }
  for (; e && at < i; at++) e = e->next;
  if (e) {
    v->cursor = e;
    v->cursor_i = i;
  }
  return e;
}

static int view_index(lua_State *L) {
  doc_view *v = check_live(L, 1);
  cJSON *child = NULL;
  if (cJSON_IsArray(v->node)) {
    int isnum = 0;
    lua_Number n = lua_tonumber(L, 2);
    isnum = lua_type(L, 2) == LUA_TNUMBER;
    if (isnum && n == floor(n) && n >= 1 && n <= 2147483647.0) child = array_at(v, (int)n - 1);
  } else if (lua_type(L, 2) == LUA_TSTRING) {
    child = cJSON_GetObjectItemCaseSensitive(v->node, lua_tostring(L, 2));
  }
  if (!child) return 0;
  push_node(L, child, v->root, TRUV_DOC_VIEW);
  return 1;
}

static int view_newindex(lua_State *L) {
  return luaL_error(L, "truv: documents are read-only (truv.totable() makes a mutable copy)");
}

static int view_len(lua_State *L) {
  doc_view *v = check_live(L, 1);
  lua_pushinteger(L, cJSON_IsArray(v->node) ? cJSON_GetArraySize(v->node) : 0);
  return 1;
}

static int view_eq(lua_State *L) {
  doc_view *a = luaL_testudata(L, 1, VIEW_MT), *b = luaL_testudata(L, 2, VIEW_MT);
  lua_pushboolean(L, a && b && a->node == b->node);
  return 1;
}

static int view_tostring(lua_State *L) {
  doc_view *v = check_view(L, 1);
  int n;
  if (!v->root || !v->root->doc) {
    lua_pushliteral(L, "truv.document: released");
    return 1;
  }
  n = cJSON_GetArraySize(v->node);
  if (cJSON_IsArray(v->node)) lua_pushfstring(L, "truv.document: array of %d", n);
  else lua_pushfstring(L, "truv.document: object with %d field%s", n, n == 1 ? "" : "s");
  return 1;
}

/* pairs(view): the iterator keeps its position in a C closure upvalue (a
 * light userdata to the next node), so iteration is linear. */
static int view_next(lua_State *L) {
  doc_view *v = check_live(L, lua_upvalueindex(1));
  cJSON *e = lua_touserdata(L, lua_upvalueindex(2));
  int i = (int)lua_tointeger(L, lua_upvalueindex(3));
  if (!e) return 0;
  lua_pushlightuserdata(L, e->next);
  lua_replace(L, lua_upvalueindex(2));
  lua_pushinteger(L, i + 1);
  lua_replace(L, lua_upvalueindex(3));
  if (cJSON_IsArray(v->node)) lua_pushinteger(L, i + 1);
  else lua_pushstring(L, e->string);
  push_node(L, e, v->root, TRUV_DOC_VIEW);
  return 2;
}

static int view_pairs(lua_State *L) {
  doc_view *v = check_live(L, 1);
  lua_pushvalue(L, 1);
  lua_pushlightuserdata(L, v->node->child);
  lua_pushinteger(L, 0);
  lua_pushcclosure(L, view_next, 3);
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* ---- module functions ---- */

/* totable(v): a plain deep copy of a view; other values are returned as is. */
static int l_totable(lua_State *L) {
  doc_view *v = luaL_testudata(L, 1, VIEW_MT);
  if (!v) {
    lua_settop(L, 1);
    return 1;
  }
  check_live(L, 1);
  push_node(L, v->node, NULL, TRUV_DOC_TABLE);
  return 1;
}

/* documents_alive() -> count, bytes: parsed documents not yet collected. */
static int l_documents_alive(lua_State *L) {
  size_t docs, bytes;
  truv_json_live(&docs, &bytes);
  lua_pushinteger(L, (lua_Integer)docs);
  lua_pushinteger(L, (lua_Integer)bytes);
  return 2;
}

static int l_isdocument(lua_State *L) {
  lua_pushboolean(L, luaL_testudata(L, 1, VIEW_MT) != NULL);
  return 1;
}

/* ---- Lua -> JSON ----
 * Each value is attached to its parent before its own children are built,
 * and the whole tree hangs off an anchor on the Lua stack, so that raising
 * on a bad value (wrong type, NaN, a cycle) frees everything built so far. */

static void add_value(lua_State *L, int idx, int depth, cJSON *parent, const char *key);

/* Is the table at idx a sequence 1..n (n >= 1) with no other keys? */
static int is_sequence(lua_State *L, int idx, size_t *n) {
  size_t count = 0;
  *n = lua_rawlen(L, idx);
  if (*n == 0) return 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
    if (lua_type(L, -1) != LUA_TNUMBER) {
      lua_pop(L, 1);
      return 0;
    }
  }
  return count == *n;
}

/* An empty table is an object unless its metatable says
 * __jsontype = "array". */
static int marked_array(lua_State *L, int idx) {
  int yes = 0;
  if (lua_getmetatable(L, idx)) {
    lua_getfield(L, -1, "__jsontype");
    yes = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "array") == 0;
    lua_pop(L, 2);
  }
  return yes;
}

static void attach(lua_State *L, cJSON *parent, const char *key, cJSON *item) {
  if (!item) luaL_error(L, "truv: out of memory");
  if (key) cJSON_AddItemToObject(parent, key, item);
  else cJSON_AddItemToArray(parent, item);
}

static void add_table(lua_State *L, int idx, int depth, cJSON *parent, const char *key) {
  size_t n, i;
  cJSON *out;
  if (is_sequence(L, idx, &n) || (n == 0 && marked_array(L, idx))) {
    attach(L, parent, key, out = cJSON_CreateArray());
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, idx, (int)i);
      add_value(L, lua_gettop(L), depth + 1, out, NULL);
      lua_pop(L, 1);
    }
    return;
  }
  attach(L, parent, key, out = cJSON_CreateObject());
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      luaL_error(L, "truv: a table mixes array and object keys, or has a %s key",
                 luaL_typename(L, -2));
    add_value(L, lua_gettop(L), depth + 1, out, lua_tostring(L, -2));
    lua_pop(L, 1);
  }
}

static void add_value(lua_State *L, int idx, int depth, cJSON *parent, const char *key) {
  doc_view *v;
  double d;
  if (depth > 64) luaL_error(L, "truv: value nested too deeply for JSON (a cycle?)");
  luaL_checkstack(L, 4, "value nested too deeply");
  switch (lua_type(L, idx)) {
    case LUA_TNIL: attach(L, parent, key, cJSON_CreateNull()); return;
    case LUA_TBOOLEAN: attach(L, parent, key, cJSON_CreateBool(lua_toboolean(L, idx))); return;
    case LUA_TNUMBER:
      d = lua_tonumber(L, idx);
      if (isnan(d) || isinf(d)) luaL_error(L, "truv: NaN or infinity cannot be sent as JSON");
      attach(L, parent, key, cJSON_CreateNumber(d));
      return;
    case LUA_TSTRING: attach(L, parent, key, cJSON_CreateString(lua_tostring(L, idx))); return;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) != NULL) break;
      attach(L, parent, key, cJSON_CreateNull());
      return;
    case LUA_TTABLE: add_table(L, idx, depth, parent, key); return;
    case LUA_TUSERDATA:
      if ((v = luaL_testudata(L, idx, VIEW_MT)) == NULL) break;
      check_live(L, idx);
      attach(L, parent, key, cJSON_Duplicate(v->node, 1));
      return;
    default: break;
  }
  luaL_error(L, "truv: a %s cannot be sent as JSON", luaL_typename(L, idx));
}

cJSON *truv_to_json(lua_State *L, int idx) {
  anchor *a;
  cJSON *out;
  idx = lua_absindex(L, idx);
  a = push_anchor(L);
  if (!(a->tree = cJSON_CreateArray())) luaL_error(L, "truv: out of memory");
  add_value(L, idx, 0, a->tree, NULL);
  out = cJSON_DetachItemFromArray(a->tree, 0);
  cJSON_Delete(a->tree);
  a->tree = NULL;
  lua_pop(L, 1);
  return out;
}

static int by_key(const void *a, const void *b) {
  return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* Puts the members of every object under node in key order (cJSON keeps
 * them as they were added: from a Lua table, lua_next's order, which is no
 * order at all). Returns 0 when out of memory. */
static int sort_keys(cJSON *node) {
  cJSON *c, **list;
  size_t n = 0, i;
  for (c = node->child; c; c = c->next, n++)
    if (!sort_keys(c)) return 0;
  if (!cJSON_IsObject(node) || n < 2) return 1;
  if (!(list = malloc(n * sizeof *list))) return 0;
  for (c = node->child, i = 0; c; c = c->next) list[i++] = c;
  qsort(list, n, sizeof *list, by_key);
  node->child = list[0];
  list[0]->prev = list[n - 1]; /* cJSON: the first member's prev is the last */
  for (i = 0; i < n; i++) {
    list[i]->next = i + 1 < n ? list[i + 1] : NULL;
    if (i) list[i]->prev = list[i - 1];
  }
  free(list);
  return 1;
}

/* Moves the members named by the list at idx to the front of object tree,
 * in the list's order. */
static void put_first(lua_State *L, int idx, cJSON *tree) {
  size_t n = lua_rawlen(L, idx), i;
  for (i = n; i >= 1; i--) {
    cJSON *item;
    lua_rawgeti(L, idx, (lua_Integer)i);
    item = lua_type(L, -1) == LUA_TSTRING
             ? cJSON_DetachItemFromObjectCaseSensitive(tree, lua_tostring(L, -1))
             : NULL;
    lua_pop(L, 1);
    if (item) cJSON_InsertItemInArray(tree, 0, item);
  }
}

/* encode(value [, order]) -> JSON text. With `order` (true, or a list of
 * keys), every object's members are written in key order, the listed keys
 * first in the outermost object: the same value always gives the same
 * text (a log line's, say). */
static int l_encode(lua_State *L) {
  cJSON *tree;
  char *text;
  int ordered;
  luaL_checkany(L, 1);
  ordered = lua_toboolean(L, 2);
  if (ordered && !lua_isboolean(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  tree = truv_to_json(L, 1);
  if (ordered && !sort_keys(tree)) {
    cJSON_Delete(tree);
    return luaL_error(L, "truv: out of memory");
  }
  if (ordered && lua_istable(L, 2) && cJSON_IsObject(tree)) put_first(L, 2, tree);
  text = cJSON_PrintUnformatted(tree);
  cJSON_Delete(tree);
  if (!text) return luaL_error(L, "truv: out of memory");
  lua_pushstring(L, text);
  free(text);
  return 1;
}

void truv_open_doc(lua_State *L) {
  static const luaL_Reg view_mt[] = {{"__index", view_index},
                                     {"__newindex", view_newindex},
                                     {"__len", view_len},
                                     {"__eq", view_eq},
                                     {"__tostring", view_tostring},
                                     {"__pairs", view_pairs},
                                     {"__gc", view_gc},
                                     {NULL, NULL}};
  static const luaL_Reg anchor_mt[] = {{"__gc", anchor_gc}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
    {"encode", l_encode},         {"totable", l_totable},
    {"isdocument", l_isdocument}, {"documents_alive", l_documents_alive},
    {"release", l_release},       {NULL, NULL}};
  luaL_newmetatable(L, VIEW_MT);
  luaL_setfuncs(L, view_mt, 0);
  lua_pushliteral(L, "truv.document");
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
  luaL_newmetatable(L, ANCHOR_MT);
  luaL_setfuncs(L, anchor_mt, 0);
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
}
