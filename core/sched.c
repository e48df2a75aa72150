/* sched: jobs in the store, the timer that fires them, and the runs that
 * outlive one slice. See sched.h for the contract. */
#include "sched.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cron.h"
#include "fault.h"
#include "log.h"

/* Jobs read per batch, and the time a batch may take. A batch is one
 * transaction; it ends when its jobs are fired or its time is spent,
 * whichever comes first, so that a backlog of a million one-shots becoming
 * due at once never holds the loop for long: the timer fires one batch,
 * then re-arms SLICE_GAP_MS later, and other work interleaves. Bounded by
 * time rather than by count because jobs differ in cost by orders of
 * magnitude: a fixed count small enough for slow jobs commits (and syncs)
 * far too often for quick ones. */
#define FIRE_BATCH 1000
#define FIRE_BUDGET_NS 10000000ULL
/* The pause between two batches of due jobs and between two slices of long
 * runs. Without it the loop would go from COMMIT straight to the next BEGIN
 * and another process waiting to write (an import, `rapport run`) would
 * never find the database free while a long job runs. */
#define SLICE_GAP_MS 1
/* The timer never sleeps longer than this, so that jobs added by another
 * process (`rapport jobs add` beside `rapport serve`) are noticed. */
#define MAX_SLEEP_MS 1000
/* A run later than this after its due time was missed (downtime, a stopped
 * loop), and the job's missed-run policy decides. */
#define MISSED_GRACE_MS 60000

typedef struct pending_run {
  void *handle;
  int64_t job_id;
  int64_t run_id;
  int one_shot;
  int done; /* finished; waiting to be compacted out of the list */
} pending_run;

struct rp_sched {
  uv_loop_t *loop;
  rp_store *store;
  const rp_config *cfg;
  const rp_job_runner *runner;
  uv_timer_t timer;
  uv_timer_t slicer; /* resumes pending runs, one slice each, with a gap between */
  int batch_hint;            /* due jobs read per batch (FIRE_BATCH, less for slow jobs) */
  int64_t oneshots_unlogged; /* one-shots fired since the last progress line */
  uint64_t oneshots_logged_ns;
  int handles_open;
  int freeing;
  int started;
  int stopped;
  int in_step;
  pending_run *pending;
  int n_pending, cap_pending;
};

static void on_slice(uv_timer_t *h);

/* ---- definitions ------------------------------------------------------------ */

/* Next due time of a cron or every job strictly after `after`, keeping the
 * phase of an interval job (anchor + k * interval). */
static int next_due(const rp_config *cfg, const char *kind, const char *spec, int64_t anchor,
                    int64_t after, int64_t *next, rp_err *err) {
  if (strcmp(kind, "cron") == 0) {
    rp_cron c;
    int rc = rp_cron_parse(spec, &c, err);
    if (rc == RP_OK) rc = rp_cron_next(&c, cfg ? cfg->timezone : NULL, after, next, err);
    return rc;
  }
  if (strcmp(kind, "every") == 0) {
    int64_t every;
    if (rp_clock_parse_duration(spec, &every) != 0)
      return rp_err_set(err, RP_EINVAL, "schedule", "\"%s\" is not a duration (e.g. 15m, 2h, 1d)",
                        spec);
    if (anchor > after) {
      *next = anchor;
      return RP_OK;
    }
    *next = anchor + ((after - anchor) / every + 1) * every;
    return RP_OK;
  }
  return rp_err_set(err, RP_EINVAL, "kind", "kind must be cron, every or at, not \"%s\"", kind);
}

static int validate(const rp_config *cfg, const rp_job_spec *js, int64_t now, int64_t *first,
                    rp_err *err) {
  if (!js->owner || !js->owner[0])
    return rp_err_set(err, RP_EINVAL, "owner", "a job needs an owner");
  if (!js->target || !js->target[0])
    return rp_err_set(err, RP_EINVAL, "target", "a job needs a target (handler or script)");
  if (js->name && (!js->name[0] || strlen(js->name) > 64))
    return rp_err_set(err, RP_EINVAL, "name", "a job name has 1 to 64 characters");
  if (!js->kind) return rp_err_set(err, RP_EINVAL, "kind", "a job needs a kind: cron, every or at");
  if (!js->spec || !js->spec[0])
    return rp_err_set(err, RP_EINVAL, "schedule", "a %s job needs a schedule", js->kind);
  if (js->missed && strcmp(js->missed, "run_once") != 0 && strcmp(js->missed, "skip") != 0)
    return rp_err_set(err, RP_EINVAL, "missed", "missed must be run_once or skip, not \"%s\"",
                      js->missed);
  if (js->origin && strcmp(js->origin, "manifest") != 0 && strcmp(js->origin, "api") != 0 &&
      strcmp(js->origin, "cli") != 0)
    return rp_err_set(err, RP_EINVAL, "origin", "unknown job origin \"%s\"", js->origin);
  if (js->payload) {
    cJSON *p = cJSON_Parse(js->payload);
    if (!p) return rp_err_set(err, RP_EINVAL, "payload", "the payload is not valid JSON");
    cJSON_Delete(p);
  }
  if (strcmp(js->kind, "at") == 0) {
    if (rp_clock_parse(js->spec, first) != 0)
      return rp_err_set(err, RP_EINVAL, "schedule",
                        "\"%s\" is not a time (ISO 8601 or epoch milliseconds)", js->spec);
    return RP_OK;
  }
  if (strcmp(js->kind, "cron") == 0) {
    int rc = rp_cron_check_tz(cfg ? cfg->timezone : NULL, err);
    if (rc) return rc;
  }
  return next_due(cfg, js->kind, js->spec, now, now, first, err);
}

int rp_sched_add(rp_store *store, const rp_config *cfg, const rp_job_spec *js, int64_t *id,
                 rp_err *err) {
  int64_t now = rp_clock_now_ms(), first = 0;
  int rc = validate(cfg, js, now, &first, err);
  if (rc) return rc;
  const char *missed = js->missed ? js->missed : "run_once";
  const char *origin = js->origin ? js->origin : "api";
  if ((rc = rp_store_tx_begin(store, err))) return rc;

  int64_t existing = 0, keep_next = 0;
  sqlite3_stmt *st;
  if (js->name) {
    if ((rc = rp_store_prepare(store,
                               "SELECT id, kind = ?3 AND spec = ?4, next_run_at FROM jobs "
                               "WHERE owner = ?1 AND name = ?2",
                               &st, err)))
      goto fail;
    sqlite3_bind_text(st, 1, js->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, js->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, js->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, js->spec, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) {
      existing = sqlite3_column_int64(st, 0);
      /* Same schedule: keep the due time, so that re-enabling a plugin or
       * re-registering a job does not push a run further away. */
      if (sqlite3_column_int(st, 1) && sqlite3_column_type(st, 2) != SQLITE_NULL)
        keep_next = sqlite3_column_int64(st, 2);
    }
    rp_store_done(st);
  }
  if (existing) {
    if ((rc = rp_store_prepare(store,
                               "UPDATE jobs SET kind = ?2, spec = ?3, target = ?4, payload = ?5, "
                               "missed = ?6, origin = ?7, enabled = 1, next_run_at = ?8 "
                               "WHERE id = ?1",
                               &st, err)))
      goto fail;
    sqlite3_bind_int64(st, 1, existing);
  } else {
    if ((rc = rp_store_prepare(store,
                               "INSERT INTO jobs(owner, name, kind, spec, target, payload, missed, "
                               "origin, next_run_at, created_at) "
                               "VALUES (?9, ?10, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?11)",
                               &st, err)))
      goto fail;
    sqlite3_bind_text(st, 9, js->owner, -1, SQLITE_STATIC);
    if (js->name) sqlite3_bind_text(st, 10, js->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 11, now);
  }
  sqlite3_bind_text(st, 2, js->kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, js->spec, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, js->target, -1, SQLITE_STATIC);
  if (js->payload) sqlite3_bind_text(st, 5, js->payload, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 6, missed, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 7, origin, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 8, keep_next ? keep_next : first);
  int step = sqlite3_step(st);
  rp_store_done(st);
  if (step != SQLITE_DONE) {
    rc = rp_store_error(store, "saving the job", err);
    goto fail;
  }
  if (id) *id = existing ? existing : sqlite3_last_insert_rowid(rp_store_db(store));
  return rp_store_tx_commit(store, err);
fail:
  rp_store_tx_rollback(store);
  return rc;
}

int rp_sched_remove(rp_store *store, const char *owner, const char *name, int64_t id,
                    rp_err *err) {
  sqlite3_stmt *st;
  int rc;
  if (name) {
    rc = rp_store_prepare(store, "DELETE FROM jobs WHERE owner = ?1 AND name = ?2", &st, err);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, owner ? owner : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
  } else {
    if (id <= 0) return rp_err_set(err, RP_EINVAL, "job", "name a job by name or id");
    rc = rp_store_prepare(store, "DELETE FROM jobs WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)",
                          &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, id);
    if (owner) sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
  }
  int step = sqlite3_step(st);
  rp_store_done(st);
  if (step != SQLITE_DONE) return rp_store_error(store, "removing the job", err);
  if (sqlite3_changes(rp_store_db(store)) == 0) {
    if (name) return rp_err_set(err, RP_ENOTFOUND, "job", "no job '%s' of %s", name, owner);
    return rp_err_set(err, RP_ENOTFOUND, "job", "no job %lld", (long long)id);
  }
  return RP_OK;
}

int rp_sched_set_owner_enabled(rp_store *store, const char *owner, int enabled, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(store, "UPDATE jobs SET enabled = ?2 WHERE owner = ?1", &st, err);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, enabled ? 1 : 0);
  int step = sqlite3_step(st);
  rp_store_done(st);
  return step == SQLITE_DONE ? RP_OK : rp_store_error(store, "enabling jobs", err);
}

/* ---- runs ------------------------------------------------------------------ */

/* Inserts a run record that started at started (0: now). *run_id is the id
 * to use when positive (reserved by run_reserve_id), and receives the new
 * row's id otherwise. */
static int run_insert(rp_store *s, const rp_job *job, const char *outcome, const char *error,
                      int64_t started, int64_t *run_id, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s,
                            "INSERT INTO job_runs(id, job_id, owner, name, target, scheduled_for, "
                            "started_at, finished_at, outcome, error) "
                            "VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?7 = 'running' THEN NULL "
                            "ELSE ?10 END, ?7, ?8)",
                            &st, err);
  if (rc) return rc;
  if (*run_id > 0) sqlite3_bind_int64(st, 9, *run_id);
  sqlite3_bind_int64(st, 10, rp_clock_now_ms());
  sqlite3_bind_int64(st, 1, job->id);
  sqlite3_bind_text(st, 2, job->owner, -1, SQLITE_STATIC);
  if (job->name) sqlite3_bind_text(st, 3, job->name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, job->target, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, job->scheduled_for);
  sqlite3_bind_int64(st, 6, started ? started : rp_clock_now_ms());
  sqlite3_bind_text(st, 7, outcome, -1, SQLITE_STATIC);
  if (error) sqlite3_bind_text(st, 8, error, -1, SQLITE_TRANSIENT);
  int step = sqlite3_step(st);
  rp_store_done(st);
  if (step != SQLITE_DONE) return rp_store_error(s, "recording the run", err);
  *run_id = sqlite3_last_insert_rowid(rp_store_db(s));
  return RP_OK;
}

/* The id the next run record will get. Inside the write transaction nobody
 * else can take it, so a one-shot's run can be written once, with its
 * outcome, after the job ran (see fire_one). */
static int run_reserve_id(rp_store *s, int64_t *run_id, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, "SELECT coalesce(max(id), 0) + 1 FROM job_runs", &st, err);
  if (rc) return rc;
  int step = sqlite3_step(st);
  if (step == SQLITE_ROW) *run_id = sqlite3_column_int64(st, 0);
  rp_store_done(st);
  return step == SQLITE_ROW ? RP_OK : rp_store_error(s, "reserving a run id", err);
}

static int run_finish(rp_store *s, int64_t run_id, const char *outcome, const char *error,
                      rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(
      s, "UPDATE job_runs SET finished_at = ?2, outcome = ?3, error = ?4 WHERE id = ?1", &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, run_id);
  sqlite3_bind_int64(st, 2, rp_clock_now_ms());
  sqlite3_bind_text(st, 3, outcome, -1, SQLITE_STATIC);
  if (error) sqlite3_bind_text(st, 4, error, -1, SQLITE_TRANSIENT);
  int step = sqlite3_step(st);
  rp_store_done(st);
  return step == SQLITE_DONE ? RP_OK : rp_store_error(s, "recording the run", err);
}

/* Moves a job past a run: a one-shot is deleted (or parked with no due time
 * while a long run is in progress, so a crash can re-run it); a recurring
 * job gets its next due time. */
static int job_advance(rp_sched *s, const rp_job *job, const char *spec, int park, int64_t now,
                       rp_err *err) {
  sqlite3_stmt *st;
  int rc;
  if (strcmp(job->kind, "at") == 0) {
    rc = rp_store_prepare(s->store,
                          park ? "UPDATE jobs SET next_run_at = NULL, last_run_at = ?2 WHERE id = ?1"
                               : "DELETE FROM jobs WHERE id = ?1 AND ?2 IS NOT NULL",
                          &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, job->id);
    sqlite3_bind_int64(st, 2, now);
  } else {
    int64_t next;
    rp_err e2;
    rp_err_clear(&e2);
    rc = rp_store_prepare(s->store,
                          "UPDATE jobs SET next_run_at = ?2, last_run_at = ?3 WHERE id = ?1", &st,
                          err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, job->id);
    /* A schedule that no longer evaluates (a time zone removed from the
     * machine) leaves the job with no due time rather than firing in a loop. */
    if (next_due(s->cfg, job->kind, spec, job->scheduled_for, now, &next, &e2) == RP_OK)
      sqlite3_bind_int64(st, 2, next);
    else
      rp_log(RP_LOG_ERROR, job->owner, "job %s: %s; it will not run again until redefined",
             job->name ? job->name : job->target, e2.msg);
    sqlite3_bind_int64(st, 3, now);
  }
  int step = sqlite3_step(st);
  rp_store_done(st);
  return step == SQLITE_DONE ? RP_OK : rp_store_error(s->store, "advancing the job", err);
}

static int pending_find(const rp_sched *s, int64_t job_id) {
  for (int i = 0; i < s->n_pending; i++)
    if (!s->pending[i].done && s->pending[i].job_id == job_id) return i;
  return -1;
}

static int pending_push(rp_sched *s, const pending_run *r) {
  if (s->n_pending == s->cap_pending) {
    int cap = s->cap_pending ? s->cap_pending * 2 : 8;
    pending_run *p = realloc(s->pending, (size_t)cap * sizeof *p);
    if (!p) return RP_ENOMEM;
    s->pending = p;
    s->cap_pending = cap;
  }
  s->pending[s->n_pending++] = *r;
  if (!uv_is_active((uv_handle_t *)&s->slicer) && !s->freeing)
    uv_timer_start(&s->slicer, on_slice, SLICE_GAP_MS, SLICE_GAP_MS);
  return RP_OK;
}

/* Whether the job read as due is still due as read, now that the write
 * lock is held: the due jobs are read before it is taken, and another
 * scheduler (a `serve --once` beside `serve`) may have fired them since. */
static int still_due(rp_store *s, const rp_job *job, int *due, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, "SELECT next_run_at = ?2 AND enabled = 1 FROM jobs WHERE id = ?1",
                            &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, job->id);
  sqlite3_bind_int64(st, 2, job->scheduled_for);
  int step = sqlite3_step(st);
  *due = step == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
  rp_store_done(st);
  return step == SQLITE_ROW || step == SQLITE_DONE ? RP_OK : rp_store_error(s, "reading a job", err);
}

/* Starts one run of job inside its own savepoint. On a runner error the
 * savepoint is undone and the failure recorded in a fresh one, so that the
 * job still advances and the error is kept. *run_rc receives the runner's
 * verdict (RP_OK, RP_JOB_PENDING or its error); the return value is a store
 * failure only. */
static int fire_one(rp_sched *s, rp_job *job, const char *spec, int advance, int64_t now,
                    int *run_rc, rp_err *run_err, rp_err *err) {
  /* A one-shot that ends in its first slice (nearly all of them) costs one
   * run row and one deletion: its record is written once, with its
   * outcome, and the job is not parked first. A backlog of a million
   * one-shots is bound by these writes. */
  int one_shot = advance && strcmp(job->kind, "at") == 0;
  int rc = rp_store_tx_begin(s->store, err);
  if (rc) return rc;
  *run_rc = RP_OK;
  job->run_id = 0; /* stays 0 when the job is not run */
  if (advance) {
    int due = 0;
    if ((rc = still_due(s->store, job, &due, err)) || !due) {
      rp_store_tx_rollback(s->store);
      return rc;
    }
  }
  job->run_id = 0;
  if (one_shot) rc = run_reserve_id(s->store, &job->run_id, err);
  else if ((rc = run_insert(s->store, job, "running", NULL, 0, &job->run_id, err)) == RP_OK && advance)
    rc = job_advance(s, job, spec, 1, now, err);
  if (rc) {
    rp_store_tx_rollback(s->store);
    return rc;
  }
  void *handle = NULL;
  rp_err_clear(run_err);
  int64_t started = rp_clock_now_ms();
  int r = s->runner->start(s->runner->ctx, job, &handle, run_err);
  *run_rc = r;
  if (r == RP_JOB_PENDING) {
    pending_run pr = {handle, job->id, job->run_id, one_shot, 0};
    if (one_shot && ((rc = run_insert(s->store, job, "running", NULL, started, &job->run_id, err)) ||
                     (rc = job_advance(s, job, spec, 1, now, err)))) {
      s->runner->abandon(s->runner->ctx, handle);
      rp_store_tx_rollback(s->store);
      return rc;
    }
    if (pending_push(s, &pr) != RP_OK) {
      s->runner->abandon(s->runner->ctx, handle);
      rp_store_tx_rollback(s->store);
      return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    }
    return rp_store_tx_commit(s->store, err);
  }
  if (r == RP_OK) {
    /* Recurring jobs are few: one line each. One-shots can be millions: the
     * batch counts them (rp_sched_run_due). */
    if (strcmp(job->kind, "at") != 0)
      rp_log(RP_LOG_INFO, job->owner, "job %s ran", job->name ? job->name : job->target);
    if (one_shot)
      rc = run_insert(s->store, job, "ok", NULL, started, &job->run_id, err);
    else
      rc = run_finish(s->store, job->run_id, "ok", NULL, err);
    if (rc || (one_shot && (rc = job_advance(s, job, spec, 0, now, err)))) {
      rp_store_tx_rollback(s->store);
      return rc;
    }
    return rp_store_tx_commit(s->store, err);
  }
  /* The run failed: its effects go; the run record and the advance stay. */
  rp_store_tx_rollback(s->store);
  rp_log(RP_LOG_ERROR, job->owner, "job %s failed: %s", job->name ? job->name : job->target,
         run_err->msg);
  if ((rc = rp_store_tx_begin(s->store, err))) return rc;
  job->run_id = 0;
  if ((rc = run_insert(s->store, job, "error", run_err->msg[0] ? run_err->msg : "failed", started,
                       &job->run_id, err)) ||
      (advance && (rc = job_advance(s, job, spec, 0, now, err)))) {
    rp_store_tx_rollback(s->store);
    return rc;
  }
  return rp_store_tx_commit(s->store, err);
}

/* Records a run that did not happen (missed under the skip policy, or the
 * previous run still in progress) and moves the job on. */
static int skip_one(rp_sched *s, rp_job *job, const char *spec, const char *why, int64_t now,
                    rp_err *err) {
  job->run_id = 0;
  int rc = rp_store_tx_begin(s->store, err);
  if (rc) return rc;
  if ((rc = run_insert(s->store, job, "skipped", why, 0, &job->run_id, err)) ||
      (rc = job_advance(s, job, spec, 0, now, err))) {
    rp_store_tx_rollback(s->store);
    return rc;
  }
  return rp_store_tx_commit(s->store, err);
}

/* The columns job_from_row reads. */
#define JOB_COLUMNS "id, owner, name, kind, spec, target, payload, missed, next_run_at"

static void job_from_row(sqlite3_stmt *st, rp_job *job) {
  memset(job, 0, sizeof *job);
  job->id = sqlite3_column_int64(st, 0);
  job->owner = (const char *)sqlite3_column_text(st, 1);
  job->name = (const char *)sqlite3_column_text(st, 2);
  job->kind = (const char *)sqlite3_column_text(st, 3);
  job->target = (const char *)sqlite3_column_text(st, 5);
  job->payload = (const char *)sqlite3_column_text(st, 6);
  job->scheduled_for = sqlite3_column_int64(st, 8);
}

/* A due job copied out of its statement, so that the statement can be reset
 * before the runner runs SQL of its own. */
typedef struct due_job {
  rp_job job;
  char *strings; /* owner, name, kind, spec, target, payload, back to back */
  const char *spec;
  int skip;      /* missed under the skip policy */
} due_job;

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void due_free(due_job *d) {
  free((char *)d->job.owner);
  free((char *)d->job.name);
  free((char *)d->job.kind);
  free((char *)d->spec);
  free((char *)d->job.target);
  free((char *)d->job.payload);
}

static int due_load(sqlite3_stmt *st, int64_t now, due_job *d) {
  rp_job j;
  job_from_row(st, &j);
  memset(d, 0, sizeof *d);
  d->job.id = j.id;
  d->job.scheduled_for = j.scheduled_for;
  d->job.owner = dup_or_null(j.owner);
  d->job.name = dup_or_null(j.name);
  d->job.kind = dup_or_null(j.kind);
  d->spec = dup_or_null((const char *)sqlite3_column_text(st, 4));
  d->job.target = dup_or_null(j.target);
  d->job.payload = dup_or_null(j.payload);
  const char *missed = (const char *)sqlite3_column_text(st, 7);
  d->skip = missed && strcmp(missed, "skip") == 0 && now - j.scheduled_for > MISSED_GRACE_MS;
  if (!d->job.owner || !d->job.kind || !d->spec || !d->job.target ||
      (j.name && !d->job.name) || (j.payload && !d->job.payload)) {
    due_free(d);
    return RP_ENOMEM;
  }
  return RP_OK;
}

/* Fires what is due at now, at most max_batches batches of FIRE_BATCH. */
static int run_due(rp_sched *s, int64_t now, int max_batches, int64_t *fired, rp_err *err) {
  int64_t n = 0, oneshots = 0;
  int drained = 0; /* nothing more is due */
  if (fired) *fired = 0;
  if (s->stopped) return RP_OK;
  if (!s->runner) return rp_err_set(err, RP_EINVAL, NULL, "the scheduler has no job runner");
  for (int round = 0; round < max_batches; round++) {
    sqlite3_stmt *st;
    int rc = rp_store_prepare(s->store,
                              "SELECT " JOB_COLUMNS " FROM jobs WHERE next_run_at IS NOT NULL "
                              "AND enabled = 1 AND next_run_at <= ?1 "
                              "ORDER BY next_run_at, id LIMIT ?2",
                              &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, now);
    sqlite3_bind_int(st, 2, s->batch_hint);
    due_job *batch = malloc(FIRE_BATCH * sizeof *batch);
    if (!batch) {
      rp_store_done(st);
      return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    }
    int count = 0;
    while (count < s->batch_hint && sqlite3_step(st) == SQLITE_ROW) {
      if (due_load(st, now, &batch[count]) != RP_OK) {
        rp_store_done(st);
        for (int i = 0; i < count; i++) due_free(&batch[i]);
        free(batch);
        return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
      }
      count++;
    }
    rp_store_done(st);
    if (count == 0) {
      free(batch);
      drained = 1;
      break;
    }
    /* One transaction per batch: each job's run commits with its effects. */
    int done = 0;
    rc = rp_store_tx_begin(s->store, err);
    /* From when the write lock is held: waiting for it is not firing. */
    uint64_t deadline = rp_clock_mono_ns() + FIRE_BUDGET_NS;
    for (int i = 0; rc == RP_OK && i < count; i++) {
      /* At least one job a batch, however slow, so that the backlog drains. */
      if (i > 0 && rp_clock_mono_ns() >= deadline) break;
      done++;
      due_job *d = &batch[i];
      if (d->skip) {
        rc = skip_one(s, &d->job, d->spec, "missed while Rapport was not running", now, err);
      } else if (pending_find(s, d->job.id) >= 0) {
        rc = skip_one(s, &d->job, d->spec, "the previous run was still in progress", now, err);
      } else {
        int run_rc;
        rp_err run_err;
        rc = fire_one(s, &d->job, d->spec, 1, now, &run_rc, &run_err, err);
        if (d->job.run_id) { /* 0: fired by somebody else since it was read */
          n++;
          if (strcmp(d->job.kind, "at") == 0) oneshots++;
        }
      }
    }
    for (int i = 0; i < count; i++) due_free(&batch[i]);
    free(batch);
    if (rc) {
      rp_store_tx_rollback(s->store);
      return rc;
    }
    rp_fault_point("sched.before_commit");
    if ((rc = rp_store_tx_commit(s->store, err))) return rc;
    /* Slow jobs: read about as many as the budget fired, not a thousand
     * copied for one or two to run. */
    int limit = s->batch_hint;
    s->batch_hint = done < count ? 2 * done + 16 : FIRE_BATCH;
    if (s->batch_hint > FIRE_BATCH) s->batch_hint = FIRE_BATCH;
    if (done == count && count < limit) {
      drained = 1;
      break;
    }
  }
  /* One line a second at most while a backlog of one-shots drains, and one
   * when it is done. */
  s->oneshots_unlogged += oneshots;
  uint64_t mono = rp_clock_mono_ns();
  if (s->oneshots_unlogged > 0 &&
      (drained || mono - s->oneshots_logged_ns >= 1000000000ULL)) {
    rp_log(RP_LOG_INFO, "sched", "%lld one-shot job(s) fired", (long long)s->oneshots_unlogged);
    s->oneshots_unlogged = 0;
    s->oneshots_logged_ns = mono;
  }
  if (fired) *fired = n;
  return RP_OK;
}

int rp_sched_run_due(rp_sched *s, int64_t now, int64_t *fired, rp_err *err) {
  return run_due(s, now, INT_MAX, fired, err);
}

/* ---- pending runs ----------------------------------------------------------- */

/* Ends a pending run: its last slice's effects (already applied inside the
 * open transaction when ok) commit with the run record. */
static void pending_end(rp_sched *s, pending_run *r, int run_rc, const rp_err *run_err) {
  rp_err err;
  rp_err_clear(&err);
  const char *outcome = run_rc == RP_OK ? "ok" : "error";
  const char *msg = run_rc == RP_OK ? NULL : (run_err->msg[0] ? run_err->msg : "failed");
  int rc = run_finish(s->store, r->run_id, outcome, msg, &err);
  if (rc == RP_OK && r->one_shot) {
    sqlite3_stmt *st;
    rc = rp_store_prepare(s->store, "DELETE FROM jobs WHERE id = ?1", &st, &err);
    if (rc == RP_OK) {
      sqlite3_bind_int64(st, 1, r->job_id);
      if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s->store, "removing a one-shot", &err);
      rp_store_done(st);
    }
  }
  if (rc) rp_log(RP_LOG_ERROR, "core", "job run %lld: %s", (long long)r->run_id, err.msg);
  r->done = 1;
}

void rp_sched_step(rp_sched *s) {
  if (s->in_step) return;
  s->in_step = 1;
  int n = s->n_pending; /* runs added during this step wait for the next */
  for (int i = 0; i < n; i++) {
    pending_run *r = &s->pending[i];
    if (r->done) continue;
    rp_err err, run_err;
    rp_err_clear(&err);
    rp_err_clear(&run_err);
    /* Each slice is one transaction: what a long job did in a slice commits
     * together, and its yield points are where the loop gets the thread. */
    if (rp_store_tx_begin(s->store, &err)) {
      rp_log(RP_LOG_ERROR, "core", "job run %lld: %s", (long long)r->run_id, err.msg);
      continue;
    }
    int rc = s->runner->resume(s->runner->ctx, r->handle, &run_err);
    if (rc == RP_JOB_PENDING) {
      if (rp_store_tx_commit(s->store, &err))
        rp_log(RP_LOG_ERROR, "core", "job run %lld: %s", (long long)r->run_id, err.msg);
      continue;
    }
    if (rc != RP_OK) {
      rp_store_tx_rollback(s->store);
      rp_log(RP_LOG_ERROR, "core", "job run %lld failed: %s", (long long)r->run_id, run_err.msg);
      if (rp_store_tx_begin(s->store, &err) != RP_OK) {
        r->done = 1;
        continue;
      }
    }
    pending_end(s, r, rc, &run_err);
    if (rp_store_tx_commit(s->store, &err))
      rp_log(RP_LOG_ERROR, "core", "job run %lld: %s", (long long)r->run_id, err.msg);
  }
  /* Compact finished runs out of the list. */
  int j = 0;
  for (int i = 0; i < s->n_pending; i++)
    if (!s->pending[i].done) s->pending[j++] = s->pending[i];
  s->n_pending = j;
  if (j == 0 && uv_is_active((uv_handle_t *)&s->slicer)) uv_timer_stop(&s->slicer);
  s->in_step = 0;
}

int rp_sched_pending(const rp_sched *s) {
  int n = 0;
  for (int i = 0; i < s->n_pending; i++) n += !s->pending[i].done;
  return n;
}

/* ---- the timer -------------------------------------------------------------- */

static void on_slice(uv_timer_t *h) { rp_sched_step(h->data); }

static void arm(rp_sched *s);

static void on_timer(uv_timer_t *t) {
  rp_sched *s = t->data;
  rp_err err;
  rp_err_clear(&err);
  if (run_due(s, rp_clock_now_ms(), 1, NULL, &err) != RP_OK)
    rp_log(RP_LOG_ERROR, "core", "scheduler: %s", err.msg);
  arm(s);
}

static void arm(rp_sched *s) {
  if (s->stopped || s->freeing || !s->started) return;
  sqlite3_stmt *st;
  uint64_t delay = MAX_SLEEP_MS;
  if (rp_store_prepare(s->store,
                       "SELECT min(next_run_at) FROM jobs WHERE next_run_at IS NOT NULL "
                       "AND enabled = 1",
                       &st, NULL) == RP_OK) {
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
      int64_t due = sqlite3_column_int64(st, 0) - rp_clock_now_ms();
      if (due < SLICE_GAP_MS) due = SLICE_GAP_MS; /* more is due: the next batch, after a gap */
      if ((uint64_t)due < delay) delay = (uint64_t)due;
    }
    rp_store_done(st);
  }
  uv_timer_start(&s->timer, on_timer, delay, 0);
}

/* ---- lifecycle ---------------------------------------------------------------- */

int rp_sched_new(uv_loop_t *loop, rp_store *store, const rp_config *cfg, rp_sched **out,
                 rp_err *err) {
  *out = NULL;
  rp_sched *s = calloc(1, sizeof *s);
  if (!s) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  s->loop = loop;
  s->batch_hint = FIRE_BATCH;
  s->store = store;
  s->cfg = cfg;
  uv_timer_init(loop, &s->timer);
  uv_timer_init(loop, &s->slicer);
  s->timer.data = s->slicer.data = s;
  s->handles_open = 2;
  *out = s;
  return RP_OK;
}

static void on_close(uv_handle_t *h) {
  rp_sched *s = h->data;
  if (--s->handles_open == 0) {
    free(s->pending);
    free(s);
  }
}

void rp_sched_free(rp_sched *s) {
  if (!s) return;
  s->freeing = 1;
  s->stopped = 1;
  for (int i = 0; i < s->n_pending; i++) {
    pending_run *r = &s->pending[i];
    if (r->done) continue;
    s->runner->abandon(s->runner->ctx, r->handle);
    /* The run stays `running` in the store: the next start marks it
     * interrupted and re-runs a one-shot, exactly as after a crash. */
    r->done = 1;
  }
  s->n_pending = 0;
  uv_close((uv_handle_t *)&s->timer, on_close);
  uv_close((uv_handle_t *)&s->slicer, on_close);
}

void rp_sched_set_runner(rp_sched *s, const rp_job_runner *runner) { s->runner = runner; }

int rp_sched_start(rp_sched *s, rp_err *err) {
  if (!s->runner) return rp_err_set(err, RP_EINVAL, NULL, "the scheduler has no job runner");
  int rc = rp_store_tx_begin(s->store, err);
  if (rc) return rc;
  sqlite3_stmt *st;
  /* A one-shot whose long run was cut short is due again at its time. */
  rc = rp_store_prepare(s->store,
                        "UPDATE jobs SET next_run_at = (SELECT max(r.scheduled_for) FROM job_runs r "
                        "WHERE r.job_id = jobs.id AND r.outcome = 'running') "
                        "WHERE kind = 'at' AND next_run_at IS NULL AND EXISTS (SELECT 1 FROM "
                        "job_runs r WHERE r.job_id = jobs.id AND r.outcome = 'running')",
                        &st, err);
  if (rc == RP_OK) {
    if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s->store, "recovering jobs", err);
    rp_store_done(st);
  }
  if (rc == RP_OK) rc = rp_store_prepare(s->store,
                                         "UPDATE job_runs SET outcome = 'interrupted', "
                                         "finished_at = ?1, error = 'the process stopped during "
                                         "the run' WHERE outcome = 'running'",
                                         &st, err);
  if (rc == RP_OK) {
    sqlite3_bind_int64(st, 1, rp_clock_now_ms());
    if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s->store, "recovering runs", err);
    rp_store_done(st);
  }
  if (rc) {
    rp_store_tx_rollback(s->store);
    return rc;
  }
  if ((rc = rp_store_tx_commit(s->store, err))) return rc;
  s->started = 1;
  s->stopped = 0;
  /* Missed runs are due now: the first timer tick applies their policy. */
  arm(s);
  return RP_OK;
}

void rp_sched_kick(rp_sched *s) {
  if (s) arm(s);
}

void rp_sched_stop(rp_sched *s) {
  s->stopped = 1;
  uv_timer_stop(&s->timer);
  /* Long runs in progress stay `running` and are recovered at the next start. */
  uv_timer_stop(&s->slicer);
}

int rp_sched_run_now(rp_sched *s, int64_t job_id, int wait, int64_t *run_id, rp_err *err) {
  if (!s->runner) return rp_err_set(err, RP_EINVAL, NULL, "the scheduler has no job runner");
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s->store, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1", &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, job_id);
  if (sqlite3_step(st) != SQLITE_ROW) {
    rp_store_done(st);
    return rp_err_set(err, RP_ENOTFOUND, "job", "no job %lld", (long long)job_id);
  }
  int64_t now = rp_clock_now_ms();
  due_job d;
  rc = due_load(st, now, &d);
  rp_store_done(st);
  if (rc) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  if (pending_find(s, job_id) >= 0) {
    due_free(&d);
    return rp_err_set(err, RP_ECONFLICT, "job", "job %lld is already running",
                      (long long)job_id);
  }
  d.job.scheduled_for = now;
  int run_rc;
  rp_err run_err;
  rc = fire_one(s, &d.job, d.spec, 0, now, &run_rc, &run_err, err);
  int64_t rid = d.job.run_id;
  due_free(&d);
  if (rc) return rc;
  if (run_id) *run_id = rid;
  if (run_rc == RP_JOB_PENDING && wait) {
    while (pending_find(s, job_id) >= 0) rp_sched_step(s);
    /* The outcome is in the store. */
    if ((rc = rp_store_prepare(s->store, "SELECT outcome, error FROM job_runs WHERE id = ?1", &st,
                               err)))
      return rc;
    sqlite3_bind_int64(st, 1, rid);
    run_rc = RP_OK;
    if (sqlite3_step(st) == SQLITE_ROW &&
        strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
      const char *e = (const char *)sqlite3_column_text(st, 1);
      run_rc = rp_err_set(&run_err, RP_EPLUGIN, NULL, "%s", e ? e : "failed");
    }
    rp_store_done(st);
  }
  if (run_rc != RP_OK && run_rc != RP_JOB_PENDING) {
    if (err) *err = run_err;
    return run_rc;
  }
  return RP_OK;
}
