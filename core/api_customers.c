/* api_customers: crm.customers, the unified customer profile. Reads need
 * customers:read (identities also pii:read, consent also consent:read);
 * changes need customers:write. */
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "audit.h"
#include "clock.h"
#include "profile.h"

static rp_store *store_of(lua_State *L) { return rp_api_plugin(L)->host->store; }
static const rp_config *cfg_of(lua_State *L) { return rp_api_plugin(L)->host->cfg; }

/* Records an access by the calling plugin or operator script; a failure
 * raises (the call did not happen unaudited). fields is taken. */
static void audit(lua_State *L, const char *action, int64_t customer_id, cJSON *fields) {
  rp_plugin *p = rp_api_plugin(L);
  char actor[160];
  if (p->m && p->caller[0]) snprintf(actor, sizeof actor, "%s+plugin:%s", p->caller, p->name);
  else if (p->m) snprintf(actor, sizeof actor, "plugin:%s", p->name);
  else rp_audit_local_actor("operator", actor, sizeof actor);
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_audit_record(store_of(L), actor, action, customer_id, fields,
                           p->caller_origin[0] ? p->caller_origin : "local", &err);
  cJSON_Delete(fields);
  if (rc) rp_api_raise(L, &err);
}

static cJSON *keys_of(const cJSON *obj) {
  cJSON *arr = cJSON_CreateArray();
  const cJSON *k;
  cJSON_ArrayForEach(k, obj) cJSON_AddItemToArray(arr, cJSON_CreateString(k->string));
  return arr;
}

static unsigned view_flags(lua_State *L) {
  const rp_principal *pr = rp_plugin_principal(rp_api_plugin(L));
  unsigned flags = 0;
  if (pr->perms & RP_PERM_PII_READ) flags |= RP_VIEW_PII;
  if (pr->perms & RP_PERM_CONSENT_READ) flags |= RP_VIEW_CONSENT;
  return flags;
}

/* crm.customers.get(id [, {events = n}]) -> profile table or nil */
static int cust_get(lua_State *L) {
  rp_api_require(L, RP_PERM_CUSTOMERS_READ, "crm.customers.get");
  int64_t id = luaL_checkinteger(L, 1);
  int events = 0;
  if (lua_istable(L, 2)) {
    lua_getfield(L, 2, "events");
    events = (int)luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
  }
  unsigned flags = view_flags(L);
  if (events > 0) {
    rp_api_require(L, RP_PERM_EVENTS_READ, "crm.customers.get{events}");
    flags |= RP_VIEW_EVENTS;
    if (events > 1000) events = 1000;
  }
  cJSON *view = NULL;
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_profile_view(store_of(L), id, flags, events, &view, &err);
  if (rc == RP_ENOTFOUND) {
    lua_pushnil(L);
    return 1;
  }
  if (rc) return rp_api_raise(L, &err);
  cJSON *fields = cJSON_CreateArray();
  cJSON_AddItemToArray(fields, cJSON_CreateString("attributes"));
  if (flags & RP_VIEW_PII) cJSON_AddItemToArray(fields, cJSON_CreateString("identities"));
  if (flags & RP_VIEW_CONSENT) cJSON_AddItemToArray(fields, cJSON_CreateString("consent"));
  if (flags & RP_VIEW_EVENTS) cJSON_AddItemToArray(fields, cJSON_CreateString("recent_events"));
  int64_t survivor = (int64_t)cJSON_GetObjectItem(view, "id")->valuedouble;
  rp_api_push_json_owned(L, view);
  audit(L, "customer.read", survivor, fields);
  return 1;
}

/* crm.customers.find(kind, value) -> id or nil */
static int cust_find(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  const char *value = luaL_checkstring(L, 2);
  rp_api_require(L, RP_PERM_CUSTOMERS_READ, "crm.customers.find");
  if (strcmp(kind, "external_id") != 0 && strcmp(kind, "anonymous_id") != 0)
    rp_api_require(L, RP_PERM_PII_READ, "crm.customers.find by email, phone or custom identity");
  int64_t id;
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_profile_resolve(store_of(L), cfg_of(L), kind, value, &id, &err);
  if (rc == RP_ENOTFOUND) {
    lua_pushnil(L);
    return 1;
  }
  if (rc) return rp_api_raise(L, &err);
  lua_pushinteger(L, id);
  return 1;
}

/* crm.customers.upsert(profile) -> id, created */
static int cust_upsert(lua_State *L) {
  rp_api_require(L, RP_PERM_CUSTOMERS_WRITE, "crm.customers.upsert");
  luaL_checktype(L, 1, LUA_TTABLE);
  cJSON *in = rp_api_to_json(L, 1, "crm.customers.upsert");
  rp_plugin *p = rp_api_plugin(L);
  char source[80];
  snprintf(source, sizeof source, "plugin:%s", p->name);
  rp_upsert res;
  memset(&res, 0, sizeof res);
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_profile_upsert(store_of(L), cfg_of(L), in, source, &res, &err);
  cJSON *fields = rc == RP_OK ? keys_of(in) : NULL;
  cJSON_Delete(in);
  if (rc) {
    rp_err_prefix(&err, "crm.customers.upsert: ");
    return rp_api_raise(L, &err);
  }
  audit(L, res.created ? "customer.create" : "customer.update", res.customer_id, fields);
  lua_pushinteger(L, res.customer_id);
  lua_pushboolean(L, res.created);
  return 2;
}

/* crm.customers.set(id, attributes) */
static int cust_set(lua_State *L) {
  rp_api_require(L, RP_PERM_CUSTOMERS_WRITE, "crm.customers.set");
  int64_t id = luaL_checkinteger(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  cJSON *attrs = rp_api_to_json(L, 2, "crm.customers.set");
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_profile_set_attributes(store_of(L), id, attrs, &err);
  cJSON *fields = rc == RP_OK ? keys_of(attrs) : NULL;
  cJSON_Delete(attrs);
  if (rc) {
    rp_err_prefix(&err, "crm.customers.set: ");
    return rp_api_raise(L, &err);
  }
  int64_t survivor = id;
  rp_profile_canonical(store_of(L), id, &survivor, NULL);
  audit(L, "customer.update", survivor, fields);
  return 0;
}

/* crm.customers.set_consent(id, channel, granted [, source]) */
static int cust_set_consent(lua_State *L) {
  rp_api_require(L, RP_PERM_CUSTOMERS_WRITE, "crm.customers.set_consent");
  int64_t id = luaL_checkinteger(L, 1);
  const char *channel = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TBOOLEAN);
  int granted = lua_toboolean(L, 3);
  rp_plugin *p = rp_api_plugin(L);
  char source[80];
  snprintf(source, sizeof source, "plugin:%s", p->name);
  const char *src = luaL_optstring(L, 4, source);
  rp_err err;
  rp_err_clear(&err);
  if (rp_profile_set_consent(store_of(L), id, channel, granted, src, rp_clock_now_ms(), &err)) {
    rp_err_prefix(&err, "crm.customers.set_consent: ");
    return rp_api_raise(L, &err);
  }
  int64_t survivor = id;
  rp_profile_canonical(store_of(L), id, &survivor, NULL);
  cJSON *fields = cJSON_CreateArray();
  cJSON_AddItemToArray(fields, cJSON_CreateString(channel));
  audit(L, "consent.update", survivor, fields);
  return 0;
}

/* The iterator of crm.customers.each: one indexed lookup per customer, so
 * no statement stays open between rows and a job may yield anywhere. */
typedef struct cust_iter {
  int64_t last_id;
  int64_t updated_since, created_since;
  char attribute[72];
  char has_identity[40];
} cust_iter;

static int cust_next(lua_State *L) {
  cust_iter *it = lua_touserdata(L, lua_upvalueindex(1));
  char sql[640];
  snprintf(sql, sizeof sql,
           "SELECT c.id, c.external_id, c.created_at, c.updated_at FROM customers c "
           "WHERE c.id > ?1 AND c.merged_into IS NULL%s%s%s%s ORDER BY c.id LIMIT 1",
           it->updated_since ? " AND c.updated_at >= ?2" : "",
           it->created_since ? " AND c.created_at >= ?3" : "",
           it->attribute[0] ? " AND EXISTS (SELECT 1 FROM customer_attributes a WHERE "
                              "a.customer_id = c.id AND a.name = ?4)" : "",
           it->has_identity[0] ? " AND EXISTS (SELECT 1 FROM customer_identities i WHERE "
                                 "i.customer_id = c.id AND i.kind = ?5)" : "");
  rp_store *s = store_of(L);
  sqlite3_stmt *st;
  rp_err err;
  rp_err_clear(&err);
  if (rp_store_prepare(s, sql, &st, &err)) return rp_api_raise(L, &err);
  sqlite3_bind_int64(st, 1, it->last_id);
  if (it->updated_since) sqlite3_bind_int64(st, 2, it->updated_since);
  if (it->created_since) sqlite3_bind_int64(st, 3, it->created_since);
  if (it->attribute[0]) sqlite3_bind_text(st, 4, it->attribute, -1, SQLITE_STATIC);
  if (it->has_identity[0]) sqlite3_bind_text(st, 5, it->has_identity, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc != SQLITE_ROW) {
    if (rc != SQLITE_DONE) rp_store_error(s, "crm.customers.each", &err);
    rp_store_done(st);
    if (rc != SQLITE_DONE) return rp_api_raise(L, &err);
    return 0;
  }
  int64_t id = sqlite3_column_int64(st, 0);
  char ext[256] = "";
  int has_ext = sqlite3_column_type(st, 1) != SQLITE_NULL;
  if (has_ext) snprintf(ext, sizeof ext, "%s", (const char *)sqlite3_column_text(st, 1));
  int64_t created = sqlite3_column_int64(st, 2), updated = sqlite3_column_int64(st, 3);
  rp_store_done(st);
  it->last_id = id;
  lua_pushinteger(L, id);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, id);
  lua_setfield(L, -2, "id");
  if (has_ext) {
    lua_pushstring(L, ext);
    lua_setfield(L, -2, "external_id");
  }
  lua_pushinteger(L, created);
  lua_setfield(L, -2, "created_at");
  lua_pushinteger(L, updated);
  lua_setfield(L, -2, "updated_at");
  return 2;
}

static void opt_string(lua_State *L, const char *field, char *out, size_t size) {
  lua_getfield(L, 1, field);
  if (!lua_isnil(L, -1)) {
    size_t len;
    const char *s = luaL_checklstring(L, -1, &len);
    if (len >= size) luaL_error(L, "crm.customers.each: %s is too long", field);
    memcpy(out, s, len + 1);
  }
  lua_pop(L, 1);
}

static int64_t opt_time(lua_State *L, const char *field) {
  int64_t ms = 0;
  lua_getfield(L, 1, field);
  if (lua_isinteger(L, -1)) {
    ms = lua_tointeger(L, -1);
  } else if (lua_isstring(L, -1)) {
    if (rp_clock_parse(lua_tostring(L, -1), &ms) != 0)
      luaL_error(L, "crm.customers.each: %s: not a timestamp", field);
  } else if (!lua_isnil(L, -1)) {
    luaL_error(L, "crm.customers.each: %s: expected epoch ms or ISO 8601", field);
  }
  lua_pop(L, 1);
  return ms;
}

/* crm.customers.each([filter]) -> iterator of id, summary */
static int cust_each(lua_State *L) {
  rp_api_require(L, RP_PERM_CUSTOMERS_READ, "crm.customers.each");
  cust_iter *it = lua_newuserdatauv(L, sizeof *it, 0);
  memset(it, 0, sizeof *it);
  if (lua_istable(L, 1)) {
    static const char *const known[] = {"after_id", "updated_since", "created_since",
                                        "has_attribute", "has_identity", NULL};
    lua_pushnil(L);
    while (lua_next(L, 1)) {
      int ok = 0;
      if (lua_type(L, -2) == LUA_TSTRING)
        for (int i = 0; known[i]; i++)
          if (strcmp(known[i], lua_tostring(L, -2)) == 0) ok = 1;
      if (!ok)
        return luaL_error(L, "crm.customers.each: unknown filter '%s' (known: after_id, "
                             "updated_since, created_since, has_attribute, has_identity)",
                          luaL_tolstring(L, -2, NULL));
      lua_pop(L, 1);
    }
    lua_getfield(L, 1, "after_id");
    it->last_id = luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    it->updated_since = opt_time(L, "updated_since");
    it->created_since = opt_time(L, "created_since");
    opt_string(L, "has_attribute", it->attribute, sizeof it->attribute);
    opt_string(L, "has_identity", it->has_identity, sizeof it->has_identity);
    if (it->has_identity[0])
      rp_api_require(L, RP_PERM_PII_READ, "crm.customers.each{has_identity}");
  } else if (!lua_isnoneornil(L, 1)) {
    return luaL_error(L, "crm.customers.each: the filter must be a table");
  }
  lua_pushcclosure(L, cust_next, 1);
  return 1;
}

/* crm.audit.record(action, customer_id [, fields]): appends to the audit log
 * what the plugin did to a customer's data on its own tables (a points
 * adjustment, say). The action is the plugin's ("<plugin>.<what>"), so a
 * plugin cannot write records that read as the core's; fields are names,
 * never values. */
static int audit_record(lua_State *L) {
  rp_plugin *p = rp_api_plugin(L);
  const char *action = luaL_checkstring(L, 1);
  /* nil: an action on no one customer (a segment exported, a rule changed). */
  lua_Integer customer_id = lua_isnoneornil(L, 2) ? 0 : luaL_checkinteger(L, 2);
  size_t nl = strlen(p->name);
  int ok = strlen(action) <= 64 && strncmp(action, p->name, nl) == 0 && action[nl] == '.' &&
           action[nl + 1] != '\0';
  for (const char *c = action + nl + 1; ok && *c; c++)
    ok = strchr("abcdefghijklmnopqrstuvwxyz0123456789_.", *c) != NULL;
  if (!ok)
    return luaL_error(L, "crm.audit.record: action '%s' must be '%s.<what>' ([a-z0-9_.], at most 64)",
                      action, p->name);
  if (customer_id < 0 || (customer_id == 0 && !lua_isnoneornil(L, 2)))
    return luaL_error(L, "crm.audit.record: customer_id must be positive (or nil for none)");
  cJSON *fields = NULL;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    fields = rp_api_to_json(L, 3, "crm.audit.record: fields");
    int good = cJSON_IsArray(fields) && cJSON_GetArraySize(fields) <= 64;
    const cJSON *f;
    cJSON_ArrayForEach(f, fields) good = good && cJSON_IsString(f) && strlen(f->valuestring) <= 64;
    if (!good) {
      cJSON_Delete(fields);
      return luaL_error(L, "crm.audit.record: fields must be an array of at most 64 field names");
    }
  }
  audit(L, action, (int64_t)customer_id, fields);
  return 0;
}

void rp_api_push_audit(lua_State *L) {
  static const luaL_Reg fns[] = {{"record", audit_record}, {NULL, NULL}};
  luaL_newlib(L, fns);
}

void rp_api_push_customers(lua_State *L) {
  static const luaL_Reg fns[] = {{"get", cust_get},
                                 {"find", cust_find},
                                 {"upsert", cust_upsert},
                                 {"set", cust_set},
                                 {"set_consent", cust_set_consent},
                                 {"each", cust_each},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
}
