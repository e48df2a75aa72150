/* profile: customers, identities, typed attributes, consent and merges.
 *
 * Inputs are parsed and validated completely into plain structs first; only
 * then does a nested transaction touch the database, so that a bad field
 * never leaves half a customer behind. */
#include "profile.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "normalize.h"

/* ---- parsed input ------------------------------------------------------------ */

enum { T_TEXT, T_INTEGER, T_BOOLEAN, T_TIMESTAMP, T_MONEY };
static const char *const type_names[] = {"text", "integer", "boolean", "timestamp", "money"};

typedef struct attr_in {
  const char *name;  /* borrowed from the input */
  int del;           /* JSON null: delete */
  int type;
  int64_t num;       /* integer, boolean, timestamp ms, money minor units */
  const char *text;  /* text, borrowed */
  char currency[4];
} attr_in;

typedef struct ident_in {
  char kind[RP_NORM_MAX_KIND + 1];
  char value[RP_NORM_BUF];
  int64_t owner; /* resolved customer, 0 when unknown */
} ident_in;

typedef struct consent_in {
  const char *channel;
  int granted;
  const char *source;
  int64_t at;
  const char *version; /* of the text agreed to, or NULL */
} consent_in;

static const char *const channels[] = {"email", "sms", "push", "phone", NULL};

static int valid_channel(const char *c) {
  for (int i = 0; channels[i]; i++)
    if (strcmp(channels[i], c) == 0) return 1;
  return 0;
}

/* ---- small SQL helpers ------------------------------------------------------ */

/* Runs a prepared statement that returns no row. */
static int step_done(rp_store *s, sqlite3_stmt *st, const char *what, rp_err *err) {
  int rc = sqlite3_step(st) == SQLITE_DONE ? RP_OK : rp_store_error(s, what, err);
  rp_store_done(st);
  return rc;
}

static int touch_customer(rp_store *s, int64_t id, int64_t now, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, "UPDATE customers SET updated_at = max(updated_at, ?2) WHERE id = ?1",
                            &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_int64(st, 2, now);
  return step_done(s, st, "update customer", err);
}

int rp_profile_canonical(rp_store *s, int64_t id, int64_t *survivor, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, "SELECT merged_into FROM customers WHERE id = ?1", &st, err);
  if (rc) return rc;
  int64_t cur = id;
  /* Merges flatten their chains, so one or two hops are the norm; the bound
   * only guards against a corrupted cycle. */
  for (int hop = 0; hop < 64; hop++) {
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, cur);
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE) {
      rp_store_done(st);
      return rp_err_set(err, RP_ENOTFOUND, "id", "no customer with id %" PRId64, id);
    }
    if (r != SQLITE_ROW) {
      rc = rp_store_error(s, "find customer", err);
      rp_store_done(st);
      return rc;
    }
    if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
      rp_store_done(st);
      *survivor = cur;
      return RP_OK;
    }
    cur = sqlite3_column_int64(st, 0);
  }
  rp_store_done(st);
  return rp_err_set(err, RP_EDB, "id", "customer %" PRId64 ": merge chain too long", id);
}

/* ---- sealed values ------------------------------------------------------------ */

/* The candidates for the value column of an identity: for a sealed kind, its
 * blind index under each key of the vault (the current key first, so col[0]
 * is what a write stores); else the value itself. */
typedef struct ident_cols {
  int n;
  const char *col[RP_VAULT_MAX_KEYS];
  char blind[RP_VAULT_MAX_KEYS][RP_BLIND_HEX + 1];
} ident_cols;

static void ident_cols_of(rp_store *s, const char *kind, const char *value, ident_cols *c) {
  rp_vault *v = rp_store_vault(s);
  if (v && rp_vault_sealed_kind(kind)) {
    c->n = rp_vault_blinds(v, kind, value, c->blind);
    for (int i = 0; i < c->n; i++) c->col[i] = c->blind[i];
  } else {
    c->n = 1;
    c->col[0] = value;
  }
}

/* The sealed form of an identity value, or NULL when its kind is not sealed
 * (or the store has no vault). *blob is the caller's to free. */
static int seal_identity(rp_store *s, const char *kind, const char *value, unsigned char **blob,
                         size_t *len, rp_err *err) {
  *blob = NULL;
  *len = 0;
  rp_vault *v = rp_store_vault(s);
  if (!v || !rp_vault_sealed_kind(kind)) return RP_OK;
  return rp_vault_seal(v, kind, value, strlen(value), blob, len, err);
}

/* The associated data a PII attribute is sealed under. */
static void attr_context(const char *name, char *out, size_t size) {
  snprintf(out, size, "attribute:%s", name);
}

/* Opens a sealed column value; *plain is the caller's to free. */
static int open_sealed(rp_store *s, const char *context, const void *blob, int len, char **plain,
                       rp_err *err) {
  rp_vault *v = rp_store_vault(s);
  size_t n;
  if (!v)
    return rp_err_set(err, RP_EINVAL, context,
                      "%s: the value is sealed and no data key is loaded", context);
  return rp_vault_open(v, context, blob, (size_t)len, plain, &n, err);
}

/* Work that writes sealed values looks for a rotated key file first, once,
 * so that it blinds and seals with one key throughout. */
static void refresh_vault(rp_store *s) {
  rp_vault *v = rp_store_vault(s);
  if (v) rp_vault_refresh(v);
}

/* The customer holding an already normalised identity, followed to its
 * survivor; *id = 0 when nobody holds it. */
static int find_identity(rp_store *s, const char *kind, const char *value, int64_t *id,
                         rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(
      s, "SELECT customer_id FROM customer_identities WHERE kind = ?1 AND value = ?2", &st, err);
  if (rc) return rc;
  ident_cols cols;
  ident_cols_of(s, kind, value, &cols);
  *id = 0;
  int r = SQLITE_DONE;
  /* During a key rotation a value may still be indexed under the old key. */
  for (int i = 0; i < cols.n && r == SQLITE_DONE; i++) {
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, cols.col[i], -1, SQLITE_STATIC);
    r = sqlite3_step(st);
  }
  if (r == SQLITE_ROW) {
    int64_t owner = sqlite3_column_int64(st, 0);
    rp_store_done(st);
    rc = rp_profile_canonical(s, owner, id, err);
    /* An identity whose customer row vanished counts as unknown. */
    if (rc == RP_ENOTFOUND) {
      *id = 0;
      rc = RP_OK;
    }
    return rc;
  }
  if (r != SQLITE_DONE) rc = rp_store_error(s, "find identity", err);
  rp_store_done(st);
  return rc;
}

/* ---- parsing ---------------------------------------------------------------- */

/* The string form of an identity value: a string, or a whole number. */
static int ident_text(const cJSON *v, const char *path, char *buf, size_t size, rp_err *err) {
  if (cJSON_IsString(v)) {
    snprintf(buf, size, "%s", v->valuestring);
    if (strlen(v->valuestring) >= size)
      return rp_err_set(err, RP_EINVAL, path, "%s: value is longer than %d bytes", path,
                        RP_NORM_MAX_VALUE);
    return RP_OK;
  }
  if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
      fabs(v->valuedouble) < 9007199254740992.0) {
    snprintf(buf, size, "%" PRId64, (int64_t)v->valuedouble);
    return RP_OK;
  }
  return rp_err_set(err, RP_EINVAL, path, "%s: must be a string", path);
}

/* Normalises one identity value and appends it to list unless it is a
 * placeholder or already there. path names the field in messages. */
static int add_identity(const rp_config *cfg, const char *kind, const cJSON *v, const char *path,
                        ident_in *list, int *n, rp_err *err) {
  if (cJSON_IsNull(v)) return RP_OK;
  if (cJSON_IsArray(v)) {
    const cJSON *item;
    int i = 0;
    cJSON_ArrayForEach(item, v) {
      char sub[128];
      snprintf(sub, sizeof sub, "%s[%d]", path, i++);
      if (cJSON_IsArray(item)) return rp_err_set(err, RP_EINVAL, sub, "%s: must be a string", sub);
      int rc = add_identity(cfg, kind, item, sub, list, n, err);
      if (rc) return rc;
    }
    return RP_OK;
  }
  char raw[RP_NORM_BUF + 1];
  int rc = ident_text(v, path, raw, sizeof raw, err);
  if (rc) return rc;
  if (rp_norm_kind(kind, err) != RP_OK) return rp_err_prefix(err, "%s: ", path);
  char out[RP_NORM_BUF];
  int placeholder = 0;
  rc = rp_norm_identity(cfg, kind, raw, out, sizeof out, &placeholder, err);
  if (rc) {
    /* The message starts with the kind ("email: ..."); give the full path. */
    size_t kl = strlen(kind);
    if (err && strncmp(err->msg, kind, kl) == 0 && err->msg[kl] == ':') {
      char tail[sizeof err->msg];
      snprintf(tail, sizeof tail, "%s", err->msg + kl);
      snprintf(err->msg, sizeof err->msg, "%s%s", path, tail);
    } else {
      rp_err_prefix(err, "%s: ", path);
    }
    if (err) snprintf(err->field, sizeof err->field, "%.90s", path);
    return rc;
  }
  if (placeholder) return RP_OK;
  for (int i = 0; i < *n; i++)
    if (strcmp(list[i].kind, kind) == 0 && strcmp(list[i].value, out) == 0) return RP_OK;
  if (*n >= RP_PROFILE_MAX_IDENTITIES)
    return rp_err_set(err, RP_ELIMIT, path, "%s: more than %d identities", path,
                      RP_PROFILE_MAX_IDENTITIES);
  snprintf(list[*n].kind, sizeof list[*n].kind, "%s", kind);
  snprintf(list[*n].value, sizeof list[*n].value, "%s", out);
  list[*n].owner = 0;
  (*n)++;
  return RP_OK;
}

static int whole_number(const cJSON *v, int64_t *out) {
  if (!cJSON_IsNumber(v)) return 0;
  double d = v->valuedouble;
  if (d != floor(d) || fabs(d) >= 9007199254740992.0) return 0;
  *out = (int64_t)d;
  return 1;
}

/* Parses a decimal integer in text (trimmed). */
static int parse_int_text(const char *text, int64_t *out) {
  while (isspace((unsigned char)*text)) text++;
  if (!*text) return 0;
  errno = 0;
  char *end;
  long long v = strtoll(text, &end, 10);
  while (isspace((unsigned char)*end)) end++;
  if (*end || errno) return 0;
  *out = v;
  return 1;
}

/* Converts value v into attribute a of type a->type. path names the field. */
static int convert_typed(const cJSON *v, const char *currency, attr_in *a, const char *path,
                         rp_err *err) {
  switch (a->type) {
  case T_TEXT:
    if (!cJSON_IsString(v)) return rp_err_set(err, RP_EINVAL, path, "%s: a text value must be a string", path);
    if (strlen(v->valuestring) > RP_PROFILE_MAX_TEXT)
      return rp_err_set(err, RP_ELIMIT, path, "%s: text longer than %d bytes", path,
                        RP_PROFILE_MAX_TEXT);
    a->text = v->valuestring;
    return RP_OK;
  case T_INTEGER:
    if (whole_number(v, &a->num)) return RP_OK;
    if (cJSON_IsString(v) && parse_int_text(v->valuestring, &a->num)) return RP_OK;
    return rp_err_set(err, RP_EINVAL, path, "%s: not a whole number", path);
  case T_BOOLEAN:
    if (cJSON_IsBool(v)) return a->num = cJSON_IsTrue(v), RP_OK;
    if (whole_number(v, &a->num) && (a->num == 0 || a->num == 1)) return RP_OK;
    if (cJSON_IsString(v)) {
      int b;
      int rc = rp_norm_bool(v->valuestring, path, &b, err);
      if (rc == RP_OK) a->num = b;
      return rc;
    }
    return rp_err_set(err, RP_EINVAL, path, "%s: not a boolean", path);
  case T_TIMESTAMP:
    if (whole_number(v, &a->num)) return RP_OK;
    if (cJSON_IsString(v) && rp_clock_parse(v->valuestring, &a->num) == 0) return RP_OK;
    return rp_err_set(err, RP_EINVAL, path,
                      "%s: not a timestamp (ISO 8601 such as 2024-03-01T10:00:00Z, or epoch ms)",
                      path);
  case T_MONEY: {
    char buf[64];
    const char *text;
    if (cJSON_IsString(v)) {
      text = v->valuestring;
    } else if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
      /* A number is major units; %.15g gives back what was written. */
      snprintf(buf, sizeof buf, "%.15g", v->valuedouble);
      text = buf;
    } else {
      return rp_err_set(err, RP_EINVAL, path, "%s: a money value is \"12.50 EUR\" or a number", path);
    }
    return rp_norm_money(text, currency, path, &a->num, a->currency, err);
  }
  }
  return rp_err_set(err, RP_EINVAL, path, "%s: unknown type", path);
}

/* Parses one attribute value (any of the documented forms). */
static int parse_attr(const char *name, const cJSON *v, attr_in *a, rp_err *err) {
  char path[128];
  snprintf(path, sizeof path, "attributes.%s", name);
  memset(a, 0, sizeof *a);
  a->name = name;
  if (rp_norm_attr_name(name, err) != RP_OK) {
    if (err) snprintf(err->field, sizeof err->field, "%.90s", path);
    return rp_err_prefix(err, "attributes: ");
  }
  if (cJSON_IsNull(v)) {
    a->del = 1;
    return RP_OK;
  }
  if (cJSON_IsString(v)) {
    a->type = T_TEXT;
    return convert_typed(v, NULL, a, path, err);
  }
  if (cJSON_IsBool(v)) {
    a->type = T_BOOLEAN;
    a->num = cJSON_IsTrue(v);
    return RP_OK;
  }
  if (cJSON_IsNumber(v)) {
    a->type = T_INTEGER;
    if (whole_number(v, &a->num)) return RP_OK;
    return rp_err_set(err, RP_EINVAL, path,
                      "%s: %g is not a whole number; amounts are money ({\"type\": \"money\", "
                      "\"value\": \"12.50 EUR\"}) and other decimals go in text", path,
                      v->valuedouble);
  }
  if (!cJSON_IsObject(v))
    return rp_err_set(err, RP_EINVAL, path, "%s: must be a string, number, boolean, null or "
                      "a typed object", path);
  const cJSON *type = NULL, *value = NULL, *currency = NULL, *amount = NULL, *item;
  cJSON_ArrayForEach(item, v) {
    if (strcmp(item->string, "type") == 0) type = item;
    else if (strcmp(item->string, "value") == 0) value = item;
    else if (strcmp(item->string, "currency") == 0) currency = item;
    else if (strcmp(item->string, "amount") == 0) amount = item;
    else
      return rp_err_set(err, RP_EINVAL, path, "%s: unknown field \"%s\" (type, value, amount, "
                        "currency)", path, item->string);
  }
  if (currency && !cJSON_IsString(currency))
    return rp_err_set(err, RP_EINVAL, path, "%s.currency: must be a string", path);
  if (type) {
    if (!cJSON_IsString(type))
      return rp_err_set(err, RP_EINVAL, path, "%s.type: must be a string", path);
    a->type = -1;
    for (int t = 0; t <= T_MONEY; t++)
      if (strcmp(type->valuestring, type_names[t]) == 0) a->type = t;
    if (a->type < 0)
      return rp_err_set(err, RP_EINVAL, path, "%s.type: \"%s\" is not one of text, integer, "
                        "boolean, timestamp, money", path, type->valuestring);
  } else if (amount) {
    a->type = T_MONEY;
  } else {
    return rp_err_set(err, RP_EINVAL, path, "%s: a typed value needs \"type\"", path);
  }
  if (a->type != T_MONEY && (currency || amount))
    return rp_err_set(err, RP_EINVAL, path, "%s: currency and amount belong to money only", path);
  if (a->type == T_MONEY && amount) {
    if (value)
      return rp_err_set(err, RP_EINVAL, path, "%s: give either amount (minor units) or value", path);
    if (!currency)
      return rp_err_set(err, RP_EINVAL, path, "%s: amount needs a currency", path);
    if (!whole_number(amount, &a->num))
      return rp_err_set(err, RP_EINVAL, path, "%s.amount: must be a whole number of minor units",
                        path);
    char up[8];
    snprintf(up, sizeof up, "%s", currency->valuestring);
    for (char *c = up; *c; c++) *c = (char)toupper((unsigned char)*c);
    int exp;
    int rc = rp_norm_currency_exponent(up, &exp, err);
    if (rc) return rp_err_prefix(err, "%s: ", path);
    memcpy(a->currency, up, 4);
    return RP_OK;
  }
  if (!value) return rp_err_set(err, RP_EINVAL, path, "%s: a typed value needs \"value\"", path);
  if (cJSON_IsNull(value)) {
    a->del = 1;
    return RP_OK;
  }
  return convert_typed(value, currency ? currency->valuestring : NULL, a, path, err);
}

static int parse_attrs(const cJSON *attrs, attr_in *list, int *n, rp_err *err) {
  *n = 0;
  if (!attrs || cJSON_IsNull(attrs)) return RP_OK;
  if (!cJSON_IsObject(attrs))
    return rp_err_set(err, RP_EINVAL, "attributes", "attributes: must be an object");
  const cJSON *item;
  cJSON_ArrayForEach(item, attrs) {
    if (*n >= RP_PROFILE_MAX_ATTRS)
      return rp_err_set(err, RP_ELIMIT, "attributes", "attributes: more than %d in one call",
                        RP_PROFILE_MAX_ATTRS);
    for (int i = 0; i < *n; i++)
      if (strcmp(list[i].name, item->string) == 0)
        return rp_err_set(err, RP_EINVAL, "attributes", "attributes.%s: given twice",
                          item->string);
    int rc = parse_attr(item->string, item, &list[*n], err);
    if (rc) return rc;
    (*n)++;
  }
  return RP_OK;
}

static int parse_consent(const cJSON *consent, const char *source, consent_in *list, int *n,
                         rp_err *err) {
  *n = 0;
  if (!consent || cJSON_IsNull(consent)) return RP_OK;
  if (!cJSON_IsObject(consent))
    return rp_err_set(err, RP_EINVAL, "consent", "consent: must be an object of channel to state");
  const cJSON *item;
  cJSON_ArrayForEach(item, consent) {
    char path[96];
    snprintf(path, sizeof path, "consent.%.60s", item->string);
    if (!valid_channel(item->string))
      return rp_err_set(err, RP_EINVAL, path, "%s: unknown channel (email, sms, push, phone)", path);
    if (*n >= 4) return rp_err_set(err, RP_EINVAL, path, "%s: given twice", path);
    for (int i = 0; i < *n; i++)
      if (strcmp(list[i].channel, item->string) == 0)
        return rp_err_set(err, RP_EINVAL, path, "%s: given twice", path);
    consent_in *c = &list[*n];
    c->channel = item->string;
    c->source = source;
    c->at = 0;
    c->version = NULL;
    if (cJSON_IsBool(item)) {
      c->granted = cJSON_IsTrue(item);
    } else if (cJSON_IsObject(item)) {
      const cJSON *f;
      int have_granted = 0;
      cJSON_ArrayForEach(f, item) {
        if (strcmp(f->string, "granted") == 0) {
          if (cJSON_IsBool(f)) c->granted = cJSON_IsTrue(f);
          else if (cJSON_IsString(f) && rp_norm_bool(f->valuestring, path, &c->granted, err) == RP_OK) {}
          else return rp_err_set(err, RP_EINVAL, path, "%s.granted: must be true or false", path);
          have_granted = 1;
        } else if (strcmp(f->string, "source") == 0) {
          if (!cJSON_IsString(f) || !*f->valuestring || strlen(f->valuestring) > 128)
            return rp_err_set(err, RP_EINVAL, path, "%s.source: must be a string of 1 to 128 bytes", path);
          c->source = f->valuestring;
        } else if (strcmp(f->string, "version") == 0) {
          if (!cJSON_IsString(f) || !*f->valuestring || strlen(f->valuestring) > 64)
            return rp_err_set(err, RP_EINVAL, path,
                              "%s.version: must be a string of 1 to 64 bytes (the text's version)",
                              path);
          c->version = f->valuestring;
        } else if (strcmp(f->string, "at") == 0) {
          if (!whole_number(f, &c->at) &&
              !(cJSON_IsString(f) && rp_clock_parse(f->valuestring, &c->at) == 0))
            return rp_err_set(err, RP_EINVAL, path, "%s.at: must be epoch ms or ISO 8601", path);
        } else {
          return rp_err_set(err, RP_EINVAL, path, "%s: unknown field \"%s\" (granted, source, at, version)",
                            path, f->string);
        }
      }
      if (!have_granted)
        return rp_err_set(err, RP_EINVAL, path, "%s: \"granted\" is required", path);
    } else {
      return rp_err_set(err, RP_EINVAL, path, "%s: must be true, false or {\"granted\": ...}", path);
    }
    (*n)++;
  }
  return RP_OK;
}

/* ---- writing ------------------------------------------------------------------ */

/* Applies parsed attributes to customer id; *changed is set when a stored
 * value changed. */
/* The attributes of a customer created by this call, up to ATTR_ROWS per
 * multi-row INSERT: one statement instead of one per attribute, which is
 * most of the cost of importing new customers. Deletions (JSON null) have
 * nothing to delete. */
#define ATTR_ROWS 16

/* Writes "head (pre?F, ..., ?F+width-1post), (...) tail" for k rows, row r
 * numbering its parameters from first + r * width: the multi-row statements
 * that write a new customer in a few statements instead of one per value. */
/* The sealed form of a PII attribute (its text, or its number in decimal),
 * or NULL when the attribute is not PII or the store has no vault. */
static int seal_attr(rp_store *s, const attr_in *a, unsigned char **blob, size_t *len,
                     rp_err *err) {
  *blob = NULL;
  *len = 0;
  rp_vault *v = rp_store_vault(s);
  if (!v || !rp_vault_pii_attribute(v, a->name)) return RP_OK;
  char num[24], ctx[160];
  const char *plain = a->text;
  if (a->type != T_TEXT) {
    snprintf(num, sizeof num, "%" PRId64, a->num);
    plain = num;
  }
  attr_context(a->name, ctx, sizeof ctx);
  return rp_vault_seal(v, ctx, plain, strlen(plain), blob, len, err);
}

/* The text of a stored attribute value: opened when sealed, else the column
 * as text. *out is the caller's to free (NULL for an SQL NULL). */
static int attr_plain(rp_store *s, sqlite3_stmt *st, int col, const char *name, char **out,
                      rp_err *err) {
  *out = NULL;
  int t = sqlite3_column_type(st, col);
  if (t == SQLITE_NULL) return RP_OK;
  if (t == SQLITE_BLOB) {
    char ctx[160];
    attr_context(name, ctx, sizeof ctx);
    return open_sealed(s, ctx, sqlite3_column_blob(st, col), sqlite3_column_bytes(st, col), out,
                       err);
  }
  const char *text = (const char *)sqlite3_column_text(st, col);
  if (!(*out = strdup(text ? text : ""))) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  return RP_OK;
}

/* Whether a PII attribute already holds exactly a (a sealed value never
 * compares equal in SQL: each has its own nonce). */
static int sealed_attr_same(rp_store *s, int64_t id, const attr_in *a, int *same, rp_err *err) {
  *same = 0;
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, "SELECT type, value, currency FROM customer_attributes "
                               "WHERE customer_id = ?1 AND name = ?2", &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
  int r = sqlite3_step(st);
  if (r == SQLITE_ROW) {
    const char *type = (const char *)sqlite3_column_text(st, 0);
    const char *cur = (const char *)sqlite3_column_text(st, 2);
    char *plain = NULL;
    if (strcmp(type, type_names[a->type]) == 0 &&
        (a->type == T_MONEY ? cur && strcmp(cur, a->currency) == 0 : cur == NULL) &&
        (rc = attr_plain(s, st, 1, a->name, &plain, err)) == RP_OK && plain) {
      char num[24];
      if (a->type != T_TEXT) snprintf(num, sizeof num, "%" PRId64, a->num);
      *same = strcmp(plain, a->type == T_TEXT ? a->text : num) == 0;
    }
    free(plain);
  } else if (r != SQLITE_DONE) {
    rc = rp_store_error(s, "read attribute", err);
  }
  rp_store_done(st);
  return rc;
}

static void multi_row_sql(char *out, size_t cap, const char *head, const char *pre, int first,
                          int width, const char *post, int k, const char *tail) {
  size_t len = (size_t)snprintf(out, cap, "%s", head);
  for (int r = 0; r < k && len < cap; r++) {
    len += (size_t)snprintf(out + len, cap - len, "%s(%s", r ? ", " : " ", pre);
    for (int c = 0; c < width && len < cap; c++)
      len += (size_t)snprintf(out + len, cap - len, "%s?%d", c ? ", " : "", first + r * width + c);
    if (len < cap) len += (size_t)snprintf(out + len, cap - len, "%s)", post);
  }
  if (len < cap) snprintf(out + len, cap - len, "%s", tail);
}

/* The statements are pure functions of k, built once each (the core is
 * single-threaded): rebuilding them per row cost 6% of an import. */
#define SQL_CAP (400 + ATTR_ROWS * 48)

/* k attribute rows: ?1 customer, ?2 now; row r binds ?(3+4r) name, type,
 * value, currency. The same name twice in one call: the last one wins. */
static const char *fresh_attrs_sql(int k) {
  static char sql[ATTR_ROWS + 1][SQL_CAP];
  if (!sql[k][0])
    multi_row_sql(sql[k], SQL_CAP,
                  "INSERT INTO customer_attributes(customer_id, name, type, value, currency, "
                  "updated_at) VALUES", "?1, ", 3, 4, ", ?2", k,
                  " ON CONFLICT(customer_id, name) DO UPDATE SET type = excluded.type, "
                  "value = excluded.value, currency = excluded.currency");
  return sql[k];
}

static int insert_fresh_attrs(rp_store *s, int64_t id, const attr_in *list, int n, int64_t now,
                              int *changed, rp_err *err) {
  const attr_in *rows[ATTR_ROWS];
  int i = 0;
  while (i < n) {
    int k = 0;
    for (; i < n && k < ATTR_ROWS; i++)
      if (!list[i].del) rows[k++] = &list[i];
    if (k == 0) break;
    unsigned char *blobs[ATTR_ROWS] = {0};
    size_t lens[ATTR_ROWS];
    int rc = RP_OK;
    for (int r = 0; rc == RP_OK && r < k; r++) rc = seal_attr(s, rows[r], &blobs[r], &lens[r], err);
    sqlite3_stmt *st = NULL;
    if (rc == RP_OK) rc = rp_store_prepare(s, fresh_attrs_sql(k), &st, err);
    if (rc == RP_OK) {
      sqlite3_bind_int64(st, 1, id);
      sqlite3_bind_int64(st, 2, now);
      for (int r = 0; r < k; r++) {
        const attr_in *a = rows[r];
        sqlite3_bind_text(st, 3 + 4 * r, a->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 4 + 4 * r, type_names[a->type], -1, SQLITE_STATIC);
        if (blobs[r]) sqlite3_bind_blob(st, 5 + 4 * r, blobs[r], (int)lens[r], SQLITE_STATIC);
        else if (a->type == T_TEXT) sqlite3_bind_text(st, 5 + 4 * r, a->text, -1, SQLITE_STATIC);
        else sqlite3_bind_int64(st, 5 + 4 * r, a->num);
        if (a->type == T_MONEY) sqlite3_bind_text(st, 6 + 4 * r, a->currency, -1, SQLITE_STATIC);
      }
      rc = step_done(s, st, "write attributes", err);
    }
    for (int r = 0; r < k; r++) free(blobs[r]);
    if (rc) return rc;
    *changed = 1;
  }
  return RP_OK;
}

static int apply_attrs(rp_store *s, int64_t id, const attr_in *list, int n, int64_t now,
                       int *changed, rp_err *err) {
  sqlite3 *db = rp_store_db(s);
  for (int i = 0; i < n; i++) {
    const attr_in *a = &list[i];
    sqlite3_stmt *st;
    unsigned char *blob = NULL;
    size_t blob_len = 0;
    int rc;
    if (!a->del && (rc = seal_attr(s, a, &blob, &blob_len, err))) return rc;
    if (blob) {
      int same = 0;
      if ((rc = sealed_attr_same(s, id, a, &same, err)) || same) {
        free(blob);
        if (rc) return rc;
        continue;
      }
    }
    if (a->del) {
      rc = rp_store_prepare(s, "DELETE FROM customer_attributes WHERE customer_id = ?1 AND name = ?2",
                            &st, err);
      if (rc) return rc;
      sqlite3_bind_int64(st, 1, id);
      sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
    } else {
      rc = rp_store_prepare(
          s,
          "INSERT INTO customer_attributes(customer_id, name, type, value, currency, updated_at) "
          "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(customer_id, name) DO UPDATE SET "
          "type = excluded.type, value = excluded.value, currency = excluded.currency, "
          "updated_at = excluded.updated_at WHERE type IS NOT excluded.type OR "
          "value IS NOT excluded.value OR currency IS NOT excluded.currency",
          &st, err);
      if (rc) {
        free(blob);
        return rc;
      }
      sqlite3_bind_int64(st, 1, id);
      sqlite3_bind_text(st, 2, a->name, -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 3, type_names[a->type], -1, SQLITE_STATIC);
      if (blob) sqlite3_bind_blob(st, 4, blob, (int)blob_len, SQLITE_STATIC);
      else if (a->type == T_TEXT) sqlite3_bind_text(st, 4, a->text, -1, SQLITE_STATIC);
      else sqlite3_bind_int64(st, 4, a->num);
      if (a->type == T_MONEY) sqlite3_bind_text(st, 5, a->currency, -1, SQLITE_STATIC);
      sqlite3_bind_int64(st, 6, now);
    }
    rc = step_done(s, st, "write attribute", err);
    free(blob);
    if (rc) return rc;
    if (sqlite3_changes(db) > 0) *changed = 1;
  }
  return RP_OK;
}

/* Records one consent change; see rp_profile_set_consent. */
static int apply_consent(rp_store *s, int64_t id, const consent_in *c, int64_t now,
                         int *changed, rp_err *err) {
  int64_t at = c->at ? c->at : now;
  const char *source = c->source ? c->source : "api";
  sqlite3_stmt *st;
  int rc = rp_store_prepare(
      s, "SELECT granted, recorded_at FROM customer_consent WHERE customer_id = ?1 AND "
         "channel = ?2", &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_text(st, 2, c->channel, -1, SQLITE_STATIC);
  int r = sqlite3_step(st);
  int have = r == SQLITE_ROW;
  int cur_granted = have ? sqlite3_column_int(st, 0) : 0;
  int64_t cur_at = have ? sqlite3_column_int64(st, 1) : 0;
  rc = r == SQLITE_ROW || r == SQLITE_DONE ? RP_OK : rp_store_error(s, "read consent", err);
  rp_store_done(st);
  if (rc) return rc;
  if (have && cur_granted == (c->granted != 0)) return RP_OK; /* nothing new */

  /* An older statement than the current one is history only, and only once. */
  if (have && at < cur_at) {
    rc = rp_store_prepare(s, "SELECT 1 FROM customer_consent_history WHERE customer_id = ?1 "
                             "AND channel = ?2 AND granted = ?3 AND recorded_at = ?4", &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, c->channel, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, c->granted != 0);
    sqlite3_bind_int64(st, 4, at);
    r = sqlite3_step(st);
    rp_store_done(st);
    if (r == SQLITE_ROW) return RP_OK;
  } else {
    rc = rp_store_prepare(
        s, "INSERT INTO customer_consent(customer_id, channel, granted, source, recorded_at, "
           "version) VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(customer_id, channel) DO UPDATE "
           "SET granted = excluded.granted, source = excluded.source, "
           "recorded_at = excluded.recorded_at, version = excluded.version",
        &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, c->channel, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, c->granted != 0);
    sqlite3_bind_text(st, 4, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, at);
    if (c->version) sqlite3_bind_text(st, 6, c->version, -1, SQLITE_STATIC);
    if ((rc = step_done(s, st, "write consent", err))) return rc;
  }
  rc = rp_store_prepare(s, "INSERT INTO customer_consent_history(customer_id, channel, granted, "
                           "source, recorded_at, version) VALUES(?1, ?2, ?3, ?4, ?5, ?6)", &st,
                        err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_text(st, 2, c->channel, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 3, c->granted != 0);
  sqlite3_bind_text(st, 4, source, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, at);
  if (c->version) sqlite3_bind_text(st, 6, c->version, -1, SQLITE_STATIC);
  if ((rc = step_done(s, st, "write consent history", err))) return rc;
  *changed = 1;
  return RP_OK;
}

/* Adds to detail the attribute values that lose in a merge (both customers
 * have the attribute with different values), so the merge can be explained
 * and undone by hand later. */
static int note_lost_attributes(rp_store *s, int64_t survivor, int64_t absorbed, cJSON *detail,
                                rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(
      s,
      "SELECT b.name, b.type, b.value, b.currency, b.updated_at, a.type, a.value, a.currency, "
      "a.updated_at FROM customer_attributes b JOIN customer_attributes a "
      "ON a.customer_id = ?1 AND a.name = b.name WHERE b.customer_id = ?2 AND "
      "(a.type IS NOT b.type OR a.value IS NOT b.value OR a.currency IS NOT b.currency)",
      &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, survivor);
  sqlite3_bind_int64(st, 2, absorbed);
  cJSON *lost = NULL;
  int r;
  while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    int sealed = sqlite3_column_type(st, 2) == SQLITE_BLOB || sqlite3_column_type(st, 6) == SQLITE_BLOB;
    if (sealed) {
      /* Sealed values differ in SQL even when equal: compare them opened. */
      char *b = NULL, *a = NULL;
      rc = attr_plain(s, st, 2, name, &b, err);
      if (rc == RP_OK) rc = attr_plain(s, st, 6, name, &a, err);
      int same = rc == RP_OK && a && b && strcmp(a, b) == 0 &&
                 strcmp((const char *)sqlite3_column_text(st, 1),
                        (const char *)sqlite3_column_text(st, 5)) == 0;
      free(a);
      free(b);
      if (rc) break;
      if (same) continue;
    }
    /* The absorbed value (columns 1..4) wins only when strictly newer. */
    int absorbed_wins = sqlite3_column_int64(st, 4) > sqlite3_column_int64(st, 8);
    int base = absorbed_wins ? 5 : 1;
    if (!lost) lost = cJSON_AddObjectToObject(detail, "lost_attributes");
    cJSON *o = cJSON_AddObjectToObject(lost, name);
    cJSON_AddNumberToObject(o, "from", (double)(absorbed_wins ? survivor : absorbed));
    cJSON_AddStringToObject(o, "type", (const char *)sqlite3_column_text(st, base));
    /* A lost sealed value is not copied into the merge record in clear. */
    if (sealed)
      cJSON_AddBoolToObject(o, "sealed", 1);
    else if (sqlite3_column_type(st, base + 1) == SQLITE_TEXT)
      cJSON_AddStringToObject(o, "value", (const char *)sqlite3_column_text(st, base + 1));
    else
      cJSON_AddNumberToObject(o, "value", (double)sqlite3_column_int64(st, base + 1));
    if (sqlite3_column_type(st, base + 2) == SQLITE_TEXT)
      cJSON_AddStringToObject(o, "currency", (const char *)sqlite3_column_text(st, base + 2));
  }
  if (rc == RP_OK && r != SQLITE_DONE && r != SQLITE_ROW) rc = rp_store_error(s, "compare attributes", err);
  rp_store_done(st);
  return rc;
}

/* The statements of a merge, in order; ?1 survivor, ?2 absorbed, ?3 now. */
static const char *const merge_sql[] = {
    "UPDATE customer_identities SET customer_id = ?1 WHERE customer_id = ?2",
    "INSERT INTO customer_attributes(customer_id, name, type, value, currency, updated_at) "
    "SELECT ?1, name, type, value, currency, updated_at FROM customer_attributes "
    "WHERE customer_id = ?2 ON CONFLICT(customer_id, name) DO UPDATE SET "
    "type = excluded.type, value = excluded.value, currency = excluded.currency, "
    "updated_at = excluded.updated_at WHERE excluded.updated_at > customer_attributes.updated_at",
    "DELETE FROM customer_attributes WHERE customer_id = ?2",
    "INSERT INTO customer_consent(customer_id, channel, granted, source, recorded_at, version) "
    "SELECT ?1, channel, granted, source, recorded_at, version FROM customer_consent "
    "WHERE customer_id = ?2 ON CONFLICT(customer_id, channel) DO UPDATE SET "
    "granted = excluded.granted, source = excluded.source, recorded_at = excluded.recorded_at, "
    "version = excluded.version "
    /* The later decision wins; of two made at the same instant, the refusal
     * (never message someone who may have said no). */
    "WHERE excluded.recorded_at > customer_consent.recorded_at OR "
    "(excluded.recorded_at = customer_consent.recorded_at AND excluded.granted = 0)",
    "DELETE FROM customer_consent WHERE customer_id = ?2",
    "UPDATE customer_consent_history SET customer_id = ?1 WHERE customer_id = ?2",
    "UPDATE events SET customer_id = ?1 WHERE customer_id = ?2",
    "UPDATE customers SET merged_into = ?1, updated_at = ?3 WHERE merged_into = ?2",
    /* external_id follows to a survivor that has none; the unique index
     * needs the absorbed row cleared first. */
    "UPDATE customers SET external_id = NULL WHERE id = ?2 AND "
    "(SELECT external_id FROM customers WHERE id = ?1) IS NULL AND "
    "(SELECT ?4 IS NOT NULL)",
    "UPDATE customers SET external_id = ?4 WHERE id = ?1 AND external_id IS NULL AND ?4 IS NOT NULL",
    "UPDATE customers SET merged_into = ?1, updated_at = ?3 WHERE id = ?2",
    "UPDATE customers SET updated_at = ?3 WHERE id = ?1",
    NULL,
};

/* Merges two canonical, distinct customers; detail (consumed) explains why. */
static int merge_canonical(rp_store *s, int64_t survivor, int64_t absorbed, const char *reason,
                           cJSON *detail, rp_err *err) {
  int64_t now = rp_clock_now_ms();
  int rc = note_lost_attributes(s, survivor, absorbed, detail, err);
  char *ext = NULL;
  sqlite3_stmt *st;
  if (rc == RP_OK) rc = rp_store_prepare(s, "SELECT external_id FROM customers WHERE id = ?1", &st, err);
  if (rc == RP_OK) {
    sqlite3_bind_int64(st, 1, absorbed);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_TEXT)
      ext = strdup((const char *)sqlite3_column_text(st, 0));
    rp_store_done(st);
  }
  for (int i = 0; rc == RP_OK && merge_sql[i]; i++) {
    rc = rp_store_prepare(s, merge_sql[i], &st, err);
    if (rc) break;
    sqlite3_bind_int64(st, 1, survivor);
    sqlite3_bind_int64(st, 2, absorbed);
    if (sqlite3_bind_parameter_count(st) >= 3) sqlite3_bind_int64(st, 3, now);
    if (sqlite3_bind_parameter_count(st) >= 4) {
      if (ext) sqlite3_bind_text(st, 4, ext, -1, SQLITE_STATIC);
      else sqlite3_bind_null(st, 4);
    }
    rc = step_done(s, st, "merge customers", err);
  }
  free(ext);
  char *text = NULL;
  if (rc == RP_OK) {
    text = cJSON_PrintUnformatted(detail);
    if (!text) rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  if (rc == RP_OK) rc = rp_store_prepare(s, "INSERT INTO customer_merges(survivor_id, absorbed_id, "
                                            "reason, detail, merged_at) VALUES(?1, ?2, ?3, ?4, ?5)",
                                         &st, err);
  if (rc == RP_OK) {
    sqlite3_bind_int64(st, 1, survivor);
    sqlite3_bind_int64(st, 2, absorbed);
    sqlite3_bind_text(st, 3, reason ? reason : "manual", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, text, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now);
    rc = step_done(s, st, "record merge", err);
  }
  cJSON_free(text);
  cJSON_Delete(detail);
  return rc;
}

int rp_profile_merge(rp_store *s, int64_t survivor, int64_t absorbed, const char *reason,
                     rp_err *err) {
  int64_t a, b;
  int rc = rp_profile_canonical(s, survivor, &a, err);
  if (rc) return rc;
  if ((rc = rp_profile_canonical(s, absorbed, &b, err))) return rc;
  if (a == b)
    return rp_err_set(err, RP_ECONFLICT, NULL, "customers %" PRId64 " and %" PRId64
                      " are already one customer (%" PRId64 ")", survivor, absorbed, a);
  if ((rc = rp_store_tx_begin(s, err))) return rc;
  cJSON *detail = cJSON_CreateObject();
  cJSON_AddStringToObject(detail, "source", reason ? reason : "manual");
  rc = merge_canonical(s, a, b, reason, detail, err);
  if (rc == RP_OK) rc = rp_store_tx_commit(s, err);
  if (rc != RP_OK) rp_store_tx_rollback(s);
  return rc;
}

/* ---- upsert -------------------------------------------------------------------- */

typedef struct upsert_in {
  int64_t id; /* 0 when not given */
  ident_in idents[RP_PROFILE_MAX_IDENTITIES];
  int n_idents;
  attr_in attrs[RP_PROFILE_MAX_ATTRS];
  int n_attrs;
  consent_in consent[4];
  int n_consent;
} upsert_in;

static int parse_upsert(const rp_config *cfg, const cJSON *in, const char *source, upsert_in *u,
                        rp_err *err) {
  if (!cJSON_IsObject(in)) return rp_err_set(err, RP_EINVAL, NULL, "a customer must be a JSON object");
  u->id = 0;
  u->n_idents = u->n_attrs = u->n_consent = 0;
  const cJSON *attrs = NULL, *consent = NULL, *item;
  int rc;
  cJSON_ArrayForEach(item, in) {
    const char *k = item->string;
    if (strcmp(k, "id") == 0) {
      if (cJSON_IsNull(item)) continue;
      if (!whole_number(item, &u->id) || u->id <= 0)
        return rp_err_set(err, RP_EINVAL, "id", "id: must be a positive whole number");
    } else if (strcmp(k, "external_id") == 0 || strcmp(k, "email") == 0 ||
               strcmp(k, "phone") == 0 || strcmp(k, "anonymous_id") == 0) {
      if ((rc = add_identity(cfg, k, item, k, u->idents, &u->n_idents, err))) return rc;
    } else if (strcmp(k, "identities") == 0) {
      if (cJSON_IsNull(item)) continue;
      if (!cJSON_IsObject(item))
        return rp_err_set(err, RP_EINVAL, "identities", "identities: must be an object of kind to value");
      const cJSON *id_item;
      cJSON_ArrayForEach(id_item, item) {
        char path[96];
        snprintf(path, sizeof path, "identities.%.60s", id_item->string);
        if (rp_norm_kind(id_item->string, err) != RP_OK) {
          if (err) snprintf(err->field, sizeof err->field, "%.90s", path);
          return rp_err_prefix(err, "%s: ", path);
        }
        if ((rc = add_identity(cfg, id_item->string, id_item, path, u->idents, &u->n_idents, err)))
          return rc;
      }
    } else if (strcmp(k, "attributes") == 0) {
      attrs = item;
    } else if (strcmp(k, "consent") == 0) {
      consent = item;
    } else {
      return rp_err_set(err, RP_EINVAL, k, "unknown field \"%s\" (id, external_id, email, phone, "
                        "anonymous_id, identities, attributes, consent)", k);
    }
  }
  if ((rc = parse_attrs(attrs, u->attrs, &u->n_attrs, err))) return rc;
  if ((rc = parse_consent(consent, source, u->consent, &u->n_consent, err))) return rc;
  if (!u->id && u->n_idents == 0)
    return rp_err_set(err, RP_EINVAL, "identities",
                      "no usable identity: give id, external_id, email, phone, anonymous_id or "
                      "identities (placeholder values such as \"n/a\" are ignored)");
  return RP_OK;
}

static int insert_identity(rp_store *s, int64_t id, int fresh, const ident_in *ident, int64_t now,
                           int *changed, rp_err *err) {
  sqlite3_stmt *st;
  unsigned char *blob;
  size_t blob_len;
  int rc = seal_identity(s, ident->kind, ident->value, &blob, &blob_len, err);
  if (rc) return rc;
  rc = rp_store_prepare(s, "INSERT INTO customer_identities(kind, value, sealed, customer_id, "
                           "created_at) VALUES(?1, ?2, ?5, ?3, ?4) ON CONFLICT(kind, value) "
                           "DO NOTHING", &st, err);
  if (rc) {
    free(blob);
    return rc;
  }
  ident_cols cols;
  ident_cols_of(s, ident->kind, ident->value, &cols);
  sqlite3_bind_text(st, 1, ident->kind, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, cols.col[0], -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, id);
  sqlite3_bind_int64(st, 4, now);
  if (blob) sqlite3_bind_blob(st, 5, blob, (int)blob_len, SQLITE_STATIC);
  rc = step_done(s, st, "write identity", err);
  free(blob);
  if (rc) return rc;
  if (sqlite3_changes(rp_store_db(s)) > 0) {
    *changed = 1;
    if (!fresh && strcmp(ident->kind, "external_id") == 0) {
      /* Keep customers.external_id in step with the first external id (a
       * customer created by this call got it with its row). */
      rc = rp_store_prepare(s, "UPDATE OR IGNORE customers SET external_id = ?2 "
                               "WHERE id = ?1 AND external_id IS NULL", &st, err);
      if (rc) return rc;
      sqlite3_bind_int64(st, 1, id);
      sqlite3_bind_text(st, 2, ident->value, -1, SQLITE_STATIC);
      rc = step_done(s, st, "write external_id", err);
    }
  }
  return rc;
}

/* Up to this many identities are looked up, and written for a new customer,
 * in one statement each. */
#define IDENT_ROWS 8

/* Sets idents[i].owner (0 when unknown) for every identity, in one SELECT
 * when there are at most IDENT_ROWS of them: three lookups per imported row
 * were a fifth of a customer import. */
static int find_identities(rp_store *s, ident_in *idents, int n, rp_err *err) {
  if (n == 0) return RP_OK;
  rp_vault *v = rp_store_vault(s);
  /* Several keys (a rotation in progress): several candidates per identity. */
  if (n > IDENT_ROWS || (v && rp_vault_key_count(v) > 1)) {
    for (int i = 0; i < n; i++) {
      int rc = find_identity(s, idents[i].kind, idents[i].value, &idents[i].owner, err);
      if (rc) return rc;
    }
    return RP_OK;
  }
  static char sql[IDENT_ROWS + 1][SQL_CAP];
  if (!sql[n][0]) {
    /* OR of (kind, value) pairs: each term is a primary-key lookup. */
    size_t len = (size_t)snprintf(sql[n], SQL_CAP, "SELECT kind, value, customer_id FROM "
                                                   "customer_identities WHERE ");
    for (int i = 0; i < n; i++)
      len += (size_t)snprintf(sql[n] + len, SQL_CAP - len, "%s(kind = ?%d AND value = ?%d)",
                              i ? " OR " : "", 2 * i + 1, 2 * i + 2);
  }
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, sql[n], &st, err);
  if (rc) return rc;
  ident_cols cols[IDENT_ROWS];
  for (int i = 0; i < n; i++) {
    idents[i].owner = 0;
    ident_cols_of(s, idents[i].kind, idents[i].value, &cols[i]);
    sqlite3_bind_text(st, 2 * i + 1, idents[i].kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2 * i + 2, cols[i].col[0], -1, SQLITE_STATIC);
  }
  int64_t owners[IDENT_ROWS];
  int r;
  while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    const char *kind = (const char *)sqlite3_column_text(st, 0);
    const char *value = (const char *)sqlite3_column_text(st, 1);
    for (int i = 0; i < n; i++)
      if (strcmp(idents[i].kind, kind) == 0 && strcmp(cols[i].col[0], value) == 0)
        idents[i].owner = sqlite3_column_int64(st, 2);
  }
  if (r != SQLITE_DONE) rc = rp_store_error(s, "find identities", err);
  rp_store_done(st);
  /* Follow merges (the statement is reset: canonical runs its own). */
  for (int i = 0; rc == RP_OK && i < n; i++) {
    owners[i] = idents[i].owner;
    if (!owners[i]) continue;
    rc = rp_profile_canonical(s, owners[i], &idents[i].owner, err);
    if (rc == RP_ENOTFOUND) { /* an identity whose customer row vanished */
      idents[i].owner = 0;
      rc = RP_OK;
    }
  }
  return rc;
}

/* The identities of a customer created by this call, in one INSERT when
 * there are at most IDENT_ROWS. */
static int insert_fresh_identities(rp_store *s, int64_t id, ident_in *idents, int n, int64_t now,
                                   int *changed, rp_err *err) {
  if (n == 0) return RP_OK;
  if (n > IDENT_ROWS) {
    for (int i = 0; i < n; i++) {
      int rc = insert_identity(s, id, 1, &idents[i], now, changed, err);
      if (rc) return rc;
    }
    return RP_OK;
  }
  static char sql[IDENT_ROWS + 1][SQL_CAP];
  if (!sql[n][0])
    multi_row_sql(sql[n], SQL_CAP,
                  "INSERT INTO customer_identities(kind, value, sealed, customer_id, created_at) "
                  "VALUES", "", 3, 3, ", ?1, ?2", n, " ON CONFLICT(kind, value) DO NOTHING");
  unsigned char *blobs[IDENT_ROWS] = {0};
  size_t lens[IDENT_ROWS];
  int rc = RP_OK;
  for (int i = 0; rc == RP_OK && i < n; i++)
    rc = seal_identity(s, idents[i].kind, idents[i].value, &blobs[i], &lens[i], err);
  sqlite3_stmt *st = NULL;
  if (rc == RP_OK) rc = rp_store_prepare(s, sql[n], &st, err);
  if (rc == RP_OK) {
    ident_cols cols[IDENT_ROWS];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    for (int i = 0; i < n; i++) {
      ident_cols_of(s, idents[i].kind, idents[i].value, &cols[i]);
      sqlite3_bind_text(st, 3 + 3 * i, idents[i].kind, -1, SQLITE_STATIC);
      sqlite3_bind_text(st, 4 + 3 * i, cols[i].col[0], -1, SQLITE_STATIC);
      if (blobs[i]) sqlite3_bind_blob(st, 5 + 3 * i, blobs[i], (int)lens[i], SQLITE_STATIC);
    }
    rc = step_done(s, st, "write identities", err);
  }
  for (int i = 0; i < n; i++) free(blobs[i]);
  if (rc) return rc;
  *changed = 1;
  return RP_OK;
}

/* The consent of a customer created by this call: the state and its history,
 * one INSERT each (a new customer has no earlier state to compare with). */
static int insert_fresh_consent(rp_store *s, int64_t id, const consent_in *list, int n,
                                int64_t now, int *changed, rp_err *err) {
  enum { MAX_CHANNELS = 4 };
  if (n == 0) return RP_OK;
  if (n > MAX_CHANNELS) return rp_err_set(err, RP_EINVAL, "consent", "consent: too many channels");
  static const char *const tables[2] = {"customer_consent", "customer_consent_history"};
  static char sql[2][MAX_CHANNELS + 1][SQL_CAP];
  for (int t = 0; t < 2; t++) {
    if (!sql[t][n][0]) {
      char head[160];
      snprintf(head, sizeof head,
               "INSERT INTO %s(customer_id, channel, granted, source, recorded_at, version) "
               "VALUES", tables[t]);
      /* The same channel twice in one call: the last one is the state. */
      multi_row_sql(sql[t][n], SQL_CAP, head, "?1, ", 2, 5, "", n,
                    t == 0 ? " ON CONFLICT(customer_id, channel) DO UPDATE SET "
                             "granted = excluded.granted, source = excluded.source, "
                             "recorded_at = excluded.recorded_at, version = excluded.version"
                           : "");
    }
    sqlite3_stmt *st;
    int rc = rp_store_prepare(s, sql[t][n], &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, id);
    for (int i = 0; i < n; i++) {
      const consent_in *c = &list[i];
      sqlite3_bind_text(st, 2 + 5 * i, c->channel, -1, SQLITE_STATIC);
      sqlite3_bind_int(st, 3 + 5 * i, c->granted != 0);
      sqlite3_bind_text(st, 4 + 5 * i, c->source ? c->source : "api", -1, SQLITE_STATIC);
      sqlite3_bind_int64(st, 5 + 5 * i, c->at ? c->at : now);
      if (c->version) sqlite3_bind_text(st, 6 + 5 * i, c->version, -1, SQLITE_STATIC);
    }
    if ((rc = step_done(s, st, "write consent", err))) return rc;
  }
  *changed = 1;
  return RP_OK;
}

/* The body of an upsert, inside its transaction. */
static int upsert_tx(rp_store *s, upsert_in *u, const char *source, rp_upsert *res, rp_err *err) {
  int64_t now = rp_clock_now_ms();
  int rc;
  refresh_vault(s);
  int64_t ids[RP_PROFILE_MAX_IDENTITIES + 1];
  int n_ids = 0;
  if (u->id) {
    if ((rc = rp_profile_canonical(s, u->id, &ids[0], err))) return rc;
    n_ids = 1;
  }
  if ((rc = find_identities(s, u->idents, u->n_idents, err))) return rc;
  for (int i = 0; i < u->n_idents; i++) {
    int64_t o = u->idents[i].owner;
    if (!o) continue;
    int seen = 0;
    for (int j = 0; j < n_ids; j++) seen |= ids[j] == o;
    if (!seen) ids[n_ids++] = o;
  }
  int changed = 0;
  int64_t target;
  if (n_ids == 0) {
    const char *external_id = NULL;
    for (int i = 0; i < u->n_idents && !external_id; i++)
      if (strcmp(u->idents[i].kind, "external_id") == 0) external_id = u->idents[i].value;
    sqlite3_stmt *st;
    if ((rc = rp_store_prepare(s, "INSERT INTO customers(external_id, created_at, updated_at) "
                                  "VALUES(?2, ?1, ?1)", &st, err)))
      return rc;
    sqlite3_bind_int64(st, 1, now);
    if (external_id) sqlite3_bind_text(st, 2, external_id, -1, SQLITE_STATIC);
    if ((rc = step_done(s, st, "create customer", err))) return rc;
    target = sqlite3_last_insert_rowid(rp_store_db(s));
    res->created = 1;
  } else {
    target = ids[0];
    for (int j = 1; j < n_ids; j++)
      if (ids[j] < target) target = ids[j];
    for (int j = 0; j < n_ids; j++) {
      if (ids[j] == target) continue;
      cJSON *detail = cJSON_CreateObject();
      cJSON_AddStringToObject(detail, "source", source ? source : "api");
      cJSON *why = cJSON_AddArrayToObject(detail, "identities");
      for (int i = 0; i < u->n_idents; i++) {
        if (u->idents[i].owner != ids[j] && u->idents[i].owner != target) continue;
        /* A sealed value is named by its kind only: the merge record is
         * not a way around the encryption. */
        char both[RP_NORM_MAX_KIND + RP_NORM_BUF + 2];
        if (rp_vault_sealed_kind(u->idents[i].kind))
          snprintf(both, sizeof both, "%s", u->idents[i].kind);
        else
          snprintf(both, sizeof both, "%s:%s", u->idents[i].kind, u->idents[i].value);
        cJSON_AddItemToArray(why, cJSON_CreateString(both));
      }
      if ((rc = merge_canonical(s, target, ids[j], "identity", detail, err))) return rc;
      res->merged++;
      changed = 1;
    }
  }
  res->customer_id = target;
  if (res->created) {
    /* Nothing to compare with: everything in a few multi-row INSERTs. */
    if ((rc = insert_fresh_identities(s, target, u->idents, u->n_idents, now, &changed, err)) ||
        (rc = insert_fresh_attrs(s, target, u->attrs, u->n_attrs, now, &changed, err)) ||
        (rc = insert_fresh_consent(s, target, u->consent, u->n_consent, now, &changed, err)))
      return rc;
  } else {
    for (int i = 0; i < u->n_idents; i++) {
      if (u->idents[i].owner) continue; /* already attached (now) to target */
      if ((rc = insert_identity(s, target, 0, &u->idents[i], now, &changed, err))) return rc;
    }
    if ((rc = apply_attrs(s, target, u->attrs, u->n_attrs, now, &changed, err))) return rc;
    for (int i = 0; i < u->n_consent; i++)
      if ((rc = apply_consent(s, target, &u->consent[i], now, &changed, err))) return rc;
  }
  if (changed && !res->created) {
    if ((rc = touch_customer(s, target, now, err))) return rc;
    res->updated = 1;
  }
  return RP_OK;
}

int rp_profile_upsert(rp_store *s, const rp_config *cfg, const cJSON *in, const char *source,
                      rp_upsert *res, rp_err *err) {
  rp_upsert local;
  if (!res) res = &local;
  memset(res, 0, sizeof *res);
  upsert_in *u = malloc(sizeof *u);
  if (!u) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  int rc = parse_upsert(cfg, in, source, u, err);
  if (rc == RP_OK) rc = rp_store_tx_begin(s, err);
  if (rc == RP_OK) {
    rc = upsert_tx(s, u, source, res, err);
    if (rc == RP_OK) rc = rp_store_tx_commit(s, err);
    if (rc != RP_OK) {
      rp_store_tx_rollback(s);
      memset(res, 0, sizeof *res);
    }
  }
  free(u);
  return rc;
}

/* ---- the smaller writers ------------------------------------------------------ */

int rp_profile_set_attributes(rp_store *s, int64_t id, const cJSON *attrs, rp_err *err) {
  if (!cJSON_IsObject(attrs))
    return rp_err_set(err, RP_EINVAL, "attributes", "attributes: must be an object");
  attr_in *list = malloc(sizeof *list * RP_PROFILE_MAX_ATTRS);
  if (!list) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  int n, changed = 0;
  int64_t target = 0;
  int rc = parse_attrs(attrs, list, &n, err);
  if (rc == RP_OK) rc = rp_profile_canonical(s, id, &target, err);
  if (rc == RP_OK) rc = rp_store_tx_begin(s, err);
  if (rc == RP_OK) {
    int64_t now = rp_clock_now_ms();
    refresh_vault(s);
    rc = apply_attrs(s, target, list, n, now, &changed, err);
    if (rc == RP_OK && changed) rc = touch_customer(s, target, now, err);
    if (rc == RP_OK) rc = rp_store_tx_commit(s, err);
    if (rc != RP_OK) rp_store_tx_rollback(s);
  }
  free(list);
  return rc;
}

int rp_profile_set_consent(rp_store *s, int64_t id, const char *channel, int granted,
                           const char *source, int64_t at_ms, rp_err *err) {
  if (!channel || !valid_channel(channel))
    return rp_err_set(err, RP_EINVAL, "channel", "channel: \"%s\" is not one of email, sms, push, phone",
                      channel ? channel : "");
  int64_t target;
  int rc = rp_profile_canonical(s, id, &target, err);
  if (rc) return rc;
  consent_in c = {channel, granted != 0, source, at_ms, NULL};
  if ((rc = rp_store_tx_begin(s, err))) return rc;
  int changed = 0;
  int64_t now = rp_clock_now_ms();
  rc = apply_consent(s, target, &c, now, &changed, err);
  if (rc == RP_OK && changed) rc = touch_customer(s, target, now, err);
  if (rc == RP_OK) rc = rp_store_tx_commit(s, err);
  if (rc != RP_OK) rp_store_tx_rollback(s);
  return rc;
}

/* ---- lookups -------------------------------------------------------------------- */

int rp_profile_resolve(rp_store *s, const rp_config *cfg, const char *kind, const char *value,
                       int64_t *id, rp_err *err) {
  char out[RP_NORM_BUF];
  int placeholder = 0;
  int rc = rp_norm_identity(cfg, kind, value, out, sizeof out, &placeholder, err);
  if (rc) return rc;
  if (placeholder)
    return rp_err_set(err, RP_ENOTFOUND, kind, "%s \"%s\" is a placeholder and names nobody", kind,
                      out);
  refresh_vault(s);
  if ((rc = find_identity(s, kind, out, id, err))) return rc;
  if (!*id) return rp_err_set(err, RP_ENOTFOUND, kind, "no customer with %s %s", kind, out);
  return RP_OK;
}

int rp_profile_lookup(rp_store *s, const rp_config *cfg, const char *ref, int64_t *id,
                      rp_err *err) {
  if (!ref) ref = "";
  while (isspace((unsigned char)*ref)) ref++;
  if (!*ref) return rp_err_set(err, RP_EINVAL, "ref", "an empty customer reference");
  size_t n = strlen(ref);
  int digits = 1, phoneish = 1;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)ref[i];
    if (!isdigit(c)) digits = 0;
    if (!isdigit(c) && !strchr(" -.()+/", c)) phoneish = 0;
  }
  if (digits && n < 19) return rp_profile_canonical(s, strtoll(ref, NULL, 10), id, err);
  const char *colon = strchr(ref, ':');
  if (colon && colon > ref && (size_t)(colon - ref) <= RP_NORM_MAX_KIND) {
    char kind[RP_NORM_MAX_KIND + 1];
    memcpy(kind, ref, (size_t)(colon - ref));
    kind[colon - ref] = '\0';
    if (rp_norm_kind(kind, NULL) == RP_OK) return rp_profile_resolve(s, cfg, kind, colon + 1, id, err);
  }
  if (strchr(ref, '@')) return rp_profile_resolve(s, cfg, "email", ref, id, err);
  if (phoneish) return rp_profile_resolve(s, cfg, "phone", ref, id, err);
  return rp_profile_resolve(s, cfg, "external_id", ref, id, err);
}

/* ---- the unified view ------------------------------------------------------------ */

/* An attribute value as JSON, from its type and its text (sealed values
 * are opened to text first). */
static cJSON *attr_json_from_text(const char *type, const char *text, const char *currency) {
  if (strcmp(type, "text") == 0) return cJSON_CreateString(text);
  int64_t num = strtoll(text, NULL, 10);
  if (strcmp(type, "boolean") == 0) return cJSON_CreateBool(num != 0);
  if (strcmp(type, "money") == 0) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddNumberToObject(m, "amount", (double)num);
    cJSON_AddStringToObject(m, "currency", currency ? currency : "");
    return m;
  }
  return cJSON_CreateNumber((double)num);
}

/* The value of the attribute row of st (columns name, type, value,
 * currency) as JSON. */
static int attr_value_json(rp_store *s, sqlite3_stmt *st, cJSON **out, rp_err *err) {
  const char *name = (const char *)sqlite3_column_text(st, 0);
  const char *type = (const char *)sqlite3_column_text(st, 1);
  const char *cur = (const char *)sqlite3_column_text(st, 3);
  *out = NULL;
  switch (sqlite3_column_type(st, 2)) {
  case SQLITE_NULL:
    *out = cJSON_CreateNull();
    return RP_OK;
  case SQLITE_BLOB: {
    char *plain = NULL;
    int rc = attr_plain(s, st, 2, name, &plain, err);
    if (rc) return rc;
    *out = attr_json_from_text(type, plain, cur);
    OPENSSL_cleanse(plain, strlen(plain));
    free(plain);
    return RP_OK;
  }
  default:
    break;
  }
  if (strcmp(type, "text") == 0) {
    *out = cJSON_CreateString((const char *)sqlite3_column_text(st, 2));
    return RP_OK;
  }
  int64_t num = sqlite3_column_int64(st, 2);
  if (strcmp(type, "boolean") == 0) {
    *out = cJSON_CreateBool(num != 0);
  } else if (strcmp(type, "money") == 0) {
    *out = cJSON_CreateObject();
    cJSON_AddNumberToObject(*out, "amount", (double)num);
    cJSON_AddStringToObject(*out, "currency", cur ? cur : "");
  } else {
    *out = cJSON_CreateNumber((double)num);
  }
  return RP_OK;
}

int rp_profile_view(rp_store *s, int64_t id, unsigned flags, int recent_events, cJSON **out,
                    rp_err *err) {
  *out = NULL;
  int64_t cid;
  int rc = rp_profile_canonical(s, id, &cid, err);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = rp_store_prepare(s, "SELECT external_id, created_at, updated_at FROM customers "
                                "WHERE id = ?1", &st, err)))
    return rc;
  sqlite3_bind_int64(st, 1, cid);
  if (sqlite3_step(st) != SQLITE_ROW) {
    rc = rp_store_error(s, "read customer", err);
    rp_store_done(st);
    return rc;
  }
  cJSON *v = cJSON_CreateObject();
  cJSON_AddNumberToObject(v, "id", (double)cid);
  if (sqlite3_column_type(st, 0) == SQLITE_TEXT)
    cJSON_AddStringToObject(v, "external_id", (const char *)sqlite3_column_text(st, 0));
  else
    cJSON_AddNullToObject(v, "external_id");
  cJSON_AddNumberToObject(v, "created_at", (double)sqlite3_column_int64(st, 1));
  cJSON_AddNumberToObject(v, "updated_at", (double)sqlite3_column_int64(st, 2));
  rp_store_done(st);

  cJSON *merged = cJSON_AddArrayToObject(v, "merged_from");
  if ((rc = rp_store_prepare(s, "SELECT id FROM customers WHERE merged_into = ?1 ORDER BY id", &st, err)))
    goto fail;
  sqlite3_bind_int64(st, 1, cid);
  while (sqlite3_step(st) == SQLITE_ROW)
    cJSON_AddItemToArray(merged, cJSON_CreateNumber((double)sqlite3_column_int64(st, 0)));
  rp_store_done(st);

  if (flags & RP_VIEW_PII) {
    cJSON *ids = cJSON_AddObjectToObject(v, "identities");
    if ((rc = rp_store_prepare(s, "SELECT kind, value, sealed FROM customer_identities "
                                  "WHERE customer_id = ?1 ORDER BY kind, created_at, value",
                               &st, err)))
      goto fail;
    sqlite3_bind_int64(st, 1, cid);
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *kind = (const char *)sqlite3_column_text(st, 0);
      cJSON *list = cJSON_GetObjectItemCaseSensitive(ids, kind);
      if (!list) list = cJSON_AddArrayToObject(ids, kind);
      if (sqlite3_column_type(st, 2) == SQLITE_BLOB) {
        char *plain = NULL;
        rc = open_sealed(s, kind, sqlite3_column_blob(st, 2), sqlite3_column_bytes(st, 2), &plain,
                         err);
        if (rc) {
          rp_store_done(st);
          goto fail;
        }
        cJSON_AddItemToArray(list, cJSON_CreateString(plain));
        OPENSSL_cleanse(plain, strlen(plain));
        free(plain);
      } else {
        cJSON_AddItemToArray(list, cJSON_CreateString((const char *)sqlite3_column_text(st, 1)));
      }
    }
    rp_store_done(st);
  }

  cJSON *attrs = cJSON_AddObjectToObject(v, "attributes");
  cJSON *types = cJSON_AddObjectToObject(v, "attribute_types");
  if ((rc = rp_store_prepare(s, "SELECT name, type, value, currency FROM customer_attributes "
                                "WHERE customer_id = ?1 ORDER BY name", &st, err)))
    goto fail;
  sqlite3_bind_int64(st, 1, cid);
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    /* Names and addresses are PII: a view without PII leaves them out. */
    if (!(flags & RP_VIEW_PII) && rp_vault_pii_attribute(rp_store_vault(s), name)) continue;
    cJSON *val;
    if ((rc = attr_value_json(s, st, &val, err))) {
      rp_store_done(st);
      goto fail;
    }
    cJSON_AddItemToObject(attrs, name, val);
    cJSON_AddStringToObject(types, name, (const char *)sqlite3_column_text(st, 1));
  }
  rp_store_done(st);

  if (flags & RP_VIEW_CONSENT) {
    cJSON *cons = cJSON_AddObjectToObject(v, "consent");
    if ((rc = rp_store_prepare(s, "SELECT channel, granted, source, recorded_at, version FROM "
                                  "customer_consent WHERE customer_id = ?1 ORDER BY channel",
                               &st, err)))
      goto fail;
    sqlite3_bind_int64(st, 1, cid);
    while (sqlite3_step(st) == SQLITE_ROW) {
      cJSON *c = cJSON_AddObjectToObject(cons, (const char *)sqlite3_column_text(st, 0));
      cJSON_AddBoolToObject(c, "granted", sqlite3_column_int(st, 1));
      cJSON_AddStringToObject(c, "source", (const char *)sqlite3_column_text(st, 2));
      cJSON_AddNumberToObject(c, "at", (double)sqlite3_column_int64(st, 3));
      if (sqlite3_column_type(st, 4) != SQLITE_NULL)
        cJSON_AddStringToObject(c, "version", (const char *)sqlite3_column_text(st, 4));
    }
    rp_store_done(st);
  }

  if ((flags & RP_VIEW_EVENTS) && recent_events > 0) {
    cJSON *evs = NULL;
    if ((rc = rp_event_timeline(s, cid, 0, recent_events, &evs, err))) goto fail;
    cJSON_AddItemToObject(v, "recent_events", evs);
  }
  *out = v;
  return RP_OK;
fail:
  cJSON_Delete(v);
  return rc;
}
