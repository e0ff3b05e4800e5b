/* handler: see handler.h. */
#include "handler.h"

#include <microhttpd.h>
#include <string.h>

#include "hex.h"

const char *handler_query(const struct handler_ctx *x, const char *name) {
  return MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND, name);
}

bool handler_query_id(const struct handler_ctx *x, const char *name, uint8_t id[16], bool *given) {
  const char *v = handler_query(x, name);
  if (given) *given = v != NULL;
  return v && strlen(v) == 32 && hex_decode(v, id, 16);
}

uint32_t handler_path_entity(const struct handler_ctx *x, handler_find_fn find) {
  return x->route->id_valid ? find(&x->sb->store, x->route->id) : SB_NONE;
}

bool handler_valid(struct handler_ctx *x, struct invalid *v) {
  if (v->n > 0) {
    reply_invalid(x->reply, v, NULL);
    return false;
  }
  invalid_free(v);
  return true;
}

void handler_get(struct handler_ctx *x, handler_find_fn find, handler_render_fn render,
                 size_t size_hint) {
  uint32_t entity;
  struct store *s = &x->sb->store;
  store_rdlock(s);
  entity = handler_path_entity(x, find);
  if (entity == SB_NONE) {
    reply_not_found(x->reply);
  } else {
    struct jw w;
    jw_init(&w, size_hint);
    render(&w, x, entity);
    reply_json(x->reply, 200, &w);
  }
  store_unlock(s);
}
