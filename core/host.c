/* host: plugin discovery, registry, loading, delivery and the job runner. */
#include "host.h"

#include <dirent.h>
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api.h"
#include "clock.h"
#include "hostint.h"
#include "log.h"
#include "luajson.h"

static int job_start(void *ctx, const rp_job *job, void **handle, rp_err *err);
static int job_resume(void *ctx, void *handle, rp_err *err);
static void job_abandon(void *ctx, void *handle);

/* ---- small helpers -------------------------------------------------------- */

static int is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

rp_plugin *rp_plugin_from_lua(lua_State *L) {
  return rp_sandbox_owner(rp_sandbox_from_lua(L));
}

/* Turns a refused statement into the principal's reason when there is one. */
static int sql_error(rp_plugin *p, const char *what, rp_err *err) {
  sqlite3 *db = rp_store_db(p->host->store);
  if (p->principal.denial[0]) {
    int rc = rp_err_set(err, RP_EDENIED, NULL, "%s", p->principal.denial);
    p->principal.denial[0] = '\0';
    return rc;
  }
  int ext = sqlite3_extended_errcode(db);
  return rp_err_set(err, (ext & 0xff) == SQLITE_CONSTRAINT ? RP_ECONFLICT : RP_EDB, NULL,
                    "%s: %s", what, sqlite3_errmsg(db));
}

/* ---- per-plugin statements ----------------------------------------------- */

int rp_plugin_prepare(rp_plugin *p, const char *sql, sqlite3_stmt **out, rp_err *err) {
  *out = NULL;
  rp_plugin_stmt *slot = NULL, *oldest = &p->stmts[0];
  for (int i = 0; i < RP_PLUGIN_STMTS; i++) {
    rp_plugin_stmt *c = &p->stmts[i];
    if (c->sql && strcmp(c->sql, sql) == 0 && !sqlite3_stmt_busy(c->stmt)) {
      c->used = ++p->stmt_tick;
      sqlite3_reset(c->stmt);
      sqlite3_clear_bindings(c->stmt);
      *out = c->stmt;
      return RP_OK;
    }
    if (!c->sql && !slot) slot = c;
    if (c->used < oldest->used && !(c->stmt && sqlite3_stmt_busy(c->stmt))) oldest = c;
  }
  rp_store *s = p->host->store;
  sqlite3_stmt *st = NULL;
  const char *tail = NULL;
  p->principal.denial[0] = '\0';
  void *prev = rp_store_set_principal(s, &p->principal);
  int rc = sqlite3_prepare_v3(rp_store_db(s), sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
  rp_store_set_principal(s, prev);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(st);
    return sql_error(p, "SQL", err);
  }
  if (!st) return rp_err_set(err, RP_EINVAL, "sql", "SQL: empty statement");
  while (tail && (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' || *tail == ';'))
    tail++;
  if (tail && *tail) {
    sqlite3_finalize(st);
    return rp_err_set(err, RP_EINVAL, "sql",
                      "SQL: one statement per call (found more after the first: \"%.40s\")",
                      tail);
  }
  if (!slot) {
    slot = oldest;
    if (slot->stmt && sqlite3_stmt_busy(slot->stmt)) {
      /* Every slot is in use by open iterators: hand out an uncached one. */
      *out = st;
      return 1;
    }
    sqlite3_finalize(slot->stmt);
    free(slot->sql);
    slot->sql = NULL;
  }
  slot->sql = strdup(sql);
  if (!slot->sql) {
    sqlite3_finalize(st);
    slot->stmt = NULL;
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  slot->stmt = st;
  slot->used = ++p->stmt_tick;
  *out = st;
  return RP_OK;
}

int rp_plugin_step(rp_plugin *p, sqlite3_stmt *st) {
  rp_store *s = p->host->store;
  void *prev = rp_store_set_principal(s, &p->principal);
  int rc = sqlite3_step(st);
  rp_store_set_principal(s, prev);
  return rc;
}

int rp_plugin_sql_error(rp_plugin *p, const char *what, rp_err *err) {
  return sql_error(p, what, err);
}

void rp_plugin_reset_stmts(rp_plugin *p) {
  for (int i = 0; i < RP_PLUGIN_STMTS; i++)
    if (p->stmts[i].stmt && sqlite3_stmt_busy(p->stmts[i].stmt)) sqlite3_reset(p->stmts[i].stmt);
}

static void free_stmts(rp_plugin *p) {
  rp_api_db_close_rows(p);
  for (int i = 0; i < RP_PLUGIN_STMTS; i++) {
    sqlite3_finalize(p->stmts[i].stmt);
    free(p->stmts[i].sql);
    p->stmts[i].stmt = NULL;
    p->stmts[i].sql = NULL;
  }
}

/* ---- host lifecycle -------------------------------------------------------- */

int rp_host_new(rp_store *store, const rp_config *cfg, rp_host **out, rp_err *err) {
  rp_host *h = calloc(1, sizeof *h);
  if (!h) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  h->store = store;
  h->cfg = cfg;
  h->runner.ctx = h;
  h->runner.start = job_start;
  h->runner.resume = job_resume;
  h->runner.abandon = job_abandon;
  rp_store_set_auth_fn(store, rp_authz_sql);
  *out = h;
  return RP_OK;
}

static void plugin_free(rp_plugin *p) {
  if (!p) return;
  free_stmts(p);
  rp_sandbox_free(p->sb);
  rp_manifest_free(p->m);
  cJSON_Delete(p->config);
  free(p->name);
  free(p->dir);
  free(p);
}

void rp_host_free(rp_host *h) {
  if (!h) return;
  for (size_t i = 0; i < h->n_plugins; i++) plugin_free(h->plugins[i]);
  free(h->plugins);
  free(h);
}

rp_store *rp_host_store(const rp_host *h) { return h->store; }
const rp_config *rp_host_config(const rp_host *h) { return h->cfg; }
void rp_host_set_sched(rp_host *h, rp_sched *sched) { h->sched = sched; }
rp_sched *rp_host_sched(const rp_host *h) { return h->sched; }
const rp_job_runner *rp_host_job_runner(rp_host *h) { return &h->runner; }
size_t rp_host_count(const rp_host *h) { return h->n_plugins; }
rp_plugin *rp_host_plugin_at(rp_host *h, size_t i) { return i < h->n_plugins ? h->plugins[i] : NULL; }

rp_plugin *rp_host_plugin(rp_host *h, const char *name) {
  for (size_t i = 0; i < h->n_plugins; i++)
    if (strcmp(h->plugins[i]->name, name) == 0) return h->plugins[i];
  return NULL;
}

const char *rp_plugin_name(const rp_plugin *p) { return p->name; }
const rp_manifest *rp_plugin_manifest(const rp_plugin *p) { return p->m; }
rp_sandbox *rp_plugin_sandbox(rp_plugin *p) { return p->sb; }
rp_host *rp_plugin_host(rp_plugin *p) { return p->host; }
int rp_plugin_active(const rp_plugin *p) { return p->state == RP_PLUGIN_LOADED; }
const rp_principal *rp_plugin_principal(const rp_plugin *p) { return &p->principal; }

/* ---- loading ---------------------------------------------------------------- */

/* The effective config: manifest defaults overlaid with the instance's
 * overrides; an override the manifest does not declare is a typo. */
static int effective_config(rp_plugin *p, rp_err *err) {
  p->config = cJSON_Duplicate(p->m->config, 1);
  if (!p->config) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  const cJSON *over = rp_config_plugin(p->host->cfg, p->name);
  if (!over) return RP_OK;
  if (!cJSON_IsObject(over))
    return rp_err_set(err, RP_EINVAL, "plugins", "%s: plugins.%s: must be an object",
                      p->host->cfg->path ? p->host->cfg->path : "config", p->name);
  const cJSON *it;
  cJSON_ArrayForEach(it, over) {
    if (!cJSON_HasObjectItem(p->config, it->string))
      return rp_err_set(err, RP_EINVAL, it->string,
                        "%s: plugins.%s.%s: plugin '%s' has no such config key (its "
                        "plugin.json declares the keys and their defaults)",
                        p->host->cfg->path ? p->host->cfg->path : "config", p->name, it->string,
                        p->name);
    cJSON *copy = cJSON_Duplicate(it, 1);
    if (!copy) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    cJSON_ReplaceItemInObjectCaseSensitive(p->config, it->string, copy);
  }
  return RP_OK;
}

/* Runs protected: checks that every handler and job the manifest names is a
 * function of the module table at index 1. */
static int check_module(lua_State *L) {
  const rp_manifest *m = lua_touserdata(L, 2);
  if (!lua_istable(L, 1)) return luaL_error(L, "init.lua must return a table (got %s)",
                                            luaL_typename(L, 1));
  for (size_t i = 0; i < m->n_subs; i++) {
    lua_getfield(L, 1, "handlers");
    if (!lua_istable(L, -1) || lua_getfield(L, -1, m->subs[i].handler) != LUA_TFUNCTION)
      return luaL_error(L, "%s: subscriptions[%d].handler: init.lua returns no function "
                        "handlers.%s", m->file, (int)i, m->subs[i].handler);
    lua_settop(L, 2);
  }
  for (size_t i = 0; i < m->n_jobs; i++) {
    lua_getfield(L, 1, "jobs");
    if (!lua_istable(L, -1) || lua_getfield(L, -1, m->jobs[i].handler) != LUA_TFUNCTION)
      return luaL_error(L, "%s: jobs[%d].handler: init.lua returns no function jobs.%s",
                        m->file, (int)i, m->jobs[i].handler);
    lua_settop(L, 2);
  }
  for (size_t i = 0; i < m->n_routes; i++) {
    lua_getfield(L, 1, "routes");
    if (!lua_istable(L, -1) || lua_getfield(L, -1, m->routes[i].handler) != LUA_TFUNCTION)
      return luaL_error(L, "%s: routes[%d].handler: init.lua returns no function routes.%s",
                        m->file, (int)i, m->routes[i].handler);
    lua_settop(L, 2);
  }
  for (size_t i = 0; i < m->n_commands; i++) {
    lua_getfield(L, 1, "commands");
    if (!lua_istable(L, -1) || lua_getfield(L, -1, m->commands[i].handler) != LUA_TFUNCTION)
      return luaL_error(L, "%s: commands[%d].handler: init.lua returns no function commands.%s",
                        m->file, (int)i, m->commands[i].handler);
    lua_settop(L, 2);
  }
  return 0;
}

/* A plugin that keeps customer data (a table of its own with a customer_id
 * column) must be able to hand it over and to forget it: data-subject
 * export and erasure reach every plugin's tables through these hooks. */
static int check_customer_data(rp_plugin *p, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(p->host->store,
                            "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) c "
                            "WHERE m.type = 'table' AND substr(m.name, 1, length(?1)) = ?1 "
                            "AND c.name = 'customer_id' LIMIT 1", &st, err);
  if (rc) return rc;
  char prefix[80];
  snprintf(prefix, sizeof prefix, "%s_", p->name);
  sqlite3_bind_text(st, 1, prefix, -1, SQLITE_TRANSIENT);
  char table[128] = "";
  if (sqlite3_step(st) == SQLITE_ROW)
    snprintf(table, sizeof table, "%s", (const char *)sqlite3_column_text(st, 0));
  rp_store_done(st);
  if (!table[0]) return RP_OK;
  static const char *const hooks[] = {"export", "erase"};
  for (int i = 0; i < 2; i++)
    if (!rp_plugin_has_function(p, NULL, hooks[i]))
      return rp_err_set(err, RP_EINVAL, hooks[i],
                        "%s/init.lua: the plugin keeps customer data (table %s has a "
                        "customer_id column) but returns no %s(customer_id) function: "
                        "data-subject requests must reach its tables",
                        p->dir, table, hooks[i]);
  return RP_OK;
}

static int load_code(rp_plugin *p, rp_err *err) {
  lua_State *L = rp_sandbox_lua(p->sb);
  char path[PATH_MAX], chunk[128];
  snprintf(path, sizeof path, "%s/init.lua", p->dir);
  snprintf(chunk, sizeof chunk, "@%s/init.lua", p->name);
  int rc = rp_sandbox_load_file(p->sb, path, chunk, err);
  if (rc) return rc;
  /* The main chunk gets the plugin name, as require passes module names. */
  lua_pushstring(L, p->name);
  if ((rc = rp_sandbox_call(p->sb, 1, 1, p->instructions, "init.lua", err))) return rc;
  lua_pushcfunction(L, check_module);
  lua_pushvalue(L, -2);
  lua_pushlightuserdata(L, p->m);
  if ((rc = rp_sandbox_call(p->sb, 2, 0, p->instructions, "loading", err))) {
    lua_pop(L, 1);
    return rc;
  }
  p->module_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  rp_sandbox_lock_globals(p->sb);
  return check_customer_data(p, err);
}

static int plugin_alloc(rp_host *h, const char *name, const char *dir, rp_plugin **out,
                        rp_err *err) {
  rp_plugin *p = calloc(1, sizeof *p);
  if (!p) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  p->host = h;
  p->module_ref = LUA_NOREF;
  p->name = strdup(name);
  p->dir = dir ? strdup(dir) : NULL;
  if (!p->name || (dir && !p->dir)) {
    plugin_free(p);
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  *out = p;
  return RP_OK;
}

/* Validates and loads the plugin in dir (not yet registered in h). */
static int load_plugin(rp_host *h, const char *dir, rp_plugin **out, rp_err *err) {
  *out = NULL;
  rp_manifest *m = NULL;
  int rc = rp_manifest_load(dir, &m, err);
  if (rc) return rc;
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/init.lua", dir);
  if (!is_file(path)) {
    rp_manifest_free(m);
    return rp_err_set(err, RP_EINVAL, path, "%s: missing (a plugin's code starts in init.lua)",
                      path);
  }
  rp_plugin *p = NULL;
  if ((rc = plugin_alloc(h, m->name, dir, &p, err))) {
    rp_manifest_free(m);
    return rc;
  }
  p->m = m;
  rp_principal_plugin(&p->principal, m->name, m->perms);
  p->instructions = m->instructions ? m->instructions : h->cfg->plugin_instructions;
  if ((rc = effective_config(p, err))) goto fail;

  snprintf(path, sizeof path, "%s/migrations", dir);
  void *prev = rp_store_set_principal(h->store, &p->principal);
  p->principal.denial[0] = '\0';
  int applied = 0;
  rc = rp_store_migrate_dir(h->store, m->name, path, &applied, err);
  rp_store_set_principal(h->store, prev);
  if (rc) {
    if (p->principal.denial[0])
      rp_err_set(err, RP_EDENIED, NULL, "%s: %s", path, p->principal.denial);
    goto fail;
  }
  if (applied) rp_log(RP_LOG_INFO, "host", "plugin '%s': %d migration(s) applied", p->name, applied);

  int64_t mem = m->memory ? m->memory : h->cfg->plugin_memory;
  if ((rc = rp_sandbox_new(m->name, dir, mem, &p->sb, err))) goto fail;
  rp_sandbox_set_owner(p->sb, p);
  if ((rc = rp_api_install(p, err))) goto fail;
  if ((rc = load_code(p, err))) goto fail;
  p->state = RP_PLUGIN_LOADED;
  *out = p;
  return RP_OK;
fail:
  plugin_free(p);
  return rc;
}

static int add_plugin(rp_host *h, rp_plugin *p, rp_err *err) {
  if (h->n_plugins == h->cap_plugins) {
    size_t cap = h->cap_plugins ? h->cap_plugins * 2 : 8;
    rp_plugin **n = realloc(h->plugins, cap * sizeof *n);
    if (!n) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    h->plugins = n;
    h->cap_plugins = cap;
  }
  h->plugins[h->n_plugins++] = p;
  return RP_OK;
}

static void unload(rp_host *h, const char *name) {
  for (size_t i = 0; i < h->n_plugins; i++) {
    if (strcmp(h->plugins[i]->name, name) != 0) continue;
    plugin_free(h->plugins[i]);
    memmove(&h->plugins[i], &h->plugins[i + 1], (h->n_plugins - i - 1) * sizeof *h->plugins);
    h->n_plugins--;
    return;
  }
}

/* ---- registry ----------------------------------------------------------------- */

static int set_status(rp_host *h, const char *name, const char *status, const char *reason,
                      rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(h->store,
                            "UPDATE plugins SET status = ?2, status_reason = ?3, updated_at = ?4 "
                            "WHERE name = ?1", &st, err);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
  if (reason) sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, rp_clock_now_ms());
  rc = sqlite3_step(st) == SQLITE_DONE ? RP_OK : rp_store_error(h->store, "plugin status", err);
  rp_store_done(st);
  return rc;
}

int rp_host_locate(rp_host *h, const char *name_or_path, char **dir, rp_err *err) {
  *dir = NULL;
  char path[PATH_MAX], real[PATH_MAX];
  if (strchr(name_or_path, '/') || (is_dir(name_or_path) && !rp_manifest_valid_name(name_or_path))) {
    snprintf(path, sizeof path, "%s/plugin.json", name_or_path);
    if (!is_file(path))
      return rp_err_set(err, RP_ENOTFOUND, name_or_path,
                        "%s: not a plugin folder (no plugin.json)", name_or_path);
    if (!realpath(name_or_path, real))
      return rp_err_set(err, RP_EIO, name_or_path, "%s: %s", name_or_path, strerror(errno));
    *dir = strdup(real);
    return *dir ? RP_OK : rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  /* A registered plugin keeps the folder it was enabled from. */
  sqlite3_stmt *st;
  int rc = rp_store_prepare(h->store, "SELECT path FROM plugins WHERE name = ?1", &st, err);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, name_or_path, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) {
    snprintf(path, sizeof path, "%s", (const char *)sqlite3_column_text(st, 0));
    rp_store_done(st);
    char manifest[PATH_MAX + 16];
    snprintf(manifest, sizeof manifest, "%s/plugin.json", path);
    if (is_file(manifest)) {
      *dir = strdup(path);
      return *dir ? RP_OK : rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    }
  } else {
    rp_store_done(st);
  }
  char searched[1024] = "";
  for (size_t i = 0; i < h->cfg->n_plugin_paths; i++) {
    snprintf(path, sizeof path, "%s/%s/plugin.json", h->cfg->plugin_paths[i], name_or_path);
    if (is_file(path)) {
      snprintf(path, sizeof path, "%s/%s", h->cfg->plugin_paths[i], name_or_path);
      if (!realpath(path, real)) return rp_err_set(err, RP_EIO, path, "%s: %s", path, strerror(errno));
      *dir = strdup(real);
      return *dir ? RP_OK : rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    }
    size_t len = strlen(searched);
    snprintf(searched + len, sizeof searched - len, "%s%s", len ? ", " : "",
             h->cfg->plugin_paths[i]);
  }
  return rp_err_set(err, RP_ENOTFOUND, name_or_path,
                    "unknown plugin '%s' (searched: %s; give a folder path to install one "
                    "from elsewhere)", name_or_path, searched[0] ? searched : "no plugin folders");
}

/* Registers the manifest's jobs; an unchanged job keeps its due time, a job
 * the manifest dropped is removed. */
static int sync_jobs(rp_host *h, rp_plugin *p, rp_err *err) {
  const rp_manifest *m = p->m;
  int rc = RP_OK;
  for (size_t i = 0; rc == RP_OK && i < m->n_jobs; i++) {
    const rp_manifest_job *j = &m->jobs[i];
    sqlite3_stmt *st;
    if ((rc = rp_store_prepare(h->store,
                               "SELECT 1 FROM jobs WHERE owner = ?1 AND name = ?2 AND kind = ?3 "
                               "AND spec = ?4 AND target = ?5 AND missed = ?6 AND enabled = 1",
                               &st, err)))
      return rc;
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, j->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, j->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, j->spec, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, j->handler, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, j->missed, -1, SQLITE_STATIC);
    int same = sqlite3_step(st) == SQLITE_ROW;
    rp_store_done(st);
    if (same) continue;
    /* A one-shot of the manifest that has run is done: loading the plugin
     * again (every `rapport` command does) must not bring it back. */
    if (strcmp(j->kind, "at") == 0) {
      if ((rc = rp_store_prepare(h->store,
                                 "SELECT 1 FROM job_runs WHERE owner = ?1 AND name = ?2 AND "
                                 "outcome <> 'running' LIMIT 1", &st, err)))
        return rc;
      sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 2, j->name, -1, SQLITE_STATIC);
      int ran = sqlite3_step(st) == SQLITE_ROW;
      rp_store_done(st);
      if (ran) continue;
    }
    rp_job_spec spec = {.owner = p->name, .name = j->name, .kind = j->kind, .spec = j->spec,
                        .target = j->handler, .missed = j->missed, .origin = "manifest"};
    rc = rp_sched_add(h->store, h->cfg, &spec, NULL, err);
    if (rc) rp_err_prefix(err, "%s: jobs[%d]: ", m->file, (int)i);
  }
  if (rc) return rc;
  /* Drop manifest jobs that are gone from the manifest. */
  sqlite3_stmt *st;
  if ((rc = rp_store_prepare(h->store,
                             "SELECT name FROM jobs WHERE owner = ?1 AND origin = 'manifest'", &st,
                             err)))
    return rc;
  sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
  char gone[16][64];
  int n_gone = 0;
  while (sqlite3_step(st) == SQLITE_ROW && n_gone < 16) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    int found = 0;
    for (size_t i = 0; i < m->n_jobs; i++)
      if (name && strcmp(m->jobs[i].name, name) == 0) found = 1;
    if (!found && name) snprintf(gone[n_gone++], sizeof gone[0], "%s", name);
  }
  rp_store_done(st);
  for (int i = 0; rc == RP_OK && i < n_gone; i++)
    rc = rp_sched_remove(h->store, p->name, gone[i], 0, err);
  return rc;
}

static int register_enabled(rp_host *h, rp_plugin *p, rp_err *err) {
  rp_store *s = h->store;
  int rc = rp_store_tx_begin(s, err);
  if (rc) return rc;
  sqlite3_stmt *st;
  rc = rp_store_prepare(s,
                        "INSERT INTO plugins(name, path, version, enabled, status, status_reason, "
                        "failures, updated_at) VALUES (?1, ?2, ?3, 1, 'enabled', NULL, 0, ?4) "
                        "ON CONFLICT(name) DO UPDATE SET path = ?2, version = ?3, enabled = 1, "
                        "status = 'enabled', status_reason = NULL, failures = 0, updated_at = ?4",
                        &st, err);
  if (rc == RP_OK) {
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, p->dir, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, p->m->version, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, rp_clock_now_ms());
    if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "registering plugin", err);
    rp_store_done(st);
  }
  if (rc == RP_OK &&
      (rc = rp_store_prepare(s,
                             "INSERT OR IGNORE INTO bus_cursors(plugin, last_event_id, updated_at) "
                             "VALUES (?1, CASE WHEN ?2 THEN 0 ELSE (SELECT coalesce(max(id), 0) "
                             "FROM events) END, ?3)", &st, err)) == RP_OK) {
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, p->m->replay);
    sqlite3_bind_int64(st, 3, rp_clock_now_ms());
    if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "bus cursor", err);
    rp_store_done(st);
  }
  if (rc == RP_OK) rc = sync_jobs(h, p, err);
  if (rc == RP_OK) rc = rp_sched_set_owner_enabled(s, p->name, 1, err);
  if (rc == RP_OK) rc = rp_store_tx_commit(s, err);
  if (rc) rp_store_tx_rollback(s);
  return rc;
}

/* Loads (applying pending migrations), registers and starts a plugin. All of
 * it is one transaction: a plugin whose second migration or whose init.lua
 * fails leaves no table, no migration record and no registration behind. */
int rp_host_enable(rp_host *h, const char *name_or_path, rp_err *err) {
  char *dir;
  int rc = rp_host_locate(h, name_or_path, &dir, err);
  if (rc) return rc;
  if ((rc = rp_store_tx_begin(h->store, err))) {
    free(dir);
    return rc;
  }
  rp_plugin *p = NULL;
  rc = load_plugin(h, dir, &p, err);
  free(dir);
  if (rc) {
    rp_store_tx_rollback(h->store);
    return rc;
  }
  rp_plugin *old = rp_host_plugin(h, p->name);
  if (old && strcmp(old->dir, p->dir) != 0)
    rc = rp_err_set(err, RP_ECONFLICT, p->name,
                    "a plugin named '%s' is already loaded from %s", p->name, old->dir);
  if (rc == RP_OK) rc = register_enabled(h, p, err);
  if (rc == RP_OK) rc = rp_store_tx_commit(h->store, err);
  if (rc) {
    rp_store_tx_rollback(h->store);
    plugin_free(p);
    return rc;
  }
  unload(h, p->name);
  if ((rc = add_plugin(h, p, err))) {
    plugin_free(p);
    return rc;
  }
  if (h->sched) rp_sched_kick(h->sched);
  rp_log(RP_LOG_INFO, "host", "plugin '%s' %s enabled from %s", p->name, p->m->version, p->dir);
  return RP_OK;
}

int rp_host_disable(rp_host *h, const char *name, rp_err *err) {
  rp_store *s = h->store;
  sqlite3_stmt *st;
  int rc = rp_store_tx_begin(s, err);
  if (rc) return rc;
  rc = rp_store_prepare(s,
                        "UPDATE plugins SET enabled = 0, status = 'disabled', status_reason = NULL, "
                        "updated_at = ?2 WHERE name = ?1", &st, err);
  if (rc == RP_OK) {
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, rp_clock_now_ms());
    if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "disabling plugin", err);
    else if (sqlite3_changes(rp_store_db(s)) == 0)
      rc = rp_err_set(err, RP_ENOTFOUND, name, "plugin '%s' is not registered (never enabled)",
                      name);
    rp_store_done(st);
  }
  if (rc == RP_OK) rc = rp_sched_set_owner_enabled(s, name, 0, err);
  if (rc == RP_OK) rc = rp_store_tx_commit(s, err);
  if (rc) {
    rp_store_tx_rollback(s);
    return rc;
  }
  unload(h, name);
  if (h->sched) rp_sched_kick(h->sched);
  return RP_OK;
}

int rp_host_load_enabled(rp_host *h, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(h->store,
                            "SELECT name, path FROM plugins WHERE enabled = 1 AND status = "
                            "'enabled' ORDER BY name", &st, err);
  if (rc) return rc;
  char (*names)[64] = NULL, (*paths)[PATH_MAX] = NULL;
  size_t n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    void *a = realloc(names, (n + 1) * sizeof *names), *b;
    if (!a) break;
    names = a;
    b = realloc(paths, (n + 1) * sizeof *paths);
    if (!b) break;
    paths = b;
    snprintf(names[n], sizeof names[n], "%s", (const char *)sqlite3_column_text(st, 0));
    snprintf(paths[n], sizeof paths[n], "%s", (const char *)sqlite3_column_text(st, 1));
    n++;
  }
  rp_store_done(st);
  for (size_t i = 0; i < n; i++) {
    if (rp_host_plugin(h, names[i])) continue;
    rp_plugin *p = NULL;
    rp_err e;
    rp_err_clear(&e);
    int lrc = load_plugin(h, paths[i], &p, &e);
    if (lrc == RP_OK && strcmp(p->name, names[i]) != 0) {
      rp_err_set(&e, RP_EINVAL, NULL, "%s now holds plugin '%s', not '%s'", paths[i], p->name,
                 names[i]);
      plugin_free(p);
      lrc = RP_EINVAL;
    }
    if (lrc == RP_OK) lrc = add_plugin(h, p, &e);
    if (lrc == RP_OK && (lrc = sync_jobs(h, p, &e)) != RP_OK) unload(h, names[i]);
    if (lrc != RP_OK) {
      rp_log(RP_LOG_ERROR, "host", "plugin '%s' is broken: %s", names[i], e.msg);
      set_status(h, names[i], "broken", e.msg, NULL);
    }
  }
  free(names);
  free(paths);
  return RP_OK;
}

/* ---- the list ------------------------------------------------------------------- */

static cJSON *manifest_json(const rp_manifest *m) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "version", m->version);
  cJSON_AddStringToObject(o, "description", m->description ? m->description : "");
  cJSON *perms = cJSON_AddArrayToObject(o, "permissions");
  for (int i = 0; rp_perm_names[i]; i++)
    if (m->perms & (1u << i)) cJSON_AddItemToArray(perms, cJSON_CreateString(rp_perm_names[i]));
  cJSON *subs = cJSON_AddArrayToObject(o, "subscriptions");
  for (size_t i = 0; i < m->n_subs; i++) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "event", m->subs[i].pattern);
    cJSON_AddStringToObject(s, "handler", m->subs[i].handler);
    cJSON_AddItemToArray(subs, s);
  }
  cJSON *jobs = cJSON_AddArrayToObject(o, "jobs");
  for (size_t i = 0; i < m->n_jobs; i++) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", m->jobs[i].name);
    cJSON_AddStringToObject(j, m->jobs[i].kind, m->jobs[i].spec);
    cJSON_AddStringToObject(j, "handler", m->jobs[i].handler);
    cJSON_AddItemToArray(jobs, j);
  }
  return o;
}

static cJSON *find_named(cJSON *arr, const char *name) {
  cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(it, "name");
    if (cJSON_IsString(n) && strcmp(n->valuestring, name) == 0) return it;
  }
  return NULL;
}

static void merge_manifest(cJSON *entry, const char *dir) {
  rp_manifest *m = NULL;
  rp_err e;
  rp_err_clear(&e);
  if (rp_manifest_load(dir, &m, &e) != RP_OK) {
    cJSON_AddStringToObject(entry, "manifest_error", e.msg);
    return;
  }
  cJSON *mj = manifest_json(m);
  cJSON *it = mj->child;
  while (it) {
    cJSON *next = it->next;
    cJSON_DetachItemViaPointer(mj, it);
    if (cJSON_HasObjectItem(entry, it->string)) cJSON_Delete(it);
    else cJSON_AddItemToObject(entry, it->string, it);
    it = next;
  }
  cJSON_Delete(mj);
  rp_manifest_free(m);
}

int rp_host_list(rp_host *h, cJSON **out, rp_err *err) {
  *out = NULL;
  cJSON *arr = cJSON_CreateArray();
  if (!arr) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  sqlite3_stmt *st;
  int rc = rp_store_prepare(
      h->store,
      "SELECT p.name, p.path, p.version, p.enabled, p.status, p.status_reason, p.failures, "
      "p.errors_total, c.last_event_id, (SELECT coalesce(max(id), 0) FROM events), "
      "(SELECT count(*) FROM dead_letters d WHERE d.plugin = p.name AND d.status = 'pending') "
      "FROM plugins p LEFT JOIN bus_cursors c ON c.plugin = p.name ORDER BY p.name", &st, err);
  if (rc) {
    cJSON_Delete(arr);
    return rc;
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", (const char *)sqlite3_column_text(st, 0));
    cJSON_AddStringToObject(o, "path", (const char *)sqlite3_column_text(st, 1));
    cJSON_AddStringToObject(o, "version", (const char *)sqlite3_column_text(st, 2));
    cJSON_AddBoolToObject(o, "enabled", sqlite3_column_int(st, 3));
    cJSON_AddStringToObject(o, "status", (const char *)sqlite3_column_text(st, 4));
    if (sqlite3_column_type(st, 5) != SQLITE_NULL)
      cJSON_AddStringToObject(o, "reason", (const char *)sqlite3_column_text(st, 5));
    cJSON_AddNumberToObject(o, "failures", sqlite3_column_int(st, 6));
    cJSON_AddNumberToObject(o, "errors_total", (double)sqlite3_column_int64(st, 7));
    if (sqlite3_column_type(st, 8) != SQLITE_NULL) {
      cJSON_AddNumberToObject(o, "cursor", (double)sqlite3_column_int64(st, 8));
      cJSON_AddNumberToObject(o, "lag",
                              (double)(sqlite3_column_int64(st, 9) - sqlite3_column_int64(st, 8)));
    }
    cJSON_AddNumberToObject(o, "dead_letters", (double)sqlite3_column_int64(st, 10));
    rp_plugin *p = rp_host_plugin(h, (const char *)sqlite3_column_text(st, 0));
    cJSON_AddBoolToObject(o, "loaded", p != NULL);
    if (p) cJSON_AddNumberToObject(o, "memory_bytes", (double)rp_sandbox_memory(p->sb));
    cJSON_AddItemToArray(arr, o);
  }
  rp_store_done(st);
  /* Registered plugins first; then what the plugin folders hold. */
  cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(it, "path");
    if (cJSON_IsString(path)) merge_manifest(it, path->valuestring);
  }
  for (size_t i = 0; i < h->cfg->n_plugin_paths; i++) {
    DIR *d = opendir(h->cfg->plugin_paths[i]);
    if (!d) continue;
    struct dirent *de;
    while ((de = readdir(d))) {
      if (de->d_name[0] == '.') continue;
      char dir[PATH_MAX], man[PATH_MAX + 16], real[PATH_MAX];
      snprintf(dir, sizeof dir, "%s/%s", h->cfg->plugin_paths[i], de->d_name);
      snprintf(man, sizeof man, "%s/plugin.json", dir);
      if (!is_file(man) || find_named(arr, de->d_name)) continue;
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "name", de->d_name);
      cJSON_AddStringToObject(o, "path", realpath(dir, real) ? real : dir);
      cJSON_AddBoolToObject(o, "enabled", 0);
      cJSON_AddStringToObject(o, "status", "available");
      cJSON_AddBoolToObject(o, "loaded", 0);
      merge_manifest(o, dir);
      cJSON_AddItemToArray(arr, o);
    }
    closedir(d);
  }
  *out = arr;
  return RP_OK;
}

/* ---- failures --------------------------------------------------------------------- */

int rp_plugin_record_failure(rp_plugin *p, const rp_err *why, int *suspended) {
  if (suspended) *suspended = 0;
  rp_host *h = p->host;
  p->failures++;
  rp_log(RP_LOG_ERROR, p->name, "%s", why ? why->msg : "failed");
  if (!p->m) return RP_OK; /* the operator is never suspended */
  sqlite3_stmt *st;
  rp_err e;
  rp_err_clear(&e);
  int suspend = h->cfg->suspend_after > 0 && p->failures >= h->cfg->suspend_after;
  if (rp_store_prepare(h->store,
                       "UPDATE plugins SET failures = ?2, errors_total = errors_total + 1, "
                       "status = CASE WHEN ?3 THEN 'suspended' ELSE status END, "
                       "status_reason = CASE WHEN ?3 THEN ?4 ELSE status_reason END, "
                       "updated_at = ?5 WHERE name = ?1", &st, &e) == RP_OK) {
    char reason[1200];
    snprintf(reason, sizeof reason, "%d consecutive failures; last: %s", p->failures,
             why ? why->msg : "?");
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, p->failures);
    sqlite3_bind_int(st, 3, suspend);
    sqlite3_bind_text(st, 4, reason, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, rp_clock_now_ms());
    sqlite3_step(st);
    rp_store_done(st);
  }
  if (suspend) {
    p->state = RP_PLUGIN_SUSPENDED;
    rp_sched_set_owner_enabled(h->store, p->name, 0, NULL);
    rp_log(RP_LOG_ERROR, "host",
           "plugin '%s' suspended after %d consecutive failures; `rapport plugin enable %s` "
           "resumes it", p->name, p->failures, p->name);
    if (suspended) *suspended = 1;
  }
  return RP_OK;
}

void rp_plugin_record_success(rp_plugin *p) {
  if (p->failures == 0) return;
  p->failures = 0;
  if (!p->m) return;
  sqlite3_stmt *st;
  if (rp_store_prepare(p->host->store, "UPDATE plugins SET failures = 0 WHERE name = ?1", &st,
                       NULL) == RP_OK) {
    sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
    sqlite3_step(st);
    rp_store_done(st);
  }
}

/* ---- delivery --------------------------------------------------------------------- */

int rp_plugin_has_function(rp_plugin *p, const char *table, const char *name) {
  if (!p || p->module_ref == LUA_NOREF) return 0;
  lua_State *L = rp_sandbox_lua(p->sb);
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->module_ref);
  int ok = lua_type(L, -1) == LUA_TTABLE &&
           (!table || lua_getfield(L, -1, table) == LUA_TTABLE) &&
           lua_getfield(L, -1, name) == LUA_TFUNCTION;
  lua_settop(L, top);
  return ok;
}

/* Pushes module[field][name] (a function) or raises. */
static void push_entry(lua_State *L, rp_plugin *p, const char *field, const char *name) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->module_ref);
  if (lua_getfield(L, -1, field) != LUA_TTABLE || lua_getfield(L, -1, name) != LUA_TFUNCTION)
    luaL_error(L, "init.lua has no function %s.%s", field, name);
  lua_replace(L, -3);
  lua_pop(L, 1);
}

void rp_host_push_event(lua_State *L, const rp_host_event *ev) {
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, ev->id);
  lua_setfield(L, -2, "id");
  if (ev->event_id) {
    lua_pushstring(L, ev->event_id);
    lua_setfield(L, -2, "event_id");
  }
  lua_pushinteger(L, ev->customer_id);
  lua_setfield(L, -2, "customer_id");
  lua_pushstring(L, ev->type);
  lua_setfield(L, -2, "type");
  lua_pushinteger(L, ev->occurred_at);
  lua_setfield(L, -2, "occurred_at");
  lua_pushinteger(L, ev->received_at);
  lua_setfield(L, -2, "received_at");
  if (ev->source) {
    lua_pushstring(L, ev->source);
    lua_setfield(L, -2, "source");
  }
  cJSON *props = ev->properties ? cJSON_Parse(ev->properties) : NULL;
  if (props) rp_api_push_json_owned(L, props);
  else lua_newtable(L);
  lua_setfield(L, -2, "properties");
}

typedef struct delivery {
  rp_plugin *p;
  const char *handler;
  const rp_host_event *ev;
} delivery;

static int deliver_trampoline(lua_State *L) {
  delivery *d = lua_touserdata(L, 1);
  push_entry(L, d->p, "handlers", d->handler);
  rp_host_push_event(L, d->ev);
  lua_call(L, 1, 0);
  return 0;
}

int rp_plugin_deliver(rp_plugin *p, const char *handler, const rp_host_event *ev, rp_err *err) {
  if (p->state != RP_PLUGIN_LOADED)
    return rp_err_set(err, RP_ECONFLICT, p->name, "plugin '%s' is suspended or not loaded",
                      p->name);
  lua_State *L = rp_sandbox_lua(p->sb);
  delivery d = {p, handler, ev};
  char what[128];
  snprintf(what, sizeof what, "handler %s (event %lld %s)", handler, (long long)ev->id, ev->type);
  lua_pushcfunction(L, deliver_trampoline);
  lua_pushlightuserdata(L, &d);
  int rc = rp_sandbox_call(p->sb, 1, 0, p->instructions, what, err);
  rp_plugin_reset_stmts(p);
  return rc;
}

typedef struct profile_call {
  rp_plugin *p;
  int64_t customer_id;
  const char *hook; /* "profile", "export" or "erase" */
} profile_call;

static int profile_trampoline(lua_State *L) {
  profile_call *c = lua_touserdata(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->p->module_ref);
  if (lua_getfield(L, -1, c->hook) != LUA_TFUNCTION) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushinteger(L, c->customer_id);
  lua_call(L, 1, 1);
  if (lua_isnil(L, -1)) lua_pushboolean(L, 0);
  return 1;
}

/* table[handler](input) with nresults results, for routes (3) and commands (2). */
typedef struct entry_call {
  rp_plugin *p;
  const char *table; /* "routes" or "commands" */
  const char *handler;
  const cJSON *input;
  int nresults;
} entry_call;

static int entry_trampoline(lua_State *L) {
  entry_call *c = lua_touserdata(L, 1);
  push_entry(L, c->p, c->table, c->handler);
  rp_lua_push_json(L, c->input);
  lua_call(L, 1, c->nresults);
  return c->nresults;
}

/* Calls table[handler](input) under p's budget, leaving its nresults
 * results on the stack (RP_OK) or nothing (the error in err). */
static int call_entry(rp_plugin *p, const char *table, const char *handler, const cJSON *input,
                      int nresults, rp_err *err) {
  if (p->state != RP_PLUGIN_LOADED)
    return rp_err_set(err, RP_ECONFLICT, p->name, "plugin '%s' is suspended or not loaded",
                      p->name);
  lua_State *L = rp_sandbox_lua(p->sb);
  entry_call c = {p, table, handler, input, nresults};
  lua_pushcfunction(L, entry_trampoline);
  lua_pushlightuserdata(L, &c);
  char what[96];
  snprintf(what, sizeof what, "%s %s", strcmp(table, "routes") == 0 ? "route" : "command",
           handler);
  int rc = rp_sandbox_call(p->sb, 1, nresults, p->instructions, what, err);
  rp_plugin_reset_stmts(p);
  return rc;
}

/* The media types a route may answer text in. A fixed list, not the
 * plugin's string: the header is written as is, and a plugin must not be
 * able to serve HTML (script) from the API's origin. */
static const char *const route_text_types[][2] = {
    {"text/csv", "text/csv; charset=utf-8"},
    {"text/plain", "text/plain; charset=utf-8"},
    {"application/x-ndjson", "application/x-ndjson"},
};

int rp_plugin_route(rp_plugin *p, const char *handler, const cJSON *request, int *status,
                    cJSON **body, const char **content_type, rp_err *err) {
  *status = 0;
  *body = NULL;
  *content_type = NULL;
  int rc = call_entry(p, "routes", handler, request, 3, err);
  if (rc) return rc;
  lua_State *L = rp_sandbox_lua(p->sb);
  /* (status, body [, content_type]): status an integer 100..599 (default
   * 200); body a table or a string (JSON-encoded), nil for none; with a
   * content type, body is the text itself. */
  int st = 200;
  if (lua_isinteger(L, -3)) st = (int)lua_tointeger(L, -3);
  else if (!lua_isnil(L, -3))
    rc = rp_err_set(err, RP_EPLUGIN, NULL, "plugin '%s' route %s: returned a %s as status",
                    p->name, handler, luaL_typename(L, -3));
  if (rc == RP_OK && (st < 100 || st > 599))
    rc = rp_err_set(err, RP_EPLUGIN, NULL, "plugin '%s' route %s: status %d out of range",
                    p->name, handler, st);
  if (rc == RP_OK && !lua_isnil(L, -1)) {
    const char *want = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
    for (size_t i = 0; i < sizeof route_text_types / sizeof route_text_types[0]; i++)
      if (strcmp(want, route_text_types[i][0]) == 0) *content_type = route_text_types[i][1];
    if (!*content_type)
      rc = rp_err_set(err, RP_EPLUGIN, NULL,
                      "plugin '%s' route %s: content type must be text/csv, text/plain or "
                      "application/x-ndjson",
                      p->name, handler);
    else if (lua_type(L, -2) != LUA_TSTRING)
      rc = rp_err_set(err, RP_EPLUGIN, NULL,
                      "plugin '%s' route %s: a body with a content type must be a string, not a %s",
                      p->name, handler, luaL_typename(L, -2));
    else {
      size_t len;
      const char *text = lua_tolstring(L, -2, &len);
      if (memchr(text, 0, len))
        rc = rp_err_set(err, RP_EPLUGIN, NULL, "plugin '%s' route %s: the text holds a NUL byte",
                        p->name, handler);
      else if (!(*body = cJSON_CreateString(text)))
        rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    }
  } else if (rc == RP_OK && !lua_isnil(L, -2)) {
    *body = rp_lua_to_json(L, -2, err);
    if (!*body) rc = rp_err_prefix(err, "plugin '%s' route %s: ", p->name, handler);
  }
  lua_pop(L, 3);
  if (rc == RP_OK) *status = st;
  else {
    cJSON_Delete(*body);
    *body = NULL;
    *content_type = NULL;
  }
  return rc;
}

void rp_plugin_set_caller(rp_plugin *p, const char *caller, const char *origin) {
  snprintf(p->caller, sizeof p->caller, "%s", caller ? caller : "");
  snprintf(p->caller_origin, sizeof p->caller_origin, "%s", origin ? origin : "");
}

int rp_plugin_command(rp_plugin *p, const char *handler, const cJSON *input, cJSON **value,
                      char **text, rp_err *err) {
  *value = NULL;
  *text = NULL;
  int rc = call_entry(p, "commands", handler, input, 2, err);
  if (rc) return rc;
  lua_State *L = rp_sandbox_lua(p->sb);
  if (!lua_isnil(L, -1) && !lua_isstring(L, -1))
    rc = rp_err_set(err, RP_EPLUGIN, NULL, "plugin '%s' command %s: returned a %s as its text",
                    p->name, handler, luaL_typename(L, -1));
  if (rc == RP_OK && lua_isstring(L, -1) && !(*text = strdup(lua_tostring(L, -1))))
    rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  if (rc == RP_OK && !lua_isnil(L, -2)) {
    *value = rp_lua_to_json(L, -2, err);
    if (!*value) rc = rp_err_prefix(err, "plugin '%s' command %s: ", p->name, handler);
  }
  lua_pop(L, 2);
  if (rc) {
    free(*text);
    *text = NULL;
  }
  return rc;
}

int rp_plugin_profile(rp_plugin *p, int64_t customer_id, cJSON **out, rp_err *err) {
  return rp_plugin_hook(p, "profile", customer_id, out, err);
}

int rp_plugin_hook(rp_plugin *p, const char *hook, int64_t customer_id, cJSON **out,
                   rp_err *err) {
  *out = NULL;
  if (p->state != RP_PLUGIN_LOADED) return RP_OK;
  lua_State *L = rp_sandbox_lua(p->sb);
  profile_call c = {p, customer_id, hook};
  lua_pushcfunction(L, profile_trampoline);
  lua_pushlightuserdata(L, &c);
  int rc = rp_sandbox_call(p->sb, 1, 1, p->instructions, hook, err);
  rp_plugin_reset_stmts(p);
  if (rc) return rc;
  if (lua_isboolean(L, -1) && !lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    return RP_OK;
  }
  *out = rp_lua_to_json(L, -1, err);
  lua_pop(L, 1);
  if (!*out) return rp_err_prefix(err, "plugin '%s' %s: ", p->name, hook);
  return RP_OK;
}

/* ---- the operator ------------------------------------------------------------------- */

int rp_host_operator(rp_host *h, const char *root, rp_plugin **out, rp_err *err) {
  rp_plugin *p = NULL;
  int rc = plugin_alloc(h, "operator", root, &p, err);
  if (rc) return rc;
  rp_principal_operator(&p->principal);
  p->instructions = h->cfg->job_instructions;
  p->config = cJSON_CreateObject();
  if (!p->config) rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  /* Operators get room for reports: four times a plugin's memory. */
  if (rc == RP_OK) rc = rp_sandbox_new("operator", root, h->cfg->plugin_memory * 4, &p->sb, err);
  if (rc == RP_OK) {
    rp_sandbox_set_owner(p->sb, p);
    rc = rp_api_install(p, err);
  }
  if (rc) {
    plugin_free(p);
    return rc;
  }
  p->state = RP_PLUGIN_LOADED;
  *out = p;
  return RP_OK;
}

void rp_plugin_free_operator(rp_plugin *p) { plugin_free(p); }

void rp_plugin_set_host(rp_plugin *p, rp_host *h) {
  free_stmts(p);
  p->host = h;
}

/* ---- jobs ----------------------------------------------------------------------------- */

typedef struct job_run {
  rp_host *h;
  rp_plugin *p;      /* the owner, or an operator context owned by the run */
  int owns_plugin;
  rp_task *task;
  int base_depth;    /* transaction depth the task may yield at */
  char what[160];
} job_run;

static int can_yield(void *ctx) {
  job_run *r = ctx;
  return rp_store_tx_depth(r->h->store) <= r->base_depth;
}

/* The first function of a job's coroutine: builds the job table, then calls
 * the job with a continuation so that the count hook may yield inside. */
static int job_finish_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

static void push_job(lua_State *L, const rp_job *job) {
  lua_createtable(L, 0, 8);
  lua_pushinteger(L, job->id);
  lua_setfield(L, -2, "id");
  lua_pushinteger(L, job->run_id);
  lua_setfield(L, -2, "run_id");
  if (job->name) {
    lua_pushstring(L, job->name);
    lua_setfield(L, -2, "name");
  }
  lua_pushstring(L, job->kind);
  lua_setfield(L, -2, "kind");
  lua_pushinteger(L, job->scheduled_for);
  lua_setfield(L, -2, "scheduled_for");
  cJSON *payload = job->payload ? cJSON_Parse(job->payload) : NULL;
  if (payload) rp_api_push_json_owned(L, payload);
  else lua_newtable(L);
  lua_setfield(L, -2, "payload");
}

typedef struct job_entry {
  rp_plugin *p;
  const rp_job *job;
} job_entry;

static int job_trampoline(lua_State *L) {
  job_entry *e = lua_touserdata(L, 1);
  const rp_job *job = e->job;
  if (e->p->m) {
    push_entry(L, e->p, "jobs", job->target);
  } else {
    /* An operator script run as a job: `arg` as under `rapport run` (with
     * no arguments; arg[0] is the script), the job itself as `...`. */
    lua_createtable(L, 0, 1);
    lua_pushstring(L, job->target);
    lua_rawseti(L, -2, 0);
    lua_setglobal(L, "arg");
    lua_pushvalue(L, 2); /* the script's main chunk */
  }
  push_job(L, job);
  lua_callk(L, 1, 0, 0, job_finish_k);
  return 0;
}

static int run_slice(job_run *r, int first, rp_err *err) {
  r->base_depth = rp_store_tx_depth(r->h->store);
  int rc = rp_task_resume(r->task, r->h->cfg->job_slice_ms, can_yield, r, err);
  rp_plugin_reset_stmts(r->p);
  if (rc == RP_TASK_YIELDED) return RP_JOB_PENDING;
  if (rc == RP_OK) {
    rp_plugin_record_success(r->p);
  } else {
    const char *tb = rp_sandbox_traceback(r->p->sb);
    if (tb[0]) rp_log(RP_LOG_DEBUG, r->p->name, "%s", tb);
    if (!r->owns_plugin) rp_plugin_record_failure(r->p, err, NULL);
  }
  (void)first;
  return rc;
}

static void run_free(job_run *r) {
  if (!r) return;
  rp_task_free(r->task);
  if (r->owns_plugin) plugin_free(r->p);
  free(r);
}

static int job_start(void *ctx, const rp_job *job, void **handle, rp_err *err) {
  rp_host *h = ctx;
  *handle = NULL;
  job_run *r = calloc(1, sizeof *r);
  if (!r) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  r->h = h;
  snprintf(r->what, sizeof r->what, "job %s", job->name ? job->name : job->target);
  int rc;
  int nargs = 1;
  job_entry entry = {NULL, job};
  if (strcmp(job->owner, "operator") == 0) {
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%s", job->target);
    char *slash = strrchr(root, '/');
    if (slash) *slash = '\0';
    else snprintf(root, sizeof root, ".");
    if ((rc = rp_host_operator(h, root, &r->p, err))) {
      free(r);
      return rc;
    }
    r->owns_plugin = 1;
    entry.p = r->p;
    lua_State *L = rp_sandbox_lua(r->p->sb);
    lua_pushcfunction(L, job_trampoline);
    lua_pushlightuserdata(L, &entry);
    if ((rc = rp_sandbox_load_file(r->p->sb, job->target, job->target, err))) {
      lua_pop(L, 2);
      run_free(r);
      return rc;
    }
    nargs = 2;
  } else {
    r->p = rp_host_plugin(h, job->owner);
    if (!r->p || !rp_plugin_active(r->p)) {
      free(r);
      return rp_err_set(err, RP_ECONFLICT, job->owner,
                        "plugin '%s' is not loaded (disabled, suspended or broken)", job->owner);
    }
    entry.p = r->p;
    lua_State *L = rp_sandbox_lua(r->p->sb);
    lua_pushcfunction(L, job_trampoline);
    lua_pushlightuserdata(L, &entry);
  }
  int64_t budget = r->owns_plugin ? h->cfg->job_instructions
                                  : (r->p->m->instructions && r->p->m->instructions >
                                     h->cfg->job_instructions ? r->p->m->instructions
                                                               : h->cfg->job_instructions);
  if ((rc = rp_task_new(r->p->sb, nargs, budget, r->what, &r->task, err))) {
    run_free(r);
    return rc;
  }
  rc = run_slice(r, 1, err);
  if (rc == RP_JOB_PENDING) {
    *handle = r;
    return rc;
  }
  run_free(r);
  return rc;
}

static int job_resume(void *ctx, void *handle, rp_err *err) {
  (void)ctx;
  job_run *r = handle;
  int rc = run_slice(r, 0, err);
  if (rc != RP_JOB_PENDING) run_free(r);
  return rc;
}

static void job_abandon(void *ctx, void *handle) {
  (void)ctx;
  run_free(handle);
}
