/* api_events: crm.events, the event log: emit (events:emit) and a
 * customer's timeline (events:read). Emitted events go through the same log
 * and bus as every other event. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "event.h"

/* crm.events.emit(event) -> id, duplicate */
static int ev_emit(lua_State *L) {
  rp_api_require(L, RP_PERM_EVENTS_EMIT, "crm.events.emit");
  luaL_checktype(L, 1, LUA_TTABLE);
  rp_plugin *p = rp_api_plugin(L);
  cJSON *obj = rp_api_to_json(L, 1, "crm.events.emit");
  char source[80];
  snprintf(source, sizeof source, "plugin:%s", p->name);
  rp_event_in ev;
  memset(&ev, 0, sizeof ev);
  rp_err err;
  rp_err_clear(&err);
  int64_t id = 0;
  int dup = 0;
  int rc = rp_event_from_json(obj, &ev, &err);
  if (rc == RP_OK) {
    if (!ev.source) ev.source = source;
    /* An event naming a customer it may not create needs customers:write. */
    if (ev.customer_id == 0 && ev.customer &&
        !(rp_plugin_principal(p)->perms & RP_PERM_CUSTOMERS_WRITE))
      rc = rp_authz_require(rp_plugin_principal(p), RP_PERM_CUSTOMERS_WRITE,
                            "crm.events.emit naming a customer by identity", &err);
    /* A savepoint of its own: the plugin may catch the error and go on, and
     * must then find nothing of the event written. */
    rp_store *s = p->host->store;
    if (rc == RP_OK && (rc = rp_store_tx_begin(s, &err)) == RP_OK) {
      rc = rp_event_append(s, p->host->cfg, &ev, &id, &dup, &err);
      if (rc == RP_OK) rc = rp_store_tx_commit(s, &err);
      if (rc) rp_store_tx_rollback(s);
    }
  }
  cJSON_Delete(obj);
  if (rc) {
    rp_err_prefix(&err, "crm.events.emit: ");
    return rp_api_raise(L, &err);
  }
  lua_pushinteger(L, id);
  lua_pushboolean(L, dup);
  return 2;
}

/* crm.events.timeline(customer_id [, {limit = 50, before = id}]) -> array */
static int ev_timeline(lua_State *L) {
  rp_api_require(L, RP_PERM_EVENTS_READ, "crm.events.timeline");
  int64_t cid = luaL_checkinteger(L, 1);
  int64_t before = 0;
  int limit = 50;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "limit");
    limit = (int)luaL_optinteger(L, -1, 50);
    lua_getfield(L, 2, "before");
    before = luaL_optinteger(L, -1, 0);
    lua_pop(L, 2);
  }
  if (limit < 1 || limit > 1000) return luaL_error(L, "crm.events.timeline: limit must be 1..1000");
  rp_plugin *p = rp_api_plugin(L);
  cJSON *arr = NULL;
  rp_err err;
  rp_err_clear(&err);
  if (rp_event_timeline(p->host->store, cid, before, limit, &arr, &err)) return rp_api_raise(L, &err);
  rp_api_push_json_owned(L, arr);
  return 1;
}

void rp_api_push_events(lua_State *L) {
  static const luaL_Reg fns[] = {{"emit", ev_emit}, {"timeline", ev_timeline}, {NULL, NULL}};
  luaL_newlib(L, fns);
}
