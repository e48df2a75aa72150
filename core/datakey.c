/* datakey: see datakey.h. */
#include "datakey.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rp_datakey {
  unsigned char seal[32];  /* AES-256-GCM key */
  unsigned char blind[32]; /* HMAC key of blind indexes */
  unsigned char check[32]; /* for the fingerprint */
};

enum { SEAL_VERSION = 1, NONCE = 12, TAG = 16 };

static void derive(const unsigned char master[32], const char *label, unsigned char out[32]) {
  unsigned int n = 0;
  HMAC(EVP_sha256(), master, 32, (const unsigned char *)label, strlen(label), out, &n);
}

int rp_datakey_from_bytes(const unsigned char key[32], rp_datakey **out, rp_err *err) {
  rp_datakey *k = OPENSSL_secure_zalloc(sizeof *k);
  if (!k) k = calloc(1, sizeof *k);
  if (!k) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  derive(key, "rapport seal v1", k->seal);
  derive(key, "rapport blind index v1", k->blind);
  derive(key, "rapport key check v1", k->check);
  *out = k;
  return RP_OK;
}

void rp_datakey_free(rp_datakey *k) {
  if (!k) return;
  OPENSSL_cleanse(k, sizeof *k);
  if (CRYPTO_secure_allocated(k)) OPENSSL_secure_free(k);
  else free(k);
}

void rp_datakey_fingerprint(const rp_datakey *k, char out[17]) {
  for (int i = 0; i < 8; i++) snprintf(out + 2 * i, 3, "%02x", k->check[i]);
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
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int len = 0, ok = RAND_bytes(nonce, NONCE) == 1 && ctx &&
                    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) == 1 &&
                    EVP_EncryptInit_ex(ctx, NULL, NULL, k->seal, nonce) == 1 &&
                    EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)context,
                                      (int)strlen(context)) == 1 &&
                    EVP_EncryptUpdate(ctx, ct, &len, plain, (int)n) == 1 &&
                    EVP_EncryptFinal_ex(ctx, ct + len, &len) == 1 &&
                    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG, tag) == 1;
  EVP_CIPHER_CTX_free(ctx);
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
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int len = 0, fin = 0;
  int ok = ctx && EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, NONCE, NULL) == 1 &&
           EVP_DecryptInit_ex(ctx, NULL, NULL, k->seal, nonce) == 1 &&
           EVP_DecryptUpdate(ctx, NULL, &len, (const unsigned char *)context,
                             (int)strlen(context)) == 1 &&
           EVP_DecryptUpdate(ctx, (unsigned char *)out, &len, ct, (int)clen) == 1 &&
           EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG, (void *)tag) == 1 &&
           EVP_DecryptFinal_ex(ctx, (unsigned char *)out + len, &fin) == 1;
  EVP_CIPHER_CTX_free(ctx);
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
  unsigned int n = 0;
  size_t cl = strlen(context), vl = strlen(value);
  unsigned char *msg = malloc(cl + 1 + vl);
  if (!msg) {
    memset(out, '0', RP_BLIND_HEX);
    out[RP_BLIND_HEX] = '\0';
    return;
  }
  memcpy(msg, context, cl);
  msg[cl] = 0; /* context and value cannot run into each other */
  memcpy(msg + cl + 1, value, vl);
  HMAC(EVP_sha256(), k->blind, 32, msg, cl + 1 + vl, mac, &n);
  free(msg);
  for (int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", mac[i]);
}
