/* sealing: see sealing.h. */
#include "sealing.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vault.h"

char *rp_sealing_key_path(const rp_config *cfg, const char *db_path) {
  if (cfg && cfg->data_key_file) return strdup(cfg->data_key_file);
  size_t n = strlen(db_path);
  char *p = malloc(n + 5);
  if (p) snprintf(p, n + 5, "%s.key", db_path);
  return p;
}

/* The PII attribute names in force, comma-joined: stored with the database
 * so that a change of the list is noticed at the next open. */
static char *pii_signature(const rp_vault *v) {
  size_t n, len = 1;
  char *const *names = rp_vault_pii_names(v, &n);
  for (size_t i = 0; i < n; i++) len += strlen(names[i]) + 1;
  char *sig = malloc(len);
  if (!sig) return NULL;
  sig[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    if (i) strcat(sig, ",");
    strcat(sig, names[i]);
  }
  return sig;
}

int rp_sealing_attach(rp_store *s, const rp_config *cfg, const char *db_path, int read_only,
                      rp_err *err) {
  rp_vault *v = NULL;
  int rc;
  if (!db_path || !*db_path || strcmp(db_path, ":memory:") == 0) {
    if ((rc = rp_vault_ephemeral(&v, err))) return rc;
    if (cfg && cfg->pii_attributes_set &&
        (rc = rp_vault_set_pii(v, cfg->pii_attributes, cfg->n_pii_attributes, err))) {
      rp_vault_free(v);
      return rc;
    }
    rp_store_set_vault(s, v);
    return RP_OK;
  }
  char *fp = rp_store_setting_get(s, "data_key_fingerprint");
  char *path = rp_sealing_key_path(cfg, db_path);
  if (!path) {
    free(fp);
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  /* A key is created only for a database that never had one: a missing key
   * for sealed data must stop us, not be replaced by a new one. */
  rc = rp_vault_load(path, !read_only && !fp, &v, err);
  if (rc == RP_ENOTFOUND && read_only && !fp) {
    rc = RP_OK; /* nothing sealed, nothing to open */
  } else if (rc) {
    if (fp) rp_err_prefix(err, "the customer data of %s is sealed: ", db_path);
  } else if (fp && !rp_vault_has_key(v, fp)) {
    char have[17];
    rp_vault_fingerprint(v, have);
    rc = rp_err_set(err, RP_EINVAL, path,
                    "%s: the data key (fingerprint %s) is not the key %s was sealed with "
                    "(fingerprint %s)", rp_vault_from_env(v) ? "RAPPORT_DATA_KEY" : path, have,
                    db_path, fp);
  } else if (cfg && cfg->pii_attributes_set) {
    rc = rp_vault_set_pii(v, cfg->pii_attributes, cfg->n_pii_attributes, err);
  }
  if (rc == RP_OK && v) {
    rp_store_set_vault(s, v);
    v = NULL;
    if (!read_only) {
      /* First use of a key on this database (perhaps one written before
       * encryption), or a changed PII list: bring the values in line. */
      char *sig = pii_signature(rp_store_vault(s));
      char *old = rp_store_setting_get(s, "pii_attributes");
      if (!sig) rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
      else if (!fp || !old || strcmp(old, sig) != 0)
        rc = rp_sealing_reseal(s, 0, NULL, NULL, NULL, err);
      free(sig);
      free(old);
    }
  }
  rp_vault_free(v);
  free(path);
  free(fp);
  return rc;
}

/* ---- resealing -------------------------------------------------------------- */

typedef struct row {
  int64_t customer_id;
  char *a;              /* identity kind, or attribute name */
  char *b;              /* identity value column, or attribute type */
  unsigned char *value; /* the sealed blob, or the value as text */
  int len;
  int is_blob;
} row;

static void free_rows(row *rows, int n) {
  for (int i = 0; i < n; i++) {
    free(rows[i].a);
    free(rows[i].b);
    if (rows[i].value) OPENSSL_cleanse(rows[i].value, (size_t)rows[i].len);
    free(rows[i].value);
  }
}

static char *dup_col(sqlite3_stmt *st, int col) {
  const unsigned char *t = sqlite3_column_text(st, col);
  return strdup(t ? (const char *)t : "");
}

/* Copies the current row's value column into r. */
static int copy_value(sqlite3_stmt *st, int col, row *r) {
  r->is_blob = sqlite3_column_type(st, col) == SQLITE_BLOB;
  const void *p = r->is_blob ? sqlite3_column_blob(st, col) : sqlite3_column_text(st, col);
  r->len = sqlite3_column_bytes(st, col);
  r->value = malloc((size_t)r->len + 1);
  if (!r->value) return -1;
  if (r->len) memcpy(r->value, p, (size_t)r->len);
  r->value[r->len] = '\0';
  return 0;
}

/* Reads up to batch rows of sql (which binds ?1, ?2 as the keyset cursor and
 * ?3 as the limit; the cursor is an identity (kind, value) or an attribute
 * (customer_id, name)). */
static int read_batch(rp_store *s, const char *sql, int identities, const row *after, int batch,
                      row *rows, int *n, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, sql, &st, err);
  if (rc) return rc;
  if (identities) {
    sqlite3_bind_text(st, 1, after ? after->a : "", -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, after ? after->b : "", -1, SQLITE_TRANSIENT);
  } else {
    sqlite3_bind_int64(st, 1, after ? after->customer_id : INT64_MIN);
    sqlite3_bind_text(st, 2, after ? after->a : "", -1, SQLITE_TRANSIENT);
  }
  sqlite3_bind_int(st, 3, batch);
  *n = 0;
  int r;
  while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    row *x = &rows[(*n)++];
    memset(x, 0, sizeof *x);
    if (identities) {
      x->a = dup_col(st, 0);
      x->b = dup_col(st, 1);
    } else {
      x->customer_id = sqlite3_column_int64(st, 0);
      x->a = dup_col(st, 1);
      x->b = dup_col(st, 2);
    }
    if (!x->a || !x->b || copy_value(st, identities ? 2 : 3, x) != 0) {
      rp_store_done(st);
      return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    }
  }
  if (r != SQLITE_DONE) rc = rp_store_error(s, "read for resealing", err);
  rp_store_done(st);
  return rc;
}

/* One identity row: re-index and re-seal it under the current key unless it
 * already is. Identity rows without a sealed value hold it in clear. */
static int reseal_identity(rp_store *s, rp_vault *v, const row *r, rp_reseal_stats *stats,
                           rp_err *err) {
  char *plain = NULL;
  size_t n = 0;
  int rc;
  if (r->is_blob) {
    if ((rc = rp_vault_open(v, r->a, r->value, (size_t)r->len, &plain, &n, err))) return rc;
  } else if (!(plain = strdup((const char *)r->value))) {
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  char blinds[RP_VAULT_MAX_KEYS][RP_BLIND_HEX + 1];
  rp_vault_blinds(v, r->a, plain, blinds);
  unsigned char *blob = NULL;
  size_t blob_len = 0;
  sqlite3_stmt *st;
  if (r->is_blob && rp_vault_is_current(v, r->value, (size_t)r->len) &&
      strcmp(r->b, blinds[0]) == 0) {
    rc = RP_OK; /* already as it should be */
    goto out;
  }
  if ((rc = rp_vault_seal(v, r->a, plain, strlen(plain), &blob, &blob_len, err))) goto out;
  if ((rc = rp_store_prepare(s, "UPDATE OR IGNORE customer_identities SET value = ?1, "
                                "sealed = ?2 WHERE kind = ?3 AND value = ?4", &st, err)))
    goto out;
  sqlite3_bind_text(st, 1, blinds[0], -1, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, blob, (int)blob_len, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, r->a, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, r->b, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "reseal identity", err);
  int changed = sqlite3_changes(rp_store_db(s));
  rp_store_done(st);
  if (rc == RP_OK && changed == 0) {
    /* Ignored: the identity is already indexed under the current key (a
     * writer added it again mid-rotation); that row stands, this one goes. */
    if ((rc = rp_store_prepare(s, "DELETE FROM customer_identities WHERE kind = ?1 AND "
                                  "value = ?2", &st, err)))
      goto out;
    sqlite3_bind_text(st, 1, r->a, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->b, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "reseal identity", err);
    rp_store_done(st);
  }
  if (rc == RP_OK) stats->sealed++;
out:
  OPENSSL_cleanse(plain, n ? n : strlen(plain));
  free(plain);
  free(blob);
  return rc;
}

/* One attribute row: sealed when declared PII (under the current key),
 * in clear otherwise. */
static int reseal_attribute(rp_store *s, rp_vault *v, const row *r, rp_reseal_stats *stats,
                            rp_err *err) {
  int pii = rp_vault_pii_attribute(v, r->a);
  if (pii && r->is_blob && rp_vault_is_current(v, r->value, (size_t)r->len)) return RP_OK;
  if (!pii && !r->is_blob) return RP_OK;
  char ctx[160];
  snprintf(ctx, sizeof ctx, "attribute:%s", r->a); /* as profile.c seals them */
  char *plain = NULL;
  size_t n = 0;
  int rc;
  if (r->is_blob) {
    if ((rc = rp_vault_open(v, ctx, r->value, (size_t)r->len, &plain, &n, err))) return rc;
  } else if (!(plain = strdup((const char *)r->value))) {
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  unsigned char *blob = NULL;
  size_t blob_len = 0;
  sqlite3_stmt *st = NULL;
  if (pii) rc = rp_vault_seal(v, ctx, plain, strlen(plain), &blob, &blob_len, err);
  if (rc == RP_OK)
    rc = rp_store_prepare(s, "UPDATE customer_attributes SET value = ?1 WHERE customer_id = ?2 "
                             "AND name = ?3", &st, err);
  if (rc == RP_OK) {
    if (blob) sqlite3_bind_blob(st, 1, blob, (int)blob_len, SQLITE_STATIC);
    else if (strcmp(r->b, "text") == 0) sqlite3_bind_text(st, 1, plain, -1, SQLITE_STATIC);
    else sqlite3_bind_int64(st, 1, strtoll(plain, NULL, 10));
    sqlite3_bind_int64(st, 2, r->customer_id);
    sqlite3_bind_text(st, 3, r->a, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "reseal attribute", err);
    rp_store_done(st);
  }
  if (rc == RP_OK) {
    if (pii) stats->sealed++;
    else stats->unsealed++;
  }
  OPENSSL_cleanse(plain, strlen(plain));
  free(plain);
  free(blob);
  return rc;
}

/* Walks one table in keyset order, one transaction per batch. */
static int reseal_table(rp_store *s, rp_vault *v, int identities, int batch,
                        rp_reseal_progress progress, void *ctx, rp_reseal_stats *stats,
                        rp_err *err) {
  /* Only email and phone identities are sealed (rp_vault_sealed_kind). */
  static const char *const sql[2] = {
      "SELECT customer_id, name, type, value FROM customer_attributes WHERE "
      "(customer_id, name) > (?1, ?2) AND value IS NOT NULL ORDER BY customer_id, name LIMIT ?3",
      "SELECT kind, value, coalesce(sealed, value) FROM customer_identities WHERE "
      "kind IN ('email', 'phone') AND (kind, value) > (?1, ?2) ORDER BY kind, value LIMIT ?3",
  };
  row *rows = calloc((size_t)batch, sizeof *rows);
  row last;
  memset(&last, 0, sizeof last);
  int have_last = 0, n = 0, rc = rows ? RP_OK : rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  while (rc == RP_OK) {
    if ((rc = rp_store_tx_begin(s, err))) break;
    rc = read_batch(s, sql[identities], identities, have_last ? &last : NULL, batch, rows, &n, err);
    for (int i = 0; rc == RP_OK && i < n; i++) {
      stats->scanned++;
      rc = identities ? reseal_identity(s, v, &rows[i], stats, err)
                      : reseal_attribute(s, v, &rows[i], stats, err);
    }
    if (rc == RP_OK) rc = rp_store_tx_commit(s, err);
    else rp_store_tx_rollback(s);
    if (rc == RP_OK && n > 0) {
      /* The cursor is the last row as read (its old key), copied out. */
      free(last.a);
      free(last.b);
      last.customer_id = rows[n - 1].customer_id;
      last.a = strdup(rows[n - 1].a);
      last.b = strdup(rows[n - 1].b);
      have_last = 1;
      if (!last.a || !last.b) rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    }
    free_rows(rows, n);
    int full = n == batch;
    n = 0;
    if (rc == RP_OK && progress) progress(ctx, stats);
    if (rc || !full) break;
  }
  free(last.a);
  free(last.b);
  free(rows);
  return rc;
}

int rp_sealing_reseal(rp_store *s, int batch, rp_reseal_progress progress, void *ctx,
                      rp_reseal_stats *stats, rp_err *err) {
  rp_vault *v = rp_store_vault(s);
  if (!v) return rp_err_set(err, RP_EINVAL, NULL, "no data key is loaded");
  if (rp_store_tx_depth(s) != 0)
    return rp_err_set(err, RP_EINVAL, NULL, "resealing runs outside any transaction");
  rp_reseal_stats local;
  if (!stats) stats = &local;
  memset(stats, 0, sizeof *stats);
  if (batch <= 0) batch = 1000;
  rp_vault_refresh(v);
  /* Rewritten pages must not keep the old clear text in free space. */
  int secure_before = 0;
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, "PRAGMA secure_delete", &st, err);
  if (rc) return rc;
  if (sqlite3_step(st) == SQLITE_ROW) secure_before = sqlite3_column_int(st, 0);
  rp_store_done(st);
  rc = rp_store_exec(s, "PRAGMA secure_delete = ON", err);
  if (rc == RP_OK) rc = reseal_table(s, v, 1, batch, progress, ctx, stats, err);
  if (rc == RP_OK) rc = reseal_table(s, v, 0, batch, progress, ctx, stats, err);
  char fp[17];
  rp_vault_fingerprint(v, fp);
  char *sig = pii_signature(v);
  if (rc == RP_OK && !sig) rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  if (rc == RP_OK && (rc = rp_store_tx_begin(s, err)) == RP_OK) {
    rc = rp_store_setting_set(s, "data_key_fingerprint", fp, err);
    if (rc == RP_OK) rc = rp_store_setting_set(s, "pii_attributes", sig, err);
    if (rc == RP_OK) rc = rp_store_tx_commit(s, err);
    else rp_store_tx_rollback(s);
  }
  free(sig);
  if (rc == RP_OK && (stats->sealed || stats->unsealed))
    rc = rp_store_exec(s, "PRAGMA wal_checkpoint(TRUNCATE)", err);
  if (!secure_before) rp_store_exec(s, "PRAGMA secure_delete = OFF", NULL);
  return rc;
}
