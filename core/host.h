/* host: the plugins of one Rapport instance and the Lua contexts they run in.
 *
 * The host discovers plugins (the configured plugin folders plus any folder
 * a plugin was enabled from), keeps their state in the `plugins` table
 * (enabled, disabled, suspended, broken), loads each enabled plugin into its
 * own sandbox with the `crm` API bound to its principal, runs its migrations
 * under its SQL authorizer, registers its manifest jobs, and delivers events
 * and job runs to it. A plugin that fails is logged, counted and, after
 * `suspend_after` consecutive failures, suspended; the core keeps going.
 * The operator context (scripts, REPL) is a plugin-shaped context with the
 * operator principal. */
#ifndef RP_HOST_H
#define RP_HOST_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "manifest.h"
#include "sandbox.h"
#include "store.h"

typedef struct rp_host rp_host;
typedef struct rp_plugin rp_plugin;
struct rp_sched;
struct rp_job_runner;

/* One stored event, as the bus hands it to a plugin. Strings borrowed. */
typedef struct rp_host_event {
  int64_t id;
  const char *event_id; /* the client's id, may be NULL */
  int64_t customer_id;
  const char *type;
  int64_t occurred_at;
  int64_t received_at;
  const char *source;
  const char *properties; /* JSON object text */
} rp_host_event;

/* store and cfg are borrowed and must outlive the host. */
int rp_host_new(rp_store *store, const rp_config *cfg, rp_host **out, rp_err *err);
/* Unloads every plugin. */
void rp_host_free(rp_host *h);

rp_store *rp_host_store(const rp_host *h);
const rp_config *rp_host_config(const rp_host *h);
/* The scheduler crm.schedule and manifest jobs talk to (borrowed; may be
 * NULL, then jobs are still written to the store and fire when a scheduler
 * runs). */
void rp_host_set_sched(rp_host *h, struct rp_sched *sched);
struct rp_sched *rp_host_sched(const rp_host *h);

/* The job runner the scheduler calls for jobs owned by plugins ("NAME") and
 * by operator scripts ("operator", target = script path). Borrowed. */
const struct rp_job_runner *rp_host_job_runner(rp_host *h);

/* ---- registry -------------------------------------------------------------- */

/* Every plugin the host can see, as a JSON array of {name, version,
 * description, path, status, reason, enabled, failures, errors_total,
 * permissions, subscriptions, jobs, lag}. Owned by the caller. */
int rp_host_list(rp_host *h, cJSON **out, rp_err *err);

/* Resolves a plugin name (searched in the plugin folders and the registry) or
 * a folder path to the plugin's folder; *dir is malloc'ed. */
int rp_host_locate(rp_host *h, const char *name_or_path, char **dir, rp_err *err);

/* Validates and loads the plugin, applies its migrations, registers it as
 * enabled (clearing suspension and failures), syncs its manifest jobs and
 * sets its bus cursor (at the end of the log, or 0 for "start":
 * "beginning") when it has none. The plugin stays loaded in h. */
int rp_host_enable(rp_host *h, const char *name_or_path, rp_err *err);
/* Marks the plugin disabled, unloads it and pauses its jobs. */
int rp_host_disable(rp_host *h, const char *name, rp_err *err);

/* Loads every plugin registered as enabled. A plugin that fails to load is
 * marked broken with the reason and logged; the others load. Returns RP_OK
 * unless the registry itself cannot be read. */
int rp_host_load_enabled(rp_host *h, rp_err *err);

size_t rp_host_count(const rp_host *h);
rp_plugin *rp_host_plugin_at(rp_host *h, size_t i);
rp_plugin *rp_host_plugin(rp_host *h, const char *name);

/* ---- one plugin ------------------------------------------------------------ */

const char *rp_plugin_name(const rp_plugin *p);
const rp_manifest *rp_plugin_manifest(const rp_plugin *p); /* NULL for operator */
rp_sandbox *rp_plugin_sandbox(rp_plugin *p);
rp_host *rp_plugin_host(rp_plugin *p);
/* Loaded and neither suspended nor disabled. */
int rp_plugin_active(const rp_plugin *p);
/* 1 when the loaded plugin's module has a function table[name] (for example
 * jobs.nightly), or name at its top level when table is NULL; else 0. */
int rp_plugin_has_function(rp_plugin *p, const char *table, const char *name);

/* Calls handlers[handler](event) inside the caller's transaction, under the
 * plugin's budget. RP_OK, or the plugin's error (traceback from
 * rp_sandbox_traceback). */
int rp_plugin_deliver(rp_plugin *p, const char *handler, const rp_host_event *ev, rp_err *err);

/* Calls the plugin's optional profile(customer_id) hook and returns its
 * result as JSON (NULL when the plugin has no such hook). */
int rp_plugin_profile(rp_plugin *p, int64_t customer_id, cJSON **out, rp_err *err);

/* Calls routes[handler](request) (request: a JSON object, borrowed) in the
 * caller's transaction under the plugin's budget; the route returns
 * (status, body [, content_type]). *status 100..599 (200 when the route
 * returned none); *body (NULL for none) owned by the caller. When the route
 * named a content type (text/csv, text/plain, application/x-ndjson),
 * *content_type is the static header value to send and *body a JSON string
 * holding the text to send as is; else *content_type is NULL. */
int rp_plugin_route(rp_plugin *p, const char *handler, const cJSON *request, int *status,
                    cJSON **body, const char **content_type, rp_err *err);

/* Who the next route or command calls act for, and from where (both
 * copied; NULL clears): the audit records of the calls name the caller
 * with the plugin ("key:12+plugin:loyalty") and the origin. */
void rp_plugin_set_caller(rp_plugin *p, const char *caller, const char *origin);

/* Calls commands[handler](input) (input: {args = [...], options = {...}},
 * borrowed) in the caller's transaction under the plugin's budget. The
 * command returns (value, text): *value its JSON (NULL for nil), *text
 * the text for people (NULL when it returned none); both owned by the
 * caller. */
int rp_plugin_command(rp_plugin *p, const char *handler, const cJSON *input, cJSON **value,
                      char **text, rp_err *err);

/* Calls the plugin's optional hook(customer_id) ("profile", "export" or
 * "erase") in the caller's transaction, under the plugin's budget; *out
 * receives what it returned as JSON (NULL for nil or false, or when the
 * plugin has no such hook); owned by the caller. */
int rp_plugin_hook(rp_plugin *p, const char *hook, int64_t customer_id, cJSON **out,
                   rp_err *err);

/* Bookkeeping of consecutive failures. record_failure counts one, persists
 * the counters and suspends the plugin when the limit is reached
 * (*suspended = 1); record_success resets the streak. */
int rp_plugin_record_failure(rp_plugin *p, const rp_err *why, int *suspended);
void rp_plugin_record_success(rp_plugin *p);

/* ---- the operator ---------------------------------------------------------- */

/* A context for operator code: every permission, reads on every table;
 * require() reads from root (may be NULL). Owned by the caller:
 * rp_plugin_free_operator. */
int rp_host_operator(rp_host *h, const char *root, rp_plugin **out, rp_err *err);
void rp_plugin_free_operator(rp_plugin *p);

#endif
