-- One row per fired one-shot (the scheduler workload): the job's own write.
CREATE TABLE bench_counter_ticks(
  run_id INTEGER PRIMARY KEY,
  at INTEGER NOT NULL);
