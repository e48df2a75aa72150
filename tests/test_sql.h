/* test_sql.h: the SQL helpers C tests share (header-only, like test.h). */
#ifndef RP_TEST_SQL_H
#define RP_TEST_SQL_H

#include <stdint.h>

#include "store.h"
#include "test.h"

/* The first column of the first row of sql, as an integer; a statement that
 * fails or returns no row fails the test. */
static inline int64_t test_sql_int(rp_store *s, const char *sql) {
  sqlite3_stmt *st;
  rp_err err;
  rp_err_clear(&err);
  if (rp_store_prepare(s, sql, &st, &err) != RP_OK) {
    fprintf(stderr, "%s: %s\n", sql, err.msg);
    abort();
  }
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  int64_t v = sqlite3_column_int64(st, 0);
  rp_store_done(st);
  return v;
}

/* Runs sql (one or more statements); a failure fails the test. */
static inline void test_sql_exec(rp_store *s, const char *sql) {
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_store_exec(s, sql, &err);
  if (rc) fprintf(stderr, "%s: %s\n", sql, err.msg);
  ASSERT_EQ(rc, RP_OK);
}

#endif
