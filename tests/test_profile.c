/* Customers: upserts by identity, typed attributes, consent, identity
 * resolution and merges, placeholders, the unified view. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "profile.h"
#include "store.h"
#include "test.h"
#include "test_sql.h"

typedef struct fixture {
  rp_store *s;
  rp_config *cfg;
} fixture;

static void fx_open(fixture *f) {
  rp_err err;
  rp_clock_set_fake(1767225600000LL); /* 2026-01-01T00:00:00Z */
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &f->s, &err), RP_OK);
  ASSERT_EQ(rp_config_load(NULL, &f->cfg, &err), RP_OK);
  free(f->cfg->default_country);
  f->cfg->default_country = strdup("FR");
}

static void fx_close(fixture *f) {
  rp_store_close(f->s);
  rp_config_free(f->cfg);
}

/* Upserts JSON text; asserts the return code; returns the result. */
static rp_upsert upsert_rc(fixture *f, const char *json, int want, rp_err *err) {
  cJSON *in = cJSON_Parse(json);
  ASSERT(in != NULL);
  rp_upsert res;
  rp_err_clear(err);
  int rc = rp_profile_upsert(f->s, f->cfg, in, "test", &res, err);
  if (rc != want) fprintf(stderr, "upsert %s: %d %s\n", json, rc, err->msg);
  ASSERT_EQ(rc, want);
  cJSON_Delete(in);
  return res;
}

static rp_upsert upsert(fixture *f, const char *json) {
  rp_err err;
  return upsert_rc(f, json, RP_OK, &err);
}

static int64_t q(fixture *f, const char *sql) {
  return test_sql_int(f->s, sql);
}

static cJSON *view(fixture *f, int64_t id) {
  cJSON *v = NULL;
  rp_err err;
  ASSERT_EQ(rp_profile_view(f->s, id, RP_VIEW_ALL, 5, &v, &err), RP_OK);
  return v;
}

static void test_upsert_creates_then_finds_by_each_identity(void) {
  fixture f;
  fx_open(&f);
  rp_upsert r = upsert(&f, "{\"external_id\": \"CRM-1\", \"email\": \" Ana@Example.COM \", "
                           "\"phone\": \"06 12 34 56 78\", \"anonymous_id\": \"anon-9\"}");
  ASSERT(r.created);
  ASSERT(r.customer_id > 0);
  static const char *const again[] = {
      "{\"email\": \"ana@example.com\"}", "{\"phone\": \"+33612345678\"}",
      "{\"external_id\": \"CRM-1\"}", "{\"anonymous_id\": \"anon-9\"}",
      "{\"identities\": {\"email\": [\"ANA@example.com\"]}}"};
  for (size_t i = 0; i < sizeof again / sizeof again[0]; i++) {
    rp_upsert o = upsert(&f, again[i]);
    ASSERT_EQ(o.customer_id, r.customer_id);
    ASSERT(!o.created);
    ASSERT(!o.updated); /* nothing new was said */
  }
  int64_t id = 0;
  rp_err err;
  ASSERT_EQ(rp_profile_resolve(f.s, f.cfg, "phone", "0612345678", &id, &err), RP_OK);
  ASSERT_EQ(id, r.customer_id);
  ASSERT_EQ(rp_profile_lookup(f.s, f.cfg, "email:ANA@example.com", &id, &err), RP_OK);
  ASSERT_EQ(id, r.customer_id);
  ASSERT_EQ(rp_profile_lookup(f.s, f.cfg, "CRM-1", &id, &err), RP_OK);
  ASSERT_EQ(id, r.customer_id);
  ASSERT_EQ(rp_profile_resolve(f.s, f.cfg, "email", "bob@example.com", &id, &err), RP_ENOTFOUND);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customers"), 1);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customer_identities"), 4);
  fx_close(&f);
}

static void test_refusals_write_nothing(void) {
  fixture f;
  fx_open(&f);
  static const struct {
    const char *json, *field;
  } bad[] = {
      {"{\"email\": \"not-an-email\"}", "email"},
      {"{\"external_id\": \"X\", \"favourite\": 1}", "favourite"},
      {"{\"external_id\": \"X\", \"attributes\": {\"age\": 12.5}}", "attributes.age"},
      {"{\"external_id\": \"X\", \"attributes\": {\"Bad Name\": 1}}", "attributes"},
      {"{\"external_id\": \"X\", \"attributes\": {\"ltv\": {\"type\": \"money\", \"value\": "
       "\"12.345\", \"currency\": \"EUR\"}}}", "attributes.ltv"},
      {"{\"external_id\": \"X\", \"consent\": {\"fax\": true}}", "consent"},
      {"{\"email\": \"null\"}", NULL}, /* a placeholder names nobody */
      {"{}", NULL},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    rp_err err;
    upsert_rc(&f, bad[i].json, RP_EINVAL, &err);
    if (bad[i].field) ASSERT_CONTAINS(err.field[0] ? err.field : err.msg, bad[i].field);
  }
  rp_err err;
  upsert_rc(&f, "{\"id\": 999}", RP_ENOTFOUND, &err);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customers"), 0);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customer_identities"), 0);
  fx_close(&f);
}

static void test_typed_attributes(void) {
  fixture f;
  fx_open(&f);
  rp_upsert r = upsert(&f, "{\"external_id\": \"A\", \"attributes\": {"
                           "\"first_name\": \"Ana\", \"age\": 34, \"vip\": true, "
                           "\"signed_up\": {\"type\": \"timestamp\", \"value\": "
                           "\"2024-01-15T09:30:00Z\"}, "
                           "\"ltv\": {\"type\": \"money\", \"value\": \"120.50 EUR\"}, "
                           "\"spend\": {\"amount\": 999, \"currency\": \"JPY\"}, "
                           "\"visits\": {\"type\": \"integer\", \"value\": \"7\"}}}");
  cJSON *v = view(&f, r.customer_id);
  const cJSON *a = cJSON_GetObjectItem(v, "attributes");
  const cJSON *t = cJSON_GetObjectItem(v, "attribute_types");
  ASSERT_STR_EQ(cJSON_GetObjectItem(a, "first_name")->valuestring, "Ana");
  ASSERT_EQ(cJSON_GetObjectItem(a, "age")->valuedouble, 34);
  ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(a, "vip")));
  ASSERT_EQ(cJSON_GetObjectItem(a, "signed_up")->valuedouble, 1705311000000.0);
  ASSERT_STR_EQ(cJSON_GetObjectItem(t, "signed_up")->valuestring, "timestamp");
  const cJSON *ltv = cJSON_GetObjectItem(a, "ltv");
  ASSERT_EQ(cJSON_GetObjectItem(ltv, "amount")->valuedouble, 12050);
  ASSERT_STR_EQ(cJSON_GetObjectItem(ltv, "currency")->valuestring, "EUR");
  ASSERT_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(a, "spend"), "amount")->valuedouble, 999);
  ASSERT_EQ(cJSON_GetObjectItem(a, "visits")->valuedouble, 7);
  ASSERT_STR_EQ(cJSON_GetObjectItem(t, "visits")->valuestring, "integer");
  cJSON_Delete(v);

  /* Changing one, deleting one; the same value again changes nothing. */
  rp_clock_advance(1000);
  rp_upsert u = upsert(&f, "{\"external_id\": \"A\", \"attributes\": {\"age\": 35, "
                           "\"vip\": null}}");
  ASSERT(u.updated);
  ASSERT_EQ(q(&f, "SELECT value FROM customer_attributes WHERE name = 'age'"), 35);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customer_attributes WHERE name = 'vip'"), 0);
  ASSERT_EQ(q(&f, "SELECT updated_at FROM customers"), 1767225601000LL);
  u = upsert(&f, "{\"external_id\": \"A\", \"attributes\": {\"age\": 35}}");
  ASSERT(!u.updated);

  /* set_attributes: all or nothing. */
  rp_err err;
  cJSON *attrs = cJSON_Parse("{\"age\": 36, \"vip\": \"perhaps\"}");
  ASSERT_EQ(rp_profile_set_attributes(f.s, r.customer_id, attrs, &err), RP_OK);
  cJSON_Delete(attrs);
  attrs = cJSON_Parse("{\"age\": 40, \"score\": 1.5}");
  ASSERT_EQ(rp_profile_set_attributes(f.s, r.customer_id, attrs, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.field[0] ? err.field : err.msg, "score");
  cJSON_Delete(attrs);
  ASSERT_EQ(q(&f, "SELECT value FROM customer_attributes WHERE name = 'age'"), 36);
  fx_close(&f);
}

static void test_consent_and_its_history(void) {
  fixture f;
  fx_open(&f);
  rp_upsert r = upsert(&f, "{\"external_id\": \"A\", \"consent\": {\"email\": true, "
                           "\"sms\": {\"granted\": false, \"source\": \"form\", "
                           "\"at\": \"2025-12-01T00:00:00Z\", \"version\": \"sms-terms-3\"}}}");
  /* The version of the text agreed to (or refused) is kept, with the history. */
  char ver[64] = "";
  sqlite3_stmt *vst;
  ASSERT_EQ(rp_store_prepare(f.s, "SELECT version FROM customer_consent_history WHERE channel = 'sms'",
                             &vst, NULL), RP_OK);
  ASSERT_EQ(sqlite3_step(vst), SQLITE_ROW);
  snprintf(ver, sizeof ver, "%s", (const char *)sqlite3_column_text(vst, 0));
  rp_store_done(vst);
  ASSERT_STR_EQ(ver, "sms-terms-3");
  {
    cJSON *v0 = view(&f, r.customer_id);
    ASSERT_STR_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(v0, "consent"), "sms"),
                                      "version")->valuestring, "sms-terms-3");
    cJSON_Delete(v0);
  }
  rp_err verr;
  upsert_rc(&f, "{\"external_id\": \"A\", \"consent\": {\"sms\": {\"granted\": true, \"version\": 3}}}",
            RP_EINVAL, &verr);
  ASSERT_CONTAINS(verr.msg, "version");
  ASSERT_EQ(q(&f, "SELECT granted FROM customer_consent WHERE channel = 'email'"), 1);
  ASSERT_EQ(q(&f, "SELECT recorded_at FROM customer_consent WHERE channel = 'sms'"),
            1764547200000LL);
  rp_err err;
  /* An older statement does not override the current state: history only. */
  ASSERT_EQ(rp_profile_set_consent(f.s, r.customer_id, "sms", 1, "old-crm", 1764460800000LL,
                                   &err), RP_OK);
  ASSERT_EQ(q(&f, "SELECT granted FROM customer_consent WHERE channel = 'sms'"), 0);
  /* A newer one does. */
  ASSERT_EQ(rp_profile_set_consent(f.s, r.customer_id, "sms", 1, "app", 0, &err), RP_OK);
  ASSERT_EQ(q(&f, "SELECT granted FROM customer_consent WHERE channel = 'sms'"), 1);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customer_consent_history WHERE channel = 'sms'"), 3);
  /* The same state again adds nothing. */
  ASSERT_EQ(rp_profile_set_consent(f.s, r.customer_id, "sms", 1, "app", 0, &err), RP_OK);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customer_consent_history WHERE channel = 'sms'"), 3);
  ASSERT_EQ(rp_profile_set_consent(f.s, r.customer_id, "pigeon", 1, "app", 0, &err), RP_EINVAL);
  cJSON *v = view(&f, r.customer_id);
  const cJSON *sms = cJSON_GetObjectItem(cJSON_GetObjectItem(v, "consent"), "sms");
  ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(sms, "granted")));
  ASSERT_STR_EQ(cJSON_GetObjectItem(sms, "source")->valuestring, "app");
  cJSON_Delete(v);
  fx_close(&f);
}

static void test_merge_by_identity(void) {
  fixture f;
  fx_open(&f);
  rp_upsert a = upsert(&f, "{\"external_id\": \"A1\", \"email\": \"ana@example.com\", "
                           "\"attributes\": {\"first_name\": \"Ana\", \"tier\": \"gold\"}, "
                           "\"consent\": {\"email\": true}}");
  rp_clock_advance(1000);
  rp_upsert b = upsert(&f, "{\"external_id\": \"B1\", \"phone\": \"+33612345678\", "
                           "\"attributes\": {\"city\": \"Lyon\", \"tier\": \"silver\"}}");
  ASSERT(a.customer_id < b.customer_id);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customers WHERE merged_into IS NULL"), 2);

  /* One record names both: they are one person. */
  rp_clock_advance(1000);
  rp_upsert m = upsert(&f, "{\"email\": \"ana@example.com\", \"phone\": \"0612345678\"}");
  ASSERT_EQ(m.customer_id, a.customer_id); /* the older survives */
  ASSERT_EQ(m.merged, 1);
  ASSERT(m.updated);
  char sql[128];
  snprintf(sql, sizeof sql, "SELECT merged_into FROM customers WHERE id = %lld",
           (long long)b.customer_id);
  ASSERT_EQ(q(&f, sql), a.customer_id);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customer_merges WHERE reason = 'identity'"), 1);

  /* Everything both had is on the survivor; the later attribute value wins. */
  cJSON *v = view(&f, b.customer_id); /* the absorbed id shows the survivor */
  ASSERT_EQ(cJSON_GetObjectItem(v, "id")->valuedouble, (double)a.customer_id);
  const cJSON *ids = cJSON_GetObjectItem(v, "identities");
  ASSERT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(ids, "external_id")), 2);
  ASSERT_STR_EQ(cJSON_GetArrayItem(cJSON_GetObjectItem(ids, "phone"), 0)->valuestring,
                "+33612345678");
  const cJSON *at = cJSON_GetObjectItem(v, "attributes");
  ASSERT_STR_EQ(cJSON_GetObjectItem(at, "first_name")->valuestring, "Ana");
  ASSERT_STR_EQ(cJSON_GetObjectItem(at, "city")->valuestring, "Lyon");
  ASSERT_STR_EQ(cJSON_GetObjectItem(at, "tier")->valuestring, "silver");
  ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(
      cJSON_GetObjectItem(v, "consent"), "email"), "granted")));
  ASSERT_EQ(cJSON_GetArrayItem(cJSON_GetObjectItem(v, "merged_from"), 0)->valuedouble,
            (double)b.customer_id);
  cJSON_Delete(v);

  /* The absorbed id and its identities keep resolving to the survivor. */
  int64_t id;
  rp_err err;
  ASSERT_EQ(rp_profile_canonical(f.s, b.customer_id, &id, &err), RP_OK);
  ASSERT_EQ(id, a.customer_id);
  ASSERT_EQ(rp_profile_lookup(f.s, f.cfg, "B1", &id, &err), RP_OK);
  ASSERT_EQ(id, a.customer_id);
  ASSERT_EQ(rp_profile_merge(f.s, a.customer_id, b.customer_id, NULL, &err), RP_ECONFLICT);
  fx_close(&f);
}

static void test_placeholders_never_match_or_merge(void) {
  fixture f;
  fx_open(&f);
  rp_upsert a = upsert(&f, "{\"external_id\": \"A\", \"email\": \"test@test.com\"}");
  rp_upsert b = upsert(&f, "{\"external_id\": \"B\", \"email\": \"TEST@test.com\", "
                           "\"phone\": \"unknown\"}");
  rp_upsert c = upsert(&f, "{\"external_id\": \"C\", \"email\": \"none\"}");
  ASSERT(a.customer_id != b.customer_id);
  ASSERT(b.customer_id != c.customer_id);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customer_merges"), 0);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customer_identities WHERE kind <> 'external_id'"), 0);
  int64_t id;
  rp_err err;
  ASSERT_EQ(rp_profile_resolve(f.s, f.cfg, "email", "test@test.com", &id, &err), RP_ENOTFOUND);
  ASSERT_CONTAINS(err.msg, "placeholder");
  fx_close(&f);
}

static void test_merge_consent_ties_favour_refusal(void) {
  fixture f;
  fx_open(&f);
  /* Both consents recorded at the same instant (the clock is frozen). */
  rp_upsert a = upsert(&f, "{\"external_id\": \"A\", \"email\": \"a@example.com\", "
                           "\"consent\": {\"email\": true, \"sms\": true}}");
  rp_upsert b = upsert(&f, "{\"external_id\": \"B\", \"phone\": \"+33611111111\", "
                           "\"consent\": {\"email\": false}}");
  rp_clock_advance(5000);
  rp_err err;
  /* A later decision wins over an earlier one whatever it says. */
  ASSERT_EQ(rp_profile_set_consent(f.s, b.customer_id, "sms", 0, "app", 0, &err), RP_OK);
  ASSERT_EQ(rp_profile_merge(f.s, a.customer_id, b.customer_id, "support", &err), RP_OK);
  char sql[160];
  snprintf(sql, sizeof sql,
           "SELECT granted FROM customer_consent WHERE customer_id = %lld AND channel = 'email'",
           (long long)a.customer_id);
  ASSERT_EQ(q(&f, sql), 0);
  snprintf(sql, sizeof sql,
           "SELECT granted FROM customer_consent WHERE customer_id = %lld AND channel = 'sms'",
           (long long)a.customer_id);
  ASSERT_EQ(q(&f, sql), 0);
  ASSERT_EQ(q(&f, "SELECT count(*) FROM customer_merges WHERE reason = 'support'"), 1);
  /* Both histories are kept, on the survivor. */
  snprintf(sql, sizeof sql, "SELECT count(*) FROM customer_consent_history WHERE customer_id = %lld",
           (long long)a.customer_id);
  ASSERT_EQ(q(&f, sql), 4);
  fx_close(&f);
}

RP_TEST_LIST{
    RP_TEST(upsert_creates_then_finds_by_each_identity),
    RP_TEST(refusals_write_nothing),
    RP_TEST(typed_attributes),
    RP_TEST(consent_and_its_history),
    RP_TEST(merge_by_identity),
    RP_TEST(placeholders_never_match_or_merge),
    RP_TEST(merge_consent_ties_favour_refusal),
    RP_TEST_END,
};
