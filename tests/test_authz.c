/* Unit tests of the SQL authorizer: what a plugin's SQL may touch. */
#include <string.h>

#include "authz.h"
#include "store.h"
#include "test.h"

static rp_store *open_store(void) {
  rp_store *s;
  rp_err err;
  rp_err_clear(&err);
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &s, &err), RP_OK);
  rp_store_set_auth_fn(s, rp_authz_sql);
  ASSERT_EQ(rp_store_exec(s, "CREATE TABLE loyalty_ledger(id INTEGER PRIMARY KEY, pts INTEGER);"
                             "CREATE TABLE other_secret(x);", &err), RP_OK);
  return s;
}

/* Prepares sql as p; returns the sqlite status and copies the denial. */
static int try_sql(rp_store *s, rp_principal *p, const char *sql, char *why, size_t size) {
  sqlite3_stmt *st = NULL;
  p->denial[0] = '\0';
  void *prev = rp_store_set_principal(s, p);
  int rc = sqlite3_prepare_v2(rp_store_db(s), sql, -1, &st, NULL);
  if (rc == SQLITE_OK) {
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  rp_store_set_principal(s, prev);
  snprintf(why, size, "%s", p->denial);
  return rc;
}

static void test_own_tables_full_access(void) {
  rp_store *s = open_store();
  rp_principal p;
  rp_principal_plugin(&p, "loyalty", 0);
  char why[512];
  ASSERT_EQ(try_sql(s, &p, "INSERT INTO loyalty_ledger(pts) VALUES (5)", why, sizeof why), SQLITE_OK);
  ASSERT_EQ(try_sql(s, &p, "UPDATE loyalty_ledger SET pts = 6", why, sizeof why), SQLITE_OK);
  ASSERT_EQ(try_sql(s, &p, "SELECT * FROM loyalty_ledger", why, sizeof why), SQLITE_OK);
  ASSERT_EQ(try_sql(s, &p, "CREATE TABLE loyalty_tiers(x)", why, sizeof why), SQLITE_OK);
  ASSERT_EQ(try_sql(s, &p, "CREATE INDEX loyalty_tiers_x ON loyalty_tiers(x)", why, sizeof why),
            SQLITE_OK);
  ASSERT_EQ(try_sql(s, &p, "DELETE FROM loyalty_ledger", why, sizeof why), SQLITE_OK);
  rp_store_close(s);
}

/* json_each reads its argument, nothing stored: how plugins pass a batch
 * of ids. A stored table behind it is still checked. */
static void test_json_each_allowed(void) {
  rp_store *s = open_store();
  rp_principal p;
  rp_principal_plugin(&p, "loyalty", 0);
  char why[512];
  ASSERT_EQ(try_sql(s, &p, "SELECT value FROM json_each('[1,2,3]')", why, sizeof why), SQLITE_OK);
  ASSERT_EQ(try_sql(s, &p, "SELECT * FROM loyalty_ledger WHERE pts IN (SELECT value FROM json_each('[1]'))",
                    why, sizeof why),
            SQLITE_OK);
  ASSERT(try_sql(s, &p, "SELECT id FROM customers WHERE id IN (SELECT value FROM json_each('[1]'))", why,
                 sizeof why) != SQLITE_OK);
  ASSERT_CONTAINS(why, "needs permission 'customers:read'");
  rp_store_close(s);
}

static void test_other_plugins_tables_denied(void) {
  rp_store *s = open_store();
  rp_principal p;
  rp_principal_plugin(&p, "loyalty", RP_PERM_ALL);
  char why[512];
  ASSERT(try_sql(s, &p, "SELECT * FROM other_secret", why, sizeof why) != SQLITE_OK);
  ASSERT_CONTAINS(why, "table 'other_secret' is not readable by plugins");
  /* A name that merely starts like the prefix is not the plugin's. */
  rp_principal q;
  rp_principal_plugin(&q, "loyal", 0);
  ASSERT(try_sql(s, &q, "SELECT * FROM loyalty_ledger", why, sizeof why) != SQLITE_OK);
  rp_store_close(s);
}

static void test_core_reads_need_the_permission(void) {
  rp_store *s = open_store();
  rp_principal p;
  rp_principal_plugin(&p, "segments", RP_PERM_CUSTOMERS_READ);
  char why[512];
  ASSERT_EQ(try_sql(s, &p, "SELECT id FROM customers", why, sizeof why), SQLITE_OK);
  ASSERT(try_sql(s, &p, "SELECT value FROM customer_identities", why, sizeof why) != SQLITE_OK);
  ASSERT_CONTAINS(why, "reading table 'customer_identities' needs permission 'pii:read'");
  ASSERT(try_sql(s, &p, "SELECT * FROM events", why, sizeof why) != SQLITE_OK);
  ASSERT_CONTAINS(why, "needs permission 'events:read'");
  /* Host-private tables are never readable. */
  ASSERT(try_sql(s, &p, "SELECT * FROM jobs", why, sizeof why) != SQLITE_OK);
  ASSERT(try_sql(s, &p, "SELECT * FROM settings", why, sizeof why) != SQLITE_OK);
  rp_principal_plugin(&p, "segments", RP_PERM_PII_READ | RP_PERM_EVENTS_READ);
  ASSERT_EQ(try_sql(s, &p, "SELECT value FROM customer_identities", why, sizeof why), SQLITE_OK);
  ASSERT_EQ(try_sql(s, &p, "SELECT * FROM events", why, sizeof why), SQLITE_OK);
  rp_store_close(s);
}

static void test_core_writes_denied(void) {
  rp_store *s = open_store();
  rp_principal p;
  rp_principal_plugin(&p, "evil", RP_PERM_ALL);
  char why[512];
  ASSERT(try_sql(s, &p, "DELETE FROM customers", why, sizeof why) != SQLITE_OK);
  ASSERT_CONTAINS(why, "deleting from table 'customers' denied");
  ASSERT(try_sql(s, &p, "UPDATE bus_cursors SET last_event_id = 0", why, sizeof why) != SQLITE_OK);
  ASSERT(try_sql(s, &p, "DROP TABLE events", why, sizeof why) != SQLITE_OK);
  ASSERT(try_sql(s, &p, "CREATE TRIGGER evil_t AFTER INSERT ON events BEGIN SELECT 1; END", why,
                 sizeof why) != SQLITE_OK);
  rp_store_close(s);
}

static void test_escape_hatches_denied(void) {
  rp_store *s = open_store();
  rp_principal p;
  rp_principal_plugin(&p, "evil", RP_PERM_ALL);
  char why[512];
  ASSERT(try_sql(s, &p, "PRAGMA writable_schema = 1", why, sizeof why) != SQLITE_OK);
  ASSERT_CONTAINS(why, "PRAGMA");
  ASSERT(try_sql(s, &p, "ATTACH DATABASE '/tmp/x.db' AS x", why, sizeof why) != SQLITE_OK);
  ASSERT(try_sql(s, &p, "COMMIT", why, sizeof why) != SQLITE_OK);
  ASSERT_CONTAINS(why, "transaction control");
  ASSERT(try_sql(s, &p, "CREATE TEMP TABLE evil_t(x)", why, sizeof why) != SQLITE_OK);
  ASSERT(try_sql(s, &p, "SELECT load_extension('/tmp/x.so')", why, sizeof why) != SQLITE_OK);
  rp_store_close(s);
}

static void test_operator_reads_everything(void) {
  rp_store *s = open_store();
  rp_principal p;
  rp_principal_operator(&p);
  char why[512];
  ASSERT_EQ(try_sql(s, &p, "SELECT * FROM other_secret", why, sizeof why), SQLITE_OK);
  ASSERT_EQ(try_sql(s, &p, "SELECT * FROM customer_identities", why, sizeof why), SQLITE_OK);
  ASSERT(try_sql(s, &p, "DELETE FROM customers", why, sizeof why) != SQLITE_OK);
  rp_store_close(s);
}

static void test_permission_names(void) {
  ASSERT_EQ(rp_perm_parse("pii:read"), RP_PERM_PII_READ);
  ASSERT_EQ(rp_perm_parse("pii:write"), 0);
  ASSERT_STR_EQ(rp_perm_name(RP_PERM_SCHEDULE), "schedule");
  rp_principal p;
  rp_principal_plugin(&p, "x", RP_PERM_EVENTS_READ);
  rp_err err;
  ASSERT_EQ(rp_authz_require(&p, RP_PERM_EVENTS_READ, "crm.events.timeline", &err), RP_OK);
  ASSERT_EQ(rp_authz_require(&p, RP_PERM_EVENTS_EMIT, "crm.events.emit", &err), RP_EDENIED);
  ASSERT_CONTAINS(err.msg, "plugin 'x' lacks permission 'events:emit' for crm.events.emit");
}

RP_TEST_LIST{
    RP_TEST(own_tables_full_access),
    RP_TEST(other_plugins_tables_denied),
    RP_TEST(json_each_allowed),
    RP_TEST(core_reads_need_the_permission),
    RP_TEST(core_writes_denied),
    RP_TEST(escape_hatches_denied),
    RP_TEST(operator_reads_everything),
    RP_TEST(permission_names),
    RP_TEST_END,
};
