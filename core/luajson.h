/* luajson: conversion between cJSON trees and Lua values.
 *
 * JSON null maps to the light userdata crm.json.null (NULL); a Lua table is
 * an array when its keys are exactly 1..n (n >= 1) or when it carries the
 * array marker metatable (crm.json.array), otherwise an object with string
 * keys. cJSON holds numbers as doubles: integers are exact up to 2^53, and a
 * whole number decodes as a Lua integer. */
#ifndef RP_LUAJSON_H
#define RP_LUAJSON_H

#include <cjson/cJSON.h>
#include <lua.h>

#include "err.h"

/* Pushes a Lua value for j (borrowed). May raise a Lua memory error. */
void rp_lua_push_json(lua_State *L, const cJSON *j);

/* Converts the value at idx to a new cJSON tree owned by the caller, or
 * returns NULL and fills err (cycles, functions, non-string keys, depth over
 * 64, NaN). Does not raise. */
cJSON *rp_lua_to_json(lua_State *L, int idx, rp_err *err);

/* Pushes the array marker metatable (registry-cached). */
void rp_lua_push_array_mt(lua_State *L);

#endif
