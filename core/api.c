/* api: installs the `crm` module and the helpers its bindings share. */
#include "api.h"

#include <stdlib.h>

#include "jsonout.h"
#include "luajson.h"

rp_plugin *rp_api_plugin(lua_State *L) { return rp_plugin_from_lua(L); }

int rp_api_raise(lua_State *L, const rp_err *err) {
  /* err lives on the C stack of the caller, which the error unwinds: copy
   * the message into Lua first. */
  lua_pushstring(L, err && err->msg[0] ? err->msg : "error");
  return lua_error(L);
}

void rp_api_require(lua_State *L, uint32_t perm, const char *what) {
  rp_plugin *p = rp_api_plugin(L);
  rp_err err;
  if (rp_authz_require(rp_plugin_principal(p), perm, what, &err) != RP_OK) rp_api_raise(L, &err);
}

static int push_json_protected(lua_State *L) {
  rp_lua_push_json(L, lua_touserdata(L, 1));
  return 1;
}

void rp_api_push_json_owned(lua_State *L, cJSON *j) {
  /* Event properties travel as raw JSON text; Lua gets their values. */
  if (rp_json_parse_raw(j) != 0) {
    cJSON_Delete(j);
    luaL_error(L, "out of memory");
  }
  lua_pushcfunction(L, push_json_protected);
  lua_pushlightuserdata(L, j);
  int st = lua_pcall(L, 1, 1, 0);
  cJSON_Delete(j);
  if (st != LUA_OK) lua_error(L);
}

cJSON *rp_api_to_json(lua_State *L, int idx, const char *what) {
  rp_err err;
  rp_err_clear(&err);
  cJSON *j = rp_lua_to_json(L, idx, &err);
  if (!j) {
    rp_err_prefix(&err, "%s: ", what);
    rp_api_raise(L, &err);
  }
  return j;
}

static int install(lua_State *L) {
  rp_plugin *p = lua_touserdata(L, 1);
  lua_createtable(L, 0, 14);
  lua_pushliteral(L, RP_API_VERSION);
  lua_setfield(L, -2, "api_version");
  lua_pushstring(L, p->name);
  lua_setfield(L, -2, "plugin");
  rp_lua_push_json(L, p->config);
  lua_setfield(L, -2, "config");
  rp_api_push_log(L);
  lua_setfield(L, -2, "log");
  rp_api_push_json(L);
  lua_setfield(L, -2, "json");
  rp_api_push_time(L);
  lua_setfield(L, -2, "time");
  rp_api_push_db(L);
  lua_setfield(L, -2, "db");
  rp_api_push_customers(L);
  lua_setfield(L, -2, "customers");
  rp_api_push_events(L);
  lua_setfield(L, -2, "events");
  rp_api_push_schedule(L);
  lua_setfield(L, -2, "schedule");
  rp_api_push_tokens(L);
  lua_setfield(L, -2, "tokens");
  rp_api_push_audit(L);
  lua_setfield(L, -2, "audit");
  rp_api_push_random(L);
  lua_setfield(L, -2, "random");
  rp_api_push_csv(L);
  lua_setfield(L, -2, "csv");
  lua_setglobal(L, "crm");
  return 0;
}

int rp_api_install(rp_plugin *p, rp_err *err) {
  lua_State *L = rp_sandbox_lua(p->sb);
  lua_pushcfunction(L, install);
  lua_pushlightuserdata(L, p);
  return rp_sandbox_call(p->sb, 1, 0, 0, "installing the crm API", err);
}
