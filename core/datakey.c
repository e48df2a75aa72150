/* datakey: see datakey.h. */
#include "datakey.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rp_datakey {
  unsigned char seal[32];  /* AES-256-GCM key */
  unsigned char blind[32]; /* HMAC key of blind indexes */
  unsigned char check[32]; /* for the fingerprint */
  /* Contexts keyed once and reused: keying a context per value (the key
   * schedule, fetching the algorithms) was most of the cost of sealing an
   * imported customer. Not thread-safe, like the rest of the core. */
  EVP_CIPHER_CTX *enc, *dec;
  EVP_MAC_CTX *mac;
};

enum { SEAL_VERSION = 1, NONCE = 12, TAG = 16 };

static void to_hex(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

/* Nonces come from a pool of random bytes refilled 4 KiB at a time: one
 * RAND_bytes call per value (a provider lookup each) cost more than the
 * encryption. The pool is dropped in a forked child, which must not reuse
 * its parent's nonces. Nonces need to be unique, not secret. */
static int next_nonce(unsigned char out[NONCE]) {
  static unsigned char pool[4096];
  static size_t left;
  static pid_t owner;
  pid_t me = getpid();
  if (left < NONCE || owner != me) {
    if (RAND_bytes(pool, sizeof pool) != 1) return -1;
    left = sizeof pool;
    owner = me;
  }
  memcpy(out, pool + sizeof pool - left, NONCE);
  OPENSSL_cleanse(pool + sizeof pool - left, NONCE);
  left -= NONCE;
  return 0;
}

static void derive(const unsigned char master[32], const char *label, unsigned char out[32]) {
  unsigned int n = 0;
  HMAC(EVP_sha256(), master, 32, (const unsigned char *)label, strlen(label), out, &n);
}

int rp_datakey_from_bytes(const unsigned char key[32], rp_datakey **out, rp_err *err) {
  *out = NULL;
  rp_datakey *k = OPENSSL_secure_zalloc(sizeof *k);
  if (!k) k = calloc(1, sizeof *k);
  if (!k) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  derive(key, "rapport seal v1", k->seal);
  derive(key, "rapport blind index v1", k->blind);
  derive(key, "rapport key check v1", k->check);
  EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", (char *)"SHA256", 0),
                         OSSL_PARAM_construct_end()};
  k->enc = EVP_CIPHER_CTX_new();
  k->dec = EVP_CIPHER_CTX_new();
  k->mac = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
  EVP_MAC_free(hmac);
  int ok = k->enc && k->dec && k->mac &&
           EVP_EncryptInit_ex(k->enc, EVP_aes_256_gcm(), NULL, k->seal, NULL) == 1 &&
           EVP_CIPHER_CTX_ctrl(k->enc, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) == 1 &&
           EVP_DecryptInit_ex(k->dec, EVP_aes_256_gcm(), NULL, k->seal, NULL) == 1 &&
           EVP_CIPHER_CTX_ctrl(k->dec, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) == 1 &&
           EVP_MAC_init(k->mac, k->blind, sizeof k->blind, params) == 1;
  if (!ok) {
    rp_datakey_free(k);
    return rp_err_set(err, RP_EIO, NULL, "cannot set up AES-256-GCM and HMAC-SHA-256");
  }
  *out = k;
  return RP_OK;
}

void rp_datakey_free(rp_datakey *k) {
  if (!k) return;
  EVP_CIPHER_CTX_free(k->enc);
  EVP_CIPHER_CTX_free(k->dec);
  EVP_MAC_CTX_free(k->mac);
  OPENSSL_cleanse(k, sizeof *k);
  if (CRYPTO_secure_allocated(k)) OPENSSL_secure_free(k);
  else free(k);
}

void rp_datakey_fingerprint(const rp_datakey *k, char out[17]) {
  to_hex(k->check, 8, out);
}

uint32_t rp_datakey_id(const rp_datakey *k) {
  return (uint32_t)k->check[0] << 24 | (uint32_t)k->check[1] << 16 | (uint32_t)k->check[2] << 8 |
         k->check[3];
}

int rp_datakey_sealed_id(const unsigned char *sealed, size_t sealed_len, uint32_t *id) {
  if (sealed_len < RP_SEAL_OVERHEAD || sealed[0] != SEAL_VERSION) return -1;
  *id = (uint32_t)sealed[1] << 24 | (uint32_t)sealed[2] << 16 | (uint32_t)sealed[3] << 8 |
        sealed[4];
  return 0;
}

int rp_datakey_seal(const rp_datakey *k, const char *context, const void *plain, size_t n,
                    unsigned char **sealed, size_t *sealed_len, rp_err *err) {
  *sealed = NULL;
  unsigned char *out = malloc(n + RP_SEAL_OVERHEAD);
  if (!out) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  out[0] = SEAL_VERSION;
  uint32_t id = rp_datakey_id(k);
  out[1] = (unsigned char)(id >> 24);
  out[2] = (unsigned char)(id >> 16);
  out[3] = (unsigned char)(id >> 8);
  out[4] = (unsigned char)id;
  unsigned char *nonce = out + 5, *ct = out + 5 + NONCE, *tag = ct + n;
  EVP_CIPHER_CTX *ctx = k->enc;
  /* A fresh nonce on the keyed context (key NULL: kept). */
  int len = 0, ok = next_nonce(nonce) == 0 &&
                    EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
                    EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)context,
                                      (int)strlen(context)) == 1 &&
                    EVP_EncryptUpdate(ctx, ct, &len, plain, (int)n) == 1 &&
                    EVP_EncryptFinal_ex(ctx, ct + len, &len) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, tag) == 1;
  if (!ok) {
    free(out);
    return rp_err_set(err, RP_EIO, NULL, "encryption failed");
  }
  *sealed = out;
  *sealed_len = n + RP_SEAL_OVERHEAD;
  return RP_OK;
}

int rp_datakey_open(const rp_datakey *k, const char *context, const unsigned char *sealed,
                    size_t sealed_len, char **plain, size_t *n, rp_err *err) {
  *plain = NULL;
  if (sealed_len < RP_SEAL_OVERHEAD || sealed[0] != SEAL_VERSION)
    return rp_err_set(err, RP_EINVAL, NULL, "not a sealed value");
  size_t clen = sealed_len - RP_SEAL_OVERHEAD;
  const unsigned char *nonce = sealed + 5, *ct = sealed + 5 + NONCE, *tag = ct + clen;
  char *out = malloc(clen + 1);
  if (!out) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  EVP_CIPHER_CTX *ctx = k->dec;
  int len = 0, fin = 0;
  int ok = EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) == 1 &&
           EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *)context,
                             (int)strlen(context)) == 1 &&
           EVP_DecryptUpdate(ctx, (unsigned char *)out, &len, ct, (int)clen) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, (void *)tag) == 1 &&
           EVP_DecryptFinal_ex(ctx, (unsigned char *)out + len, &fin) == 1;
  if (!ok) {
    OPENSSL_cleanse(out, clen + 1);
    free(out);
    return rp_err_set(err, RP_EINVAL, NULL,
                      "a sealed value does not open: altered, or sealed under another key");
  }
  out[clen] = '\0';
  *plain = out;
  *n = clen;
  return RP_OK;
}

void rp_datakey_blind(const rp_datakey *k, const char *context, const char *value,
                      char out[RP_BLIND_HEX + 1]) {
  unsigned char mac[32];
  size_t n = 0;
  /* The context, a NUL (so context and value cannot run into each other),
   * the value; EVP_MAC_init with a NULL key starts over with the same key. */
  int ok = EVP_MAC_init(k->mac, NULL, 0, NULL) == 1 &&
           EVP_MAC_update(k->mac, (const unsigned char *)context, strlen(context) + 1) == 1 &&
           EVP_MAC_update(k->mac, (const unsigned char *)value, strlen(value)) == 1 &&
           EVP_MAC_final(k->mac, mac, &n, sizeof mac) == 1 && n == sizeof mac;
  if (!ok) { /* never matches a real index (64 hex digits) nor leaks the value */
    memset(out, '-', RP_BLIND_HEX);
    out[RP_BLIND_HEX] = '\0';
    return;
  }
  to_hex(mac, sizeof mac, out);
}
