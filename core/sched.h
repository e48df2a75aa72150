/* sched: the scheduler. Jobs (cron, every, at) live in the `jobs` table with
 * an index on their due time; one libuv timer is armed for the earliest due
 * job; due jobs are fired in batches; every run is recorded in `job_runs`.
 *
 * The scheduler does not know what a job does: it hands each run to the
 * job runner (the plugin host), which may finish it at once or keep it
 * running as a time-sliced task that the scheduler resumes from the loop
 * until it ends. Pending one-shots cost one index entry each and nothing
 * else until due.
 *
 * Exactly-once: a run that finishes in its first slice commits its effects,
 * its run record and the job's next due time (or the deletion of a one-shot)
 * in one transaction. A job read as due is checked again once the write lock
 * is held, so that two schedulers on one database never both run it. A
 * one-shot's run record is written after it ran, under an id reserved
 * before (max + 1, inside the write transaction): nothing a job does may
 * write `job_runs` itself. A run that outlives its first slice commits a
 * `running` record; if the process dies before it ends, the next start marks
 * it `interrupted` and re-runs a one-shot (at-least-once for long jobs, which
 * the docs ask to be idempotent). */
#ifndef RP_SCHED_H
#define RP_SCHED_H

#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "err.h"
#include "store.h"

typedef struct rp_sched rp_sched;

/* A job as the runner sees it. Strings borrowed for the duration of the call. */
typedef struct rp_job {
  int64_t id;
  int64_t run_id;        /* the job_runs row of this run */
  const char *owner;     /* plugin name, or "operator" */
  const char *name;      /* may be NULL for anonymous one-shots */
  const char *kind;      /* "cron" | "every" | "at" */
  const char *target;    /* handler name in the owner's jobs table, or script path */
  const char *payload;   /* JSON text or NULL */
  int64_t scheduled_for; /* the due time this run stands for */
} rp_job;

/* Returned by rp_job_runner.start/resume when the run continues. */
enum { RP_JOB_PENDING = 1 };

/* What runs jobs. start is called inside the scheduler's transaction; it
 * returns RP_OK (finished; its effects commit with the run record), an error
 * (its effects are rolled back by the scheduler, err describes it), or
 * RP_JOB_PENDING with *handle set: the scheduler commits what was done so
 * far and calls resume(handle) from the loop, outside any transaction, until
 * it returns RP_OK or an error. abandon(handle) frees a pending run the
 * scheduler gives up on (shutdown). */
typedef struct rp_job_runner {
  void *ctx;
  int (*start)(void *ctx, const rp_job *job, void **handle, rp_err *err);
  int (*resume)(void *ctx, void *handle, rp_err *err);
  void (*abandon)(void *ctx, void *handle);
} rp_job_runner;

/* A job definition for rp_sched_add. */
typedef struct rp_job_spec {
  const char *owner;   /* required */
  const char *name;    /* NULL for an anonymous one-shot; (owner, name) is unique */
  const char *kind;    /* "cron" | "every" | "at" */
  const char *spec;    /* cron: 5-field expression; every: duration ("15m" or ms);
                          at: ISO 8601 time or epoch ms */
  const char *target;  /* required */
  const char *payload; /* JSON text or NULL */
  const char *missed;  /* "run_once" (default) | "skip" */
  const char *origin;  /* "manifest" | "api" | "cli" (default "api") */
} rp_job_spec;

/* ---- jobs in the store (no loop needed: the CLI uses these) ---------------- */

/* Validates spec (cron syntax, duration, time) and inserts the job, or, when a
 * job with the same owner and name exists, replaces its definition (keeping
 * its id). Computes next_run_at from rp_clock_now_ms() in the configured time
 * zone (cfg->timezone). *id (may be NULL) receives the job id. RP_EINVAL
 * naming the field on a bad spec. */
int rp_sched_add(rp_store *store, const rp_config *cfg, const rp_job_spec *spec, int64_t *id,
                 rp_err *err);
/* Removes a job by owner and name, or by id when name is NULL and id > 0.
 * RP_ENOTFOUND when there is none. */
int rp_sched_remove(rp_store *store, const char *owner, const char *name, int64_t id,
                    rp_err *err);
/* Enables or disables every job of owner (plugin disable/enable). */
int rp_sched_set_owner_enabled(rp_store *store, const char *owner, int enabled, rp_err *err);

/* ---- the running scheduler ------------------------------------------------- */

/* store, cfg and loop are borrowed and must outlive the scheduler. */
int rp_sched_new(uv_loop_t *loop, rp_store *store, const rp_config *cfg, rp_sched **out,
                 rp_err *err);
/* Abandons pending runs (recorded as interrupted) and closes the timer
 * handles; the caller then runs the loop until the handles are closed. */
void rp_sched_free(rp_sched *s);

/* The runner (borrowed). Must be set before start. */
void rp_sched_set_runner(rp_sched *s, const rp_job_runner *runner);

/* Recovers after downtime (runs left `running` become `interrupted`; missed
 * runs follow each job's policy) and arms the timer. */
int rp_sched_start(rp_sched *s, rp_err *err);
/* Re-reads the earliest due time and re-arms the timer (after jobs were added
 * or removed behind the scheduler's back). */
void rp_sched_kick(rp_sched *s);
/* Stops firing new runs (shutdown); pending runs may still be resumed. */
void rp_sched_stop(rp_sched *s);

/* Fires, in batches, every job due at or before now; *fired (may be NULL)
 * receives the number of runs started. Used by the timer and by tests. */
int rp_sched_run_due(rp_sched *s, int64_t now, int64_t *fired, rp_err *err);
/* Runs one job now, whatever its due time (`rapport jobs run`); its schedule
 * is unchanged. Pending runs are driven to completion before returning when
 * wait is 1. *run_id (may be NULL) receives the run. */
int rp_sched_run_now(rp_sched *s, int64_t job_id, int wait, int64_t *run_id, rp_err *err);
/* Number of runs in progress (started, not finished). */
int rp_sched_pending(const rp_sched *s);
/* Resumes every pending run once (one slice each). Called by the loop's idle
 * handle; exposed for tests. */
void rp_sched_step(rp_sched *s);

#endif
