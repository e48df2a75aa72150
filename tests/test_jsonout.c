/* jsonout: the fast printer writes exactly what cJSON writes, and raw
 * nodes parse back into values under their names. */
#include <math.h>

#include "jsonout.h"
#include "test.h"

/* Prints the tree both ways (cJSON's own first: ours modifies it) and
 * frees it. */
static void same_tree_as_cjson(cJSON *a) {
  ASSERT(a != NULL);
  char *want = cJSON_PrintUnformatted(a);
  char *got = rp_json_print(a);
  ASSERT_STR_EQ(got, want);
  cJSON_free(want);
  cJSON_free(got);
  cJSON_Delete(a);
}

static void same_as_cjson(const char *json) { same_tree_as_cjson(cJSON_Parse(json)); }

static void test_prints_like_cjson(void) {
  same_as_cjson("0");
  same_as_cjson("-0");
  same_as_cjson("[1, -1, 2147483647, 2147483648, -2147483649, 1795431162258, -1795431162258]");
  same_as_cjson("[999999999999999, -999999999999999, 9007199254740994, 1e300, -1e-300]");
  same_as_cjson("[0.5, 3.14159, 1e21, 123456789012345680000, 0.1]");
  same_as_cjson("{\"a\": {\"b\": [1795431162258, {\"c\": 42}], \"d\": \"x\"}, \"e\": null, "
                "\"f\": true, \"g\": []}");
  /* numbers cJSON cannot hold as integers stay cJSON's */
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "nan", NAN);
  cJSON_AddNumberToObject(o, "inf", INFINITY);
  cJSON_AddNumberToObject(o, "big", 1e19);
  same_tree_as_cjson(o);
}

/* Whole numbers of 16 digits print exactly, where cJSON's 15 significant
 * digits would lose the last one (it checks its round trip with a relative
 * tolerance). */
static void test_prints_big_integers_exactly(void) {
  cJSON *a = cJSON_Parse("[9007199254740992, -9007199254740991, 1234567890123456]");
  ASSERT(a != NULL);
  char *got = rp_json_print(a);
  ASSERT_STR_EQ(got, "[9007199254740992,-9007199254740991,1234567890123456]");
  cJSON_free(got);
  cJSON_Delete(a);
}

static void test_prints_only_the_root(void) {
  cJSON *arr = cJSON_Parse("[1795431162258, 7]");
  ASSERT(arr != NULL);
  char *got = rp_json_print(arr->child);
  ASSERT_STR_EQ(got, "1795431162258");
  cJSON_free(got);
  /* the sibling was left a number */
  ASSERT(cJSON_IsNumber(arr->child->next));
  cJSON_Delete(arr);
}

static void test_parse_raw(void) {
  cJSON *o = cJSON_CreateObject();
  cJSON *e = cJSON_AddObjectToObject(o, "event");
  cJSON_AddRawToObject(e, "properties", "{\"path\": \"/\", \"n\": 3}");
  cJSON *list = cJSON_AddArrayToObject(o, "list");
  cJSON_AddItemToArray(list, cJSON_CreateRaw("[1, 2]"));
  cJSON_AddRawToObject(o, "bad", "{not json");
  ASSERT_EQ(rp_json_parse_raw(o), -1); /* the bad one stays raw */
  cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "properties");
  ASSERT(cJSON_IsObject(p));
  ASSERT_STR_EQ(p->string, "properties");
  ASSERT_STR_EQ(cJSON_GetObjectItemCaseSensitive(p, "path")->valuestring, "/");
  ASSERT_EQ(cJSON_GetObjectItemCaseSensitive(p, "n")->valuedouble, 3);
  ASSERT(cJSON_IsArray(list->child));
  ASSERT_EQ(cJSON_GetArraySize(list->child), 2);
  ASSERT(cJSON_IsRaw(cJSON_GetObjectItemCaseSensitive(o, "bad")));
  cJSON_DeleteItemFromObjectCaseSensitive(o, "bad");
  ASSERT_EQ(rp_json_parse_raw(o), 0);
  char *text = rp_json_print(o);
  ASSERT_STR_EQ(text, "{\"event\":{\"properties\":{\"path\":\"/\",\"n\":3}},\"list\":[[1,2]]}");
  cJSON_free(text);
  cJSON_Delete(o);
}

RP_TEST_LIST{
    RP_TEST(prints_like_cjson),
    RP_TEST(prints_big_integers_exactly),
    RP_TEST(prints_only_the_root),
    RP_TEST(parse_raw),
    RP_TEST_END,
};
