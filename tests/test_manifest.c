/* Unit tests of plugin.json parsing: every refusal names file and field. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "authz.h"
#include "manifest.h"
#include "test.h"

static char dir[64];

static void write_manifest(const char *json) {
  char path[128];
  snprintf(path, sizeof path, "%s/plugin.json", dir);
  FILE *f = fopen(path, "w");
  ASSERT(f != NULL);
  fputs(json, f);
  fclose(f);
}

static int load(const char *json, rp_manifest **m, rp_err *err) {
  write_manifest(json);
  rp_err_clear(err);
  *m = NULL;
  return rp_manifest_load(dir, m, err);
}

static void refused(const char *json, const char *field_path) {
  rp_manifest *m;
  rp_err err;
  if (load(json, &m, &err) == RP_OK) {
    fprintf(stderr, "accepted: %s\n", json);
    ASSERT(0);
  }
  ASSERT(m == NULL);
  ASSERT_CONTAINS(err.msg, "plugin.json");
  ASSERT_CONTAINS(err.msg, field_path);
}

static void test_full_manifest(void) {
  rp_manifest *m;
  rp_err err;
  ASSERT_EQ(load("{\"name\": \"loyalty\", \"version\": \"1.2.3\", \"api\": \"1.0\",\n"
                 " \"description\": \"points\", \"permissions\": [\"customers:read\", \"schedule\"],\n"
                 " \"subscriptions\": [{\"event\": \"order.*\", \"handler\": \"on_order\"}],\n"
                 " \"jobs\": [{\"name\": \"expire\", \"cron\": \"0 3 * * *\", \"handler\": \"expire\"},\n"
                 "          {\"name\": \"tick\", \"every\": \"15m\", \"handler\": \"tick\", \"missed\": \"skip\"}],\n"
                 " \"config\": {\"rate\": 10}, \"limits\": {\"memory_mb\": 32, \"instructions\": 1000000},\n"
                 " \"start\": \"beginning\",\n"
                 " \"commands\": [{\"name\": \"balance\", \"handler\": \"balance\",\n"
                 "   \"description\": \"points of a customer\", \"usage\": \"CUSTOMER\"},\n"
                 "   {\"name\": \"rewards-list\", \"handler\": \"rewards\"}]}",
                 &m, &err),
            RP_OK);
  ASSERT_EQ(m->n_commands, 2);
  ASSERT_STR_EQ(m->commands[0].usage, "CUSTOMER");
  ASSERT_STR_EQ(m->commands[1].name, "rewards-list");
  ASSERT(m->commands[1].description == NULL);
  ASSERT_STR_EQ(m->name, "loyalty");
  ASSERT_STR_EQ(m->version, "1.2.3");
  ASSERT_EQ(m->api_major, 1);
  ASSERT_EQ(m->perms, RP_PERM_CUSTOMERS_READ | RP_PERM_SCHEDULE);
  ASSERT_EQ(m->n_subs, 1);
  ASSERT_STR_EQ(m->subs[0].pattern, "order.*");
  ASSERT_EQ(m->n_jobs, 2);
  ASSERT_STR_EQ(m->jobs[0].kind, "cron");
  ASSERT_STR_EQ(m->jobs[1].kind, "every");
  ASSERT_STR_EQ(m->jobs[1].missed, "skip");
  ASSERT_STR_EQ(m->jobs[0].missed, "run_once");
  ASSERT_EQ(m->memory, 32LL << 20);
  ASSERT_EQ(m->instructions, 1000000);
  ASSERT_EQ(m->replay, 1);
  ASSERT_EQ(cJSON_GetObjectItem(m->config, "rate")->valueint, 10);
  rp_manifest_free(m);
}

static void test_refusals_name_the_field(void) {
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"colour\": 1}", "colour");
  refused("{\"version\": \"1.0.0\", \"api\": \"1\"}", "name");
  refused("{\"name\": \"Bad-Name\", \"version\": \"1.0.0\", \"api\": \"1\"}", "name");
  refused("{\"name\": \"core\", \"version\": \"1.0.0\", \"api\": \"1\"}", "name");
  refused("{\"name\": \"x\", \"version\": \"one\", \"api\": \"1\"}", "version");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"2.0\"}", "api");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1.9\"}", "api");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"permissions\": [\"root\"]}",
          "permissions");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"subscriptions\": "
          "[{\"event\": \"a.*.b\", \"handler\": \"h\"}]}", "subscriptions[0]");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"subscriptions\": "
          "[{\"event\": \"a\", \"handler\": \"no-dash\"}]}", "handler");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"jobs\": "
          "[{\"name\": \"j\", \"every\": \"soon\", \"handler\": \"h\"}]}", "every");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"jobs\": "
          "[{\"name\": \"j\", \"cron\": \"* * * * *\", \"every\": \"1m\", \"handler\": \"h\"}]}",
          "exactly one");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"jobs\": "
          "[{\"name\": \"j\", \"cron\": \"* * * * *\", \"handler\": \"h\", \"when\": 1}]}",
          "jobs[0].when");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"limits\": "
          "{\"memory_mb\": 0}}", "limits.memory_mb");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"commands\": "
          "[{\"name\": \"Bad\", \"handler\": \"h\"}]}", "commands[0].name");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"commands\": "
          "[{\"name\": \"a\", \"handler\": \"h\"}, {\"name\": \"a\", \"handler\": \"g\"}]}",
          "declared twice");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"commands\": "
          "[{\"name\": \"a\", \"handler\": \"h\", \"args\": 1}]}", "commands[0].args");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"commands\": "
          "[{\"name\": \"a\", \"handler\": \"no-dash\"}]}", "handler");
  refused("{\"name\": \"x\", \"version\": \"1.0.0\", \"api\": \"1\", \"commands\": {}}",
          "commands");
}

static void test_malformed_json_names_the_line(void) {
  rp_manifest *m;
  rp_err err;
  ASSERT(load("{\n  \"name\": \"x\",\n  \"version\": \"1.0.0\"\n  \"api\": \"1\"\n}", &m, &err) != RP_OK);
  ASSERT_CONTAINS(err.msg, "plugin.json:4: malformed JSON");
}

static void test_missing_manifest(void) {
  rp_manifest *m;
  rp_err err;
  rp_err_clear(&err);
  ASSERT_EQ(rp_manifest_load("/nonexistent/plugin", &m, &err), RP_ENOTFOUND);
  ASSERT_CONTAINS(err.msg, "/nonexistent/plugin/plugin.json");
}

static void test_patterns(void) {
  ASSERT(rp_pattern_match("order.*", "order.placed"));
  ASSERT(rp_pattern_match("order.*", "order.refund.partial"));
  ASSERT(!rp_pattern_match("order.*", "order"));
  ASSERT(!rp_pattern_match("order.*", "orders.placed"));
  ASSERT(rp_pattern_match("*", "anything"));
  ASSERT(rp_pattern_match("page.viewed", "page.viewed"));
  ASSERT(!rp_pattern_match("page.viewed", "page.viewed2"));
}

int main(int argc, char **argv);

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/rp_manifest_XXXXXX");
  ASSERT(mkdtemp(dir) != NULL);
}

static void test_all(void) {
  setup();
  test_full_manifest();
  test_refusals_name_the_field();
  test_malformed_json_names_the_line();
  test_missing_manifest();
  test_patterns();
  char path[128];
  snprintf(path, sizeof path, "%s/plugin.json", dir);
  unlink(path);
  rmdir(dir);
}

RP_TEST_LIST{
    RP_TEST(all),
    RP_TEST_END,
};
