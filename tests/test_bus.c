/* The event bus: delivery in log order to subscribers only, the cursor
 * committed with the handler's effects, dead letters with rollback and retry,
 * where a new plugin starts reading, suspension after repeated failures. The
 * plugins are written into a temporary folder by the tests. */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bus.h"
#include "clock.h"
#include "config.h"
#include "event.h"
#include "host.h"
#include "store.h"
#include "test.h"
#include "test_sql.h"
#include "test_tmp.h"

static void write_file(const char *dir, const char *name, const char *text) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  ASSERT(f != NULL);
  fputs(text, f);
  ASSERT_EQ(fclose(f), 0);
}

/* A plugin "NAME" that records the events it sees and fails on demand (a row
 * in NAME_flags). Returns its folder (static storage per name slot). */
static const char *make_plugin(const char *name, const char *start) {
  static char dirs[4][400];
  static int next;
  char *dir = dirs[next++ % 4];
  snprintf(dir, 400, "%s/%s", test_tmp_dir(), name);
  ASSERT_EQ(mkdir(dir, 0755), 0);
  char sub[500];
  snprintf(sub, sizeof sub, "%s/migrations", dir);
  ASSERT_EQ(mkdir(sub, 0755), 0);
  char text[2048];
  snprintf(text, sizeof text,
           "{\"name\": \"%s\", \"version\": \"1.0.0\", \"api\": \"1.0\", \"start\": \"%s\", "
           "\"permissions\": [\"events:read\"], \"subscriptions\": ["
           "{\"event\": \"order.*\", \"handler\": \"seen\"}, "
           "{\"event\": \"page.viewed\", \"handler\": \"seen\"}]}",
           name, start);
  write_file(dir, "plugin.json", text);
  snprintf(text, sizeof text,
           "local M = { handlers = {} }\n"
           "function M.handlers.seen(e)\n"
           "  crm.db.exec('INSERT INTO %s_seen(event_id, type) VALUES (?, ?)', e.id, e.type)\n"
           "  if crm.db.value('SELECT count(*) FROM %s_flags') > 0 then\n"
           "    error('told to fail on ' .. e.type)\n"
           "  end\n"
           "end\n"
           "return M\n",
           name, name);
  write_file(dir, "init.lua", text);
  snprintf(text, sizeof text,
           "CREATE TABLE %s_seen(event_id INTEGER NOT NULL, type TEXT NOT NULL);\n"
           "CREATE TABLE %s_flags(x);\n",
           name, name);
  write_file(sub, "001_init.sql", text);
  return dir;
}

typedef struct fixture {
  rp_store *s;
  rp_config *cfg;
  rp_host *h;
} fixture;

static void fx_open(fixture *f, int suspend_after) {
  rp_err err;
  rp_clock_set_fake(1767225600000LL);
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &f->s, &err), RP_OK);
  ASSERT_EQ(rp_config_load(NULL, &f->cfg, &err), RP_OK);
  f->cfg->suspend_after = suspend_after;
  ASSERT_EQ(rp_host_new(f->s, f->cfg, &f->h, &err), RP_OK);
}

static void fx_close(fixture *f) {
  rp_host_free(f->h);
  rp_store_close(f->s);
  rp_config_free(f->cfg);
}

static void emit(fixture *f, const char *type) {
  rp_event_in ev = {.type = type, .customer = NULL};
  cJSON *who = cJSON_Parse("{\"external_id\": \"C1\"}");
  ev.customer = who;
  rp_err err;
  ASSERT_EQ(rp_event_append(f->s, f->cfg, &ev, NULL, NULL, &err), RP_OK);
  cJSON_Delete(who);
}

static int64_t q(fixture *f, const char *sql) {
  return test_sql_int(f->s, sql);
}

static int64_t drain(fixture *f) {
  int64_t n = 0;
  rp_err err;
  ASSERT_EQ(rp_bus_drain(f->h, 100, &n, &err), RP_OK);
  return n;
}

static void test_delivers_subscribed_events_in_order_once(void) {
  fixture f;
  fx_open(&f, 25);
  rp_err err;
  int rc = rp_host_enable(f.h, make_plugin("alpha", "now"), &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  ASSERT_EQ(rc, RP_OK);
  emit(&f, "order.placed");
  emit(&f, "email.opened"); /* not subscribed */
  emit(&f, "page.viewed");
  emit(&f, "order.refunded");
  drain(&f);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM alpha_seen"), 3);
  ASSERT_EQ(q(&f, "SELECT group_concat(event_id) = '1,3,4' FROM "
                  "(SELECT event_id FROM alpha_seen ORDER BY rowid)"), 1);
  ASSERT_EQ(q(&f, "SELECT last_event_id FROM bus_cursors WHERE plugin = 'alpha'"), 4);
  int64_t lag = -1;
  ASSERT_EQ(rp_bus_lag(f.h, "alpha", &lag, &err), RP_OK);
  ASSERT_EQ(lag, 0);
  drain(&f); /* nothing twice */
  ASSERT_EQ(q(&f, "SELECT count(*) FROM alpha_seen"), 3);
  fx_close(&f);
}

static void test_a_new_plugin_starts_at_the_end_or_the_beginning(void) {
  fixture f;
  fx_open(&f, 25);
  rp_err err;
  emit(&f, "order.placed");
  emit(&f, "order.placed");
  ASSERT_EQ(rp_host_enable(f.h, make_plugin("late", "now"), &err), RP_OK);
  ASSERT_EQ(rp_host_enable(f.h, make_plugin("replay", "beginning"), &err), RP_OK);
  emit(&f, "order.placed");
  drain(&f);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM late_seen"), 1);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM replay_seen"), 3);
  fx_close(&f);
}

static void test_failures_roll_back_dead_letter_and_retry(void) {
  fixture f;
  fx_open(&f, 25);
  rp_err err;
  ASSERT_EQ(rp_host_enable(f.h, make_plugin("beta", "now"), &err), RP_OK);
  emit(&f, "order.placed");
  drain(&f);
  ASSERT_EQ(rp_store_exec(f.s, "INSERT INTO beta_flags VALUES (1)", &err), RP_OK);
  emit(&f, "order.refunded");
  drain(&f);
  ASSERT_EQ(rp_store_exec(f.s, "DELETE FROM beta_flags", &err), RP_OK);
  emit(&f, "page.viewed");
  drain(&f);
  /* Event 2's own write was rolled back; event 3 was still delivered. */
  ASSERT_EQ(q(&f, "SELECT group_concat(event_id) = '1,3' FROM "
                  "(SELECT event_id FROM beta_seen ORDER BY rowid)"), 1);
  cJSON *dl = NULL;
  ASSERT_EQ(rp_dlq_list(f.s, "beta", 0, 10, &dl, &err), RP_OK);
  ASSERT_EQ(cJSON_GetArraySize(dl), 1);
  cJSON *d = cJSON_GetArrayItem(dl, 0);
  ASSERT_EQ(cJSON_GetObjectItem(d, "event_id")->valuedouble, 2);
  ASSERT_CONTAINS(cJSON_GetObjectItem(d, "error")->valuestring, "told to fail on order.refunded");
  ASSERT_CONTAINS(cJSON_GetObjectItem(d, "traceback")->valuestring, "beta/init.lua:5");
  int64_t id = (int64_t)cJSON_GetObjectItem(d, "id")->valuedouble;
  cJSON_Delete(dl);
  /* Retried once the cause is gone: delivered, and marked retried. */
  ASSERT_EQ(rp_dlq_retry(f.h, id, &err), RP_OK);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM beta_seen WHERE event_id = 2"), 1);
  ASSERT_EQ(q(&f, "SELECT status = 'retried' FROM dead_letters"), 1);
  ASSERT_EQ(rp_dlq_list(f.s, "beta", 0, 10, &dl, &err), RP_OK);
  ASSERT_EQ(cJSON_GetArraySize(dl), 0);
  cJSON_Delete(dl);
  ASSERT(rp_dlq_retry(f.h, 999, &err) != RP_OK);
  fx_close(&f);
}

static void test_repeated_failures_suspend_the_plugin(void) {
  fixture f;
  fx_open(&f, 3);
  rp_err err;
  ASSERT_EQ(rp_host_enable(f.h, make_plugin("gamma", "now"), &err), RP_OK);
  ASSERT_EQ(rp_store_exec(f.s, "INSERT INTO gamma_flags VALUES (1)", &err), RP_OK);
  for (int i = 0; i < 5; i++) emit(&f, "order.placed");
  drain(&f);
  ASSERT_EQ(q(&f, "SELECT status = 'suspended' FROM plugins WHERE name = 'gamma'"), 1);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM dead_letters"), 3);
  /* The cursor stops at the event that suspended it. */
  ASSERT_EQ(q(&f, "SELECT last_event_id FROM bus_cursors WHERE plugin = 'gamma'"), 3);
  ASSERT(!rp_plugin_active(rp_host_plugin(f.h, "gamma")));
  /* Enabled again (cause gone), it resumes where it stopped. */
  ASSERT_EQ(rp_store_exec(f.s, "DELETE FROM gamma_flags", &err), RP_OK);
  ASSERT_EQ(rp_host_enable(f.h, "gamma", &err), RP_OK);
  drain(&f);
  ASSERT_EQ(q(&f, "SELECT group_concat(event_id) = '4,5' FROM "
                  "(SELECT event_id FROM gamma_seen ORDER BY rowid)"), 1);
  fx_close(&f);
}

RP_TEST_LIST{
    RP_TEST(delivers_subscribed_events_in_order_once),
    RP_TEST(a_new_plugin_starts_at_the_end_or_the_beginning),
    RP_TEST(failures_roll_back_dead_letter_and_retry),
    RP_TEST(repeated_failures_suspend_the_plugin),
    RP_TEST_END,
};
