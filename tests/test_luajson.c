/* Lua values to and from cJSON: arrays and objects, integers, null, and the
 * values JSON cannot hold (refused with a reason, never a crash). */
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "luajson.h"
#include "test.h"

/* Evaluates a Lua expression and converts its value; returns compact JSON
 * text (caller frees) or NULL with err filled. */
static char *to_json(const char *expr, rp_err *err) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  char code[512];
  snprintf(code, sizeof code, "return %s", expr);
  ASSERT_EQ(luaL_dostring(L, code), 0);
  rp_err_clear(err);
  cJSON *j = rp_lua_to_json(L, -1, err);
  char *text = j ? cJSON_PrintUnformatted(j) : NULL;
  cJSON_Delete(j);
  lua_close(L);
  return text;
}

/* Compares as JSON values: the order of a Lua table's keys is unspecified. */
static void expect(const char *expr, const char *want) {
  rp_err err;
  char *got = to_json(expr, &err);
  if (!got) fprintf(stderr, "%s: %s\n", expr, err.msg);
  ASSERT(got != NULL);
  cJSON *a = cJSON_Parse(got), *b = cJSON_Parse(want);
  if (!cJSON_Compare(a, b, 1)) fprintf(stderr, "%s: got %s, want %s\n", expr, got, want);
  ASSERT(cJSON_Compare(a, b, 1));
  /* Numbers compare as doubles: check integer text exactly too. */
  if (strchr(want, '.') == NULL && strchr(want, 'e') == NULL && !strchr(want, '{'))
    ASSERT_STR_EQ(got, want);
  cJSON_Delete(a);
  cJSON_Delete(b);
  free(got);
}

static void refuse(const char *expr, const char *says) {
  rp_err err;
  char *got = to_json(expr, &err);
  if (got) fprintf(stderr, "%s converted to %s\n", expr, got);
  ASSERT(got == NULL);
  ASSERT_CONTAINS(err.msg, says);
}

static void test_lua_to_json(void) {
  expect("{1, 2, 3}", "[1,2,3]");
  expect("{a = 1}", "{\"a\":1}");
  expect("{}", "{}");
  expect("{list = {'x', {y = true}}, n = 2.5}", "{\"list\":[\"x\",{\"y\":true}],\"n\":2.5}");
  expect("'caf\\u{E9}'", "\"caf\xc3\xa9\"");
  expect("12345678901", "12345678901");
  expect("-7", "-7");
  expect("false", "false");
  /* Keys that are not exactly 1..n make an object... of string keys only. */
  rp_err err;
  char *got = to_json("{[1] = 'a', [3] = 'c'}", &err);
  ASSERT(got == NULL || strcmp(got, "[\"a\",null,\"c\"]") != 0);
  free(got);
}

static void test_refusals(void) {
  /* A cycle is caught by the depth limit. */
  refuse("(function() local t = {} t.self = t return t end)()", "deeper than 64");
  refuse("{f = print}", "function");
  refuse("0/0", "NaN");
  refuse("{[true] = 1}", "key");
  refuse("(function() local t = {} local c = t for i = 1, 100 do c.x = {} c = c.x end return t "
         "end)()",
         "deeper than 64");
}

static void round_trip(const char *json) {
  cJSON *j = cJSON_Parse(json);
  ASSERT(j != NULL);
  lua_State *L = luaL_newstate();
  rp_lua_push_json(L, j);
  rp_err err;
  cJSON *back = rp_lua_to_json(L, -1, &err);
  ASSERT(back != NULL);
  if (!cJSON_Compare(j, back, 1)) {
    char *b = cJSON_PrintUnformatted(back);
    fprintf(stderr, "%s came back as %s\n", json, b);
    free(b);
  }
  ASSERT(cJSON_Compare(j, back, 1));
  /* Arrays stay arrays, empty ones included. */
  ASSERT_EQ(cJSON_IsArray(j), cJSON_IsArray(back));
  cJSON_Delete(j);
  cJSON_Delete(back);
  lua_close(L);
}

static void test_json_to_lua_and_back(void) {
  round_trip("{\"a\":[1,2,{\"b\":null}],\"c\":\"d\",\"e\":false,\"f\":1.5}");
  round_trip("[]"); /* an empty array stays an array (the marker) */
  round_trip("{\"empty\":[],\"obj\":{}}");
  round_trip("[null,null]");

  /* Integers arrive as Lua integers, not floats. */
  cJSON *j = cJSON_Parse("{\"n\": 42, \"x\": 0.5}");
  lua_State *L = luaL_newstate();
  rp_lua_push_json(L, j);
  lua_getfield(L, -1, "n");
  ASSERT(lua_isinteger(L, -1));
  ASSERT_EQ(lua_tointeger(L, -1), 42);
  lua_getfield(L, -2, "x");
  ASSERT(!lua_isinteger(L, -1));
  lua_close(L);
  cJSON_Delete(j);
}

RP_TEST_LIST{
    RP_TEST(lua_to_json),
    RP_TEST(refusals),
    RP_TEST(json_to_lua_and_back),
    RP_TEST_END,
};
