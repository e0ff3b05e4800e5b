/* api_links: users, bridge tokens, links and their reports.
 *
 *   POST /v1/users/                  a user (201): external_user_id, first_name,
 *                                    last_name, email, phone, ssn (all optional)
 *   GET  /v1/users/{user_id}/        the user
 *   POST /v1/users/{user_id}/tokens/ a bridge token (valid 6 h) and Truv's echo of
 *        the request; with an access_token of the user's, update mode. Nothing
 *        is connected or re-authenticated until the user finishes Bridge,
 *        which /_sandbox/bridge/complete plays (api_control.c).
 *   POST /v1/link-access-tokens/     {"public_token"} -> {"access_token", "link_id"};
 *        a public token is exchanged once, within 6 h: else 410 expired_token
 *   GET  /v1/links/{link_id}/        the link (its access_token masked)
 *   GET  /v1/links/{link_id}/{income|employment}/report/  the link's report */
#include <stdlib.h>
#include <string.h>

#include "docs.h"
#include "handler.h"
#include "validate.h"

/* ---- users ------------------------------------------------------------- */

void api_create_user(struct handler_ctx *x) {
  struct invalid v;
  struct sb_person who;
  const char *ext;
  struct store *s;
  uint32_t user;
  const cJSON *json = x->json;
  invalid_init(&v);
  ext = field_string(&v, json, "external_user_id", false, 0);
  who.first_name = field_string(&v, json, "first_name", false, 0);
  who.last_name = field_string(&v, json, "last_name", false, 0);
  who.email = field_email(&v, json, "email");
  who.phone = field_phone(&v, json, "phone");
  who.ssn = field_ssn(&v, json, "ssn");
  if (!handler_valid(x, &v)) return;
  s = &x->sb->store;
  store_wrlock(s);
  user = store_add_person(s, ext, &who, x->now);
  if (user == SB_NONE) {
    reply_server_error(x->reply);
  } else {
    struct jw w;
    jw_init(&w, 384);
    docs_user(&w, s, user);
    reply_json(x->reply, 201, &w);
  }
  store_unlock(s);
}

static void user_doc(struct jw *w, const struct handler_ctx *x, uint32_t user) {
  docs_user(w, &x->sb->store, user);
}

void api_get_user(struct handler_ctx *x) {
  handler_get(x, store_find_user, user_doc, 384);
}

/* ---- bridge tokens ----------------------------------------------------- */

struct token_req {
  unsigned product;
  uint32_t conn; /* update mode */
  const char *tracking_info, *client_name, *company_mapping_id, *template_id;
  const cJSON *allowed_products, *data_sources;
};

/* validates the body (store lock held) */
static bool token_request(struct handler_ctx *x, uint32_t user, struct token_req *q) {
  const char *p;
  struct store *s = &x->sb->store;
  struct invalid v;
  uint8_t token[16];
  bool given;
  const cJSON *json = x->json;
  memset(q, 0, sizeof *q);
  q->conn = SB_NONE;
  invalid_init(&v);
  p = field_string(&v, json, "product_type", true, 64);
  if (p && !product_parse(p, &q->product))
    invalid_add(&v, "product_type", "\"%s\" is not a valid choice.", p);
  if (field_hex_id(&v, json, "access_token", false, token, &given)) {
    q->conn = store_find_token(s, token);
    if (q->conn == SB_NONE || s->conns[q->conn].user != user)
      invalid_add(&v, "access_token", "Unknown access_token for this user.");
  }
  q->tracking_info = field_string(&v, json, "tracking_info", false, 255);
  q->client_name = field_string(&v, json, "client_name", false, 0);
  q->company_mapping_id = field_string(&v, json, "company_mapping_id", false, 64);
  q->template_id = field_string(&v, json, "template_id", false, 64);
  q->allowed_products = field_choices(&v, json, "allowed_products", PRODUCT_NAMES);
  q->data_sources = field_choices(&v, json, "data_sources", DATA_SOURCES);
  field_string(&v, json, "provider_id", false, 64);
  field_string(&v, json, "use_case", false, 64);
  field_string(&v, json, "locale", false, 16);
  field_bool(&v, json, "request_extended_history", "request_extended_history");
  field_object(&v, json, "account", "account");
  return handler_valid(x, &v);
}

static const char *render_list(struct store *s, const cJSON *arr) {
  char *text = arr ? cJSON_PrintUnformatted(arr) : NULL;
  const char *kept = text ? store_strdup(s, text) : NULL;
  free(text);
  return kept;
}

static uint32_t new_bridge(struct store *s, uint32_t user, const struct token_req *q, sb_time now) {
  struct sb_bridge *br;
  uint32_t b = store_add_bridge(s, NULL);
  if (b == SB_NONE) return SB_NONE;
  br = &s->bridges[b];
  br->created_at = now;
  br->user = user;
  br->conn = q->conn;
  br->product = (uint8_t)q->product;
  br->tracking_info = store_strdup(s, q->tracking_info);
  br->client_name = store_strdup(s, q->client_name);
  br->company_mapping_id = store_strdup(s, q->company_mapping_id);
  br->template_id = store_strdup(s, q->template_id);
  br->allowed_products = render_list(s, q->allowed_products);
  br->data_sources = render_list(s, q->data_sources);
  return b;
}

static void raw_or_null(struct jw *w, const char *key, const char *json) {
  jw_key(w, key);
  if (json) jw_raw(w, json, strlen(json));
  else jw_null(w);
}

/* the members of Truv's example answer, the request's values echoed */
static void token_reply(struct handler_ctx *x, uint32_t b) {
  const struct store *s = &x->sb->store;
  const struct sb_bridge *br = &s->bridges[b];
  struct jw w;
  jw_init(&w, 512);
  jw_obj(&w);
  jw_khex(&w, "bridge_token", br->id, 16);
  jw_kstr(&w, "tracking_info", br->tracking_info);
  jw_kstr(&w, "client_name", br->client_name ? br->client_name : DOCS_CLIENT_NAME);
  jw_kstr(&w, "product_type", product_name(br->product));
  raw_or_null(&w, "allowed_products", br->allowed_products);
  jw_kstr(&w, "company_mapping_id", br->company_mapping_id);
  jw_khex(&w, "access_token", br->conn == SB_NONE ? NULL : s->conns[br->conn].token, 16);
  jw_khex(&w, "user_id", s->users[br->user].id, 16);
  jw_kstr(&w, "template_id", br->template_id);
  raw_or_null(&w, "data_sources", br->data_sources);
  jw_obj_end(&w);
  reply_json(x->reply, 200, &w);
}

void api_user_token(struct handler_ctx *x) {
  uint32_t user;
  struct store *s = &x->sb->store;
  struct token_req q;
  store_wrlock(s);
  user = handler_path_entity(x, store_find_user);
  if (user == SB_NONE) {
    reply_not_found(x->reply);
  } else if (token_request(x, user, &q)) {
    uint32_t b = new_bridge(s, user, &q, x->now);
    if (b == SB_NONE) {
      reply_server_error(x->reply);
    } else {
      s->users[user].stat_tokens++;
      token_reply(x, b);
    }
  }
  store_unlock(s);
}

/* ---- public tokens and links ------------------------------------------- */

void api_link_token(struct handler_ctx *x) {
  bool ok;
  uint32_t p;
  struct sb_public *pt;
  struct store *s = &x->sb->store;
  struct invalid v;
  uint8_t raw[16];
  bool given;
  invalid_init(&v);
  ok = field_hex_id(&v, x->json, "public_token", true, raw, &given);
  if (!handler_valid(x, &v) || !ok) return;
  store_wrlock(s);
  p = store_find_public(s, raw);
  pt = p == SB_NONE ? NULL : &s->publics[p];
  if (!pt) {
    reply_bad_field(x->reply, "public_token", "Unknown public_token.");
  } else if (pt->used || x->now - pt->created_at >= SB_TOKEN_TTL) {
    reply_expired_token(x->reply, "The public_token has expired or was already exchanged.");
  } else {
    struct jw w;
    const struct sb_conn *c = &s->conns[pt->conn];
    pt->used = 1;
    jw_init(&w, 128);
    jw_obj(&w);
    jw_khex(&w, "access_token", c->token, 16);
    jw_khex(&w, "link_id", c->link, 16);
    jw_obj_end(&w);
    reply_json(x->reply, 200, &w);
  }
  store_unlock(s);
}

static void link_doc(struct jw *w, const struct handler_ctx *x, uint32_t conn) {
  docs_link(w, &x->sb->store, conn, x->now);
}

void api_get_link(struct handler_ctx *x) {
  handler_get(x, store_find_link, link_doc, 1024);
}

static void report_doc(struct jw *w, const struct handler_ctx *x, uint32_t conn) {
  docs_link_report(w, &x->sb->store, conn, x->route->product, x->now);
}

void api_link_report(struct handler_ctx *x) {
  handler_get(x, store_find_link, report_doc, 8192);
}
