/* bare.h: what the baseline programs of scripts/bench share (a clock and a
 * checked sqlite3_exec). Header-only: each baseline stays one file to read. */
#ifndef RP_BENCH_BARE_H
#define RP_BENCH_BARE_H

#include <sqlite3.h>
#include <stdio.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double bare_now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* sqlite3_exec, the error printed as "WHO: SQL: message"; 0 or -1. */
static inline int bare_exec(const char *who, sqlite3 *db, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    fprintf(stderr, "%s: %s: %s\n", who, sql, msg ? msg : "?");
    sqlite3_free(msg);
    return -1;
  }
  return 0;
}

#endif
