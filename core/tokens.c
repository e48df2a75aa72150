/* tokens: see tokens.h. HMAC from OpenSSL; base64 from its EVP encoder, made
 * URL-safe ('-' and '_', no padding). */
#include "tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

enum { SECRET_BYTES = 32, MAX_TOKEN = 8192 };

/* The server secret, created on first use. */
static int secret_of(rp_store *s, unsigned char secret[SECRET_BYTES], rp_err *err) {
  char *hex = rp_store_setting_get(s, "token_secret");
  if (!hex) {
    unsigned char fresh[SECRET_BYTES];
    if (RAND_bytes(fresh, sizeof fresh) != 1)
      return rp_err_set(err, RP_EIO, NULL, "no randomness available for the token secret");
    char text[2 * SECRET_BYTES + 1];
    for (int i = 0; i < SECRET_BYTES; i++) snprintf(text + 2 * i, 3, "%02x", fresh[i]);
    OPENSSL_cleanse(fresh, sizeof fresh);
    int rc = rp_store_setting_set(s, "token_secret", text, err);
    OPENSSL_cleanse(text, sizeof text);
    if (rc) return rc;
    hex = rp_store_setting_get(s, "token_secret");
    if (!hex) return rp_err_set(err, RP_EDB, NULL, "the token secret could not be stored");
  }
  int ok = strlen(hex) == 2 * SECRET_BYTES;
  for (int i = 0; ok && i < SECRET_BYTES; i++) {
    unsigned v;
    ok = sscanf(hex + 2 * i, "%2x", &v) == 1;
    secret[i] = (unsigned char)v;
  }
  OPENSSL_cleanse(hex, strlen(hex));
  free(hex);
  return ok ? RP_OK : rp_err_set(err, RP_EDB, NULL, "the stored token secret is malformed");
}

static void sign(const unsigned char secret[SECRET_BYTES], const char *text, size_t len,
                 char hex[65]) {
  unsigned char mac[32];
  unsigned int n = 0;
  HMAC(EVP_sha256(), secret, SECRET_BYTES, (const unsigned char *)text, len, mac, &n);
  for (unsigned i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", mac[i]);
}

int rp_token_issue(rp_store *s, const char *plugin, const cJSON *payload, int64_t ttl_ms,
                   char **out, rp_err *err) {
  *out = NULL;
  if (ttl_ms < 1000 || ttl_ms > INT64_C(366) * 86400000)
    return rp_err_set(err, RP_EINVAL, "ttl", "a token lives from 1 second to 1 year");
  unsigned char secret[SECRET_BYTES];
  int rc = secret_of(s, secret, err);
  if (rc) return rc;
  cJSON *body = cJSON_CreateObject();
  cJSON_AddStringToObject(body, "p", plugin);
  cJSON_AddItemToObject(body, "d", payload ? cJSON_Duplicate(payload, 1) : cJSON_CreateNull());
  cJSON_AddNumberToObject(body, "exp", (double)(rp_clock_now_ms() + ttl_ms));
  char *json = cJSON_PrintUnformatted(body);
  cJSON_Delete(body);
  size_t jl = json ? strlen(json) : 0;
  char *tok = json ? malloc(4 * (jl / 3 + 1) + 1 + 64 + 2) : NULL;
  if (!tok || jl > MAX_TOKEN / 2) {
    cJSON_free(json);
    free(tok);
    OPENSSL_cleanse(secret, sizeof secret);
    return rp_err_set(err, jl > MAX_TOKEN / 2 ? RP_ELIMIT : RP_ENOMEM, "payload",
                      jl > MAX_TOKEN / 2 ? "the token's payload is too large" : "out of memory");
  }
  int n = EVP_EncodeBlock((unsigned char *)tok, (const unsigned char *)json, (int)jl);
  cJSON_free(json);
  while (n > 0 && tok[n - 1] == '=') n--;
  for (int i = 0; i < n; i++) tok[i] = tok[i] == '+' ? '-' : tok[i] == '/' ? '_' : tok[i];
  tok[n] = '.';
  sign(secret, tok, (size_t)n, tok + n + 1);
  OPENSSL_cleanse(secret, sizeof secret);
  *out = tok;
  return RP_OK;
}

int rp_token_verify(rp_store *s, const char *plugin, const char *token, cJSON **payload,
                    rp_err *err) {
  *payload = NULL;
  const char *bad = "invalid or expired token";
  const char *dot = token ? strrchr(token, '.') : NULL;
  size_t n = dot ? (size_t)(dot - token) : 0;
  if (!dot || n == 0 || n > MAX_TOKEN || strlen(dot + 1) != 64)
    return rp_err_set(err, RP_EDENIED, "token", "%s", bad);
  unsigned char secret[SECRET_BYTES];
  int rc = secret_of(s, secret, err);
  if (rc) return rc;
  char mac[65];
  sign(secret, token, n, mac);
  OPENSSL_cleanse(secret, sizeof secret);
  if (CRYPTO_memcmp(mac, dot + 1, 64) != 0) return rp_err_set(err, RP_EDENIED, "token", "%s", bad);
  /* Signed by us: decode. */
  char *b64 = malloc(n + 4);
  unsigned char *json = malloc(n + 4);
  if (!b64 || !json) {
    free(b64);
    free(json);
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  for (size_t i = 0; i < n; i++) b64[i] = token[i] == '-' ? '+' : token[i] == '_' ? '/' : token[i];
  size_t padded = n;
  while (padded % 4) b64[padded++] = '=';
  int jl = EVP_DecodeBlock(json, (const unsigned char *)b64, (int)padded);
  free(b64);
  cJSON *body = jl > 0 ? cJSON_ParseWithLength((const char *)json, (size_t)jl) : NULL;
  free(json);
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "p");
  const cJSON *exp = cJSON_GetObjectItemCaseSensitive(body, "exp");
  if (!cJSON_IsString(p) || strcmp(p->valuestring, plugin) != 0 || !cJSON_IsNumber(exp) ||
      exp->valuedouble < (double)rp_clock_now_ms()) {
    cJSON_Delete(body);
    return rp_err_set(err, RP_EDENIED, "token", "%s", bad);
  }
  *payload = cJSON_DetachItemFromObjectCaseSensitive(body, "d");
  cJSON_Delete(body);
  if (!*payload) *payload = cJSON_CreateNull();
  return RP_OK;
}
