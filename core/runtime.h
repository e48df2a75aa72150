/* runtime: one running Rapport instance: the store, the plugin host, the
 * scheduler and the event bus on one libuv loop (HTTP joins it in #3).
 *
 * The loop thread owns the writer connection. The bus is pumped from a 1 ms
 * timer while plugins lag behind the log, one batch per plugin per tick, so
 * that timers, signals, HTTP requests and time-sliced jobs interleave with
 * dispatch. A
 * poll timer notices events written by other processes (`rapport import`,
 * operator scripts). SIGINT and SIGTERM stop the loop between two turns: the
 * transaction in hand is always finished first. */
#ifndef RP_RUNTIME_H
#define RP_RUNTIME_H

#include <uv.h>

#include "config.h"
#include "err.h"
#include "host.h"
#include "sched.h"
#include "store.h"

typedef struct rp_runtime rp_runtime;

/* Opens the instance on store (borrowed, must outlive it): creates the host,
 * loads every enabled plugin, creates the scheduler. */
int rp_runtime_new(rp_store *store, const rp_config *cfg, rp_runtime **out, rp_err *err);
void rp_runtime_free(rp_runtime *rt);

rp_host *rp_runtime_host(rp_runtime *rt);
rp_sched *rp_runtime_sched(rp_runtime *rt);
uv_loop_t *rp_runtime_loop(rp_runtime *rt);

/* Runs until rp_runtime_stop or a signal. With once set, recovers the
 * scheduler, fires what is due, drains the bus and the pending job runs,
 * and returns. */
int rp_runtime_run(rp_runtime *rt, int once, rp_err *err);
void rp_runtime_stop(rp_runtime *rt);

/* Tells the runtime that events were appended (wakes the bus pump). */
void rp_runtime_kick(rp_runtime *rt);

/* A function rp_runtime_stop calls (the HTTP server's graceful stop). With
 * one set, the loop is not cut short: it runs until what the hook started
 * has finished (open connections answered and closed). */
void rp_runtime_set_stop_hook(rp_runtime *rt, void (*fn)(void *ctx), void *ctx);

#endif
