/* store: connection, statement cache, nested transactions, migrations. */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "schema.h"

typedef struct cache_entry {
  char *sql;      /* owned copy of the key */
  uint64_t hash;
  sqlite3_stmt *stmt;
} cache_entry;

struct rp_store {
  sqlite3 *db;
  char *path;
  cache_entry *cache; /* open addressing, power-of-two capacity */
  size_t cache_cap;
  size_t cache_len;
  int tx_depth;
  uint64_t tx_serial;           /* outermost transactions begun */
  int64_t data_version;         /* PRAGMA data_version as read in transaction */
  uint64_t data_version_serial; /* ... number data_version_serial (0: none) */
  rp_store_auth_fn auth_fn;
  void *principal;
  rp_store_customer_fn customer_fn;
  void *customer_ctx;
  rp_vault *vault; /* owned; NULL: nothing is sealed */
};

int rp_store_core_version(void) {
  int v = 0;
  for (const rp_migration *m = rp_core_migrations; m->version; m++) v = m->version;
  return v;
}

sqlite3 *rp_store_db(rp_store *s) { return s->db; }
const char *rp_store_path(const rp_store *s) { return s->path; }
int rp_store_tx_depth(const rp_store *s) { return s->tx_depth; }

int rp_store_error(rp_store *s, const char *what, rp_err *err) {
  int ext = sqlite3_extended_errcode(s->db);
  int code = (ext & 0xff) == SQLITE_CONSTRAINT ? RP_ECONFLICT : RP_EDB;
  return rp_err_set(err, code, NULL, "%s: %s", what, sqlite3_errmsg(s->db));
}

static int authorizer(void *ctx, int action, const char *a1, const char *a2,
                      const char *a3, const char *a4) {
  rp_store *s = ctx;
  if (!s->principal || !s->auth_fn) return SQLITE_OK;
  return s->auth_fn(s->principal, action, a1, a2, a3, a4);
}

void rp_store_set_auth_fn(rp_store *s, rp_store_auth_fn fn) { s->auth_fn = fn; }

void *rp_store_set_principal(rp_store *s, void *principal) {
  void *old = s->principal;
  s->principal = principal;
  return old;
}

void *rp_store_principal(const rp_store *s) { return s->principal; }

/* ---- statement cache ---------------------------------------------------- */

/* A hash of the length and the first and last 32 bytes of the SQL text,
 * eight bytes at a time. Hashing all of it byte by byte cost 10% of an
 * import (statements run by the million are long); a collision only costs
 * the strcmp the lookup does anyway. */
static uint64_t sql_hash(const char *z, size_t len) {
  uint64_t h = 1469598103934665603ULL ^ len;
  unsigned char edge[64] = {0};
  size_t head = len < 32 ? len : 32, tail = len < 64 ? len - head : 32;
  memcpy(edge, z, head);
  memcpy(edge + 32, z + len - tail, tail);
  for (size_t k = 0; k < sizeof edge; k += 8) {
    uint64_t w;
    memcpy(&w, edge + k, 8);
    h = (h ^ w) * 1099511628211ULL;
    h ^= h >> 29;
  }
  return h;
}

static int cache_grow(rp_store *s) {
  size_t ncap = s->cache_cap ? s->cache_cap * 2 : 128;
  cache_entry *n = calloc(ncap, sizeof *n);
  if (!n) return RP_ENOMEM;
  for (size_t i = 0; i < s->cache_cap; i++) {
    cache_entry *e = &s->cache[i];
    if (!e->sql) continue;
    size_t j = e->hash & (ncap - 1);
    while (n[j].sql) j = (j + 1) & (ncap - 1);
    n[j] = *e;
  }
  free(s->cache);
  s->cache = n;
  s->cache_cap = ncap;
  return RP_OK;
}

int rp_store_prepare(rp_store *s, const char *sql, sqlite3_stmt **out, rp_err *err) {
  uint64_t h = sql_hash(sql, strlen(sql));
  if (s->cache_cap) {
    size_t i = h & (s->cache_cap - 1);
    while (s->cache[i].sql) {
      if (s->cache[i].hash == h && strcmp(s->cache[i].sql, sql) == 0) {
        sqlite3_stmt *st = s->cache[i].stmt;
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        *out = st;
        return RP_OK;
      }
      i = (i + 1) & (s->cache_cap - 1);
    }
  }
  if ((s->cache_len + 1) * 2 > s->cache_cap && cache_grow(s) != RP_OK)
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  sqlite3_stmt *st;
  if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
    return rp_store_error(s, "prepare", err);
  char *copy = strdup(sql);
  if (!copy) {
    sqlite3_finalize(st);
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  size_t i = h & (s->cache_cap - 1);
  while (s->cache[i].sql) i = (i + 1) & (s->cache_cap - 1);
  s->cache[i].sql = copy;
  s->cache[i].hash = h;
  s->cache[i].stmt = st;
  s->cache_len++;
  *out = st;
  return RP_OK;
}

void rp_store_done(sqlite3_stmt *stmt) {
  if (stmt) sqlite3_reset(stmt);
}

int rp_store_exec(rp_store *s, const char *sql, rp_err *err) {
  char *msg = NULL;
  if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    int ext = sqlite3_extended_errcode(s->db);
    rp_err_set(err, (ext & 0xff) == SQLITE_CONSTRAINT ? RP_ECONFLICT : RP_EDB, NULL,
               "%s", msg ? msg : sqlite3_errmsg(s->db));
    sqlite3_free(msg);
    return err ? err->code : RP_EDB;
  }
  return RP_OK;
}

/* ---- transactions -------------------------------------------------------- */

/* Runs one transaction-control statement from the statement cache (cheaper
 * than sqlite3_exec, which prepares it afresh each time). It runs as the
 * core: the authorizer refuses transaction control to plugins, and a cached
 * statement may be re-prepared while a plugin's principal is set. */
static int tx_step(rp_store *s, const char *sql, rp_err *err) {
  void *principal = rp_store_set_principal(s, NULL);
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, sql, &st, err);
  if (rc == RP_OK) {
    if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, sql, err);
    rp_store_done(st);
  }
  rp_store_set_principal(s, principal);
  return rc;
}

int rp_store_tx_begin(rp_store *s, rp_err *err) {
  char sql[48];
  if (s->tx_depth == 0) snprintf(sql, sizeof sql, "BEGIN IMMEDIATE");
  else snprintf(sql, sizeof sql, "SAVEPOINT rp_sp%d", s->tx_depth);
  int rc = tx_step(s, sql, err);
  if (rc == RP_OK && s->tx_depth++ == 0) s->tx_serial++;
  return rc;
}

void rp_store_set_customer_listener(rp_store *s, rp_store_customer_fn fn, void *ctx) {
  s->customer_fn = fn;
  s->customer_ctx = ctx;
}

void rp_store_customer_changed(rp_store *s, int64_t customer_id) {
  if (s->customer_fn) s->customer_fn(s->customer_ctx, customer_id);
}

int64_t rp_store_data_version(rp_store *s) {
  /* Within a write transaction no other connection can commit: the value
   * read once holds until it ends (or until SQLite ended it on its own). */
  int in_tx = s->tx_depth > 0 && !sqlite3_get_autocommit(s->db);
  if (in_tx && s->data_version_serial == s->tx_serial) return s->data_version;
  sqlite3_stmt *st;
  int64_t v = -1;
  if (rp_store_prepare(s, "PRAGMA data_version", &st, NULL) == RP_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    rp_store_done(st);
  }
  if (in_tx && v >= 0) {
    s->data_version = v;
    s->data_version_serial = s->tx_serial;
  }
  return v;
}

int rp_store_tx_commit(rp_store *s, rp_err *err) {
  if (s->tx_depth <= 0) return rp_err_set(err, RP_ECONFLICT, NULL, "commit without a transaction");
  char sql[48];
  if (s->tx_depth == 1) snprintf(sql, sizeof sql, "COMMIT");
  else snprintf(sql, sizeof sql, "RELEASE rp_sp%d", s->tx_depth - 1);
  int rc = tx_step(s, sql, err);
  if (rc == RP_OK) s->tx_depth--;
  return rc;
}

int rp_store_tx_rollback(rp_store *s) {
  if (s->tx_depth <= 0) return RP_OK;
  char sql[64];
  int rc;
  if (s->tx_depth == 1) {
    /* A failed statement may already have rolled the transaction back. */
    rc = sqlite3_get_autocommit(s->db) ? RP_OK : tx_step(s, "ROLLBACK", NULL);
  } else {
    snprintf(sql, sizeof sql, "ROLLBACK TO rp_sp%d", s->tx_depth - 1);
    rc = tx_step(s, sql, NULL);
    snprintf(sql, sizeof sql, "RELEASE rp_sp%d", s->tx_depth - 1);
    if (tx_step(s, sql, NULL) != RP_OK) rc = RP_EDB;
  }
  s->tx_depth--;
  return rc;
}

/* ---- settings ------------------------------------------------------------ */

char *rp_store_setting_get(rp_store *s, const char *key) {
  sqlite3_stmt *st;
  if (rp_store_prepare(s, "SELECT value FROM settings WHERE key = ?1", &st, NULL)) return NULL;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  char *v = NULL;
  if (sqlite3_step(st) == SQLITE_ROW) v = strdup((const char *)sqlite3_column_text(st, 0));
  rp_store_done(st);
  return v;
}

int rp_store_setting_set(rp_store *s, const char *key, const char *value, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(
      s, "INSERT INTO settings(key, value) VALUES(?1, ?2) "
         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", &st, err);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
  rc = sqlite3_step(st) == SQLITE_DONE ? RP_OK : rp_store_error(s, "settings", err);
  rp_store_done(st);
  return rc;
}

/* ---- migrations ---------------------------------------------------------- */

static const char migrations_table[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations(\n"
    "  scope TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL,\n"
    "  applied_at INTEGER NOT NULL, PRIMARY KEY(scope, version)) WITHOUT ROWID";

int rp_store_schema_version(rp_store *s, const char *scope, int *version, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(
      s, "SELECT coalesce(max(version), 0) FROM schema_migrations WHERE scope = ?1", &st, err);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_ROW) {
    rc = rp_store_error(s, "schema version", err);
  } else {
    *version = sqlite3_column_int(st, 0);
  }
  rp_store_done(st);
  return rc;
}

static int record_migration(rp_store *s, const char *scope, int version, const char *name,
                            rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s,
                            "INSERT INTO schema_migrations(scope, version, name, applied_at) "
                            "VALUES(?1, ?2, ?3, ?4)", &st, err);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, scope, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, version);
  sqlite3_bind_text(st, 3, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 4, rp_clock_now_ms());
  rc = sqlite3_step(st) == SQLITE_DONE ? RP_OK : rp_store_error(s, "record migration", err);
  rp_store_done(st);
  return rc;
}

/* Runs sql and records (scope, version) in one transaction. */
static int apply_one(rp_store *s, const char *scope, int version, const char *name,
                     const char *sql, rp_err *err) {
  /* Only the migration's own SQL runs under the principal (a plugin's
   * authorizer); the transaction and its record are the store's. */
  void *principal = rp_store_set_principal(s, NULL);
  int rc = rp_store_tx_begin(s, err);
  if (rc) {
    rp_store_set_principal(s, principal);
    return rc;
  }
  rp_store_set_principal(s, principal);
  rc = rp_store_exec(s, sql, err);
  rp_store_set_principal(s, NULL);
  if (rc == RP_OK) rc = record_migration(s, scope, version, name, err);
  if (rc == RP_OK) rc = rp_store_tx_commit(s, err);
  if (rc != RP_OK) rp_store_tx_rollback(s);
  rp_store_set_principal(s, principal);
  if (rc != RP_OK) {
    rp_err_prefix(err, "migration %s %03d_%s: ", scope, version, name);
  }
  return rc;
}

static int migrate_core(rp_store *s, int apply, rp_err *err) {
  int rc = rp_store_exec(s, migrations_table, err);
  if (rc) return rc;
  int have;
  if ((rc = rp_store_schema_version(s, "core", &have, err))) return rc;
  int known = rp_store_core_version();
  if (have > known)
    return rp_err_set(err, RP_ESCHEMA, NULL,
                      "database schema version %d is newer than this rapport (knows up to %d); "
                      "upgrade rapport to open %s", have, known, s->path);
  if (!apply) return RP_OK;
  for (const rp_migration *m = rp_core_migrations; m->version; m++) {
    if (m->version <= have) continue;
    if ((rc = apply_one(s, "core", m->version, m->name, m->sql, err))) return rc;
  }
  return RP_OK;
}

typedef struct mig_file {
  int version;
  char *name; /* file name */
} mig_file;

static int cmp_mig(const void *a, const void *b) {
  const mig_file *x = a, *y = b;
  return (x->version > y->version) - (x->version < y->version);
}

static char *read_file(const char *path, rp_err *err) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    rp_err_set(err, RP_EIO, path, "%s: %s", path, strerror(errno));
    return NULL;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = cap ? cap * 2 : 8192;
      char *n = realloc(buf, cap);
      if (!n) {
        free(buf);
        fclose(f);
        rp_err_set(err, RP_ENOMEM, path, "out of memory reading %s", path);
        return NULL;
      }
      buf = n;
    }
    size_t got = fread(buf + len, 1, 4096, f);
    len += got;
    if (got < 4096) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    rp_err_set(err, RP_EIO, path, "%s: read error", path);
    return NULL;
  }
  buf[len] = '\0';
  return buf;
}

int rp_store_migrate_dir(rp_store *s, const char *scope, const char *dir, int *applied,
                         rp_err *err) {
  if (applied) *applied = 0;
  int have, rc;
  /* The bookkeeping is the store's, not the principal's. */
  void *principal = rp_store_set_principal(s, NULL);
  rc = rp_store_schema_version(s, scope, &have, err);
  rp_store_set_principal(s, principal);
  if (rc) return rc;
  mig_file *files = NULL;
  size_t n = 0, cap = 0;
  DIR *d = opendir(dir);
  if (!d && errno != ENOENT)
    return rp_err_set(err, RP_EIO, dir, "%s: %s", dir, strerror(errno));
  struct dirent *de;
  while (d && (de = readdir(d))) {
    const char *nm = de->d_name;
    size_t len = strlen(nm);
    if (len < 5 || strcmp(nm + len - 4, ".sql") != 0) continue;
    char *end;
    long v = strtol(nm, &end, 10);
    if (end == nm || v <= 0 || v > 100000 || *end != '_') {
      rc = rp_err_set(err, RP_EINVAL, nm,
                      "%s/%s: a migration file is named NNN_description.sql", dir, nm);
      break;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      mig_file *nf = realloc(files, cap * sizeof *nf);
      if (!nf) { rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory"); break; }
      files = nf;
    }
    files[n].version = (int)v;
    files[n].name = strdup(nm);
    if (!files[n].name) { rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory"); break; }
    n++;
  }
  if (d) closedir(d);
  if (rc == RP_OK && n) qsort(files, n, sizeof *files, cmp_mig);
  for (size_t i = 1; rc == RP_OK && i < n; i++)
    if (files[i].version == files[i - 1].version)
      rc = rp_err_set(err, RP_EINVAL, files[i].name, "%s: two migrations numbered %d (%s, %s)",
                      dir, files[i].version, files[i - 1].name, files[i].name);
  int known = n ? files[n - 1].version : 0;
  if (rc == RP_OK && have > known)
    rc = rp_err_set(err, RP_ESCHEMA, NULL,
                    "%s: the database has migration %d of '%s' but %s only goes to %d; "
                    "install the newer version of '%s'", s->path, have, scope, dir, known, scope);
  for (size_t i = 0; rc == RP_OK && i < n; i++) {
    if (files[i].version <= have) continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, files[i].name);
    char *sql = read_file(path, err);
    if (!sql) { rc = err ? err->code : RP_EIO; break; }
    char name[256];
    snprintf(name, sizeof name, "%s", files[i].name);
    name[strlen(name) - 4] = '\0';
    rc = apply_one(s, scope, files[i].version, strchr(name, '_') + 1, sql, err);
    free(sql);
    if (rc == RP_OK && applied) (*applied)++;
  }
  for (size_t i = 0; i < n; i++) free(files[i].name);
  free(files);
  return rc;
}

/* ---- open / close -------------------------------------------------------- */

/* Another connection holds the write lock (`rapport serve` between two of
 * its transactions, an import). SQLite's own busy timeout sleeps longer and
 * longer between tries and can miss the millisecond gaps the loop leaves
 * between batches; trying every millisecond finds them. Gives up after
 * BUSY_WAIT_MS. */
#define BUSY_WAIT_MS 30000
static int on_busy(void *ctx, int tries) {
  (void)ctx;
  if (tries >= BUSY_WAIT_MS) return 0;
  struct timespec ts = {0, 1000000};
  nanosleep(&ts, NULL);
  return 1;
}

int rp_store_open(const char *path, int flags, rp_store **out, rp_err *err) {
  *out = NULL;
  rp_store *s = calloc(1, sizeof *s);
  if (!s) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  s->path = strdup(path);
  int oflags = (flags & RP_STORE_READONLY) ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
  if (flags & RP_STORE_CREATE) oflags |= SQLITE_OPEN_CREATE;
  oflags |= SQLITE_OPEN_NOMUTEX;
  int rc = RP_OK;
  if (!s->path) rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  if (rc == RP_OK && sqlite3_open_v2(path, &s->db, oflags, NULL) != SQLITE_OK) {
    rc = rp_err_set(err, RP_EIO, path, "cannot open database %s: %s%s", path,
                    s->db ? sqlite3_errmsg(s->db) : "out of memory",
                    (flags & RP_STORE_CREATE) ? "" : " (run `rapport init` first?)");
  }
  if (rc == RP_OK) {
    sqlite3_busy_handler(s->db, on_busy, s);
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_set_authorizer(s->db, authorizer, s);
  }
  /* temp_store stays SQLite's default (files, opened only when needed) and
   * not MEMORY: an in-memory statement journal is cut back after each
   * statement by walking its 1 KiB chunks from the start, which inside a
   * long savepoint (a batch of a thousand events) made every statement cost
   * the length of the journal; a file one spills past 64 KiB and is
   * truncated in one call. */
  if (rc == RP_OK && !(flags & RP_STORE_READONLY))
    rc = rp_store_exec(s,
                       "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                       "PRAGMA foreign_keys=OFF;",
                       err);
  if (rc == RP_OK && !(flags & RP_STORE_READONLY))
    rc = migrate_core(s, !(flags & RP_STORE_NOMIGRATE), err);
  if (rc == RP_OK && (flags & RP_STORE_READONLY)) {
    int have = 0;
    /* A read-only open still refuses a newer schema. */
    if (rp_store_schema_version(s, "core", &have, NULL) == RP_OK && have > rp_store_core_version())
      rc = rp_err_set(err, RP_ESCHEMA, NULL,
                      "database schema version %d is newer than this rapport (knows up to %d)",
                      have, rp_store_core_version());
  }
  if (rc != RP_OK) {
    rp_store_close(s);
    return rc;
  }
  *out = s;
  return RP_OK;
}

void rp_store_close(rp_store *s) {
  if (!s) return;
  for (size_t i = 0; i < s->cache_cap; i++) {
    if (!s->cache[i].sql) continue;
    free(s->cache[i].sql);
    sqlite3_finalize(s->cache[i].stmt);
  }
  free(s->cache);
  if (s->db) sqlite3_close_v2(s->db);
  free(s->path);
  rp_vault_free(s->vault);
  free(s);
}

void rp_store_set_vault(rp_store *s, rp_vault *v) {
  if (s->vault != v) rp_vault_free(s->vault);
  s->vault = v;
}

rp_vault *rp_store_vault(const rp_store *s) { return s->vault; }
