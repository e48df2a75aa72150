/* bus: delivers committed events to the plugins subscribed to them.
 *
 * Each plugin has a cursor (bus_cursors: the last event id it has seen).
 * One pump of one plugin is one transaction: it reads the next batch of
 * matching events past the cursor, calls the handlers, each event under its
 * own savepoint, and advances the cursor, then commits. So a handler's
 * writes and the cursor move together: after a crash at any instant an
 * event's effects are either committed with the cursor past it, or neither.
 * A handler that fails (error, memory or instruction limit) has its
 * savepoint rolled back, the event goes to the plugin's dead letters with
 * the error and traceback, and the bus moves on. */
#ifndef RP_BUS_H
#define RP_BUS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "err.h"
#include "host.h"

/* Pumps one batch (at most cfg->bus_batch events) into p. *processed
 * receives the events handed to a handler (0: the plugin is caught up). */
int rp_bus_pump_plugin(rp_host *h, rp_plugin *p, int64_t *processed, rp_err *err);

/* One batch for every active plugin. *processed (may be NULL) is the sum. */
int rp_bus_pump(rp_host *h, int64_t *processed, rp_err *err);

/* Pumps until every active plugin has caught up with the log as it stood
 * when called, plus what the handlers emitted (bounded by max_rounds). */
int rp_bus_drain(rp_host *h, int max_rounds, int64_t *processed, rp_err *err);

/* Events of the log past the plugin's cursor (not all of them match). */
int rp_bus_lag(rp_host *h, const char *plugin, int64_t *lag, rp_err *err);

/* Dead letters, newest first: all plugins when plugin is NULL; only pending
 * unless all. Owned by the caller. */
int rp_dlq_list(rp_store *s, const char *plugin, int all, int limit, cJSON **out, rp_err *err);

/* Delivers dead letter id again to its (loaded) plugin. RP_OK marks it
 * retried; a new failure keeps it pending with the new error and counts the
 * attempt, and returns the error. */
int rp_dlq_retry(rp_host *h, int64_t id, rp_err *err);

#endif
