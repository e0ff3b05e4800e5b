/* Arena-backed documents: correct trees, clean failures, no leaks (the
 * valgrind variant of this test checks that), and other cJSON users in the
 * process unaffected. */
#include "check.h"
#include "truv/json.h"

static void a_document_parses_into_a_readable_tree(void) {
  truv_err err;
  const char *s = "{\"a\":[1,2.5,\"x\",null,true],\"b\":{\"c\":\"d\"}}";
  truv_json *doc = truv_json_parse(s, strlen(s), &err);
  cJSON *a;
  CHECK(doc != NULL);
  if (!doc) return;
  a = cJSON_GetObjectItem(truv_json_root(doc), "a");
  CHECK_INT(cJSON_GetArraySize(a), 5);
  CHECK_DBL(cJSON_GetArrayItem(a, 1)->valuedouble, 2.5);
  CHECK_STR(cJSON_GetArrayItem(a, 2)->valuestring, "x");
  CHECK(cJSON_IsNull(cJSON_GetArrayItem(a, 3)));
  CHECK_STR(cJSON_GetObjectItem(cJSON_GetObjectItem(truv_json_root(doc), "b"), "c")->valuestring,
            "d");
  CHECK(truv_json_size(doc) >= strlen(s));
  truv_json_free(doc);
}

static void a_large_document_grows_the_arena(void) {
  size_t n = 200000, i, at = 0;
  char *s = malloc(n * 12 + 16);
  truv_err err;
  truv_json *doc;
  s[at++] = '[';
  for (i = 0; i < n; i++) at += (size_t)sprintf(s + at, "%s\"v%zu\"", i ? "," : "", i);
  s[at++] = ']';
  doc = truv_json_parse(s, at, &err);
  CHECK(doc != NULL);
  if (doc) {
    CHECK_INT(cJSON_GetArraySize(truv_json_root(doc)), (int)n);
    CHECK_STR(cJSON_GetArrayItem(truv_json_root(doc), (int)n - 1)->valuestring, "v199999");
  }
  truv_json_free(doc);
  free(s);
}

static void bad_input_fails_cleanly(void) {
  static const char *bad[] = {"",    "{",           "[1,2",         "{\"a\":}",
                              "nul", "{\"a\":1} x", "\"\\uD800\"x", NULL};
  const char **b;
  truv_err err;
  for (b = bad; *b; b++) {
    truv_err_clear(&err);
    CHECK(truv_json_parse(*b, strlen(*b), &err) == NULL);
    CHECK_INT(err.kind, TRUV_EPROTOCOL);
    CHECK_STR(err.code, "malformed_json");
  }
}

static void bytes_past_the_given_length_are_not_read(void) {
  truv_err err;
  truv_json *doc = truv_json_parse("{\"a\":1}garbage", 7, &err);
  CHECK(doc != NULL);
  truv_json_free(doc);
}

static void deep_nesting_is_refused_not_crashed(void) {
  size_t n = 5000, i;
  char *s = malloc(2 * n);
  truv_err err;
  for (i = 0; i < n; i++) {
    s[i] = '[';
    s[2 * n - 1 - i] = ']';
  }
  CHECK(truv_json_parse(s, 2 * n, &err) == NULL);
  free(s);
}

static void other_cjson_users_keep_ordinary_trees(void) {
  cJSON *mine, *theirs;
  char *text;
  truv_json_init();
  theirs = cJSON_Parse("{\"k\":[1,2,3]}"); /* outside truv_json_parse: malloc */
  CHECK(theirs != NULL);
  mine = cJSON_CreateObject();
  cJSON_AddStringToObject(mine, "x", "y");
  text = cJSON_PrintUnformatted(mine);
  CHECK_STR(text, "{\"x\":\"y\"}");
  free(text); /* plain free works on their memory */
  cJSON_Delete(mine);
  cJSON_Delete(theirs);
}

int main(void) {
  RUN(a_document_parses_into_a_readable_tree);
  RUN(a_large_document_grows_the_arena);
  RUN(bad_input_fails_cleanly);
  RUN(bytes_past_the_given_length_are_not_read);
  RUN(deep_nesting_is_refused_not_crashed);
  RUN(other_cjson_users_keep_ordinary_trees);
  return CHECK_DONE();
}
