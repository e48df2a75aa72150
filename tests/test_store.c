/* The store: WAL, the statement cache, nested transactions, migrations of
 * the core and of plugins, the newer-schema refusal, settings. */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store.h"
#include "test.h"
#include "test_sql.h"
#include "test_tmp.h"

static const char *path_in(const char *name) {
  static char buf[4][512];
  static int next;
  char *p = buf[next++ % 4];
  snprintf(p, 512, "%s/%s", test_tmp_dir(), name);
  return p;
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  ASSERT(f != NULL);
  fputs(text, f);
  ASSERT_EQ(fclose(f), 0);
}

static int64_t q(rp_store *s, const char *sql) {
  return test_sql_int(s, sql);
}

static void test_open_wal_and_core_schema(void) {
  rp_store *s;
  rp_err err;
  const char *db = path_in("a.db");
  ASSERT_EQ(rp_store_open(db, RP_STORE_CREATE, &s, &err), RP_OK);
  sqlite3_stmt *st;
  ASSERT_EQ(rp_store_prepare(s, "PRAGMA journal_mode", &st, &err), RP_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  ASSERT_STR_EQ((const char *)sqlite3_column_text(st, 0), "wal");
  rp_store_done(st);
  int v = -1;
  ASSERT_EQ(rp_store_schema_version(s, "core", &v, &err), RP_OK);
  ASSERT_EQ(v, rp_store_core_version());
  ASSERT_EQ(q(s, "SELECT count(*) FROM sqlite_master WHERE name = 'events'"), 1);
  rp_store_close(s);
  /* Opening again applies nothing twice. */
  ASSERT_EQ(rp_store_open(db, RP_STORE_CREATE, &s, &err), RP_OK);
  ASSERT_EQ(q(s, "SELECT count(*) FROM schema_migrations WHERE scope = 'core'"),
            rp_store_core_version());
  /* A database from a newer rapport is refused, read-only opens included. */
  ASSERT_EQ(rp_store_exec(s, "INSERT INTO schema_migrations VALUES ('core', 999, 'future', 0)",
                          &err), RP_OK);
  rp_store_close(s);
  ASSERT_EQ(rp_store_open(db, RP_STORE_CREATE, &s, &err), RP_ESCHEMA);
  ASSERT_CONTAINS(err.msg, "newer than this rapport");
  ASSERT(s == NULL);
  ASSERT_EQ(rp_store_open(db, RP_STORE_READONLY, &s, &err), RP_ESCHEMA);
  /* A missing file without CREATE. */
  ASSERT_EQ(rp_store_open(path_in("missing.db"), 0, &s, &err), RP_EIO);
  ASSERT_CONTAINS(err.msg, "missing.db");
}

static void test_statement_cache(void) {
  rp_store *s;
  rp_err err;
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &s, &err), RP_OK);
  sqlite3_stmt *a, *b;
  ASSERT_EQ(rp_store_prepare(s, "SELECT 1", &a, &err), RP_OK);
  rp_store_done(a);
  ASSERT_EQ(rp_store_prepare(s, "SELECT 1", &b, &err), RP_OK);
  ASSERT(a == b);
  rp_store_done(b);
  /* The cache hashes the length and both ends: texts that differ only in the
   * middle must still be told apart. */
  char s1[200], s2[200];
  const char *head = "SELECT 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', ";
  const char *tail = ", 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz'";
  snprintf(s1, sizeof s1, "%s%s%s", head, "111", tail);
  snprintf(s2, sizeof s2, "%s%s%s", head, "222", tail);
  ASSERT_EQ(rp_store_prepare(s, s1, &a, &err), RP_OK);
  ASSERT_EQ(sqlite3_step(a), SQLITE_ROW);
  ASSERT_EQ(sqlite3_column_int(a, 1), 111);
  rp_store_done(a);
  ASSERT_EQ(rp_store_prepare(s, s2, &b, &err), RP_OK);
  ASSERT(a != b);
  ASSERT_EQ(sqlite3_step(b), SQLITE_ROW);
  ASSERT_EQ(sqlite3_column_int(b, 1), 222);
  rp_store_done(b);
  /* Many statements: the cache grows and still finds each. */
  for (int i = 0; i < 500; i++) {
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT %d", i);
    ASSERT_EQ(rp_store_prepare(s, sql, &a, &err), RP_OK);
    ASSERT_EQ(sqlite3_step(a), SQLITE_ROW);
    ASSERT_EQ(sqlite3_column_int(a, 0), i);
    rp_store_done(a);
  }
  ASSERT_EQ(rp_store_prepare(s, "SELEKT 1", &a, &err), RP_EDB);
  ASSERT_CONTAINS(err.msg, "syntax error");
  rp_store_close(s);
}

static void test_nested_transactions(void) {
  rp_store *s;
  rp_err err;
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &s, &err), RP_OK);
  ASSERT_EQ(rp_store_exec(s, "CREATE TABLE t(x)", &err), RP_OK);
  ASSERT_EQ(rp_store_tx_commit(s, &err), RP_ECONFLICT);
  ASSERT_EQ(rp_store_tx_begin(s, &err), RP_OK);
  ASSERT_EQ(rp_store_exec(s, "INSERT INTO t VALUES (1)", &err), RP_OK);
  ASSERT_EQ(rp_store_tx_begin(s, &err), RP_OK);
  ASSERT_EQ(rp_store_tx_depth(s), 2);
  ASSERT_EQ(rp_store_exec(s, "INSERT INTO t VALUES (2)", &err), RP_OK);
  ASSERT_EQ(rp_store_tx_rollback(s), RP_OK); /* the inner level only */
  ASSERT_EQ(rp_store_tx_begin(s, &err), RP_OK);
  ASSERT_EQ(rp_store_exec(s, "INSERT INTO t VALUES (3)", &err), RP_OK);
  ASSERT_EQ(rp_store_tx_commit(s, &err), RP_OK);
  ASSERT_EQ(rp_store_tx_commit(s, &err), RP_OK);
  ASSERT_EQ(rp_store_tx_depth(s), 0);
  ASSERT_EQ(q(s, "SELECT sum(x) FROM t"), 4);
  /* An outer rollback drops what inner levels committed. */
  ASSERT_EQ(rp_store_tx_begin(s, &err), RP_OK);
  ASSERT_EQ(rp_store_tx_begin(s, &err), RP_OK);
  ASSERT_EQ(rp_store_exec(s, "INSERT INTO t VALUES (10)", &err), RP_OK);
  ASSERT_EQ(rp_store_tx_commit(s, &err), RP_OK);
  ASSERT_EQ(rp_store_tx_rollback(s), RP_OK);
  ASSERT_EQ(q(s, "SELECT sum(x) FROM t"), 4);
  rp_store_close(s);
}

static void test_plugin_migrations(void) {
  rp_store *s;
  rp_err err;
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &s, &err), RP_OK);
  const char *mig = path_in("migrations");
  ASSERT_EQ(mkdir(mig, 0755), 0);
  char p[600];
  snprintf(p, sizeof p, "%s/002_more.sql", mig);
  write_file(p, "ALTER TABLE demo_items ADD COLUMN note TEXT;");
  snprintf(p, sizeof p, "%s/001_init.sql", mig);
  write_file(p, "CREATE TABLE demo_items(id INTEGER PRIMARY KEY, name TEXT);");
  snprintf(p, sizeof p, "%s/README.txt", mig);
  write_file(p, "not a migration");
  int applied = -1;
  ASSERT_EQ(rp_store_migrate_dir(s, "demo", mig, &applied, &err), RP_OK);
  ASSERT_EQ(applied, 2); /* in order: 002 needs 001's table */
  ASSERT_EQ(rp_store_migrate_dir(s, "demo", mig, &applied, &err), RP_OK);
  ASSERT_EQ(applied, 0);
  /* A failing migration is rolled back whole, with its record. */
  snprintf(p, sizeof p, "%s/003_broken.sql", mig);
  write_file(p, "CREATE TABLE demo_x(a); CREATE TABLE demo_y(b;");
  ASSERT(rp_store_migrate_dir(s, "demo", mig, &applied, &err) != RP_OK);
  ASSERT_CONTAINS(err.msg, "003_broken");
  ASSERT_EQ(q(s, "SELECT count(*) FROM sqlite_master WHERE name = 'demo_x'"), 0);
  int v;
  ASSERT_EQ(rp_store_schema_version(s, "demo", &v, &err), RP_OK);
  ASSERT_EQ(v, 2);
  remove(p);
  /* Two files with one number are refused. */
  snprintf(p, sizeof p, "%s/002_again.sql", mig);
  write_file(p, "SELECT 1;");
  ASSERT_EQ(rp_store_migrate_dir(s, "demo", mig, &applied, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "two migrations numbered 2");
  remove(p);
  /* A database ahead of the folder is refused. */
  ASSERT_EQ(rp_store_exec(s, "INSERT INTO schema_migrations VALUES ('demo', 5, 'x', 0)", &err),
            RP_OK);
  ASSERT_EQ(rp_store_migrate_dir(s, "demo", mig, &applied, &err), RP_ESCHEMA);
  ASSERT_CONTAINS(err.msg, "install the newer version of 'demo'");
  rp_store_close(s);
}

static void test_settings(void) {
  rp_store *s;
  rp_err err;
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &s, &err), RP_OK);
  ASSERT(rp_store_setting_get(s, "k") == NULL);
  ASSERT_EQ(rp_store_setting_set(s, "k", "one", &err), RP_OK);
  ASSERT_EQ(rp_store_setting_set(s, "k", "two", &err), RP_OK);
  char *v = rp_store_setting_get(s, "k");
  ASSERT_STR_EQ(v, "two");
  free(v);
  rp_store_close(s);
}

RP_TEST_LIST{
    RP_TEST(open_wal_and_core_schema),
    RP_TEST(statement_cache),
    RP_TEST(nested_transactions),
    RP_TEST(plugin_migrations),
    RP_TEST(settings),
    RP_TEST_END,
};
