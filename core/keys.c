/* keys: see keys.h. Secrets come from OpenSSL's RAND_bytes, hashes from its
 * SHA-256, comparison from CRYPTO_memcmp. */
#include "keys.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h> /* SHA256_DIGEST_LENGTH */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "sha256.h"

#define SECRET_BYTES 32

static const struct {
  const char *name;
  uint32_t perms;
} roles[] = {
    {"admin", RP_API_EVENTS_WRITE | RP_API_CUSTOMERS_READ | RP_API_PII_READ |
                  RP_API_CUSTOMERS_WRITE | RP_API_ADMIN},
    {"operator",
     RP_API_EVENTS_WRITE | RP_API_CUSTOMERS_READ | RP_API_PII_READ | RP_API_CUSTOMERS_WRITE},
    /* aggregates and segments, no PII */
    {"analyst", RP_API_CUSTOMERS_READ},
    /* customers, to help them: read with contact details, change consent */
    {"support", RP_API_CUSTOMERS_READ | RP_API_PII_READ | RP_API_CUSTOMERS_WRITE},
    /* only the routes of its plugin */
    {"partner", 0},
};

int rp_role_valid(const char *role) {
  for (size_t i = 0; role && i < sizeof roles / sizeof roles[0]; i++)
    if (strcmp(roles[i].name, role) == 0) return 1;
  return 0;
}

uint32_t rp_role_permissions(const char *role) {
  for (size_t i = 0; role && i < sizeof roles / sizeof roles[0]; i++)
    if (strcmp(roles[i].name, role) == 0) return roles[i].perms;
  return 0;
}

const char *rp_api_permission_name(uint32_t bit) {
  switch (bit) {
  case RP_API_EVENTS_WRITE: return "events:write";
  case RP_API_CUSTOMERS_READ: return "customers:read";
  case RP_API_PII_READ: return "pii:read";
  case RP_API_CUSTOMERS_WRITE: return "customers:write";
  case RP_API_ADMIN: return "admin";
  default: return "?";
  }
}

static void hex(const unsigned char *in, size_t n, char *out) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = '\0';
}

int rp_keys_create(rp_store *s, const char *role, const char *name, const char *plugin,
                   int64_t *id, char key[RP_KEY_TEXT], rp_err *err) {
  if (!rp_role_valid(role))
    return rp_err_set(err, RP_EINVAL, "role",
                      "unknown role \"%s\" (admin, operator, analyst, support or partner)",
                      role ? role : "");
  if (strcmp(role, "partner") == 0 && (!plugin || !plugin[0]))
    return rp_err_set(err, RP_EINVAL, "plugin", "a partner key names its plugin");
  if (strcmp(role, "partner") != 0 && plugin)
    return rp_err_set(err, RP_EINVAL, "plugin", "only a partner key names a plugin");
  if (name && strlen(name) > 128)
    return rp_err_set(err, RP_EINVAL, "name", "a key name has at most 128 characters");
  unsigned char secret[SECRET_BYTES], digest[SHA256_DIGEST_LENGTH];
  if (RAND_bytes(secret, sizeof secret) != 1)
    return rp_err_set(err, RP_EIO, NULL, "no randomness available for a key");
  char secret_hex[2 * SECRET_BYTES + 1];
  hex(secret, sizeof secret, secret_hex);
  OPENSSL_cleanse(secret, sizeof secret);
  if (rp_sha256(secret_hex, strlen(secret_hex), digest)) {
    OPENSSL_cleanse(secret_hex, sizeof secret_hex);
    return rp_err_set(err, RP_EIO, NULL, "libcrypto could not hash the key");
  }

  int rc = rp_store_tx_begin(s, err);
  if (rc) return rc;
  sqlite3_stmt *st;
  rc = rp_store_prepare(s, "INSERT INTO api_keys(name, role, plugin, secret_sha256, created_at) "
                           "VALUES(coalesce(?1, ''), ?2, ?3, ?4, ?5)", &st, err);
  if (rc == RP_OK) {
    if (name) sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, role, -1, SQLITE_STATIC);
    if (plugin) sqlite3_bind_text(st, 3, plugin, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, digest, sizeof digest, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, rp_clock_now_ms());
    if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "create key", err);
    rp_store_done(st);
  }
  int64_t new_id = sqlite3_last_insert_rowid(rp_store_db(s));
  if (rc == RP_OK && !name) {
    char auto_name[32];
    snprintf(auto_name, sizeof auto_name, "key %" PRId64, new_id);
    if ((rc = rp_store_prepare(s, "UPDATE api_keys SET name = ?2 WHERE id = ?1", &st, err)) ==
        RP_OK) {
      sqlite3_bind_int64(st, 1, new_id);
      sqlite3_bind_text(st, 2, auto_name, -1, SQLITE_TRANSIENT);
      if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "name key", err);
      rp_store_done(st);
    }
  }
  if (rc == RP_OK) rc = rp_store_tx_commit(s, err);
  if (rc) {
    rp_store_tx_rollback(s);
    OPENSSL_cleanse(secret_hex, sizeof secret_hex);
    return rc;
  }
  snprintf(key, RP_KEY_TEXT, "rpk_%" PRId64 "_%s", new_id, secret_hex);
  OPENSSL_cleanse(secret_hex, sizeof secret_hex);
  if (id) *id = new_id;
  return RP_OK;
}

int rp_keys_list(rp_store *s, cJSON **out, rp_err *err) {
  *out = NULL;
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, "SELECT id, name, role, plugin, created_at, last_used_at, "
                               "revoked_at FROM api_keys ORDER BY id", &st, err);
  if (rc) return rc;
  cJSON *arr = cJSON_CreateArray();
  static const char *const cols[] = {"id", "name", "role", "plugin", "created_at",
                                     "last_used_at", "revoked_at"};
  while (sqlite3_step(st) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < 7; i++) {
      switch (sqlite3_column_type(st, i)) {
      case SQLITE_NULL: cJSON_AddNullToObject(o, cols[i]); break;
      case SQLITE_INTEGER:
        cJSON_AddNumberToObject(o, cols[i], (double)sqlite3_column_int64(st, i));
        break;
      default:
        cJSON_AddStringToObject(o, cols[i], (const char *)sqlite3_column_text(st, i));
      }
    }
    cJSON_AddItemToArray(arr, o);
  }
  rp_store_done(st);
  *out = arr;
  return RP_OK;
}

/* Keys revoked by this process: a remembered key verified before the last
 * one is checked again (another process's revocation moves data_version). */
static uint64_t revocations;

int rp_keys_revoke(rp_store *s, int64_t id, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND "
                               "revoked_at IS NULL", &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, rp_clock_now_ms());
  if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "revoke key", err);
  else if (sqlite3_changes(rp_store_db(s)) == 0)
    rc = rp_err_set(err, RP_ENOTFOUND, "id", "no active key %" PRId64, id);
  else revocations++;
  rp_store_done(st);
  return rc;
}

/* Notes that key kid was used, to the minute: one small write a minute per
 * key at most. */
static void note_use(rp_store *s, int64_t kid, int64_t now) {
  sqlite3_stmt *st;
  if (rp_store_prepare(s, "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1 AND "
                          "(last_used_at IS NULL OR last_used_at < ?2 - 60000)", &st, NULL) ==
      RP_OK) {
    sqlite3_bind_int64(st, 1, kid);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_step(st); /* best effort: a busy database must not refuse the request */
    rp_store_done(st);
  }
}

/* The remembered entry that proves key kid with digest, or NULL. */
static struct rp_key_seen *seen_match(rp_keys_seen *seen, rp_store *s, int64_t kid,
                                      const unsigned char digest[32]) {
  if (!seen) return NULL;
  int64_t dv = rp_store_data_version(s);
  for (size_t i = 0; i < RP_KEYS_SEEN; i++) {
    struct rp_key_seen *e = &seen->at[i];
    if (e->id == kid && dv >= 0 && e->data_version == dv && e->revocations == revocations &&
        CRYPTO_memcmp(e->digest, digest, 32) == 0)
      return e;
  }
  return NULL;
}

static void seen_remember(rp_keys_seen *seen, rp_store *s, int64_t kid,
                          const unsigned char digest[32], const char *role, int64_t now) {
  if (!seen) return;
  struct rp_key_seen *e = NULL;
  for (size_t i = 0; i < RP_KEYS_SEEN && !e; i++)
    if (seen->at[i].id == kid) e = &seen->at[i];
  if (!e) e = &seen->at[seen->next++ % RP_KEYS_SEEN];
  e->id = kid;
  e->data_version = rp_store_data_version(s);
  e->revocations = revocations;
  e->used_at = now;
  memcpy(e->digest, digest, 32);
  snprintf(e->role, sizeof e->role, "%s", role);
}

int rp_keys_verify(rp_store *s, rp_keys_seen *seen, const char *key, int64_t *id, char *role,
                   size_t role_size, rp_err *err) {
  const char *bad = "invalid or revoked API key";
  if (!key || strncmp(key, "rpk_", 4) != 0) return rp_err_set(err, RP_EDENIED, NULL, "%s", bad);
  char *end;
  long long kid = strtoll(key + 4, &end, 10);
  if (kid <= 0 || *end != '_' || strlen(end + 1) != 2 * SECRET_BYTES)
    return rp_err_set(err, RP_EDENIED, NULL, "%s", bad);
  unsigned char digest[SHA256_DIGEST_LENGTH];
  if (rp_sha256(end + 1, 2 * SECRET_BYTES, digest))
    return rp_err_set(err, RP_EIO, NULL, "libcrypto could not hash the key");
  int64_t now = rp_clock_now_ms();
  struct rp_key_seen *known = seen_match(seen, s, kid, digest);
  if (known) {
    snprintf(role, role_size, "%s", known->role);
    *id = kid;
    if (now - known->used_at >= 60000) {
      note_use(s, kid, now);
      known->used_at = now;
    }
    return RP_OK;
  }
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, "SELECT secret_sha256, role, revoked_at IS NULL FROM api_keys "
                               "WHERE id = ?1", &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, kid);
  int ok = 0;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == (int)sizeof digest) {
    const void *stored = sqlite3_column_blob(st, 0);
    ok = CRYPTO_memcmp(stored, digest, sizeof digest) == 0 && sqlite3_column_int(st, 2);
    if (ok) snprintf(role, role_size, "%s", (const char *)sqlite3_column_text(st, 1));
  }
  rp_store_done(st);
  if (!ok) return rp_err_set(err, RP_EDENIED, NULL, "%s", bad);
  *id = kid;
  note_use(s, kid, now);
  seen_remember(seen, s, kid, digest, role, now);
  return RP_OK;
}
