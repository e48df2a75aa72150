/* api_db: crm.db, SQL on the plugin's own tables (and the core tables its
 * permissions let it read), with bound parameters. Every statement is
 * prepared and stepped under the plugin's SQL authorizer. */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "luajson.h"

/* A query result larger than this must be iterated with crm.db.rows. */
#define RP_DB_QUERY_MAX_ROWS 10000

/* An open crm.db.rows iterator. Linked into its plugin so that the host can
 * finalize it before the connection closes. */
typedef struct rp_rows {
  sqlite3_stmt *stmt; /* NULL once finished or closed */
  rp_plugin *p;
  struct rp_rows *next, *prev;
} rp_rows;

static const char rows_mt[] = "rapport.db.rows";

static void rows_close(rp_rows *r) {
  if (!r->stmt) return;
  sqlite3_finalize(r->stmt);
  r->stmt = NULL;
  if (r->prev) r->prev->next = r->next;
  else r->p->rows_open = r->next;
  if (r->next) r->next->prev = r->prev;
  r->next = r->prev = NULL;
}

void rp_api_db_close_rows(rp_plugin *p) {
  while (p->rows_open) rows_close(p->rows_open);
}

/* Binds arguments first..top of the Lua stack to st, or fills err. */
static int bind_args(lua_State *L, sqlite3_stmt *st, int first, rp_err *err) {
  int n = lua_gettop(L) - first + 1;
  int want = sqlite3_bind_parameter_count(st);
  if (n != want)
    return rp_err_set(err, RP_EINVAL, "sql", "SQL expects %d parameter(s), got %d", want, n);
  for (int i = 0; i < n; i++) {
    int idx = first + i, rc = SQLITE_OK;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
      rc = sqlite3_bind_null(st, i + 1);
      break;
    case LUA_TBOOLEAN:
      rc = sqlite3_bind_int(st, i + 1, lua_toboolean(L, idx));
      break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) rc = sqlite3_bind_int64(st, i + 1, lua_tointeger(L, idx));
      else rc = sqlite3_bind_double(st, i + 1, lua_tonumber(L, idx));
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      rc = sqlite3_bind_text64(st, i + 1, s, len, SQLITE_TRANSIENT, SQLITE_UTF8);
      break;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) {
        rc = sqlite3_bind_null(st, i + 1);
        break;
      }
      /* fallthrough */
    case LUA_TTABLE: {
      cJSON *j = rp_lua_to_json(L, idx, err);
      if (!j) return rp_err_prefix(err, "parameter %d: ", i + 1);
      char *text = cJSON_PrintUnformatted(j);
      cJSON_Delete(j);
      if (!text) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
      rc = sqlite3_bind_text(st, i + 1, text, -1, SQLITE_TRANSIENT);
      free(text);
      break;
    }
    default:
      return rp_err_set(err, RP_EINVAL, "sql", "parameter %d: cannot bind a %s", i + 1,
                        luaL_typename(L, idx));
    }
    if (rc != SQLITE_OK)
      return rp_err_set(err, RP_EINVAL, "sql", "parameter %d: %s", i + 1, sqlite3_errstr(rc));
  }
  return RP_OK;
}

static void push_row(lua_State *L, sqlite3_stmt *st) {
  int n = sqlite3_column_count(st);
  lua_createtable(L, 0, n);
  for (int i = 0; i < n; i++) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
      lua_pushinteger(L, sqlite3_column_int64(st, i));
      break;
    case SQLITE_FLOAT:
      lua_pushnumber(L, sqlite3_column_double(st, i));
      break;
    case SQLITE_NULL:
      continue;
    default:
      lua_pushlstring(L, (const char *)sqlite3_column_blob(st, i),
                      (size_t)sqlite3_column_bytes(st, i));
      break;
    }
    lua_setfield(L, -2, sqlite3_column_name(st, i));
  }
}

/* Prepares and binds the SQL at index 1 with the arguments after it. On
 * success *owned tells whether the caller must finalize (not reset) it. */
static sqlite3_stmt *prepare(lua_State *L, const char *what, int *owned) {
  rp_plugin *p = rp_api_plugin(L);
  const char *sql = luaL_checkstring(L, 1);
  sqlite3_stmt *st;
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_plugin_prepare(p, sql, &st, &err);
  if (rc < 0) {
    rp_err_prefix(&err, "%s: ", what);
    rp_api_raise(L, &err);
  }
  *owned = rc == 1;
  if (bind_args(L, st, 2, &err) != RP_OK) {
    if (*owned) sqlite3_finalize(st);
    else sqlite3_reset(st);
    rp_err_prefix(&err, "%s: ", what);
    rp_api_raise(L, &err);
  }
  return st;
}

static void finish(sqlite3_stmt *st, int owned) {
  if (owned) sqlite3_finalize(st);
  else sqlite3_reset(st);
}

static int step_error(lua_State *L, rp_plugin *p, sqlite3_stmt *st, int owned, const char *what) {
  rp_err err;
  rp_err_clear(&err);
  rp_plugin_sql_error(p, what, &err);
  finish(st, owned);
  return rp_api_raise(L, &err);
}

/* crm.db.query(sql, ...) -> array of rows */
static int db_query(lua_State *L) {
  rp_plugin *p = rp_api_plugin(L);
  int owned;
  sqlite3_stmt *st = prepare(L, "crm.db.query", &owned);
  lua_newtable(L);
  rp_lua_push_array_mt(L);
  lua_setmetatable(L, -2);
  int n = 0, rc;
  while ((rc = rp_plugin_step(p, st)) == SQLITE_ROW) {
    if (n == RP_DB_QUERY_MAX_ROWS) {
      finish(st, owned);
      return luaL_error(L, "crm.db.query: more than %d rows; iterate with crm.db.rows instead",
                        RP_DB_QUERY_MAX_ROWS);
    }
    push_row(L, st);
    lua_rawseti(L, -2, ++n);
  }
  if (rc != SQLITE_DONE) return step_error(L, p, st, owned, "crm.db.query");
  finish(st, owned);
  return rp_sandbox_return(L, 1);
}

/* crm.db.one(sql, ...) -> first row or nil */
static int db_one(lua_State *L) {
  rp_plugin *p = rp_api_plugin(L);
  int owned;
  sqlite3_stmt *st = prepare(L, "crm.db.one", &owned);
  int rc = rp_plugin_step(p, st);
  if (rc == SQLITE_ROW) {
    push_row(L, st);
  } else if (rc == SQLITE_DONE) {
    lua_pushnil(L);
  } else {
    return step_error(L, p, st, owned, "crm.db.one");
  }
  finish(st, owned);
  return rp_sandbox_return(L, 1);
}

/* crm.db.value(sql, ...) -> first column of the first row, or nil */
static int db_value(lua_State *L) {
  rp_plugin *p = rp_api_plugin(L);
  int owned;
  sqlite3_stmt *st = prepare(L, "crm.db.value", &owned);
  int rc = rp_plugin_step(p, st);
  if (rc == SQLITE_ROW && sqlite3_column_count(st) > 0) {
    switch (sqlite3_column_type(st, 0)) {
    case SQLITE_INTEGER:
      lua_pushinteger(L, sqlite3_column_int64(st, 0));
      break;
    case SQLITE_FLOAT:
      lua_pushnumber(L, sqlite3_column_double(st, 0));
      break;
    case SQLITE_NULL:
      lua_pushnil(L);
      break;
    default:
      lua_pushlstring(L, (const char *)sqlite3_column_blob(st, 0),
                      (size_t)sqlite3_column_bytes(st, 0));
    }
  } else if (rc == SQLITE_DONE || rc == SQLITE_ROW) {
    lua_pushnil(L);
  } else {
    return step_error(L, p, st, owned, "crm.db.value");
  }
  finish(st, owned);
  return rp_sandbox_return(L, 1);
}

/* crm.db.exec(sql, ...) -> changes, last_insert_id */
static int db_exec(lua_State *L) {
  rp_plugin *p = rp_api_plugin(L);
  int owned;
  sqlite3_stmt *st = prepare(L, "crm.db.exec", &owned);
  int rc;
  while ((rc = rp_plugin_step(p, st)) == SQLITE_ROW) {
  }
  if (rc != SQLITE_DONE) return step_error(L, p, st, owned, "crm.db.exec");
  finish(st, owned);
  sqlite3 *db = rp_store_db(p->host->store);
  lua_pushinteger(L, sqlite3_changes64(db));
  lua_pushinteger(L, sqlite3_last_insert_rowid(db));
  return rp_sandbox_return(L, 2);
}

static int rows_gc(lua_State *L) {
  rp_rows *r = luaL_checkudata(L, 1, rows_mt);
  rows_close(r);
  return 0;
}

static int rows_next(lua_State *L) {
  rp_rows *r = luaL_checkudata(L, lua_upvalueindex(1), rows_mt);
  if (!r->stmt) return 0;
  int rc = rp_plugin_step(r->p, r->stmt);
  if (rc == SQLITE_ROW) {
    push_row(L, r->stmt);
    return 1;
  }
  rp_err err;
  rp_err_clear(&err);
  if (rc != SQLITE_DONE) rp_plugin_sql_error(r->p, "crm.db.rows", &err);
  rows_close(r);
  if (rc != SQLITE_DONE) return rp_api_raise(L, &err);
  return 0;
}

/* crm.db.rows(sql, ...) -> iterator, for use in a generic for; the statement
 * is closed when the loop ends, breaks or raises. Rows are fetched one at a
 * time, so the result may be any size. */
static int db_rows(lua_State *L) {
  rp_plugin *p = rp_api_plugin(L);
  const char *sql = luaL_checkstring(L, 1);
  rp_rows *r = lua_newuserdatauv(L, sizeof *r, 0);
  memset(r, 0, sizeof *r);
  r->p = p;
  luaL_setmetatable(L, rows_mt);
  lua_insert(L, 2); /* sql, box, args... */
  rp_store *s = p->host->store;
  rp_err err;
  rp_err_clear(&err);
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  p->principal.denial[0] = '\0';
  void *prev = rp_store_set_principal(s, &p->principal);
  int rc = sqlite3_prepare_v2(rp_store_db(s), sql, -1, &st, &tail);
  rp_store_set_principal(s, prev);
  if (rc != SQLITE_OK || !st) {
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) rp_err_set(&err, RP_EINVAL, "sql", "empty statement");
    else rp_plugin_sql_error(p, "SQL", &err);
    rp_err_prefix(&err, "crm.db.rows: ");
    return rp_api_raise(L, &err);
  }
  if (bind_args(L, st, 3, &err) != RP_OK) {
    sqlite3_finalize(st);
    rp_err_prefix(&err, "crm.db.rows: ");
    return rp_api_raise(L, &err);
  }
  r->stmt = st;
  r->next = p->rows_open;
  if (r->next) r->next->prev = r;
  p->rows_open = r;
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, rows_next, 1);
  lua_pushnil(L);
  lua_pushnil(L);
  lua_pushvalue(L, 2); /* closing value of the generic for */
  return 4;
}

/* crm.db.atomic(fn, ...) -> fn's results; fn's writes commit together or,
 * when it raises, not at all (a savepoint), and the error propagates. */
static int db_atomic(lua_State *L) {
  rp_plugin *p = rp_api_plugin(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  rp_store *s = p->host->store;
  rp_err err;
  rp_err_clear(&err);
  if (rp_store_tx_begin(s, &err) != RP_OK) return rp_api_raise(L, &err);
  int base = lua_gettop(L);
  int st = lua_pcall(L, base - 1, LUA_MULTRET, 0);
  if (st != LUA_OK) {
    rp_store_tx_rollback(s);
    return lua_error(L);
  }
  if (rp_store_tx_commit(s, &err) != RP_OK) {
    rp_store_tx_rollback(s);
    return rp_api_raise(L, &err);
  }
  /* The end of a block is where a long job gives the loop back. */
  return rp_sandbox_return(L, lua_gettop(L));
}

void rp_api_push_db(lua_State *L) {
  if (luaL_newmetatable(L, rows_mt)) {
    lua_pushcfunction(L, rows_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, rows_gc);
    lua_setfield(L, -2, "__close");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"query", db_query}, {"one", db_one},   {"value", db_value},
                                 {"exec", db_exec},   {"rows", db_rows}, {"atomic", db_atomic},
                                 {NULL, NULL}};
  luaL_newlib(L, fns);
}
