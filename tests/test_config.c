/* Settings: defaults, every key of rapport.json, refusals naming file and key. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "test.h"

static char path[64];

static int load_text(const char *text, rp_config **cfg, rp_err *err) {
  snprintf(path, sizeof path, "/tmp/rp_test_config_XXXXXX");
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs(text, f);
  fclose(f);
  rp_err_clear(err);
  int rc = rp_config_load(path, cfg, err);
  unlink(path);
  return rc;
}

static void test_defaults(void) {
  rp_config *c;
  rp_err err;
  unsetenv("RAPPORT_PLUGIN_PATH");
  ASSERT_EQ(rp_config_load(NULL, &c, &err), RP_OK);
  ASSERT_STR_EQ(c->timezone, "UTC");
  ASSERT(c->default_country == NULL);
  ASSERT_EQ(c->plugin_memory, 64 << 20);
  ASSERT_EQ(c->plugin_instructions, 50000000);
  ASSERT_EQ(c->job_instructions, 10000000000LL);
  ASSERT_EQ(c->job_slice_ms, 5);
  ASSERT_EQ(c->bus_batch, 500);
  ASSERT_EQ(c->suspend_after, 25);
  ASSERT(c->n_plugin_paths >= 1); /* the bundled plugins' folder */
  rp_config_free(c);
  /* RAPPORT_PLUGIN_PATH is a colon-separated list. */
  setenv("RAPPORT_PLUGIN_PATH", "/a:/b", 1);
  ASSERT_EQ(rp_config_load(NULL, &c, &err), RP_OK);
  ASSERT_EQ(c->n_plugin_paths, 2);
  ASSERT_STR_EQ(c->plugin_paths[1], "/b");
  rp_config_free(c);
  unsetenv("RAPPORT_PLUGIN_PATH");
}

static void test_every_key(void) {
  rp_config *c;
  rp_err err;
  ASSERT_EQ(load_text("{\"timezone\": \"Europe/Paris\", \"default_country\": \"FR\", "
                      "\"placeholders\": [\"NoReply@x.com\"], \"plugin_paths\": [\"/p1\", \"/p2\"], "
                      "\"plugin_memory_mb\": 16, \"plugin_instructions\": 1000000, "
                      "\"job_instructions\": 2000000, \"job_slice_ms\": 20, \"bus_batch\": 50, "
                      "\"suspend_after\": 3, \"plugins\": {\"activity\": {\"dormant_after_days\": 30}}}",
                      &c, &err),
            RP_OK);
  ASSERT_STR_EQ(c->timezone, "Europe/Paris");
  ASSERT_STR_EQ(c->default_country, "FR");
  ASSERT_EQ(c->n_placeholders, 1);
  ASSERT_STR_EQ(c->placeholders[0], "noreply@x.com"); /* stored lower-case */
  ASSERT_EQ(c->n_plugin_paths, 2);
  ASSERT_EQ(c->plugin_memory, 16 << 20);
  ASSERT_EQ(c->plugin_instructions, 1000000);
  ASSERT_EQ(c->job_instructions, 2000000);
  ASSERT_EQ(c->job_slice_ms, 20);
  ASSERT_EQ(c->bus_batch, 50);
  ASSERT_EQ(c->suspend_after, 3);
  const cJSON *a = rp_config_plugin(c, "activity");
  ASSERT(a != NULL);
  ASSERT_EQ(cJSON_GetObjectItem(a, "dormant_after_days")->valuedouble, 30);
  ASSERT(rp_config_plugin(c, "other") == NULL);
  rp_config_free(c);
}

static void test_refusals_name_file_and_key(void) {
  static const struct {
    const char *text, *says;
  } bad[] = {
      {"{\"timezone\": \"Mars/Olympus\"}", "unknown time zone"},
      {"{\"timezone\": 5}", "timezone"},
      {"{\"default_country\": \"FRA\"}", "default_country"},
      {"{\"bus_batch\": 0}", "bus_batch"},
      {"{\"bus_batch\": 2.5}", "bus_batch"},
      {"{\"plugin_memory_mb\": 100000}", "plugin_memory_mb"},
      {"{\"suspend_after\": \"3\"}", "suspend_after"},
      {"{\"placeholders\": [1]}", "placeholders"},
      {"{\"plugins\": []}", "plugins"},
      {"{\"timezon\": \"UTC\"}", "unknown key \"timezon\""},
      {"[1, 2]", "top level"},
      {"{\"timezone\": ", NULL},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rp_config *c = NULL;
    rp_err err;
    int rc = load_text(bad[i].text, &c, &err);
    if (rc != RP_EINVAL) fprintf(stderr, "accepted: %s\n", bad[i].text);
    ASSERT_EQ(rc, RP_EINVAL);
    ASSERT(c == NULL);
    ASSERT_CONTAINS(err.msg, path); /* the file */
    if (bad[i].says) ASSERT_CONTAINS(err.msg, bad[i].says);
  }
  rp_config *c;
  rp_err err;
  ASSERT(rp_config_load("/nonexistent/rapport.json", &c, &err) != RP_OK);
  ASSERT_CONTAINS(err.msg, "/nonexistent/rapport.json");
}

RP_TEST_LIST{
    RP_TEST(defaults),
    RP_TEST(every_key),
    RP_TEST(refusals_name_file_and_key),
    RP_TEST_END,
};
