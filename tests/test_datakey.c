/* One data key: sealing and opening (tampering, wrong key, wrong context),
 * the key id in front of sealed values, blind indexes. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

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

/* The blind index is HMAC-SHA-256(subkey, context NUL value), the subkey
 * HMAC-SHA-256(key, "rapport blind index v1"): computed here independently,
 * twice in a row, so that the reused MAC context is known to start over. */
static void test_blind_matches_hmac(void) {
  unsigned char raw[32];
  for (int i = 0; i < 32; i++) raw[i] = (unsigned char)(i * 7);
  rp_datakey *k;
  rp_err err;
  ASSERT_EQ(rp_datakey_from_bytes(raw, &k, &err), RP_OK);
  unsigned char sub[32], mac[32];
  unsigned int n = 0;
  const char *label = "rapport blind index v1";
  HMAC(EVP_sha256(), raw, 32, (const unsigned char *)label, strlen(label), sub, &n);
  const unsigned char msg[] = "phone\0+33612345678";
  HMAC(EVP_sha256(), sub, 32, msg, sizeof msg - 1, mac, &n);
  char want[RP_BLIND_HEX + 1], got[RP_BLIND_HEX + 1];
  for (int i = 0; i < 32; i++) snprintf(want + 2 * i, 3, "%02x", mac[i]);
  for (int round = 0; round < 2; round++) {
    rp_datakey_blind(k, "phone", "+33612345678", got);
    ASSERT_STR_EQ(got, want);
  }
  rp_datakey_free(k);
}

static void test_sealed_id(void) {
  unsigned char raw[32] = {7};
  rp_datakey *k;
  rp_err err;
  ASSERT_EQ(rp_datakey_from_bytes(raw, &k, &err), RP_OK);
  unsigned char *a;
  size_t al;
  ASSERT_EQ(rp_datakey_seal(k, "email", "x", 1, &a, &al, &err), RP_OK);
  uint32_t id = 0;
  ASSERT_EQ(rp_datakey_sealed_id(a, al, &id), 0);
  ASSERT_EQ(id, rp_datakey_id(k));
  ASSERT_EQ(rp_datakey_sealed_id(a, 3, &id), -1);
  a[0] = 99; /* an unknown format version */
  ASSERT_EQ(rp_datakey_sealed_id(a, al, &id), -1);
  free(a);
  rp_datakey_free(k);
}

RP_TEST_LIST{
    RP_TEST(seal_and_open),
    RP_TEST(sealed_id),
    RP_TEST(blind_matches_hmac),
    RP_TEST_END,
};
