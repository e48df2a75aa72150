/* The vault: key files (mode, format, creation, the environment), the key
 * ring through a rotation, and customers' values sealed in the database
 * (identities by blind index, PII attributes, the view, merges). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "profile.h"
#include "store.h"
#include "test.h"
#include "test_sql.h"
#include "vault.h"

static char dir[64];

/* A fresh folder for one test's key file, removed by done_dir. */
static void key_path(char *out, size_t size) {
  snprintf(dir, sizeof dir, "/tmp/rp_test_vault_XXXXXX");
  ASSERT(mkdtemp(dir) != NULL);
  snprintf(out, size, "%s/r.db.key", dir);
}

static void done_dir(void) { ASSERT_EQ(rmdir(dir), 0); }

static void test_key_files(void) {
  char path[128];
  key_path(path, sizeof path);
  unlink(path);
  unsetenv("RAPPORT_DATA_KEY");
  rp_vault *v = NULL;
  rp_err err;
  ASSERT_EQ(rp_vault_load(path, 0, &v, &err), RP_ENOTFOUND);
  ASSERT_CONTAINS(err.msg, "rapport init");
  ASSERT_EQ(rp_vault_load(path, 1, &v, &err), RP_OK); /* created */
  struct stat st;
  ASSERT_EQ(stat(path, &st), 0);
  ASSERT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(rp_vault_key_count(v), 1);
  ASSERT_EQ(rp_vault_from_env(v), 0);
  char f1[17], f2[17];
  rp_vault_fingerprint(v, f1);
  rp_vault_free(v);
  ASSERT_EQ(rp_vault_load(path, 1, &v, &err), RP_OK); /* read back, not recreated */
  rp_vault_fingerprint(v, f2);
  ASSERT_STR_EQ(f1, f2);
  ASSERT(rp_vault_has_key(v, f1));
  ASSERT(!rp_vault_has_key(v, "0000000000000000"));
  rp_vault_free(v);
  chmod(path, 0644);
  ASSERT_EQ(rp_vault_load(path, 1, &v, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "readable by others");
  ASSERT_STR_EQ(err.field, path);
  chmod(path, 0600);
  FILE *f = fopen(path, "w");
  fputs("not hex\n", f);
  fclose(f);
  ASSERT_EQ(rp_vault_load(path, 1, &v, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "64 hex digits");
  /* The environment wins over the file, and may hold a ring. */
  const char *k1 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
  const char *k2 = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";
  char ring[160];
  snprintf(ring, sizeof ring, "%s, %s", k1, k2);
  setenv("RAPPORT_DATA_KEY", ring, 1);
  ASSERT_EQ(rp_vault_load(path, 0, &v, &err), RP_OK);
  ASSERT_EQ(rp_vault_key_count(v), 2);
  ASSERT(rp_vault_from_env(v));
  rp_vault_free(v);
  setenv("RAPPORT_DATA_KEY", "short", 1);
  ASSERT_EQ(rp_vault_load(path, 0, &v, &err), RP_EINVAL);
  ASSERT_STR_EQ(err.field, "RAPPORT_DATA_KEY");
  unsetenv("RAPPORT_DATA_KEY");
  unlink(path);
  done_dir();
}

static void test_rotation_ring(void) {
  char path[128];
  key_path(path, sizeof path);
  unlink(path);
  rp_vault *v;
  rp_err err;
  ASSERT_EQ(rp_vault_load(path, 1, &v, &err), RP_OK);
  char before[17], after[17];
  rp_vault_fingerprint(v, before);
  unsigned char *old_sealed;
  size_t old_len;
  ASSERT_EQ(rp_vault_seal(v, "email", "ana@example.com", 15, &old_sealed, &old_len, &err), RP_OK);
  char blinds[RP_VAULT_MAX_KEYS][RP_BLIND_HEX + 1];
  ASSERT_EQ(rp_vault_blinds(v, "email", "ana@example.com", blinds), 1);
  char old_blind[RP_BLIND_HEX + 1];
  strcpy(old_blind, blinds[0]);

  ASSERT_EQ(rp_vault_file_rotate(path, &err), RP_OK);
  struct stat st;
  ASSERT_EQ(stat(path, &st), 0);
  ASSERT_EQ(st.st_mode & 0777, 0600);
  ASSERT_EQ(rp_vault_reload(v, &err), RP_OK);
  ASSERT_EQ(rp_vault_key_count(v), 2);
  rp_vault_fingerprint(v, after);
  ASSERT(strcmp(before, after) != 0);
  ASSERT(rp_vault_has_key(v, before));
  /* Old values still open; new ones are sealed by the new key. */
  ASSERT(!rp_vault_is_current(v, old_sealed, old_len));
  char *plain;
  size_t n;
  ASSERT_EQ(rp_vault_open(v, "email", old_sealed, old_len, &plain, &n, &err), RP_OK);
  ASSERT_STR_EQ(plain, "ana@example.com");
  free(plain);
  unsigned char *new_sealed;
  size_t new_len;
  ASSERT_EQ(rp_vault_seal(v, "email", "ana@example.com", 15, &new_sealed, &new_len, &err), RP_OK);
  ASSERT(rp_vault_is_current(v, new_sealed, new_len));
  /* Lookups try the new blind index, then the old one. */
  ASSERT_EQ(rp_vault_blinds(v, "email", "ana@example.com", blinds), 2);
  ASSERT(strcmp(blinds[0], old_blind) != 0);
  ASSERT_STR_EQ(blinds[1], old_blind);

  /* A second vault on the same file sees the ring too. */
  rp_vault *w;
  ASSERT_EQ(rp_vault_load(path, 0, &w, &err), RP_OK);
  ASSERT_EQ(rp_vault_key_count(w), 2);
  ASSERT_EQ(rp_vault_open(w, "email", new_sealed, new_len, &plain, &n, &err), RP_OK);
  free(plain);
  rp_vault_free(w);

  ASSERT_EQ(rp_vault_file_retire(path, &err), RP_OK);
  ASSERT_EQ(rp_vault_reload(v, &err), RP_OK);
  ASSERT_EQ(rp_vault_key_count(v), 1);
  rp_vault_fingerprint(v, before);
  ASSERT_STR_EQ(before, after);
  ASSERT_EQ(rp_vault_open(v, "email", old_sealed, old_len, &plain, &n, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "which the key ring does not hold");
  ASSERT_EQ(rp_vault_open(v, "email", new_sealed, new_len, &plain, &n, &err), RP_OK);
  free(plain);
  free(old_sealed);
  free(new_sealed);
  rp_vault_free(v);
  unlink(path);
  done_dir();
}

/* ---- sealed customers ------------------------------------------------------ */

typedef struct fixture {
  rp_store *s;
  rp_config *cfg;
} fixture;

static void fx_open(fixture *f) {
  rp_err err;
  rp_clock_set_fake(1767225600000LL);
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &f->s, &err), RP_OK);
  ASSERT_EQ(rp_config_load(NULL, &f->cfg, &err), RP_OK);
  rp_vault *v;
  ASSERT_EQ(rp_vault_ephemeral(&v, &err), RP_OK);
  rp_store_set_vault(f->s, v);
}

static rp_upsert upsert(fixture *f, const char *json) {
  cJSON *in = cJSON_Parse(json);
  ASSERT(in != NULL);
  rp_upsert res;
  rp_err err;
  int rc = rp_profile_upsert(f->s, f->cfg, in, "test", &res, &err);
  if (rc) fprintf(stderr, "upsert %s: %s\n", json, err.msg);
  ASSERT_EQ(rc, RP_OK);
  cJSON_Delete(in);
  return res;
}

static const char *view_str(const cJSON *v, const char *a, const char *b) {
  const cJSON *x = cJSON_GetObjectItemCaseSensitive(v, a);
  x = cJSON_GetObjectItemCaseSensitive(x, b);
  if (cJSON_IsArray(x)) x = cJSON_GetArrayItem(x, 0);
  return cJSON_IsString(x) ? x->valuestring : NULL;
}

static void test_sealed_customers(void) {
  fixture f;
  fx_open(&f);
  rp_upsert r = upsert(&f, "{\"email\": \"Ana@Example.com\", \"phone\": \"+33612345678\", "
                           "\"attributes\": {\"first_name\": \"Ana\", \"city\": \"Lyon\", "
                           "\"birth_date\": {\"type\": \"timestamp\", \"value\": 86400000}}}");
  ASSERT(r.created);
  int64_t id = r.customer_id;
  /* No clear text in the tables: a blind index and a sealed blob. */
  ASSERT_EQ(test_sql_int(f.s, "SELECT count(*) FROM customer_identities WHERE value LIKE '%ana%' "
                              "OR value LIKE '%612345678%'"), 0);
  ASSERT_EQ(test_sql_int(f.s, "SELECT count(*) FROM customer_identities WHERE kind IN "
                              "('email', 'phone') AND length(value) = 64 AND "
                              "typeof(sealed) = 'blob'"), 2);
  ASSERT_EQ(test_sql_int(f.s, "SELECT count(*) FROM customer_attributes WHERE name = "
                              "'first_name' AND typeof(value) = 'blob'"), 1);
  ASSERT_EQ(test_sql_int(f.s, "SELECT count(*) FROM customer_attributes WHERE name = "
                              "'birth_date' AND typeof(value) = 'blob'"), 1);
  ASSERT_EQ(test_sql_int(f.s, "SELECT count(*) FROM customer_attributes WHERE name = 'city' "
                              "AND value = 'Lyon'"), 1); /* not PII: stays queryable */
  /* Exact lookups work through the blind index. */
  int64_t found = 0;
  rp_err err;
  ASSERT_EQ(rp_profile_resolve(f.s, f.cfg, "email", " ANA@example.com", &found, &err), RP_OK);
  ASSERT_EQ(found, id);
  ASSERT_EQ(rp_profile_lookup(f.s, f.cfg, "+33 6 12 34 56 78", &found, &err), RP_OK);
  ASSERT_EQ(found, id);
  /* The same identity again resolves to the same customer. */
  r = upsert(&f, "{\"email\": \"ana@example.com\", \"attributes\": {\"first_name\": \"Ana\"}}");
  ASSERT_EQ(r.customer_id, id);
  ASSERT(!r.created);
  ASSERT(!r.updated); /* an unchanged sealed value is no change */
  r = upsert(&f, "{\"email\": \"ana@example.com\", \"attributes\": {\"first_name\": \"Anna\"}}");
  ASSERT(r.updated);

  cJSON *v = NULL;
  ASSERT_EQ(rp_profile_view(f.s, id, RP_VIEW_ALL, 0, &v, &err), RP_OK);
  ASSERT_STR_EQ(view_str(v, "identities", "email"), "ana@example.com");
  ASSERT_STR_EQ(view_str(v, "identities", "phone"), "+33612345678");
  ASSERT_STR_EQ(view_str(v, "attributes", "first_name"), "Anna");
  const cJSON *bd = cJSON_GetObjectItemCaseSensitive(
      cJSON_GetObjectItemCaseSensitive(v, "attributes"), "birth_date");
  ASSERT(cJSON_IsNumber(bd) && bd->valuedouble == 86400000.0);
  ASSERT_STR_EQ(view_str(v, "attribute_types", "birth_date"), "timestamp");
  cJSON_Delete(v);
  /* Without PII, names are left out; other attributes stay. */
  ASSERT_EQ(rp_profile_view(f.s, id, 0, 0, &v, &err), RP_OK);
  ASSERT(view_str(v, "attributes", "first_name") == NULL);
  ASSERT_STR_EQ(view_str(v, "attributes", "city"), "Lyon");
  cJSON_Delete(v);

  /* A merge over a shared phone: the merge record names kinds, not values,
   * and a lost sealed name is flagged, not copied. */
  r = upsert(&f, "{\"email\": \"other@example.com\", \"attributes\": {\"first_name\": \"Bob\"}}");
  int64_t other = r.customer_id;
  ASSERT(other != id);
  r = upsert(&f, "{\"email\": \"other@example.com\", \"phone\": \"+33612345678\"}");
  ASSERT_EQ(r.merged, 1);
  ASSERT_EQ(test_sql_int(f.s, "SELECT count(*) FROM customer_merges WHERE detail LIKE '%@%' OR "
                              "detail LIKE '%Bob%' OR detail LIKE '%Anna%' OR "
                              "detail LIKE '%612345678%'"), 0);
  ASSERT_EQ(test_sql_int(f.s, "SELECT count(*) FROM customer_merges WHERE "
                              "json_extract(detail, '$.lost_attributes.first_name.sealed') = 1"),
            1);
  rp_store_close(f.s);
  rp_config_free(f.cfg);
}

/* A sealed value under a key the store no longer holds is an error naming
 * the field, not garbage. */
static void test_wrong_key(void) {
  fixture f;
  fx_open(&f);
  rp_upsert r = upsert(&f, "{\"email\": \"zed@example.com\"}");
  rp_vault *v;
  rp_err err;
  ASSERT_EQ(rp_vault_ephemeral(&v, &err), RP_OK);
  rp_store_set_vault(f.s, v);
  cJSON *view = NULL;
  ASSERT_EQ(rp_profile_view(f.s, r.customer_id, RP_VIEW_ALL, 0, &view, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "email");
  ASSERT(view == NULL);
  int64_t found;
  ASSERT_EQ(rp_profile_resolve(f.s, f.cfg, "email", "zed@example.com", &found, &err),
            RP_ENOTFOUND);
  rp_store_close(f.s);
  rp_config_free(f.cfg);
}

RP_TEST_LIST{
    RP_TEST(key_files),
    RP_TEST(rotation_ring),
    RP_TEST(sealed_customers),
    RP_TEST(wrong_key),
    RP_TEST_END,
};
