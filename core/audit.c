/* audit: see audit.h. The hashed content of a record is its fields joined
 * by a 0x1f separator, in a fixed order, prefixed by the previous hash (32
 * zero bytes for the first record). */
#include "audit.h"

#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "sha256.h"

/* Returns 0, or -1 when out of memory or libcrypto fails (out zeroed). */
static int record_hash(const unsigned char prev[32], int64_t id, int64_t at, const char *actor,
                        const char *action, int64_t customer_id, const char *fields,
                        const char *origin, unsigned char out[32]) {
  const char *parts[] = {actor ? actor : "", action ? action : "", fields ? fields : "",
                         origin ? origin : ""};
  size_t lens[4], total = 32 + 96;
  for (int i = 0; i < 4; i++) total += (lens[i] = strlen(parts[i])) + 1;
  /* One buffer and one digest: a record of a read is a few hundred bytes,
   * and a digest context per record cost an allocation and ten updates. */
  unsigned char small[1024];
  unsigned char *buf = total <= sizeof small ? small : malloc(total);
  if (!buf) {
    memset(out, 0, 32);
    return -1;
  }
  memcpy(buf, prev, 32);
  size_t n = 32 + (size_t)snprintf((char *)buf + 32, 96, "%" PRId64 "\x1f%" PRId64 "\x1f%" PRId64
                                   "\x1f", id, at, customer_id);
  for (int i = 0; i < 4; i++) {
    memcpy(buf + n, parts[i], lens[i]);
    n += lens[i];
    buf[n++] = 0x1f;
  }
  int rc = rp_sha256(buf, n, out);
  if (buf != small) free(buf);
  return rc;
}

int rp_audit_record(rp_store *s, const char *actor, const char *action, int64_t customer_id,
                    const cJSON *fields, const char *origin, rp_err *err) {
  char *text = fields ? cJSON_PrintUnformatted(fields) : NULL;
  if (fields && !text) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  int rc = rp_audit_append(s, actor, action, customer_id, text, origin, err);
  cJSON_free(text);
  return rc;
}

int rp_audit_append(rp_store *s, const char *actor, const char *action, int64_t customer_id,
                    const char *fields_text, const char *origin, rp_err *err) {
  /* Inside a caller's transaction (which holds the write lock: the outermost
   * is BEGIN IMMEDIATE) the one INSERT below is atomic on its own; alone,
   * the head's read and the insert need a transaction of their own. */
  int own_tx = rp_store_tx_depth(s) == 0;
  int rc = own_tx ? rp_store_tx_begin(s, err) : RP_OK;
  if (rc) return rc;
  /* The chain's head: read inside the transaction, so that no other writer
   * slips a record in between. */
  unsigned char prev[32] = {0};
  int64_t id = 1;
  sqlite3_stmt *st;
  if ((rc = rp_store_prepare(s, "SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1", &st,
                             err)) == RP_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) {
      id = sqlite3_column_int64(st, 0) + 1;
      if (sqlite3_column_bytes(st, 1) == 32) memcpy(prev, sqlite3_column_blob(st, 1), 32);
    }
    rp_store_done(st);
  }
  int64_t at = rp_clock_now_ms();
  unsigned char hash[32];
  if (rc == RP_OK &&
      record_hash(prev, id, at, actor, action, customer_id, fields_text, origin, hash) != 0)
    rc = rp_err_set(err, RP_ENOMEM, NULL, "hashing the audit record: out of memory");
  if (rc == RP_OK &&
      (rc = rp_store_prepare(s, "INSERT INTO audit_log(id, at, actor, action, customer_id, "
                                "fields, origin, hash) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                             &st, err)) == RP_OK) {
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, at);
    sqlite3_bind_text(st, 3, actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, action, -1, SQLITE_STATIC);
    if (customer_id) sqlite3_bind_int64(st, 5, customer_id);
    if (fields_text) sqlite3_bind_text(st, 6, fields_text, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, origin, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 8, hash, 32, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "audit record", err);
    rp_store_done(st);
  }
  if (rc == RP_OK && id % RP_AUDIT_INDEX_EVERY == 0) {
    /* The record stands without its index entry (queries read the log past
     * audit_indexed.through), so an indexing that fails only lags. */
    rp_err ierr;
    rp_err_clear(&ierr);
    if (rp_audit_index(s, &ierr))
      rp_log(RP_LOG_WARN, "audit", "indexing the audit log by customer: %s", ierr.msg);
  }
  if (own_tx && rc == RP_OK) rc = rp_store_tx_commit(s, err);
  if (own_tx && rc) rp_store_tx_rollback(s);
  return rc;
}

int rp_audit_index(rp_store *s, rp_err *err) {
  /* A savepoint of its own: the two statements go together or not at all,
   * whatever the caller's transaction does next. */
  int rc = rp_store_tx_begin(s, err);
  if (rc) return rc;
  static const char *const steps[] = {
      "INSERT INTO audit_customers(bucket, customer_id, audit_id) "
      "SELECT id >> " RP_AUDIT_BUCKET_SHIFT ", customer_id, id FROM audit_log "
      "WHERE id > (SELECT through FROM audit_indexed) AND customer_id IS NOT NULL "
      "ORDER BY 1, 2, 3",
      "UPDATE audit_indexed SET through = (SELECT coalesce(max(id), 0) FROM audit_log)"};
  for (int i = 0; rc == RP_OK && i < 2; i++) {
    sqlite3_stmt *st;
    if ((rc = rp_store_prepare(s, steps[i], &st, err))) break;
    if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "audit index", err);
    rp_store_done(st);
  }
  if (rc == RP_OK) return rp_store_tx_commit(s, err);
  rp_store_tx_rollback(s);
  return rc;
}

/* The index by customer against the log, up to audit_indexed.through:
 * every record about a customer has its entry, and every entry is a
 * record's. */
static int verify_index(rp_store *s, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(
      s,
      "SELECT (SELECT count(*) FROM audit_log a WHERE a.id <= (SELECT through FROM audit_indexed) "
      "AND a.customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM audit_customers x WHERE "
      "x.bucket = a.id >> " RP_AUDIT_BUCKET_SHIFT " AND x.customer_id = a.customer_id AND x.audit_id = a.id)), "
      "(SELECT count(*) FROM audit_customers x LEFT JOIN audit_log a ON a.id = x.audit_id "
      "WHERE a.id IS NULL OR a.customer_id IS NOT x.customer_id OR x.bucket != a.id >> " RP_AUDIT_BUCKET_SHIFT ")",
      &st, err);
  if (rc) return rc;
  int64_t missing = -1, foreign = -1;
  if (sqlite3_step(st) == SQLITE_ROW) {
    missing = sqlite3_column_int64(st, 0);
    foreign = sqlite3_column_int64(st, 1);
  } else {
    rc = rp_store_error(s, "audit index check", err);
  }
  rp_store_done(st);
  if (rc == RP_OK && (missing != 0 || foreign != 0))
    rc = rp_err_set(err, RP_ECONFLICT, "audit_customers",
                    "the audit log's index by customer does not match the log: %" PRId64
                    " record(s) missing from it, %" PRId64 " entr(ies) not the log's",
                    missing, foreign);
  return rc;
}

int rp_audit_verify(rp_store *s, int64_t *checked, rp_err *err) {
  *checked = 0;
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, "SELECT id, at, actor, action, coalesce(customer_id, 0), fields, "
                               "origin, hash FROM audit_log ORDER BY id", &st, err);
  if (rc) return rc;
  unsigned char prev[32] = {0};
  int64_t expect_id = 0;
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t id = sqlite3_column_int64(st, 0);
    unsigned char hash[32];
    if (record_hash(prev, id, sqlite3_column_int64(st, 1),
                    (const char *)sqlite3_column_text(st, 2),
                    (const char *)sqlite3_column_text(st, 3), sqlite3_column_int64(st, 4),
                    (const char *)sqlite3_column_text(st, 5),
                    (const char *)sqlite3_column_text(st, 6), hash) != 0) {
      rc = rp_err_set(err, RP_ENOMEM, NULL, "hashing audit record %" PRId64 ": out of memory", id);
      break;
    }
    int ok = sqlite3_column_bytes(st, 7) == 32 &&
             memcmp(sqlite3_column_blob(st, 7), hash, 32) == 0 &&
             (expect_id == 0 || id == expect_id);
    if (!ok) {
      rp_store_done(st);
      return rp_err_set(err, RP_ECONFLICT, "audit_log",
                        "audit record %" PRId64 " does not follow the chain: it, or a record "
                        "before it, was edited, inserted or deleted (%" PRId64 " verified)",
                        id, *checked);
    }
    memcpy(prev, hash, 32);
    expect_id = id + 1;
    (*checked)++;
  }
  if (rc == RP_OK && step != SQLITE_DONE) rc = rp_store_error(s, "audit verify", err);
  rp_store_done(st);
  return rc ? rc : verify_index(s, err);
}

int rp_audit_list(rp_store *s, int64_t customer_id, int limit, cJSON **out, rp_err *err) {
  *out = NULL;
  sqlite3_stmt *st;
  int rc = customer_id == 0
               ? rp_store_prepare(s, "SELECT id, at, actor, action, customer_id, fields, "
                                     "origin FROM audit_log ORDER BY id DESC LIMIT ?2", &st, err)
               : rp_store_prepare(s, "SELECT id, at, actor, action, customer_id, fields, "
                                     "origin FROM audit_log WHERE id IN ("
                                     RP_AUDIT_IDS_OF_CUSTOMER ") ORDER BY id DESC LIMIT ?2",
                                  &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, customer_id);
  sqlite3_bind_int(st, 2, limit > 0 ? limit : 100);
  cJSON *arr = cJSON_CreateArray();
  while (sqlite3_step(st) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
    cJSON_AddNumberToObject(o, "at", (double)sqlite3_column_int64(st, 1));
    cJSON_AddStringToObject(o, "actor", (const char *)sqlite3_column_text(st, 2));
    cJSON_AddStringToObject(o, "action", (const char *)sqlite3_column_text(st, 3));
    if (sqlite3_column_type(st, 4) == SQLITE_NULL) cJSON_AddNullToObject(o, "customer_id");
    else cJSON_AddNumberToObject(o, "customer_id", (double)sqlite3_column_int64(st, 4));
    cJSON *fields = sqlite3_column_type(st, 5) == SQLITE_NULL
                        ? NULL
                        : cJSON_Parse((const char *)sqlite3_column_text(st, 5));
    if (fields) cJSON_AddItemToObject(o, "fields", fields);
    else cJSON_AddNullToObject(o, "fields");
    cJSON_AddStringToObject(o, "origin", (const char *)sqlite3_column_text(st, 6));
    cJSON_AddItemToArray(arr, o);
  }
  rp_store_done(st);
  *out = arr;
  return RP_OK;
}

void rp_audit_local_actor(const char *prefix, char *buf, size_t size) {
  const char *user = getenv("USER");
  struct passwd *pw = (!user || !*user) ? getpwuid(getuid()) : NULL;
  if (pw) user = pw->pw_name;
  snprintf(buf, size, "%s:%s", prefix, user && *user ? user : "unknown");
}
