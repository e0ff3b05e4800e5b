/* handler: see handler.h. */
#include "handler.h"

#include <microhttpd.h>

const char *handler_query(const struct handler_ctx *x, const char *name)
{
  return MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND, name);
}
