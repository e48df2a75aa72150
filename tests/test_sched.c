/* Unit tests of the scheduler: job definitions, firing, runs, missed-run
 * policies, long (pending) runs, recovery after a crash, batches, and the
 * due-time index. The runner is a small C runner that records what it ran
 * and writes into a table, so effects and rollbacks are visible in SQL. */
#include <string.h>
#include <time.h>

#include "clock.h"
#include "config.h"
#include "sched.h"
#include "test.h"

#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */
#define MINUTE 60000LL
#define HOUR (60 * MINUTE)

typedef struct runner_state {
  rp_store *store;
  int started, resumed, abandoned;
  int fail;          /* start (or the last resume) fails */
  int slices;        /* resumes before a pending run finishes; 0: finish at once */
  int left;          /* resumes left of the current pending run */
  char last_target[64];
  int64_t seen_run_id; /* job->run_id as the last run saw it */
  int64_t takes_ms;    /* the fake clock moves this much during a start */
  int sleep_ms;        /* a start really takes this long (a slow job) */
  int64_t removes;     /* a start deletes this job (another scheduler fired it) */
} runner_state;

static void effect(runner_state *r, const char *what) {
  sqlite3_stmt *st;
  ASSERT_EQ(rp_store_prepare(r->store, "INSERT INTO effects(what) VALUES (?1)", &st, NULL), RP_OK);
  sqlite3_bind_text(st, 1, what, -1, SQLITE_TRANSIENT);
  ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
  rp_store_done(st);
}

static int r_start(void *ctx, const rp_job *job, void **handle, rp_err *err) {
  runner_state *r = ctx;
  r->started++;
  snprintf(r->last_target, sizeof r->last_target, "%s", job->target);
  r->seen_run_id = job->run_id;
  effect(r, job->target);
  if (r->takes_ms) rp_clock_advance(r->takes_ms);
  if (r->sleep_ms) {
    struct timespec ts = {0, r->sleep_ms * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (r->removes) {
    sqlite3_stmt *st;
    ASSERT_EQ(rp_store_prepare(r->store, "DELETE FROM jobs WHERE id = ?1", &st, NULL), RP_OK);
    sqlite3_bind_int64(st, 1, r->removes);
    ASSERT_EQ(sqlite3_step(st), SQLITE_DONE);
    rp_store_done(st);
  }
  if (r->slices) {
    r->left = r->slices;
    *handle = r;
    return RP_JOB_PENDING;
  }
  if (r->fail) return rp_err_set(err, RP_EPLUGIN, NULL, "boom in %s", job->target);
  return RP_OK;
}

static int r_resume(void *ctx, void *handle, rp_err *err) {
  runner_state *r = ctx;
  ASSERT(handle == r);
  r->resumed++;
  effect(r, "slice");
  if (--r->left > 0) return RP_JOB_PENDING;
  if (r->fail) return rp_err_set(err, RP_EPLUGIN, NULL, "boom at the end");
  return RP_OK;
}

static void r_abandon(void *ctx, void *handle) {
  runner_state *r = ctx;
  (void)handle;
  r->abandoned++;
}

typedef struct fixture {
  uv_loop_t loop;
  rp_store *store;
  rp_config *cfg;
  rp_sched *sched;
  runner_state rs;
  rp_job_runner runner;
} fixture;

static void fx_sched(fixture *f) {
  rp_err err;
  rp_err_clear(&err);
  ASSERT_EQ(rp_sched_new(&f->loop, f->store, f->cfg, &f->sched, &err), RP_OK);
  rp_sched_set_runner(f->sched, &f->runner);
  ASSERT_EQ(rp_sched_start(f->sched, &err), RP_OK);
}

static void fx_open(fixture *f) {
  memset(f, 0, sizeof *f);
  rp_err err;
  rp_err_clear(&err);
  rp_clock_set_fake(T0);
  ASSERT_EQ(uv_loop_init(&f->loop), 0);
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &f->store, &err), RP_OK);
  ASSERT_EQ(rp_store_exec(f->store, "CREATE TABLE effects(id INTEGER PRIMARY KEY, what TEXT)", &err),
            RP_OK);
  ASSERT_EQ(rp_config_load(NULL, &f->cfg, &err), RP_OK);
  f->rs.store = f->store;
  f->runner = (rp_job_runner){&f->rs, r_start, r_resume, r_abandon};
  fx_sched(f);
}

static void fx_close_sched(fixture *f) {
  rp_sched_free(f->sched);
  f->sched = NULL;
  uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void fx_close(fixture *f) {
  fx_close_sched(f);
  ASSERT_EQ(uv_loop_close(&f->loop), 0);
  rp_store_close(f->store);
  rp_config_free(f->cfg);
  rp_clock_clear_fake();
}

static int64_t q(fixture *f, const char *sql) {
  sqlite3_stmt *st;
  ASSERT_EQ(rp_store_prepare(f->store, sql, &st, NULL), RP_OK);
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  rp_store_done(st);
  return v;
}

static const char *qs(fixture *f, const char *sql, char *buf, size_t size) {
  sqlite3_stmt *st;
  ASSERT_EQ(rp_store_prepare(f->store, sql, &st, NULL), RP_OK);
  buf[0] = '\0';
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
  rp_store_done(st);
  return buf;
}

static int64_t add(fixture *f, const char *name, const char *kind, const char *spec,
                   const char *target, const char *missed) {
  rp_job_spec js = {.owner = "p", .name = name, .kind = kind, .spec = spec, .target = target,
                    .missed = missed};
  rp_err err;
  rp_err_clear(&err);
  int64_t id = 0;
  int rc = rp_sched_add(f->store, f->cfg, &js, &id, &err);
  if (rc) fprintf(stderr, "add: %s\n", err.msg);
  ASSERT_EQ(rc, RP_OK);
  return id;
}

static int64_t run_due(fixture *f) {
  int64_t fired = -1;
  rp_err err;
  rp_err_clear(&err);
  ASSERT_EQ(rp_sched_run_due(f->sched, rp_clock_now_ms(), &fired, &err), RP_OK);
  return fired;
}

static void test_definitions_are_validated(void) {
  fixture f;
  fx_open(&f);
  struct {
    rp_job_spec js;
    const char *field;
  } bad[] = {
      {{.owner = "p", .name = "a", .kind = "cron", .spec = "61 * * * *", .target = "t"}, "schedule"},
      {{.owner = "p", .name = "a", .kind = "every", .spec = "soon", .target = "t"}, "schedule"},
      {{.owner = "p", .name = "a", .kind = "at", .spec = "tomorrow", .target = "t"}, "schedule"},
      {{.owner = "p", .name = "a", .kind = "hourly", .spec = "1h", .target = "t"}, "kind"},
      {{.owner = "p", .name = "a", .kind = "every", .spec = "1h", .target = "t", .missed = "later"},
       "missed"},
      {{.owner = "p", .name = "a", .kind = "every", .spec = "1h", .target = "t", .payload = "{x"},
       "payload"},
      {{.owner = "p", .name = "a", .kind = "every", .spec = "1h", .target = ""}, "target"},
      {{.owner = "", .name = "a", .kind = "every", .spec = "1h", .target = "t"}, "owner"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rp_err err;
    rp_err_clear(&err);
    ASSERT_EQ(rp_sched_add(f.store, f.cfg, &bad[i].js, NULL, &err), RP_EINVAL);
    ASSERT_STR_EQ(err.field, bad[i].field);
    ASSERT(err.msg[0] != '\0');
  }
  ASSERT_EQ(q(&f, "SELECT count(*) FROM jobs"), 0);
  fx_close(&f);
}

static void test_redefinition_keeps_id_and_due_time(void) {
  fixture f;
  fx_open(&f);
  int64_t id = add(&f, "nightly", "cron", "0 3 * * *", "a", NULL);
  ASSERT_EQ(q(&f, "SELECT next_run_at FROM jobs"), T0 + 3 * HOUR);
  rp_clock_advance(HOUR);
  /* Same schedule, new target: same id, same due time. */
  ASSERT_EQ(add(&f, "nightly", "cron", "0 3 * * *", "b", NULL), id);
  ASSERT_EQ(q(&f, "SELECT next_run_at FROM jobs"), T0 + 3 * HOUR);
  char buf[32];
  ASSERT_STR_EQ(qs(&f, "SELECT target FROM jobs", buf, sizeof buf), "b");
  /* New schedule: recomputed from now. */
  ASSERT_EQ(add(&f, "nightly", "cron", "30 1 * * *", "b", NULL), id);
  ASSERT_EQ(q(&f, "SELECT next_run_at FROM jobs"), T0 + HOUR + 30 * MINUTE);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM jobs"), 1);
  fx_close(&f);
}

static void test_one_shot_fires_once_then_is_gone(void) {
  fixture f;
  fx_open(&f);
  add(&f, NULL, "at", "2026-01-01T00:10:00Z", "remind", NULL);
  ASSERT_EQ(run_due(&f), 0);
  rp_clock_advance(9 * MINUTE);
  ASSERT_EQ(run_due(&f), 0);
  rp_clock_advance(MINUTE);
  ASSERT_EQ(run_due(&f), 1);
  ASSERT_EQ(f.rs.started, 1);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM jobs"), 0);
  char buf[32];
  ASSERT_STR_EQ(qs(&f, "SELECT outcome FROM job_runs", buf, sizeof buf), "ok");
  ASSERT_EQ(q(&f, "SELECT scheduled_for FROM job_runs"), T0 + 10 * MINUTE);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM effects WHERE what = 'remind'"), 1);
  rp_clock_advance(HOUR);
  ASSERT_EQ(run_due(&f), 0);
  ASSERT_EQ(f.rs.started, 1);
  fx_close(&f);
}

static void test_interval_keeps_its_phase_and_runs_missed_once(void) {
  fixture f;
  fx_open(&f);
  add(&f, "tick", "every", "1h", "tick", NULL);
  ASSERT_EQ(q(&f, "SELECT next_run_at FROM jobs"), T0 + HOUR);
  /* Three and a half hours of downtime: run_once runs it once, not three
   * times, and the next run stays on the hour. */
  rp_clock_advance(3 * HOUR + 30 * MINUTE);
  ASSERT_EQ(run_due(&f), 1);
  ASSERT_EQ(f.rs.started, 1);
  ASSERT_EQ(q(&f, "SELECT next_run_at FROM jobs"), T0 + 4 * HOUR);
  ASSERT_EQ(q(&f, "SELECT last_run_at FROM jobs"), T0 + 3 * HOUR + 30 * MINUTE);
  fx_close(&f);
}

static void test_skip_policy_records_the_missed_run(void) {
  fixture f;
  fx_open(&f);
  add(&f, "report", "cron", "0 6 * * *", "report", "skip");
  /* Due at 06:00, the loop comes back at 09:00. */
  rp_clock_advance(9 * HOUR);
  ASSERT_EQ(run_due(&f), 0);
  ASSERT_EQ(f.rs.started, 0);
  char buf[64];
  ASSERT_STR_EQ(qs(&f, "SELECT outcome FROM job_runs", buf, sizeof buf), "skipped");
  ASSERT_EQ(q(&f, "SELECT next_run_at FROM jobs"), T0 + 30 * HOUR);
  /* On time (within the grace), a skip job runs normally. */
  rp_clock_set_fake(T0 + 30 * HOUR + 5000);
  ASSERT_EQ(run_due(&f), 1);
  ASSERT_EQ(f.rs.started, 1);
  fx_close(&f);
}

static void test_a_failing_run_is_rolled_back_and_recorded(void) {
  fixture f;
  fx_open(&f);
  add(&f, "tick", "every", "1m", "bad", NULL);
  f.rs.fail = 1;
  rp_clock_advance(MINUTE);
  ASSERT_EQ(run_due(&f), 1);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM effects"), 0);
  char buf[128];
  ASSERT_STR_EQ(qs(&f, "SELECT outcome FROM job_runs", buf, sizeof buf), "error");
  ASSERT_STR_EQ(qs(&f, "SELECT error FROM job_runs", buf, sizeof buf), "boom in bad");
  ASSERT_EQ(q(&f, "SELECT count(*) FROM job_runs"), 1);
  /* The job still moved on. */
  ASSERT_EQ(q(&f, "SELECT next_run_at FROM jobs"), T0 + 2 * MINUTE);
  fx_close(&f);
}

static void test_a_long_run_is_resumed_slice_by_slice(void) {
  fixture f;
  fx_open(&f);
  add(&f, NULL, "at", "2026-01-01T01:00:00Z", "expire", NULL);
  f.rs.slices = 3;
  rp_clock_advance(HOUR);
  ASSERT_EQ(run_due(&f), 1);
  ASSERT_EQ(rp_sched_pending(f.sched), 1);
  char buf[32];
  ASSERT_STR_EQ(qs(&f, "SELECT outcome FROM job_runs", buf, sizeof buf), "running");
  /* The first slice committed; the one-shot waits, parked, not due again. */
  ASSERT_EQ(q(&f, "SELECT count(*) FROM effects"), 1);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM jobs WHERE next_run_at IS NULL"), 1);
  ASSERT_EQ(run_due(&f), 0);
  rp_sched_step(&*f.sched);
  ASSERT_EQ(rp_sched_pending(f.sched), 1);
  rp_sched_step(f.sched);
  rp_sched_step(f.sched);
  ASSERT_EQ(rp_sched_pending(f.sched), 0);
  ASSERT_EQ(f.rs.resumed, 3);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM effects WHERE what = 'slice'"), 3);
  ASSERT_STR_EQ(qs(&f, "SELECT outcome FROM job_runs", buf, sizeof buf), "ok");
  ASSERT_EQ(q(&f, "SELECT count(*) FROM jobs"), 0);
  fx_close(&f);
}

static void test_a_long_run_is_driven_by_the_loop(void) {
  fixture f;
  fx_open(&f);
  add(&f, "big", "every", "1h", "big", NULL);
  f.rs.slices = 5;
  rp_clock_advance(HOUR);
  ASSERT_EQ(run_due(&f), 1);
  /* Slices run from the loop's slice timer, a millisecond apart
   * (UV_RUN_ONCE waits for it). */
  int turns = 0;
  for (; turns < 100 && rp_sched_pending(f.sched) > 0; turns++) uv_run(&f.loop, UV_RUN_ONCE);
  ASSERT_EQ(rp_sched_pending(f.sched), 0);
  ASSERT_EQ(f.rs.resumed, 5);
  ASSERT(turns > 1);
  fx_close(&f);
}

static void test_a_crash_during_a_long_one_shot_reruns_it(void) {
  fixture f;
  fx_open(&f);
  add(&f, NULL, "at", "2026-01-01T01:00:00Z", "expire", NULL);
  f.rs.slices = 10;
  rp_clock_advance(HOUR);
  ASSERT_EQ(run_due(&f), 1);
  rp_sched_step(f.sched);
  /* The process goes away mid-run. */
  fx_close_sched(&f);
  ASSERT_EQ(f.rs.abandoned, 1);
  char buf[32];
  ASSERT_STR_EQ(qs(&f, "SELECT outcome FROM job_runs", buf, sizeof buf), "running");
  /* The next start marks the run interrupted and the one-shot due again. */
  f.rs.slices = 0;
  fx_sched(&f);
  ASSERT_STR_EQ(qs(&f, "SELECT outcome FROM job_runs ORDER BY id LIMIT 1", buf, sizeof buf),
                "interrupted");
  ASSERT_EQ(q(&f, "SELECT next_run_at FROM jobs"), T0 + HOUR);
  ASSERT_EQ(run_due(&f), 1);
  ASSERT_STR_EQ(qs(&f, "SELECT outcome FROM job_runs ORDER BY id DESC LIMIT 1", buf, sizeof buf),
                "ok");
  ASSERT_EQ(q(&f, "SELECT count(*) FROM jobs"), 0);
  fx_close(&f);
}

static void test_due_jobs_fire_in_batches(void) {
  fixture f;
  fx_open(&f);
  rp_err err;
  rp_err_clear(&err);
  ASSERT_EQ(rp_store_tx_begin(f.store, &err), RP_OK);
  for (int i = 0; i < 1234; i++) {
    char at[32];
    snprintf(at, sizeof at, "%lld", (long long)(T0 + MINUTE + i));
    add(&f, NULL, "at", at, "many", NULL);
  }
  ASSERT_EQ(rp_store_tx_commit(f.store, &err), RP_OK);
  rp_clock_advance(HOUR);
  ASSERT_EQ(run_due(&f), 1234);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM jobs"), 0);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM job_runs WHERE outcome = 'ok'"), 1234);
  /* In due order. */
  ASSERT_EQ(q(&f, "SELECT count(*) FROM job_runs a JOIN job_runs b ON b.id = a.id + 1 "
                  "WHERE b.scheduled_for < a.scheduled_for"),
            0);
  fx_close(&f);
}

static void test_pending_one_shots_cost_an_index_entry(void) {
  fixture f;
  fx_open(&f);
  /* The due query walks the partial index on next_run_at: its cost does not
   * depend on how many jobs wait further in the future. */
  char plan[256];
  sqlite3_stmt *st;
  ASSERT_EQ(rp_store_prepare(f.store,
                             "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE next_run_at IS NOT NULL "
                             "AND enabled = 1 AND next_run_at <= 5 ORDER BY next_run_at, id",
                             &st, NULL),
            RP_OK);
  plan[0] = '\0';
  while (sqlite3_step(st) == SQLITE_ROW)
    strncat(plan, (const char *)sqlite3_column_text(st, 3), sizeof plan - strlen(plan) - 1);
  rp_store_done(st);
  ASSERT_CONTAINS(plan, "jobs_due");
  fx_close(&f);
}

static void test_run_now_leaves_the_schedule_alone(void) {
  fixture f;
  fx_open(&f);
  int64_t id = add(&f, "nightly", "cron", "0 3 * * *", "n", NULL);
  rp_err err;
  rp_err_clear(&err);
  int64_t run = 0;
  ASSERT_EQ(rp_sched_run_now(f.sched, id, 1, &run, &err), RP_OK);
  ASSERT(run > 0);
  ASSERT_EQ(f.rs.started, 1);
  ASSERT_EQ(q(&f, "SELECT next_run_at FROM jobs"), T0 + 3 * HOUR);
  ASSERT_EQ(rp_sched_run_now(f.sched, 999, 1, NULL, &err), RP_ENOTFOUND);
  f.rs.fail = 1;
  ASSERT_EQ(rp_sched_run_now(f.sched, id, 1, NULL, &err), RP_EPLUGIN);
  ASSERT_CONTAINS(err.msg, "boom");
  fx_close(&f);
}

static void test_disabled_owners_do_not_fire(void) {
  fixture f;
  fx_open(&f);
  add(&f, "tick", "every", "1m", "t", NULL);
  rp_err err;
  rp_err_clear(&err);
  ASSERT_EQ(rp_sched_set_owner_enabled(f.store, "p", 0, &err), RP_OK);
  rp_clock_advance(5 * MINUTE);
  ASSERT_EQ(run_due(&f), 0);
  ASSERT_EQ(rp_sched_set_owner_enabled(f.store, "p", 1, &err), RP_OK);
  ASSERT_EQ(run_due(&f), 1);
  ASSERT_EQ(rp_sched_remove(f.store, "p", "tick", 0, &err), RP_OK);
  ASSERT_EQ(rp_sched_remove(f.store, "p", "tick", 0, &err), RP_ENOTFOUND);
  fx_close(&f);
}

static void test_cron_in_a_time_zone(void) {
  fixture f;
  fx_open(&f);
  free(f.cfg->timezone);
  f.cfg->timezone = strdup("Europe/Paris");
  add(&f, "morning", "cron", "0 9 * * *", "m", NULL);
  /* 09:00 in Paris in January is 08:00 UTC. */
  ASSERT_EQ(q(&f, "SELECT next_run_at FROM jobs"), T0 + 8 * HOUR);
  fx_close(&f);
}

static void test_the_timer_fires_due_jobs(void) {
  fixture f;
  rp_clock_clear_fake();
  fx_open(&f);
  rp_clock_clear_fake();
  char at[32];
  snprintf(at, sizeof at, "%lld", (long long)(rp_clock_now_ms() + 20));
  add(&f, NULL, "at", at, "soon", NULL);
  rp_sched_kick(f.sched);
  for (int i = 0; i < 500 && f.rs.started == 0; i++) uv_run(&f.loop, UV_RUN_ONCE);
  ASSERT_EQ(f.rs.started, 1);
  fx_close(&f);
}

static void test_a_one_shot_run_is_recorded_once_with_its_times(void) {
  fixture f;
  fx_open(&f);
  add(&f, NULL, "at", "2026-01-01T00:10:00Z", "remind", NULL);
  f.rs.takes_ms = 1500;
  rp_clock_advance(10 * MINUTE);
  ASSERT_EQ(run_due(&f), 1);
  /* The id the job saw while it ran is its run record's. */
  ASSERT(f.rs.seen_run_id > 0);
  ASSERT_EQ(q(&f, "SELECT id FROM job_runs"), f.rs.seen_run_id);
  ASSERT_EQ(q(&f, "SELECT started_at FROM job_runs"), T0 + 10 * MINUTE);
  ASSERT_EQ(q(&f, "SELECT finished_at FROM job_runs"), T0 + 10 * MINUTE + 1500);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM jobs"), 0);
  fx_close(&f);
}

static void test_a_failing_one_shot_is_recorded_and_gone(void) {
  fixture f;
  fx_open(&f);
  add(&f, NULL, "at", "2026-01-01T00:10:00Z", "bad", NULL);
  f.rs.fail = 1;
  rp_clock_advance(10 * MINUTE);
  ASSERT_EQ(run_due(&f), 1);
  char buf[128];
  ASSERT_STR_EQ(qs(&f, "SELECT outcome FROM job_runs", buf, sizeof buf), "error");
  ASSERT_STR_EQ(qs(&f, "SELECT error FROM job_runs", buf, sizeof buf), "boom in bad");
  ASSERT_EQ(q(&f, "SELECT count(*) FROM effects"), 0);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM jobs"), 0);
  rp_clock_advance(HOUR);
  ASSERT_EQ(run_due(&f), 0);
  fx_close(&f);
}

static void test_a_long_one_shot_keeps_the_run_id_it_saw(void) {
  fixture f;
  fx_open(&f);
  add(&f, NULL, "at", "2026-01-01T01:00:00Z", "expire", NULL);
  f.rs.slices = 2;
  rp_clock_advance(HOUR);
  ASSERT_EQ(run_due(&f), 1);
  ASSERT_EQ(q(&f, "SELECT id FROM job_runs WHERE outcome = 'running'"), f.rs.seen_run_id);
  rp_sched_step(f.sched);
  rp_sched_step(f.sched);
  ASSERT_EQ(rp_sched_pending(f.sched), 0);
  ASSERT_EQ(q(&f, "SELECT id FROM job_runs WHERE outcome = 'ok'"), f.rs.seen_run_id);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM job_runs"), 1);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM jobs"), 0);
  fx_close(&f);
}

/* The due jobs are read before the write lock is taken: a job fired (and
 * deleted) by someone else in between must not run again. Here the first
 * job of the batch deletes the second, as another scheduler would. */
static void test_a_job_gone_since_it_was_read_does_not_run(void) {
  fixture f;
  fx_open(&f);
  add(&f, NULL, "at", "2026-01-01T00:10:00Z", "first", NULL);
  int64_t second = add(&f, NULL, "at", "2026-01-01T00:11:00Z", "second", NULL);
  f.rs.removes = second;
  rp_clock_advance(HOUR);
  ASSERT_EQ(run_due(&f), 1);
  ASSERT_EQ(f.rs.started, 1);
  ASSERT_STR_EQ(f.rs.last_target, "first");
  ASSERT_EQ(q(&f, "SELECT count(*) FROM job_runs"), 1);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM effects WHERE what = 'second'"), 0);
  fx_close(&f);
}

/* Slow jobs: a batch ends when its time is spent, the next ones read
 * fewer rows; every job still fires once, in due order. */
static void test_slow_jobs_fire_in_batches_bounded_by_time(void) {
  fixture f;
  fx_open(&f);
  for (int i = 0; i < 40; i++) {
    char at[32];
    snprintf(at, sizeof at, "%lld", (long long)(T0 + MINUTE + i));
    add(&f, NULL, "at", at, "slow", NULL);
  }
  f.rs.sleep_ms = 1;
  rp_clock_advance(HOUR);
  ASSERT_EQ(run_due(&f), 40);
  ASSERT_EQ(f.rs.started, 40);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM job_runs WHERE outcome = 'ok'"), 40);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM job_runs a JOIN job_runs b ON b.id = a.id + 1 "
                  "WHERE b.scheduled_for < a.scheduled_for"),
            0);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM jobs"), 0);
  fx_close(&f);
}

RP_TEST_LIST{
    RP_TEST(definitions_are_validated),
    RP_TEST(redefinition_keeps_id_and_due_time),
    RP_TEST(one_shot_fires_once_then_is_gone),
    RP_TEST(interval_keeps_its_phase_and_runs_missed_once),
    RP_TEST(skip_policy_records_the_missed_run),
    RP_TEST(a_failing_run_is_rolled_back_and_recorded),
    RP_TEST(a_long_run_is_resumed_slice_by_slice),
    RP_TEST(a_long_run_is_driven_by_the_loop),
    RP_TEST(a_crash_during_a_long_one_shot_reruns_it),
    RP_TEST(due_jobs_fire_in_batches),
    RP_TEST(pending_one_shots_cost_an_index_entry),
    RP_TEST(run_now_leaves_the_schedule_alone),
    RP_TEST(disabled_owners_do_not_fire),
    RP_TEST(cron_in_a_time_zone),
    RP_TEST(the_timer_fires_due_jobs),
    RP_TEST(a_one_shot_run_is_recorded_once_with_its_times),
    RP_TEST(a_failing_one_shot_is_recorded_and_gone),
    RP_TEST(a_long_one_shot_keeps_the_run_id_it_saw),
    RP_TEST(a_job_gone_since_it_was_read_does_not_run),
    RP_TEST(slow_jobs_fire_in_batches_bounded_by_time),
    RP_TEST_END,
};
