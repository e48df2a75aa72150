/* bare_sched: the scheduler workload's baseline in scripts/bench. N one-shot
 * jobs due at once in a table shaped like Rapport's `jobs` (same columns,
 * same partial index on the due time), fired the least a scheduler must do:
 * read the due jobs in order, and for each write its run record (a table
 * shaped like `job_runs`, same index), the job's own row (the one write the
 * benchmark's job does) and delete the job; 1000 jobs per transaction, WAL,
 * synchronous=FULL, Rapport's 64 MiB page cache. No plugin, no Lua, no
 * savepoints. Prints the jobs fired and the seconds the firing took, as JSON
 * (the jobs are created first, untimed).
 *
 * usage: bare_sched N DB */
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bare.h"

#define BATCH 1000

static double now_s(void) { return bare_now_s(); }

static int exec(sqlite3 *db, const char *sql) { return bare_exec("bare_sched", db, sql); }

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK) return 0;
  fprintf(stderr, "bare_sched: %s: %s\n", sql, sqlite3_errmsg(db));
  return -1;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: bare_sched N DB\n");
    return 1;
  }
  long n = strtol(argv[1], NULL, 10);
  if (n < 1) {
    fprintf(stderr, "bare_sched: N must be a positive number\n");
    return 1;
  }
  sqlite3 *db;
  if (sqlite3_open(argv[2], &db) != SQLITE_OK) {
    fprintf(stderr, "bare_sched: cannot open %s\n", argv[2]);
    return 2;
  }
  if (exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;"
               "CREATE TABLE jobs(id INTEGER PRIMARY KEY, owner TEXT NOT NULL, name TEXT,"
               " kind TEXT NOT NULL, spec TEXT NOT NULL, target TEXT NOT NULL, payload TEXT,"
               " missed TEXT NOT NULL DEFAULT 'run_once', origin TEXT NOT NULL DEFAULT 'api',"
               " enabled INTEGER NOT NULL DEFAULT 1, next_run_at INTEGER, last_run_at INTEGER,"
               " created_at INTEGER NOT NULL);"
               "CREATE INDEX jobs_due ON jobs(next_run_at)"
               " WHERE next_run_at IS NOT NULL AND enabled = 1;"
               "CREATE TABLE job_runs(id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL,"
               " owner TEXT NOT NULL, name TEXT, target TEXT NOT NULL,"
               " scheduled_for INTEGER NOT NULL, started_at INTEGER NOT NULL,"
               " finished_at INTEGER, outcome TEXT NOT NULL, error TEXT);"
               "CREATE INDEX job_runs_job ON job_runs(job_id, id);"
               "CREATE TABLE ticks(run_id INTEGER PRIMARY KEY, at INTEGER NOT NULL);"))
    return 2;
  /* The jobs, all due now (untimed). */
  char sql[512];
  snprintf(sql, sizeof sql,
           "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %ld) "
           "INSERT INTO jobs(owner, kind, spec, target, next_run_at, created_at) "
           "SELECT 'bench', 'at', '1000', 'tick', 1000, 1000 FROM n",
           n);
  if (exec(db, sql)) return 2;

  sqlite3_stmt *due, *run, *tick, *del;
  if (prepare(db,
              "SELECT id, owner, name, target, next_run_at FROM jobs "
              "WHERE next_run_at IS NOT NULL AND enabled = 1 AND next_run_at <= ?1 "
              "ORDER BY next_run_at, id LIMIT ?2",
              &due) ||
      prepare(db,
              "INSERT INTO job_runs(job_id, owner, name, target, scheduled_for, started_at, "
              "finished_at, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 'ok')",
              &run) ||
      prepare(db, "INSERT INTO ticks(run_id, at) VALUES (?1, ?2)", &tick) ||
      prepare(db, "DELETE FROM jobs WHERE id = ?1", &del))
    return 2;

  double t0 = now_s();
  long fired = 0;
  for (;;) {
    if (exec(db, "BEGIN IMMEDIATE")) return 2;
    sqlite3_bind_int64(due, 1, 2000);
    sqlite3_bind_int(due, 2, BATCH);
    int k = 0;
    /* The due rows are read first, then fired: a statement must not run
     * over the rows it deletes. */
    int64_t ids[BATCH], at[BATCH];
    while (k < BATCH && sqlite3_step(due) == SQLITE_ROW) {
      ids[k] = sqlite3_column_int64(due, 0);
      at[k] = sqlite3_column_int64(due, 4);
      k++;
    }
    sqlite3_reset(due);
    for (int i = 0; i < k; i++) {
      sqlite3_bind_int64(run, 1, ids[i]);
      sqlite3_bind_text(run, 2, "bench", -1, SQLITE_STATIC);
      sqlite3_bind_null(run, 3);
      sqlite3_bind_text(run, 4, "tick", -1, SQLITE_STATIC);
      sqlite3_bind_int64(run, 5, at[i]);
      sqlite3_bind_int64(run, 6, (int64_t)time(NULL) * 1000);
      if (sqlite3_step(run) != SQLITE_DONE) goto fail;
      sqlite3_reset(run);
      sqlite3_bind_int64(tick, 1, sqlite3_last_insert_rowid(db));
      sqlite3_bind_int64(tick, 2, at[i]);
      if (sqlite3_step(tick) != SQLITE_DONE) goto fail;
      sqlite3_reset(tick);
      sqlite3_bind_int64(del, 1, ids[i]);
      if (sqlite3_step(del) != SQLITE_DONE) goto fail;
      sqlite3_reset(del);
    }
    if (exec(db, "COMMIT")) return 2;
    fired += k;
    if (k < BATCH) break;
  }
  double secs = now_s() - t0;
  if (fired != n) {
    fprintf(stderr, "bare_sched: fired %ld of %ld jobs\n", fired, n);
    return 2;
  }
  printf("{\"jobs\": %ld, \"seconds\": %.6f}\n", fired, secs);
  sqlite3_finalize(due);
  sqlite3_finalize(run);
  sqlite3_finalize(tick);
  sqlite3_finalize(del);
  sqlite3_close(db);
  return 0;
fail:
  fprintf(stderr, "bare_sched: %s\n", sqlite3_errmsg(db));
  return 2;
}
