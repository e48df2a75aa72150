/* The event log: validation, identity resolution, idempotent client ids,
 * timelines. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "event.h"
#include "profile.h"
#include "store.h"
#include "test.h"
#include "test_sql.h"

#define T0 1767225600000LL /* 2026-01-01T00:00:00Z */

typedef struct fixture {
  rp_store *s;
  rp_config *cfg;
} fixture;

static void fx_open(fixture *f) {
  rp_err err;
  rp_clock_set_fake(T0);
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &f->s, &err), RP_OK);
  ASSERT_EQ(rp_config_load(NULL, &f->cfg, &err), RP_OK);
}

static void fx_close(fixture *f) {
  rp_store_close(f->s);
  rp_config_free(f->cfg);
}

/* Appends the JSON event; returns the rc, with *id and *dup. */
static int append(fixture *f, const char *json, int64_t *id, int *dup, rp_err *err) {
  cJSON *o = cJSON_Parse(json);
  ASSERT(o != NULL);
  rp_event_in ev;
  rp_err_clear(err);
  int rc = rp_event_from_json(o, &ev, err);
  if (rc == RP_OK) rc = rp_event_append(f->s, f->cfg, &ev, id, dup, err);
  cJSON_Delete(o);
  return rc;
}

static int64_t q(fixture *f, const char *sql) {
  return test_sql_int(f->s, sql);
}

static void test_append_resolves_or_creates_the_customer(void) {
  fixture f;
  fx_open(&f);
  int64_t id1 = 0, id2 = 0, id3 = 0;
  int dup = -1;
  rp_err err;
  ASSERT_EQ(append(&f, "{\"type\": \"page.viewed\", \"email\": \"Ana@Example.com\", "
                       "\"properties\": {\"path\": \"/\"}}", &id1, &dup, &err), RP_OK);
  ASSERT_EQ(dup, 0);
  ASSERT(id1 > 0);
  /* The same identity, differently written: the same customer, no new one. */
  ASSERT_EQ(append(&f, "{\"type\": \"order.placed\", \"email\": \" ana@example.COM\", "
                       "\"occurred_at\": \"2025-12-31T23:00:00Z\"}", &id2, &dup, &err), RP_OK);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customers"), 1);
  ASSERT_EQ(q(&f, "SELECT count(DISTINCT customer_id) FROM events"), 1);
  ASSERT_EQ(q(&f, "SELECT occurred_at FROM events WHERE type = 'order.placed'"),
            T0 - 3600000);
  ASSERT_EQ(q(&f, "SELECT received_at FROM events WHERE type = 'order.placed'"), T0);
  ASSERT_EQ(q(&f, "SELECT occurred_at FROM events WHERE type = 'page.viewed'"), T0);
  /* By internal id. */
  int64_t cid = q(&f, "SELECT id FROM customers");
  char json[160];
  snprintf(json, sizeof json, "{\"type\": \"note\", \"customer_id\": %lld}", (long long)cid);
  ASSERT_EQ(append(&f, json, &id3, &dup, &err), RP_OK);
  ASSERT(id1 < id2 && id2 < id3);
  ASSERT_EQ(rp_event_last_id(f.s), id3);
  ASSERT_EQ(append(&f, "{\"type\": \"note\", \"customer_id\": 999}", &id3, &dup, &err),
            RP_ENOTFOUND);
  /* Properties are stored as compact JSON; none is {}. */
  ASSERT_EQ(q(&f, "SELECT properties = '{\"path\":\"/\"}' FROM events WHERE type = 'page.viewed'"),
            1);
  ASSERT_EQ(q(&f, "SELECT properties = '{}' FROM events WHERE type = 'note'"), 1);
  fx_close(&f);
}

static void test_the_same_client_id_is_stored_once(void) {
  fixture f;
  fx_open(&f);
  int64_t a = 0, b = 0;
  int dup = -1;
  rp_err err;
  /* Known customer (fast path) and new customer (upsert path) alike. */
  ASSERT_EQ(append(&f, "{\"id\": \"e-1\", \"type\": \"login\", \"external_id\": \"C1\"}", &a,
                   &dup, &err), RP_OK);
  ASSERT_EQ(dup, 0);
  ASSERT_EQ(append(&f, "{\"id\": \"e-1\", \"type\": \"login\", \"external_id\": \"C1\"}", &b,
                   &dup, &err), RP_OK);
  ASSERT_EQ(dup, 1);
  ASSERT_EQ(b, a);
  /* A duplicate stores nothing at all: not even a new customer. */
  ASSERT_EQ(append(&f, "{\"event_id\": \"e-1\", \"type\": \"login\", \"external_id\": \"C2\"}",
                   &b, &dup, &err), RP_OK);
  ASSERT_EQ(dup, 1);
  ASSERT_EQ(b, a);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM events"), 1);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customers"), 1);
  /* Events without a client id are never duplicates. */
  ASSERT_EQ(append(&f, "{\"type\": \"login\", \"external_id\": \"C1\"}", &a, &dup, &err), RP_OK);
  ASSERT_EQ(append(&f, "{\"type\": \"login\", \"external_id\": \"C1\"}", &b, &dup, &err), RP_OK);
  ASSERT(a != b);
  ASSERT_EQ(dup, 0);
  fx_close(&f);
}

static void test_an_event_naming_two_customers_merges_them(void) {
  fixture f;
  fx_open(&f);
  int64_t id;
  int dup;
  rp_err err;
  ASSERT_EQ(append(&f, "{\"type\": \"a\", \"email\": \"ana@example.com\"}", &id, &dup, &err),
            RP_OK);
  ASSERT_EQ(append(&f, "{\"type\": \"b\", \"external_id\": \"X9\"}", &id, &dup, &err), RP_OK);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customers WHERE merged_into IS NULL"), 2);
  ASSERT_EQ(append(&f, "{\"type\": \"c\", \"customer\": {\"email\": \"ana@example.com\", "
                       "\"external_id\": \"X9\"}}", &id, &dup, &err), RP_OK);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customers WHERE merged_into IS NULL"), 1);
  ASSERT_EQ(q(&f, "SELECT count(DISTINCT customer_id) FROM events"), 1);
  /* A placeholder names nobody: refused when it is all the event gives. */
  ASSERT_EQ(append(&f, "{\"type\": \"d\", \"email\": \"unknown\"}", &id, &dup, &err), RP_EINVAL);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM events"), 3);
  fx_close(&f);
}

static void test_refusals_name_the_field(void) {
  fixture f;
  fx_open(&f);
  char big[300];
  memset(big, 'x', 200);
  big[200] = '\0';
  char json_long_type[400], json_long_id[400];
  snprintf(json_long_type, sizeof json_long_type, "{\"type\": \"%s\", \"external_id\": \"C\"}",
           big);
  snprintf(json_long_id, sizeof json_long_id,
           "{\"id\": \"%s\", \"type\": \"t\", \"external_id\": \"C\"}", big);
  static const char *fields[] = {"type", "type", "type", "event_id", "properties",
                                 "customer", "colour", "customer_id", "occurred_at"};
  const char *inputs[] = {
      "{\"external_id\": \"C\"}",
      "{\"type\": \"Order Placed\", \"external_id\": \"C\"}",
      json_long_type,
      json_long_id,
      "{\"type\": \"t\", \"external_id\": \"C\", \"properties\": [1, 2]}",
      "{\"type\": \"t\"}",
      "{\"type\": \"t\", \"external_id\": \"C\", \"colour\": \"red\"}",
      "{\"type\": \"t\", \"customer_id\": 1.5}",
      "{\"type\": \"t\", \"external_id\": \"C\", \"occurred_at\": \"yesterday\"}",
  };
  for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
    int64_t id;
    int dup;
    rp_err err;
    int rc = append(&f, inputs[i], &id, &dup, &err);
    if (rc != RP_EINVAL) fprintf(stderr, "accepted: %s\n", inputs[i]);
    ASSERT_EQ(rc, RP_EINVAL);
    if (strstr(err.field, fields[i]) == NULL && strstr(err.msg, fields[i]) == NULL)
      fprintf(stderr, "%s: field '%s', message '%s'\n", inputs[i], err.field, err.msg);
    ASSERT(strstr(err.field, fields[i]) || strstr(err.msg, fields[i]));
  }
  /* Properties over the limit. */
  size_t n = RP_EVENT_MAX_PROPERTIES + 100;
  char *huge = malloc(n + 100);
  ASSERT(huge != NULL);
  int len = snprintf(huge, n + 100, "{\"type\": \"t\", \"external_id\": \"C\", \"properties\": "
                                    "{\"blob\": \"");
  memset(huge + len, 'y', n);
  strcpy(huge + len + n, "\"}}");
  int64_t id;
  int dup;
  rp_err err;
  ASSERT_EQ(append(&f, huge, &id, &dup, &err), RP_ELIMIT);
  ASSERT_STR_EQ(err.field, "properties");
  free(huge);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM events"), 0);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customers"), 0);
  fx_close(&f);
}

static void test_timeline(void) {
  fixture f;
  fx_open(&f);
  int64_t id;
  int dup;
  rp_err err;
  for (int i = 0; i < 5; i++) {
    char json[128];
    snprintf(json, sizeof json, "{\"type\": \"step.%d\", \"external_id\": \"T\"}", i);
    ASSERT_EQ(append(&f, json, &id, &dup, &err), RP_OK);
  }
  ASSERT_EQ(append(&f, "{\"type\": \"other\", \"external_id\": \"U\"}", &id, &dup, &err), RP_OK);
  int64_t cid = q(&f, "SELECT customer_id FROM customer_identities WHERE value = 'T'");
  cJSON *tl = NULL;
  ASSERT_EQ(rp_event_timeline(f.s, cid, 0, 3, &tl, &err), RP_OK);
  ASSERT_EQ(cJSON_GetArraySize(tl), 3);
  ASSERT_STR_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(tl, 0), "type")->valuestring, "step.4");
  ASSERT_STR_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(tl, 2), "type")->valuestring, "step.2");
  int64_t before = (int64_t)cJSON_GetObjectItem(cJSON_GetArrayItem(tl, 2), "id")->valuedouble;
  cJSON_Delete(tl);
  ASSERT_EQ(rp_event_timeline(f.s, cid, before, 10, &tl, &err), RP_OK);
  ASSERT_EQ(cJSON_GetArraySize(tl), 2);
  ASSERT_STR_EQ(cJSON_GetObjectItem(cJSON_GetArrayItem(tl, 1), "type")->valuestring, "step.0");
  cJSON_Delete(tl);
  /* an unknown cursor is refused, naming it */
  ASSERT_EQ(rp_event_timeline(f.s, cid, 999999, 10, &tl, &err), RP_EINVAL);
  ASSERT_STR_EQ(err.field, "before");
  fx_close(&f);
}

/* Newest first by when events happened, not by when they arrived; ties by
 * arrival (the later first); pages continue exactly where they stopped. */
static void test_timeline_orders_by_occurrence(void) {
  fixture f;
  fx_open(&f);
  int64_t id;
  int dup;
  rp_err err;
  static const char *const events[] = {
      "{\"type\": \"b\", \"external_id\": \"O\", \"occurred_at\": \"2026-03-02T00:00:00Z\"}",
      "{\"type\": \"late\", \"external_id\": \"O\", \"occurred_at\": \"2026-01-01T00:00:00Z\"}",
      "{\"type\": \"c\", \"external_id\": \"O\", \"occurred_at\": \"2026-03-03T00:00:00Z\"}",
      "{\"type\": \"tie1\", \"external_id\": \"O\", \"occurred_at\": \"2026-02-01T00:00:00Z\"}",
      "{\"type\": \"tie2\", \"external_id\": \"O\", \"occurred_at\": \"2026-02-01T00:00:00Z\"}",
      NULL};
  for (int i = 0; events[i]; i++) ASSERT_EQ(append(&f, events[i], &id, &dup, &err), RP_OK);
  int64_t cid = q(&f, "SELECT customer_id FROM customer_identities WHERE value = 'O'");
  static const char *const want[] = {"c", "b", "tie2", "tie1", "late"};
  /* every page size walks the same order */
  for (int size = 1; size <= 5; size++) {
    int seen = 0;
    int64_t before = 0;
    while (seen < 5) {
      cJSON *tl = NULL;
      ASSERT_EQ(rp_event_timeline(f.s, cid, before, size, &tl, &err), RP_OK);
      int n = cJSON_GetArraySize(tl);
      ASSERT(n > 0);
      for (int k = 0; k < n; k++) {
        cJSON *e = cJSON_GetArrayItem(tl, k);
        ASSERT_STR_EQ(cJSON_GetObjectItem(e, "type")->valuestring, want[seen++]);
        before = (int64_t)cJSON_GetObjectItem(e, "id")->valuedouble;
      }
      cJSON_Delete(tl);
    }
    cJSON *rest = NULL;
    ASSERT_EQ(rp_event_timeline(f.s, cid, before, size, &rest, &err), RP_OK);
    ASSERT_EQ(cJSON_GetArraySize(rest), 0);
    cJSON_Delete(rest);
  }
  /* properties come back as the stored JSON text, printed as they are */
  ASSERT_EQ(append(&f, "{\"type\": \"p\", \"external_id\": \"O\", \"occurred_at\": "
                       "\"2027-01-01T00:00:00Z\", \"properties\": {\"k\": [1, \"x\"]}}",
                   &id, &dup, &err), RP_OK);
  cJSON *tl = NULL;
  ASSERT_EQ(rp_event_timeline(f.s, cid, 0, 1, &tl, &err), RP_OK);
  cJSON *p = cJSON_GetObjectItem(cJSON_GetArrayItem(tl, 0), "properties");
  ASSERT(cJSON_IsRaw(p));
  ASSERT_STR_EQ(p->valuestring, "{\"k\":[1,\"x\"]}");
  cJSON_Delete(tl);
  fx_close(&f);
}

RP_TEST_LIST{
    RP_TEST(append_resolves_or_creates_the_customer),
    RP_TEST(the_same_client_id_is_stored_once),
    RP_TEST(an_event_naming_two_customers_merges_them),
    RP_TEST(refusals_name_the_field),
    RP_TEST(timeline),
    RP_TEST(timeline_orders_by_occurrence),
    RP_TEST_END,
};
