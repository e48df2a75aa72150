/* hostint: the private structures of the plugin host, shared by host.c and
 * the crm API bindings (api_*.c). Nothing else includes this file. */
#ifndef RP_HOSTINT_H
#define RP_HOSTINT_H

#include <sqlite3.h>

#include "authz.h"
#include "host.h"
#include "sched.h"

/* Prepared statements of one plugin. Kept apart from the core's cache because
 * they were authorized for this plugin; bounded so that a plugin building
 * SQL strings dynamically cannot grow it without limit. */
#define RP_PLUGIN_STMTS 48
typedef struct rp_plugin_stmt {
  char *sql;
  sqlite3_stmt *stmt;
  uint64_t used; /* last use tick, for eviction */
} rp_plugin_stmt;

enum { RP_PLUGIN_LOADED, RP_PLUGIN_SUSPENDED, RP_PLUGIN_UNLOADED };

struct rp_plugin {
  rp_host *host;
  char *name;
  char *dir;           /* the plugin's folder, or the operator script folder */
  rp_manifest *m;      /* NULL for the operator */
  rp_sandbox *sb;
  rp_principal principal;
  int module_ref;      /* registry ref to the table init.lua returned */
  cJSON *config;       /* effective config: manifest defaults + overrides */
  int64_t instructions; /* budget per handler/route call */
  int state;           /* RP_PLUGIN_* */
  int failures;        /* consecutive */
  rp_plugin_stmt stmts[RP_PLUGIN_STMTS];
  uint64_t stmt_tick;
};

struct rp_host {
  rp_store *store;
  const rp_config *cfg;
  rp_sched *sched;
  rp_plugin **plugins;
  size_t n_plugins;
  size_t cap_plugins;
  rp_job_runner runner;
};

/* The plugin whose sandbox L belongs to. */
rp_plugin *rp_plugin_from_lua(lua_State *L);

/* Prepares sql for p (cached, authorized as p). The statement is borrowed
 * and must be reset by the caller. On refusal, err names the table and the
 * missing permission. */
int rp_plugin_prepare(rp_plugin *p, const char *sql, sqlite3_stmt **out, rp_err *err);

/* Resets every statement of p that is still running (after an error unwound
 * through a binding). */
void rp_plugin_reset_stmts(rp_plugin *p);

#endif
