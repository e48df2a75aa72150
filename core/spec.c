/* spec: the plugin spec runner's C side: scratch databases and the `test`
 * primitives. */
#include "spec.h"

#include <dirent.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "api.h"
#include "assets.h"
#include "bus.h"
#include "clock.h"
#include "hostint.h"
#include "luajson.h"
#include "sched.h"
#include "sealing.h"

/* Every spec starts at this instant (UTC), so dates in specs are stable. */
#define SPEC_START_MS 1767225600000LL /* 2026-01-01T00:00:00Z */

typedef struct spec_env {
  const rp_config *cfg; /* &local_cfg */
  const rp_config *instance_cfg;
  rp_config local_cfg;  /* the instance's, with plugins overridden by test.reset */
  cJSON *local_plugins; /* owned: local_cfg.plugins */
  const char *dir;
  FILE *out;
  uv_loop_t loop;
  rp_store *store;
  rp_host *host;
  rp_sched *sched;
  rp_plugin *op; /* the spec's own operator context */
  char plugin[64];
} spec_env;

static spec_env *env_of(lua_State *L) {
  return lua_touserdata(L, lua_upvalueindex(1));
}

static void scratch_close(spec_env *e) {
  if (e->sched) rp_sched_free(e->sched);
  e->sched = NULL;
  uv_run(&e->loop, UV_RUN_NOWAIT); /* let the scheduler's handles close */
  rp_host_free(e->host);
  e->host = NULL;
  rp_store_close(e->store);
  e->store = NULL;
}

static int scratch_open(spec_env *e, rp_err *err) {
  scratch_close(e);
  rp_clock_set_fake(SPEC_START_MS);
  int rc = rp_store_open(":memory:", RP_STORE_CREATE, &e->store, err);
  /* Specs see customers sealed as in production, under a throwaway key. */
  if (rc == RP_OK) rc = rp_sealing_attach(e->store, e->cfg, ":memory:", 0, err);
  if (rc == RP_OK) rc = rp_host_new(e->store, e->cfg, &e->host, err);
  if (rc == RP_OK) rc = rp_sched_new(&e->loop, e->store, e->cfg, &e->sched, err);
  if (rc == RP_OK) {
    rp_host_set_sched(e->host, e->sched);
    rp_sched_set_runner(e->sched, rp_host_job_runner(e->host));
    rc = rp_host_enable(e->host, e->dir, err);
  }
  if (rc == RP_OK) rc = rp_sched_start(e->sched, err);
  return rc;
}

/* test.reset([{config = {...}}]): a fresh database with the plugin enabled
 * (with these config overrides instead of the instance's); clock at START. */
static int t_reset(lua_State *L) {
  spec_env *e = env_of(L);
  rp_err err;
  rp_err_clear(&err);
  cJSON *over = NULL;
  if (lua_istable(L, 1) && lua_getfield(L, 1, "config") != LUA_TNIL) {
    over = rp_lua_to_json(L, -1, &err);
    lua_pop(L, 1);
    if (!over || !cJSON_IsObject(over)) {
      cJSON_Delete(over);
      return luaL_error(L, "test.reset: config must be a table of settings");
    }
  } else {
    const cJSON *inst = rp_config_plugin(e->instance_cfg, e->plugin);
    over = inst ? cJSON_Duplicate(inst, 1) : NULL;
  }
  cJSON_DeleteItemFromObjectCaseSensitive(e->local_plugins, e->plugin);
  if (over) cJSON_AddItemToObject(e->local_plugins, e->plugin, over);
  /* The spec's context must let go of the old connection first. */
  rp_plugin_set_host(e->op, NULL);
  int rc = scratch_open(e, &err);
  rp_plugin_set_host(e->op, e->host);
  if (rc) return luaL_error(L, "test.reset: %s", err.msg);
  return 0;
}

static void drain(lua_State *L, spec_env *e) {
  rp_err err;
  rp_err_clear(&err);
  if (rp_bus_drain(e->host, 1000, NULL, &err)) luaL_error(L, "test.dispatch: %s", err.msg);
}

/* test.dispatch(): delivers every pending event to the plugin. */
static int t_dispatch(lua_State *L) {
  drain(L, env_of(L));
  return 0;
}

/* test.advance(duration): moves the clock, fires what became due, runs the
 * jobs to completion, dispatches. */
static int t_advance(lua_State *L) {
  spec_env *e = env_of(L);
  int64_t ms;
  if (lua_isinteger(L, 1)) ms = lua_tointeger(L, 1);
  else if (rp_clock_parse_duration(luaL_checkstring(L, 1), &ms) != 0)
    return luaL_error(L, "test.advance: not a duration: %s", lua_tostring(L, 1));
  rp_clock_advance(ms);
  rp_err err;
  rp_err_clear(&err);
  int64_t fired = 0;
  if (rp_sched_run_due(e->sched, rp_clock_now_ms(), &fired, &err))
    return luaL_error(L, "test.advance: %s", err.msg);
  while (rp_sched_pending(e->sched) > 0) rp_sched_step(e->sched);
  drain(L, e);
  lua_pushinteger(L, fired);
  return 1;
}

/* test.run_job(name) -> outcome, error: runs the plugin's job now. */
static int t_run_job(lua_State *L) {
  spec_env *e = env_of(L);
  const char *name = luaL_checkstring(L, 1);
  sqlite3_stmt *st;
  rp_err err;
  rp_err_clear(&err);
  if (rp_store_prepare(e->store, "SELECT id FROM jobs WHERE owner = ?1 AND name = ?2", &st, &err))
    return luaL_error(L, "test.run_job: %s", err.msg);
  sqlite3_bind_text(st, 1, e->plugin, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  int64_t id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  rp_store_done(st);
  if (!id) return luaL_error(L, "test.run_job: plugin '%s' has no job '%s'", e->plugin, name);
  int64_t run_id = 0;
  int rc = rp_sched_run_now(e->sched, id, 1, &run_id, &err);
  drain(L, e);
  lua_pushstring(L, rc == RP_OK ? "ok" : "error");
  if (rc) lua_pushstring(L, err.msg);
  else lua_pushnil(L);
  return 2;
}

/* test.dead_letters() -> array of dead letters (pending), oldest first */
static int t_dead_letters(lua_State *L) {
  spec_env *e = env_of(L);
  cJSON *arr;
  rp_err err;
  rp_err_clear(&err);
  if (rp_dlq_list(e->store, e->plugin, 0, 100000, &arr, &err))
    return luaL_error(L, "test.dead_letters: %s", err.msg);
  cJSON *rev = cJSON_CreateArray();
  while (cJSON_GetArraySize(arr) > 0)
    cJSON_AddItemToArray(rev, cJSON_DetachItemFromArray(arr, cJSON_GetArraySize(arr) - 1));
  cJSON_Delete(arr);
  rp_api_push_json_owned(L, rev);
  return 1;
}

/* test.profile(customer_id) -> what the plugin's profile hook returns */
static int t_profile(lua_State *L) {
  spec_env *e = env_of(L);
  int64_t id = luaL_checkinteger(L, 1);
  rp_plugin *p = rp_host_plugin(e->host, e->plugin);
  cJSON *out = NULL;
  rp_err err;
  rp_err_clear(&err);
  if (!p) return luaL_error(L, "test.profile: plugin '%s' is not loaded", e->plugin);
  if (rp_plugin_profile(p, id, &out, &err)) return luaL_error(L, "test.profile: %s", err.msg);
  if (!out) return 0;
  rp_api_push_json_owned(L, out);
  return 1;
}

/* Runs fn in a transaction of its own, then dispatches what it emitted
 * (as test.emit does). */
static int in_tx(spec_env *e, rp_plugin *p, const char *caller,
                 int (*fn)(rp_plugin *, void *, rp_err *), void *arg, rp_err *err) {
  int rc = rp_store_tx_begin(e->store, err);
  if (rc) return rc;
  rp_plugin_set_caller(p, caller, "local");
  rc = fn(p, arg, err);
  rp_plugin_set_caller(p, NULL, NULL);
  if (rc == RP_OK) rc = rp_store_tx_commit(e->store, err);
  if (rc) rp_store_tx_rollback(e->store);
  return rc;
}

typedef struct command_args {
  const char *handler;
  cJSON *input;
  cJSON *value;
  char *text;
} command_args;

static int call_command(rp_plugin *p, void *arg, rp_err *err) {
  command_args *a = arg;
  return rp_plugin_command(p, a->handler, a->input, &a->value, &a->text, err);
}

/* test.command(name [, args [, options]]) -> value, text: runs one of the
 * plugin's commands as `rapport PLUGIN name` would; raises its error. */
static int t_command(lua_State *L) {
  spec_env *e = env_of(L);
  const char *name = luaL_checkstring(L, 1);
  rp_plugin *p = rp_host_plugin(e->host, e->plugin);
  const rp_manifest *m = p ? rp_plugin_manifest(p) : NULL;
  command_args a = {NULL, NULL, NULL, NULL};
  for (size_t i = 0; m && i < m->n_commands; i++)
    if (strcmp(m->commands[i].name, name) == 0) a.handler = m->commands[i].handler;
  if (!a.handler) return luaL_error(L, "test.command: plugin '%s' has no command '%s'", e->plugin, name);
  rp_err err;
  rp_err_clear(&err);
  a.input = cJSON_CreateObject();
  cJSON *args = lua_istable(L, 2) ? rp_lua_to_json(L, 2, &err) : cJSON_CreateArray();
  cJSON *opts = lua_istable(L, 3) ? rp_lua_to_json(L, 3, &err) : cJSON_CreateObject();
  /* An empty Lua table converts to an object; a command's args are a list. */
  if (args && cJSON_IsObject(args) && !args->child) {
    cJSON_Delete(args);
    args = cJSON_CreateArray();
  }
  if (!args || !opts || !cJSON_IsArray(args) || !cJSON_IsObject(opts)) {
    cJSON_Delete(args);
    cJSON_Delete(opts);
    cJSON_Delete(a.input);
    return luaL_error(L, "test.command: args must be a list and options a table");
  }
  cJSON_AddItemToObject(a.input, "args", args);
  cJSON_AddItemToObject(a.input, "options", opts);
  int rc = in_tx(e, p, "cli:spec", call_command, &a, &err);
  cJSON_Delete(a.input);
  if (rc) {
    free(a.text);
    cJSON_Delete(a.value);
    return luaL_error(L, "%s", err.msg);
  }
  /* The results go onto the stack before the dispatch, which may raise. */
  lua_pushstring(L, a.text ? a.text : "");
  free(a.text);
  if (!a.text) {
    lua_pop(L, 1);
    lua_pushnil(L);
  }
  if (a.value) rp_api_push_json_owned(L, a.value);
  else lua_pushnil(L);
  lua_insert(L, -2); /* value, text */
  drain(L, e);
  return 2;
}

typedef struct route_args {
  const char *handler;
  cJSON *request;
  int status;
  cJSON *body;
  const char *content_type;
} route_args;

static int call_route(rp_plugin *p, void *arg, rp_err *err) {
  route_args *a = arg;
  return rp_plugin_route(p, a->handler, a->request, &a->status, &a->body, &a->content_type, err);
}

/* test.route(method, path [, {body =, query =, key_id =, token =}]) ->
 * status, body, content_type (nil for JSON): calls the plugin's route as the HTTP API would (without
 * the HTTP: no authentication, no JSON text). */
static int t_route(lua_State *L) {
  spec_env *e = env_of(L);
  const char *method = luaL_checkstring(L, 1);
  const char *path = luaL_checkstring(L, 2);
  rp_plugin *p = rp_host_plugin(e->host, e->plugin);
  const rp_manifest *m = p ? rp_plugin_manifest(p) : NULL;
  route_args a = {NULL, NULL, 0, NULL, NULL};
  for (size_t i = 0; m && i < m->n_routes; i++)
    if (strcmp(m->routes[i].path, path) == 0 && strcmp(m->routes[i].method, method) == 0)
      a.handler = m->routes[i].handler;
  if (!a.handler) return luaL_error(L, "test.route: plugin '%s' has no route %s %s", e->plugin, method, path);
  rp_err err;
  rp_err_clear(&err);
  a.request = lua_istable(L, 3) ? rp_lua_to_json(L, 3, &err) : cJSON_CreateObject();
  if (!a.request || !cJSON_IsObject(a.request)) {
    cJSON_Delete(a.request);
    return luaL_error(L, "test.route: the request must be a table");
  }
  cJSON_DeleteItemFromObjectCaseSensitive(a.request, "method");
  cJSON_DeleteItemFromObjectCaseSensitive(a.request, "path");
  cJSON_AddStringToObject(a.request, "method", method);
  cJSON_AddStringToObject(a.request, "path", path);
  if (!cJSON_GetObjectItemCaseSensitive(a.request, "query")) cJSON_AddObjectToObject(a.request, "query");
  /* Audit records name the key the request names, as over HTTP. */
  const cJSON *key = cJSON_GetObjectItemCaseSensitive(a.request, "key_id");
  char caller[32] = "token";
  if (cJSON_IsNumber(key)) snprintf(caller, sizeof caller, "key:%.0f", key->valuedouble);
  int rc = in_tx(e, p, caller, call_route, &a, &err);
  cJSON_Delete(a.request);
  if (rc) {
    cJSON_Delete(a.body);
    return luaL_error(L, "%s", err.msg);
  }
  lua_pushinteger(L, a.status);
  if (a.body) rp_api_push_json_owned(L, a.body);
  else lua_pushnil(L);
  if (a.content_type) lua_pushstring(L, a.content_type);
  else lua_pushnil(L);
  drain(L, e); /* after the results are on the stack: it may raise */
  return 3;
}

static int t_write(lua_State *L) {
  spec_env *e = env_of(L);
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  fwrite(s, 1, len, e->out);
  fflush(e->out);
  return 0;
}

static int t_traceback(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 2);
  return 1;
}

static int push_test(lua_State *L) {
  spec_env *e = lua_touserdata(L, 1);
  static const luaL_Reg fns[] = {{"reset", t_reset},
                                 {"dispatch", t_dispatch},
                                 {"advance", t_advance},
                                 {"run_job", t_run_job},
                                 {"dead_letters", t_dead_letters},
                                 {"profile", t_profile},
                                 {"command", t_command},
                                 {"route", t_route},
                                 {"write", t_write},
                                 {"traceback", t_traceback},
                                 {NULL, NULL}};
  lua_createtable(L, 0, 12);
  lua_pushlightuserdata(L, e);
  luaL_setfuncs(L, fns, 1);
  lua_pushstring(L, e->plugin);
  lua_setfield(L, -2, "plugin");
  lua_pushinteger(L, SPEC_START_MS);
  lua_setfield(L, -2, "START");
  lua_pushvalue(L, -1);
  lua_setglobal(L, "test");
  return 1;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int rp_spec_run(const rp_config *cfg, const char *dir, FILE *out, int *passed, int *failed,
                rp_err *err) {
  *passed = *failed = 0;
  spec_env e;
  memset(&e, 0, sizeof e);
  e.instance_cfg = cfg;
  e.local_cfg = *cfg;
  e.local_plugins = cfg->plugins ? cJSON_Duplicate(cfg->plugins, 1) : cJSON_CreateObject();
  if (!e.local_plugins) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  e.local_cfg.plugins = e.local_plugins;
  e.cfg = &e.local_cfg;
  e.dir = dir;
  e.out = out;
  int rc = uv_loop_init(&e.loop);
  if (rc) {
    cJSON_Delete(e.local_plugins);
    return rp_err_set(err, RP_EIO, NULL, "libuv: %s", uv_strerror(rc));
  }
  rp_manifest *m = NULL;
  if ((rc = rp_manifest_load(dir, &m, err))) goto done;
  snprintf(e.plugin, sizeof e.plugin, "%s", m->name);
  rp_manifest_free(m);

  char specdir[PATH_MAX];
  snprintf(specdir, sizeof specdir, "%s/spec", dir);
  if ((rc = scratch_open(&e, err))) goto done;
  if ((rc = rp_host_operator(e.host, specdir, &e.op, err))) goto done;
  rp_sandbox *sb = rp_plugin_sandbox(e.op);
  lua_State *L = rp_sandbox_lua(sb);

  const rp_asset *a = rp_asset_find("spec.lua");
  if (!a) {
    rc = rp_err_set(err, RP_EIO, NULL, "spec runner asset missing from this build");
    goto done;
  }
  if ((rc = rp_sandbox_load(sb, a->text, a->len, "=spec.lua", err))) goto done;
  lua_pushcfunction(L, push_test);
  lua_pushlightuserdata(L, &e);
  if ((rc = rp_sandbox_call(sb, 1, 1, 0, "spec runner", err))) {
    lua_pop(L, 1);
    goto done;
  }
  if ((rc = rp_sandbox_call(sb, 1, 1, 0, "spec runner", err))) goto done;
  int runner = lua_gettop(L); /* the runner table */

  DIR *d = opendir(specdir);
  if (!d) {
    rc = rp_err_set(err, RP_ENOTFOUND, specdir, "%s: no spec folder", specdir);
    goto done;
  }
  char **files = NULL;
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    size_t len = strlen(de->d_name);
    if (len < 9 || strcmp(de->d_name + len - 9, "_spec.lua") != 0) continue;
    char **grown = realloc(files, (n + 1) * sizeof *files);
    if (!grown) break;
    files = grown;
    files[n++] = strdup(de->d_name);
  }
  closedir(d);
  if (n) qsort(files, n, sizeof *files, cmp_str);
  for (size_t i = 0; rc == RP_OK && i < n; i++) {
    char path[PATH_MAX + 256], chunk[300];
    snprintf(path, sizeof path, "%s/%s", specdir, files[i]);
    snprintf(chunk, sizeof chunk, "@spec/%s", files[i]);
    lua_getfield(L, runner, "load");
    if ((rc = rp_sandbox_load_file(sb, path, chunk, err))) {
      lua_pop(L, 1);
      break;
    }
    lua_pushstring(L, files[i]);
    rc = rp_sandbox_call(sb, 2, 0, cfg->job_instructions, files[i], err);
  }
  for (size_t i = 0; i < n; i++) free(files[i]);
  free(files);
  if (rc == RP_OK && n == 0)
    rc = rp_err_set(err, RP_ENOTFOUND, specdir, "%s: no *_spec.lua files", specdir);
  if (rc == RP_OK) {
    lua_getfield(L, runner, "run");
    if ((rc = rp_sandbox_call(sb, 0, 3, 0, "spec runner", err)) == RP_OK) {
      *passed = (int)lua_tointeger(L, -3);
      *failed = (int)lua_tointeger(L, -2);
      lua_pop(L, 3);
    }
  }
  lua_settop(L, runner - 1);
done:
  if (e.op) rp_plugin_free_operator(e.op);
  scratch_close(&e);
  while (uv_loop_close(&e.loop) == UV_EBUSY) uv_run(&e.loop, UV_RUN_NOWAIT);
  rp_clock_clear_fake();
  cJSON_Delete(e.local_plugins);
  return rc;
}
