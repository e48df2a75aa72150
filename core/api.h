/* api: the `crm` Lua module, the host API every plugin and operator script
 * programs against (docs/plugin-api.md, LuaLS definitions in
 * core/assets/crm_meta.lua).
 *
 * One file per namespace (api_db.c, api_customers.c, api_events.c,
 * api_schedule.c, api_util.c for log/json/time/config); this header is what
 * they share with host.c. Every function checks the caller's permission
 * first, does its work in C without holding Lua-visible resources, and only
 * then raises (so a Lua error never leaks a statement or a cJSON tree). */
#ifndef RP_API_H
#define RP_API_H

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lua.h>

#include "err.h"
#include "hostint.h"

/* Version of the host API, reported as crm.api_version ("1.2"). */
#define RP_API_VERSION "1.2"

/* Installs the global `crm` table into p's sandbox (protected; fails only on
 * memory). */
int rp_api_install(rp_plugin *p, rp_err *err);

/* The namespaces: each pushes its table. */
void rp_api_push_db(lua_State *L);
void rp_api_push_customers(lua_State *L);
void rp_api_push_events(lua_State *L);
void rp_api_push_schedule(lua_State *L);
void rp_api_push_log(lua_State *L);
void rp_api_push_json(lua_State *L);
void rp_api_push_time(lua_State *L);
void rp_api_push_tokens(lua_State *L);
void rp_api_push_audit(lua_State *L);  /* api_customers.c */
void rp_api_push_random(lua_State *L); /* api_util.c */
void rp_api_push_csv(lua_State *L);    /* api_csv.c */

/* ---- helpers for the bindings --------------------------------------------- */

/* The calling plugin (never NULL inside a binding). */
rp_plugin *rp_api_plugin(lua_State *L);
/* Raises a Lua error from err (message only: the plugin sees what a person
 * would). Never returns. */
int rp_api_raise(lua_State *L, const rp_err *err);
/* Raises unless the caller holds the permission. */
void rp_api_require(lua_State *L, uint32_t perm, const char *what);
/* Pushes j and deletes it, without leaking it if the push raises. */
void rp_api_push_json_owned(lua_State *L, cJSON *j);
/* Converts the value at idx to JSON or raises naming what. Owned by caller. */
cJSON *rp_api_to_json(lua_State *L, int idx, const char *what);

#endif
