/* The data key: loading (file mode, hex, environment), sealing and opening
 * (tampering, wrong key, wrong context), blind indexes. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datakey.h"
#include "test.h"

static void test_seal_and_open(void) {
  unsigned char raw[32] = {1, 2, 3};
  rp_datakey *k, *other;
  rp_err err;
  ASSERT_EQ(rp_datakey_from_bytes(raw, &k, &err), RP_OK);
  raw[0] = 9;
  ASSERT_EQ(rp_datakey_from_bytes(raw, &other, &err), RP_OK);
  const char *email = "ana@example.com";
  unsigned char *a, *b;
  size_t al, bl;
  ASSERT_EQ(rp_datakey_seal(k, "email", email, strlen(email), &a, &al, &err), RP_OK);
  ASSERT_EQ(rp_datakey_seal(k, "email", email, strlen(email), &b, &bl, &err), RP_OK);
  ASSERT_EQ(al, strlen(email) + RP_SEAL_OVERHEAD);
  ASSERT(memcmp(a, b, al) != 0); /* a fresh nonce each time */
  for (size_t i = 0; i + 4 <= al; i++) ASSERT(memcmp(a + i, "ana@", 4) != 0);
  char *plain;
  size_t n;
  ASSERT_EQ(rp_datakey_open(k, "email", a, al, &plain, &n, &err), RP_OK);
  ASSERT_STR_EQ(plain, email);
  ASSERT_EQ(n, strlen(email));
  free(plain);
  ASSERT_EQ(rp_datakey_open(other, "email", a, al, &plain, &n, &err), RP_EINVAL);
  ASSERT_EQ(rp_datakey_open(k, "phone", a, al, &plain, &n, &err), RP_EINVAL);
  a[al - 1] ^= 1;
  ASSERT_EQ(rp_datakey_open(k, "email", a, al, &plain, &n, &err), RP_EINVAL);
  ASSERT_EQ(rp_datakey_open(k, "email", a, 5, &plain, &n, &err), RP_EINVAL);
  free(a);
  free(b);

  char x[RP_BLIND_HEX + 1], y[RP_BLIND_HEX + 1], z[RP_BLIND_HEX + 1], w[RP_BLIND_HEX + 1];
  rp_datakey_blind(k, "email", email, x);
  rp_datakey_blind(k, "email", email, y);
  rp_datakey_blind(k, "phone", email, z);
  rp_datakey_blind(other, "email", email, w);
  ASSERT_STR_EQ(x, y); /* deterministic: lookups work */
  ASSERT(strcmp(x, z) != 0);
  ASSERT(strcmp(x, w) != 0);
  ASSERT_EQ(strlen(x), RP_BLIND_HEX);
  char f1[17], f2[17];
  rp_datakey_fingerprint(k, f1);
  rp_datakey_fingerprint(other, f2);
  ASSERT(strcmp(f1, f2) != 0);
  rp_datakey_free(k);
  rp_datakey_free(other);
}

static void test_key_files(void) {
  char dir[] = "/tmp/rp_test_datakey_XXXXXX";
  ASSERT(mkdtemp(dir) != NULL);
  char path[128];
  snprintf(path, sizeof path, "%s/r.db.key", dir);
  unsetenv("RAPPORT_DATA_KEY");
  rp_datakey *k = NULL;
  rp_err err;
  ASSERT_EQ(rp_datakey_load(path, 0, &k, &err), RP_ENOTFOUND);
  ASSERT_CONTAINS(err.msg, "rapport init");
  ASSERT_EQ(rp_datakey_load(path, 1, &k, &err), RP_OK); /* created */
  struct stat st;
  ASSERT_EQ(stat(path, &st), 0);
  ASSERT_EQ(st.st_mode & 0777, 0600);
  char f1[17], f2[17];
  rp_datakey_fingerprint(k, f1);
  rp_datakey_free(k);
  ASSERT_EQ(rp_datakey_load(path, 1, &k, &err), RP_OK); /* read back, not recreated */
  rp_datakey_fingerprint(k, f2);
  ASSERT_STR_EQ(f1, f2);
  rp_datakey_free(k);
  chmod(path, 0644);
  ASSERT_EQ(rp_datakey_load(path, 1, &k, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "readable by others");
  chmod(path, 0600);
  FILE *f = fopen(path, "w");
  fputs("not hex", f);
  fclose(f);
  ASSERT_EQ(rp_datakey_load(path, 1, &k, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "64 hex digits");
  /* The environment wins over the file. */
  setenv("RAPPORT_DATA_KEY", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", 1);
  ASSERT_EQ(rp_datakey_load(path, 0, &k, &err), RP_OK);
  rp_datakey_free(k);
  setenv("RAPPORT_DATA_KEY", "short", 1);
  ASSERT_EQ(rp_datakey_load(path, 0, &k, &err), RP_EINVAL);
  ASSERT_STR_EQ(err.field, "RAPPORT_DATA_KEY");
  unsetenv("RAPPORT_DATA_KEY");
  unlink(path);
  rmdir(dir);
}

RP_TEST_LIST{
    RP_TEST(seal_and_open),
    RP_TEST(key_files),
    RP_TEST_END,
};
