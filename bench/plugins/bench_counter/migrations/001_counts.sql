CREATE TABLE bench_counter_counts(
  customer_id INTEGER NOT NULL,
  type TEXT NOT NULL,
  n INTEGER NOT NULL,
  PRIMARY KEY(customer_id, type)) WITHOUT ROWID;
