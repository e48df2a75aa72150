/* The audit log: the chain, and its index by customer built behind it in
 * bulk (a customer's records are found whether indexed yet or not; verify
 * notices an index that does not match the log). */
#define _XOPEN_SOURCE 700
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "audit.h"
#include "store.h"
#include "test.h"
#include "test_sql.h"
#include "test_tmp.h"

/* Appends n records, record i about customer (i % 3) (0: none), half of
 * them inside a caller's transaction. */
static void append(rp_store *s, int n) {
  rp_err err;
  ASSERT_EQ(rp_store_tx_begin(s, &err), RP_OK);
  for (int i = 1; i <= n; i++) {
    if (i == n / 2) ASSERT_EQ(rp_store_tx_commit(s, &err), RP_OK);
    ASSERT_EQ(rp_audit_append(s, "cli:test", "customer.read", i % 3, "[\"attributes\"]",
                              "local", &err),
              RP_OK);
  }
}

/* The ids rp_audit_list gives for customer, newest first, against the log
 * read directly. */
static void check_list(rp_store *s, int64_t customer) {
  cJSON *list = NULL;
  rp_err err;
  ASSERT_EQ(rp_audit_list(s, customer, 1000000, &list, &err), RP_OK);
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM audit_log WHERE customer_id = %lld",
           (long long)customer);
  ASSERT_EQ(cJSON_GetArraySize(list), test_sql_int(s, sql));
  int64_t prev = INT64_MAX;
  const cJSON *r;
  cJSON_ArrayForEach(r, list) {
    int64_t id = (int64_t)cJSON_GetObjectItem(r, "id")->valuedouble;
    ASSERT(id < prev);
    ASSERT_EQ((int64_t)cJSON_GetObjectItem(r, "customer_id")->valuedouble, customer);
    prev = id;
  }
  cJSON_Delete(list);
}

static void test_index_follows_the_log_in_bulk(void) {
  rp_store *s;
  rp_err err;
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &s, &err), RP_OK);
  append(s, 100);
  /* Not indexed yet: found in the log's tail. */
  ASSERT_EQ(test_sql_int(s, "SELECT count(*) FROM audit_customers"), 0);
  check_list(s, 1);
  append(s, 2 * RP_AUDIT_INDEX_EVERY);
  /* The appends of ids that are multiples of RP_AUDIT_INDEX_EVERY indexed
   * everything before them. */
  ASSERT_EQ(test_sql_int(s, "SELECT through FROM audit_indexed"), 2 * RP_AUDIT_INDEX_EVERY);
  ASSERT_EQ(test_sql_int(s, "SELECT count(*) FROM audit_customers"),
            test_sql_int(s, "SELECT count(*) FROM audit_log WHERE customer_id IS NOT NULL "
                            "AND id <= (SELECT through FROM audit_indexed)"));
  check_list(s, 1);
  check_list(s, 2);
  /* Records in more than one bucket (id >> 16): one seek per bucket. The
   * rows are written raw (the chain is not the point here). */
  test_sql_exec(s, "INSERT INTO audit_log(id, at, actor, action, customer_id, origin, hash) "
          "VALUES(70000, 0, 'cli:test', 'customer.read', 1, 'local', x''), "
          "(140000, 0, 'cli:test', 'customer.read', 1, 'local', x''), "
          "(140001, 0, 'cli:test', 'customer.read', 2, 'local', x'')");
  ASSERT_EQ(rp_audit_index(s, &err), RP_OK);
  ASSERT_EQ(test_sql_int(s, "SELECT count(DISTINCT bucket) FROM audit_customers"), 3);
  ASSERT_EQ(test_sql_int(s, "SELECT through FROM audit_indexed"), 140001);
  check_list(s, 1);
  check_list(s, 2);
  rp_store_close(s);
}

static void test_verify_notices_an_index_that_is_not_the_logs(void) {
  rp_store *s;
  rp_err err;
  int64_t checked = 0;
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &s, &err), RP_OK);
  append(s, RP_AUDIT_INDEX_EVERY + 5);
  ASSERT_EQ(rp_audit_verify(s, &checked, &err), RP_OK);
  ASSERT_EQ(checked, RP_AUDIT_INDEX_EVERY + 5);
  /* A record left out of the index. */
  test_sql_exec(s, "DELETE FROM audit_customers WHERE audit_id = 10");
  ASSERT_EQ(rp_audit_verify(s, &checked, &err), RP_ECONFLICT);
  ASSERT_STR_EQ(err.field, "audit_customers");
  ASSERT_CONTAINS(err.msg, "1 record(s) missing");
  /* Put back, then one pointing at another customer's record. */
  test_sql_exec(s, "INSERT INTO audit_customers VALUES(0, 1, 10)");
  ASSERT_EQ(rp_audit_verify(s, &checked, &err), RP_OK);
  test_sql_exec(s, "INSERT INTO audit_customers VALUES(0, 1, 11)"); /* 11 is customer 2's */
  ASSERT_EQ(rp_audit_verify(s, &checked, &err), RP_ECONFLICT);
  ASSERT_CONTAINS(err.msg, "1 entr(ies) not the log's");
  rp_store_close(s);
}

/* A database indexed in v7's buckets of 65536 records: opening it moves
 * the index to v8's buckets of 4096 (RP_AUDIT_BUCKET_SHIFT), and it still
 * matches the log and finds every record. */
static void test_migration_v8_rebuckets_the_index(void) {
  char db[512];
  snprintf(db, sizeof db, "%s/v7.db", test_tmp_dir());
  rp_store *s;
  rp_err err;
  ASSERT_EQ(rp_store_open(db, RP_STORE_CREATE, &s, &err), RP_OK);
  test_sql_exec(s, "INSERT INTO audit_log(id, at, actor, action, customer_id, origin, hash) "
          "VALUES(4000, 0, 'cli:test', 'customer.read', 1, 'local', x''), "
          "(70000, 0, 'cli:test', 'customer.read', 1, 'local', x''), "
          "(70001, 0, 'cli:test', 'customer.read', 2, 'local', x''), "
          "(80000, 0, 'cli:test', 'customer.read', 1, 'local', x'')");
  ASSERT_EQ(rp_audit_index(s, &err), RP_OK);
  /* Back to v7: its buckets, and v8 (and what came after) not applied. */
  test_sql_exec(s, "UPDATE audit_customers SET bucket = audit_id >> 16");
  test_sql_exec(s, "DROP INDEX customers_updated");
  test_sql_exec(s, "DELETE FROM schema_migrations WHERE scope = 'core' AND version >= 8");
  rp_store_close(s);
  ASSERT_EQ(rp_store_open(db, 0, &s, &err), RP_OK);
  ASSERT_EQ(test_sql_int(s, "SELECT count(*) FROM audit_customers WHERE bucket != audit_id >> "
                            RP_AUDIT_BUCKET_SHIFT),
            0);
  ASSERT_EQ(test_sql_int(s, "SELECT count(DISTINCT bucket) FROM audit_customers"), 3);
  ASSERT_EQ(test_sql_int(s, "SELECT count(*) FROM audit_customers"), 4);
  check_list(s, 1);
  check_list(s, 2);
  rp_store_close(s);
}

RP_TEST_LIST{
    RP_TEST(index_follows_the_log_in_bulk),
    RP_TEST(verify_notices_an_index_that_is_not_the_logs),
    RP_TEST(migration_v8_rebuckets_the_index),
    RP_TEST_END,
};
