/* api_schedule: crm.schedule, the plugin's own jobs (permission
 * "schedule"): recurring (cron, every) and one-shots (at). A job runs the
 * function of the plugin's `jobs` table it names; an operator's job runs a
 * script file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "sched.h"

/* Checks that the target exists now, so a typo fails at the call, not at
 * 3 a.m. when the job fires. */
static void check_target(lua_State *L, rp_plugin *p, const char *target) {
  if (!p->m) return; /* the operator's target is a script path, checked when it runs */
  if (p->module_ref == LUA_NOREF) return; /* still loading: checked at first run */
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->module_ref);
  int ok = lua_getfield(L, -1, "jobs") == LUA_TTABLE &&
           lua_getfield(L, -1, target) == LUA_TFUNCTION;
  lua_settop(L, lua_gettop(L) - (ok ? 3 : 2));
  if (!ok) luaL_error(L, "crm.schedule: init.lua has no function jobs.%s", target);
}

static int add(lua_State *L, const char *kind, const char *name, const char *spec,
               const char *target, int payload_idx) {
  rp_plugin *p = rp_api_plugin(L);
  check_target(L, p, target);
  char *payload = NULL;
  if (payload_idx && !lua_isnoneornil(L, payload_idx)) {
    cJSON *j = rp_api_to_json(L, payload_idx, "crm.schedule payload");
    payload = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!payload) return luaL_error(L, "crm.schedule: out of memory");
  }
  rp_job_spec js = {.owner = p->principal.operator ? "operator" : p->name,
                    .name = name,
                    .kind = kind,
                    .spec = spec,
                    .target = target,
                    .payload = payload,
                    .origin = "api"};
  int64_t id = 0;
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_sched_add(p->host->store, p->host->cfg, &js, &id, &err);
  free(payload);
  if (rc) {
    rp_err_prefix(&err, "crm.schedule.%s: ", kind);
    return rp_api_raise(L, &err);
  }
  if (p->host->sched) rp_sched_kick(p->host->sched);
  lua_pushinteger(L, id);
  return 1;
}

/* crm.schedule.every(name, duration, job [, payload]) -> job id */
static int sch_every(lua_State *L) {
  rp_api_require(L, RP_PERM_SCHEDULE, "crm.schedule.every");
  const char *name = luaL_checkstring(L, 1);
  char spec[32];
  if (lua_isinteger(L, 2)) snprintf(spec, sizeof spec, "%lld", (long long)lua_tointeger(L, 2));
  else snprintf(spec, sizeof spec, "%s", luaL_checkstring(L, 2));
  return add(L, "every", name, spec, luaL_checkstring(L, 3), 4);
}

/* crm.schedule.cron(name, expression, job [, payload]) -> job id */
static int sch_cron(lua_State *L) {
  rp_api_require(L, RP_PERM_SCHEDULE, "crm.schedule.cron");
  const char *name = luaL_checkstring(L, 1);
  return add(L, "cron", name, luaL_checkstring(L, 2), luaL_checkstring(L, 3), 4);
}

/* crm.schedule.at(when, job [, payload [, name]]) -> job id */
static int sch_at(lua_State *L) {
  rp_api_require(L, RP_PERM_SCHEDULE, "crm.schedule.at");
  char spec[64];
  if (lua_isinteger(L, 1)) snprintf(spec, sizeof spec, "%lld", (long long)lua_tointeger(L, 1));
  else snprintf(spec, sizeof spec, "%s", luaL_checkstring(L, 1));
  const char *target = luaL_checkstring(L, 2);
  const char *name = luaL_optstring(L, 4, NULL);
  return add(L, "at", name, spec, target, 3);
}

/* crm.schedule.cancel(name_or_id) -> true when a job was removed */
static int sch_cancel(lua_State *L) {
  rp_api_require(L, RP_PERM_SCHEDULE, "crm.schedule.cancel");
  rp_plugin *p = rp_api_plugin(L);
  const char *owner = p->principal.operator ? "operator" : p->name;
  rp_err err;
  rp_err_clear(&err);
  int rc;
  if (lua_isinteger(L, 1)) {
    /* By id: only the caller's own jobs. */
    int64_t id = lua_tointeger(L, 1);
    sqlite3_stmt *st;
    if (rp_store_prepare(p->host->store, "SELECT 1 FROM jobs WHERE id = ?1 AND owner = ?2", &st,
                         &err))
      return rp_api_raise(L, &err);
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
    int mine = sqlite3_step(st) == SQLITE_ROW;
    rp_store_done(st);
    if (!mine) {
      lua_pushboolean(L, 0);
      return 1;
    }
    rc = rp_sched_remove(p->host->store, owner, NULL, id, &err);
  } else {
    rc = rp_sched_remove(p->host->store, owner, luaL_checkstring(L, 1), 0, &err);
  }
  if (rc == RP_ENOTFOUND) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (rc) return rp_api_raise(L, &err);
  if (p->host->sched) rp_sched_kick(p->host->sched);
  lua_pushboolean(L, 1);
  return 1;
}

/* crm.schedule.list() -> array of the caller's jobs */
static int sch_list(lua_State *L) {
  rp_api_require(L, RP_PERM_SCHEDULE, "crm.schedule.list");
  rp_plugin *p = rp_api_plugin(L);
  const char *owner = p->principal.operator ? "operator" : p->name;
  sqlite3_stmt *st;
  rp_err err;
  rp_err_clear(&err);
  if (rp_store_prepare(p->host->store,
                       "SELECT id, name, kind, spec, target, next_run_at, last_run_at, enabled "
                       "FROM jobs WHERE owner = ?1 ORDER BY id LIMIT 10000", &st, &err))
    return rp_api_raise(L, &err);
  sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
  cJSON *arr = cJSON_CreateArray();
  while (arr && sqlite3_step(st) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject();
    if (!o) break;
    cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
    if (sqlite3_column_type(st, 1) != SQLITE_NULL)
      cJSON_AddStringToObject(o, "name", (const char *)sqlite3_column_text(st, 1));
    cJSON_AddStringToObject(o, "kind", (const char *)sqlite3_column_text(st, 2));
    cJSON_AddStringToObject(o, "spec", (const char *)sqlite3_column_text(st, 3));
    cJSON_AddStringToObject(o, "job", (const char *)sqlite3_column_text(st, 4));
    if (sqlite3_column_type(st, 5) != SQLITE_NULL)
      cJSON_AddNumberToObject(o, "next_run_at", (double)sqlite3_column_int64(st, 5));
    if (sqlite3_column_type(st, 6) != SQLITE_NULL)
      cJSON_AddNumberToObject(o, "last_run_at", (double)sqlite3_column_int64(st, 6));
    cJSON_AddBoolToObject(o, "enabled", sqlite3_column_int(st, 7));
    cJSON_AddItemToArray(arr, o);
  }
  rp_store_done(st);
  if (!arr) return luaL_error(L, "crm.schedule.list: out of memory");
  rp_api_push_json_owned(L, arr);
  return 1;
}

void rp_api_push_schedule(lua_State *L) {
  static const luaL_Reg fns[] = {{"every", sch_every}, {"cron", sch_cron},
                                 {"at", sch_at},       {"cancel", sch_cancel},
                                 {"list", sch_list},   {NULL, NULL}};
  luaL_newlib(L, fns);
}
