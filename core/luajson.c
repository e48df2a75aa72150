/* luajson: cJSON <-> Lua values. */
#include "luajson.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char array_mt_key[] = "rapport.json.array";

void rp_lua_push_array_mt(lua_State *L) {
  if (luaL_newmetatable(L, array_mt_key)) {
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "__jsonarray");
  }
}

void rp_lua_push_json(lua_State *L, const cJSON *j) {
  if (!j || cJSON_IsNull(j)) {
    lua_pushlightuserdata(L, NULL);
  } else if (cJSON_IsBool(j)) {
    lua_pushboolean(L, cJSON_IsTrue(j));
  } else if (cJSON_IsNumber(j)) {
    double d = j->valuedouble;
    if (d >= -9007199254740992.0 && d <= 9007199254740992.0 && floor(d) == d)
      lua_pushinteger(L, (lua_Integer)d);
    else
      lua_pushnumber(L, d);
  } else if (cJSON_IsString(j)) {
    lua_pushstring(L, j->valuestring);

  } else if (cJSON_IsArray(j)) {
    lua_createtable(L, cJSON_GetArraySize(j), 0);
    int i = 1;
    const cJSON *c;
    cJSON_ArrayForEach(c, j) {
      rp_lua_push_json(L, c);
      lua_rawseti(L, -2, i++);
    }
    if (i == 1) {
      rp_lua_push_array_mt(L);
      lua_setmetatable(L, -2);
    }
  } else if (cJSON_IsObject(j)) {
    lua_createtable(L, 0, 4);
    const cJSON *c;
    cJSON_ArrayForEach(c, j) {
      rp_lua_push_json(L, c);
      lua_setfield(L, -2, c->string);
    }
  } else {
    lua_pushnil(L);
  }
}

/* Returns n >= 1 when the table at idx is a sequence 1..n with no other keys,
 * 0 when it is empty, -1 otherwise. */
static long long seq_length(lua_State *L, int idx) {
  long long n = 0, max = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TNUMBER || !lua_isinteger(L, -1)) {
      lua_pop(L, 1);
      return -1;
    }
    long long k = lua_tointeger(L, -1);
    if (k < 1) {
      lua_pop(L, 1);
      return -1;
    }
    if (k > max) max = k;
    n++;
  }
  return n == max ? n : -1;
}

static int is_marked_array(lua_State *L, int idx) {
  if (!lua_getmetatable(L, idx)) return 0;
  lua_getfield(L, -1, "__jsonarray");
  int yes = lua_toboolean(L, -1);
  lua_pop(L, 2);
  return yes;
}

static cJSON *convert(lua_State *L, int idx, int depth, const char *path, rp_err *err) {
  idx = lua_absindex(L, idx);
  if (depth > 64) {
    rp_err_set(err, RP_EINVAL, path, "JSON value nested deeper than 64 levels at %s", path);
    return NULL;
  }
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    return cJSON_CreateNull();
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL) return cJSON_CreateNull();
    break;
  case LUA_TBOOLEAN:
    return cJSON_CreateBool(lua_toboolean(L, idx));
  case LUA_TNUMBER: {
    if (lua_isinteger(L, idx)) {
      lua_Integer i = lua_tointeger(L, idx);
      /* cJSON keeps numbers as doubles and prints them with a tolerance:
       * beyond 2^52 an integer would come out rounded. Such integers go out
       * as their exact decimal text (a raw item), which prints verbatim;
       * code that expects a number then refuses it rather than round it. */
      if (i > (INT64_C(1) << 52) || i < -(INT64_C(1) << 52)) {
        char text[24];
        snprintf(text, sizeof text, "%lld", (long long)i);
        return cJSON_CreateRaw(text);
      }
      return cJSON_CreateNumber((double)i);
    }
    double d = lua_tonumber(L, idx);
    if (isnan(d) || isinf(d)) {
      rp_err_set(err, RP_EINVAL, path, "%s: NaN and infinity are not JSON", path);
      return NULL;
    }
    return cJSON_CreateNumber(d);
  }
  case LUA_TSTRING:
    return cJSON_CreateString(lua_tostring(L, idx));
  case LUA_TTABLE: {
    if (!lua_checkstack(L, 6)) break;
    long long n = seq_length(L, idx);
    int as_array = n > 0 || (n == 0 && is_marked_array(L, idx));
    cJSON *out = as_array ? cJSON_CreateArray() : cJSON_CreateObject();
    if (!out) break;
    if (as_array) {
      for (long long i = 1; i <= n; i++) {
        char sub[256];
        snprintf(sub, sizeof sub, "%s[%lld]", path, i);
        lua_rawgeti(L, idx, i);
        cJSON *c = convert(L, -1, depth + 1, sub, err);
        lua_pop(L, 1);
        if (!c) {
          cJSON_Delete(out);
          return NULL;
        }
        cJSON_AddItemToArray(out, c);
      }
      return out;
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      if (lua_type(L, -2) != LUA_TSTRING) {
        lua_pop(L, 2);
        cJSON_Delete(out);
        rp_err_set(err, RP_EINVAL, path, "%s: a JSON object needs string keys (mixed table?)",
                   path);
        return NULL;
      }
      char sub[256];
      snprintf(sub, sizeof sub, "%s.%s", path, lua_tostring(L, -2));
      cJSON *c = convert(L, -1, depth + 1, sub, err);
      if (!c) {
        lua_pop(L, 2);
        cJSON_Delete(out);
        return NULL;
      }
      cJSON_AddItemToObject(out, lua_tostring(L, -2), c);
      lua_pop(L, 1);
    }
    return out;
  }
  default:
    break;
  }
  rp_err_set(err, RP_EINVAL, path, "%s: a %s cannot be converted to JSON", path,
             luaL_typename(L, idx));
  return NULL;
}

cJSON *rp_lua_to_json(lua_State *L, int idx, rp_err *err) {
  return convert(L, idx, 0, "value", err);
}
