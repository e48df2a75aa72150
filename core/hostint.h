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
  struct rp_rows *rows_open; /* crm.db.rows iterators still open (api_db.c) */
  int64_t delivered_unlogged; /* events delivered since the last progress line (bus.c) */
  /* Who the current route or command call acts for ("key:12", "cli:ana")
   * and from where (a client address, "local"): audit records made during
   * the call name them. Empty outside such calls. */
  char caller[64];
  char caller_origin[64];
  uint64_t delivered_logged_ns;
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

/* Prepares sql for p (cached, authorized as p). Returns RP_OK with a
 * borrowed cached statement the caller must reset, or 1 with an uncached
 * statement the caller must finalize (every cache slot was busy). On
 * refusal, err names the table and the missing permission. */
int rp_plugin_prepare(rp_plugin *p, const char *sql, sqlite3_stmt **out, rp_err *err);

/* Steps a statement of p with p's authorizer in force (SQLite may
 * re-prepare it on a schema change, and must re-check it as p). */
int rp_plugin_step(rp_plugin *p, sqlite3_stmt *st);
/* Fills err from the connection's last error, or from p's SQL denial. */
int rp_plugin_sql_error(rp_plugin *p, const char *what, rp_err *err);
const rp_principal *rp_plugin_principal(const rp_plugin *p);
/* Points an operator context at another host (the spec runner gives each
 * test a fresh database); drops its cached statements. */
void rp_plugin_set_host(rp_plugin *p, rp_host *h);
/* Pushes the Lua table handlers receive for ev. May raise (memory). */
void rp_host_push_event(lua_State *L, const rp_host_event *ev);

/* Finalizes the statements of p's open crm.db.rows iterators (before the
 * connection goes away). */
void rp_api_db_close_rows(rp_plugin *p);

/* Resets every statement of p that is still running (after an error unwound
 * through a binding). */
void rp_plugin_reset_stmts(rp_plugin *p);

#endif
