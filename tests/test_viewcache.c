/* The view cache: a view is dropped by every row change of the customer it
 * shows (whatever table, whatever statement), by a rollback, and by another
 * connection's commit; never stored inside a savepoint; bounded in memory. */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "event.h"
#include "store.h"
#include "test.h"
#include "test_sql.h"
#include "test_tmp.h"
#include "viewcache.h"

static rp_store *open_memory(void) {
  rp_store *s;
  rp_err err;
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &s, &err), RP_OK);
  return s;
}

static rp_viewcache *open_cache(rp_store *s, size_t bytes) {
  rp_viewcache *vc;
  rp_err err;
  ASSERT_EQ(rp_viewcache_open(s, bytes, &vc, &err), RP_OK);
  ASSERT(vc != NULL);
  return vc;
}

static void put(rp_viewcache *vc, int64_t id, unsigned flags) {
  char text[64];
  int n = snprintf(text, sizeof text, "{\"id\":%lld,\"flags\":%u}", (long long)id, flags);
  rp_viewcache_put(vc, id, flags, text, (size_t)n);
}

/* Whether the view of id with flags is cached, and (when it is) that it is
 * the text stored for it. */
static int cached(rp_viewcache *vc, int64_t id, unsigned flags) {
  size_t len;
  const char *t = rp_viewcache_get(vc, id, flags, &len);
  if (!t) return 0;
  char want[64];
  int n = snprintf(want, sizeof want, "{\"id\":%lld,\"flags\":%u}", (long long)id, flags);
  ASSERT_EQ(len, n);
  ASSERT(memcmp(t, want, len) == 0);
  return 1;
}

static void seed(rp_store *s) {
  test_sql_exec(s, "INSERT INTO customers(id, created_at, updated_at) VALUES(1, 0, 0), (2, 0, 0), "
          "(3, 0, 0)");
}

static void test_each_table_change_drops_that_customer_only(void) {
  rp_store *s = open_memory();
  seed(s);
  test_sql_exec(s, "INSERT INTO events(customer_id, type, occurred_at, received_at, source) "
          "VALUES(1, 'page', 0, 0, 'test')");
  rp_viewcache *vc = open_cache(s, 1 << 20);
  static const char *const changes[] = {
      "UPDATE customers SET updated_at = 5 WHERE id = 1",
      "INSERT INTO customer_identities(kind, value, customer_id, created_at) "
      "VALUES('external_id', 'x1', 1, 0)",
      "UPDATE customer_identities SET created_at = 1 WHERE customer_id = 1",
      "DELETE FROM customer_identities WHERE customer_id = 1",
      "INSERT INTO customer_attributes(customer_id, name, type, value, updated_at) "
      "VALUES(1, 'tier', 'text', 'gold', 0)",
      "UPDATE customer_attributes SET value = 'silver' WHERE customer_id = 1",
      "DELETE FROM customer_attributes WHERE customer_id = 1",
      "INSERT INTO customer_consent(customer_id, channel, granted, source, recorded_at) "
      "VALUES(1, 'email', 1, 'test', 0)",
      "UPDATE customer_consent SET granted = 0 WHERE customer_id = 1",
      "DELETE FROM customer_consent WHERE customer_id = 1",
      "UPDATE events SET properties = '{\"erased\":true}' WHERE customer_id = 1",
      "DELETE FROM events WHERE customer_id = 1",
  };
  for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++) {
    put(vc, 1, 1);
    put(vc, 1, 3);
    put(vc, 2, 1);
    ASSERT(cached(vc, 1, 1) && cached(vc, 1, 3) && cached(vc, 2, 1));
    test_sql_exec(s, changes[i]);
    if (cached(vc, 1, 1) || cached(vc, 1, 3)) {
      fprintf(stderr, "still cached after: %s\n", changes[i]);
      abort();
    }
    ASSERT(cached(vc, 2, 1)); /* another customer's view stays */
  }
  /* Events appended: rp_event_append tells the store (no trigger there). */
  rp_config *cfg;
  rp_err err;
  ASSERT_EQ(rp_config_load(NULL, &cfg, &err), RP_OK);
  put(vc, 1, 1);
  put(vc, 2, 1);
  rp_event_in ev = {.type = "page.viewed", .customer_id = 1};
  int64_t id = 0;
  ASSERT_EQ(rp_event_append(s, cfg, &ev, &id, NULL, &err), RP_OK);
  ASSERT(id > 0);
  ASSERT(!cached(vc, 1, 1));
  ASSERT(cached(vc, 2, 1));
  /* A duplicate changes nothing: the view stays. */
  ev.event_id = "e-1";
  ASSERT_EQ(rp_event_append(s, cfg, &ev, &id, NULL, &err), RP_OK);
  put(vc, 1, 1);
  int dup = 0;
  ASSERT_EQ(rp_event_append(s, cfg, &ev, &id, &dup, &err), RP_OK);
  ASSERT_EQ(dup, 1);
  ASSERT(cached(vc, 1, 1));
  rp_config_free(cfg);
  /* An event moved from one customer to another changes both. */
  test_sql_exec(s, "INSERT INTO events(customer_id, type, occurred_at, received_at, source) "
          "VALUES(2, 'page', 0, 0, 'test')");
  put(vc, 2, 1);
  put(vc, 3, 1);
  test_sql_exec(s, "UPDATE events SET customer_id = 3 WHERE customer_id = 2");
  ASSERT(!cached(vc, 2, 1) && !cached(vc, 3, 1));
  rp_viewcache_free(vc);
  rp_store_close(s);
}

static void test_merge_drops_survivor_and_absorbed(void) {
  rp_store *s = open_memory();
  seed(s);
  rp_viewcache *vc = open_cache(s, 1 << 20);
  put(vc, 1, 1);
  put(vc, 2, 1);
  put(vc, 3, 1);
  test_sql_exec(s, "UPDATE customers SET merged_into = 1 WHERE id = 2");
  ASSERT(!cached(vc, 1, 1)); /* its merged_from changed */
  ASSERT(!cached(vc, 2, 1)); /* no longer a customer of its own */
  ASSERT(cached(vc, 3, 1));
  rp_viewcache_free(vc);
  rp_store_close(s);
}

static void test_rollback_drops_everything_and_savepoints_store_nothing(void) {
  rp_store *s = open_memory();
  seed(s);
  rp_viewcache *vc = open_cache(s, 1 << 20);
  rp_err err;
  put(vc, 3, 1);
  ASSERT_EQ(rp_store_tx_begin(s, &err), RP_OK);
  test_sql_exec(s, "UPDATE customers SET updated_at = 9 WHERE id = 1");
  put(vc, 1, 1); /* rendered from what is not committed yet */
  ASSERT(cached(vc, 1, 1));
  ASSERT_EQ(rp_store_tx_begin(s, &err), RP_OK); /* a savepoint */
  put(vc, 2, 1);
  ASSERT(!cached(vc, 2, 1));
  ASSERT_EQ(rp_store_tx_rollback(s), RP_OK);
  ASSERT_EQ(rp_store_tx_rollback(s), RP_OK);
  ASSERT(!cached(vc, 1, 1));
  ASSERT(!cached(vc, 3, 1));
  /* A commit keeps what the transaction stored. */
  ASSERT_EQ(rp_store_tx_begin(s, &err), RP_OK);
  put(vc, 1, 1);
  ASSERT_EQ(rp_store_tx_commit(s, &err), RP_OK);
  ASSERT(cached(vc, 1, 1));
  rp_viewcache_free(vc);
  rp_store_close(s);
}

static void test_another_connections_commit_drops_everything(void) {
  char path[300];
  snprintf(path, sizeof path, "%s/crm.db", test_tmp_dir());
  rp_store *a, *b;
  rp_err err;
  ASSERT_EQ(rp_store_open(path, RP_STORE_CREATE, &a, &err), RP_OK);
  ASSERT_EQ(rp_store_open(path, 0, &b, &err), RP_OK);
  seed(a);
  rp_viewcache *vc = open_cache(a, 1 << 20);
  put(vc, 1, 1);
  ASSERT(cached(vc, 1, 1));
  /* This connection's own commit of something no view shows keeps it. */
  test_sql_exec(a, "INSERT INTO settings(key, value) VALUES('own', 'x')");
  ASSERT(cached(vc, 1, 1));
  /* Another connection's commit (a CLI command, another process): the
   * triggers do not see it, data_version does. */
  test_sql_exec(b, "INSERT INTO customer_attributes(customer_id, name, type, value, updated_at) "
          "VALUES(1, 'tier', 'text', 'gold', 0)");
  ASSERT(!cached(vc, 1, 1));
  put(vc, 1, 1);
  ASSERT(cached(vc, 1, 1));
  rp_viewcache_free(vc);
  rp_store_close(b);
  rp_store_close(a);
}

static void test_memory_bound_evicts_least_recently_used(void) {
  rp_store *s = open_memory();
  rp_viewcache *vc = open_cache(s, 1); /* smaller than any view: nothing kept */
  put(vc, 1, 1);
  ASSERT(!cached(vc, 1, 1));
  rp_viewcache_free(vc);

  rp_viewcache_stats st;
  vc = open_cache(s, 1 << 20);
  put(vc, 1, 1);
  rp_viewcache_stats_of(vc, &st);
  size_t one = st.bytes; /* the size of one such view */
  rp_viewcache_free(vc);

  vc = open_cache(s, 3 * one + one / 2); /* room for three */
  for (int64_t id = 1; id <= 3; id++) put(vc, id, 1);
  ASSERT(cached(vc, 1, 1)); /* 1 is now the most recently used */
  put(vc, 4, 1);            /* 2 goes */
  ASSERT(!cached(vc, 2, 1));
  ASSERT(cached(vc, 1, 1) && cached(vc, 3, 1) && cached(vc, 4, 1));
  rp_viewcache_stats_of(vc, &st);
  ASSERT_EQ(st.views, 3);
  ASSERT(st.bytes <= 3 * one + one / 2);
  /* Many more than fit, across bucket growth: the bound holds. */
  for (int64_t id = 10; id < 5000; id++) put(vc, id, 1);
  rp_viewcache_stats_of(vc, &st);
  ASSERT_EQ(st.views, 3);
  ASSERT(cached(vc, 4999, 1) && cached(vc, 4998, 1) && cached(vc, 4997, 1));
  rp_viewcache_free(vc);

  vc = open_cache(s, 1 << 24);
  for (int64_t id = 1; id <= 5000; id++) put(vc, id, 1);
  for (int64_t id = 1; id <= 5000; id++) ASSERT(cached(vc, id, 1));
  rp_viewcache_stats_of(vc, &st);
  ASSERT_EQ(st.views, 5000);
  ASSERT_EQ(st.hits, 5000);
  rp_viewcache_free(vc);
  rp_store_close(s);
}

static void test_off_and_after_free(void) {
  rp_store *s = open_memory();
  seed(s);
  rp_viewcache *vc;
  rp_err err;
  ASSERT_EQ(rp_viewcache_open(s, 0, &vc, &err), RP_OK);
  ASSERT(vc == NULL);
  put(vc, 1, 1);
  ASSERT(!cached(vc, 1, 1));
  /* Once freed, the triggers it left on the connection do nothing. */
  vc = open_cache(s, 1 << 20);
  put(vc, 1, 1);
  rp_viewcache_free(vc);
  test_sql_exec(s, "UPDATE customers SET updated_at = 7 WHERE id = 1");
  ASSERT_EQ(rp_store_tx_begin(s, &err), RP_OK);
  test_sql_exec(s, "UPDATE customers SET updated_at = 8 WHERE id = 1");
  ASSERT_EQ(rp_store_tx_rollback(s), RP_OK);
  rp_store_close(s);
}

RP_TEST_LIST{
    RP_TEST(each_table_change_drops_that_customer_only),
    RP_TEST(merge_drops_survivor_and_absorbed),
    RP_TEST(rollback_drops_everything_and_savepoints_store_nothing),
    RP_TEST(another_connections_commit_drops_everything),
    RP_TEST(memory_bound_evicts_least_recently_used),
    RP_TEST(off_and_after_free),
    RP_TEST_END,
};
