/* store: the SQLite connection of the core, its statement cache, transactions
 * and schema migrations.
 *
 * One rp_store is one connection. The writer connection belongs to the loop
 * thread; nothing here is thread-safe. Transactions nest: the outermost
 * rp_store_tx_begin is BEGIN IMMEDIATE, inner ones are SAVEPOINTs, so a caller
 * can make its work atomic without knowing whether its caller already did.
 * The store knows nothing of plugins: it calls an authorizer hook with an
 * opaque principal, which the plugin host sets while plugin SQL runs. */
#ifndef RP_STORE_H
#define RP_STORE_H

#include <sqlite3.h>
#include <stdint.h>

#include "err.h"
#include "vault.h"

typedef struct rp_store rp_store;

/* The highest core schema version this binary knows. */
int rp_store_core_version(void);

enum {
  RP_STORE_CREATE = 1,   /* create the file when missing */
  RP_STORE_READONLY = 2, /* open read-only (reports, `events tail`) */
  RP_STORE_NOMIGRATE = 4 /* do not apply pending core migrations */
};

/* Opens path (":memory:" allowed) in WAL mode with synchronous=FULL, a busy
 * timeout, and applies pending core migrations unless RP_STORE_NOMIGRATE.
 * Refuses (RP_ESCHEMA) a database whose core schema is newer than this binary.
 * On success *out is owned by the caller: close it with rp_store_close. */
int rp_store_open(const char *path, int flags, rp_store **out, rp_err *err);
void rp_store_close(rp_store *s);

/* The raw connection, borrowed. Prefer the helpers below. */
sqlite3 *rp_store_db(rp_store *s);
const char *rp_store_path(const rp_store *s);

/* Returns a cached prepared statement for sql, reset and with cleared
 * bindings. The statement is borrowed: the caller must call
 * rp_store_done(stmt) (a reset) when finished with it, and never finalize it.
 * sql must be a single statement. */
int rp_store_prepare(rp_store *s, const char *sql, sqlite3_stmt **out, rp_err *err);
void rp_store_done(sqlite3_stmt *stmt);

/* Runs one or more statements with no parameters. */
int rp_store_exec(rp_store *s, const char *sql, rp_err *err);

/* Fills err from the connection's last error, prefixed with what, and
 * returns RP_EDB (or RP_ECONFLICT for constraint violations). */
int rp_store_error(rp_store *s, const char *what, rp_err *err);

/* Nested transactions. begin at depth 0 is BEGIN IMMEDIATE, deeper levels are
 * savepoints. commit releases the innermost level (COMMIT at depth 1);
 * rollback undoes the innermost level. */
int rp_store_tx_begin(rp_store *s, rp_err *err);
int rp_store_tx_commit(rp_store *s, rp_err *err);
int rp_store_tx_rollback(rp_store *s);
int rp_store_tx_depth(const rp_store *s);

/* The one listener told of customers whose data this connection changed
 * where no trigger sees it: events appended by rp_event_append (a trigger
 * on that INSERT would give every event a statement journal, a third of
 * the cost of an ingested event). The view cache listens. NULL fn: none. */
typedef void (*rp_store_customer_fn)(void *ctx, int64_t customer_id);
void rp_store_set_customer_listener(rp_store *s, rp_store_customer_fn fn, void *ctx);
void rp_store_customer_changed(rp_store *s, int64_t customer_id);

/* PRAGMA data_version: a number that moves when another connection (or
 * process) commits to the database, and not on this connection's own
 * commits; what caches of database content check. Read once per write
 * transaction (nobody else can commit during one). -1 when it cannot be
 * read. */
int64_t rp_store_data_version(rp_store *s);

/* The authorizer hook. Installed once at open (installing it later would
 * expire every cached statement). While a principal is set, every statement
 * prepared on this connection is checked by fn(ctx, principal, action, ...),
 * with SQLite's authorizer arguments; with no principal, everything is
 * allowed. set_principal returns the previous principal so calls can nest. */
typedef int (*rp_store_auth_fn)(void *principal, int action, const char *a1,
                                const char *a2, const char *a3, const char *a4);
void rp_store_set_auth_fn(rp_store *s, rp_store_auth_fn fn);
void *rp_store_set_principal(rp_store *s, void *principal);
void *rp_store_principal(const rp_store *s);

/* Applies, in order and each exactly once, the migrations of a plugin: files
 * named NNN_description.sql in dir (NNN a positive integer). Each file runs in
 * its own transaction together with its record in schema_migrations, under
 * the current principal. Refuses (RP_ESCHEMA) when the database holds a
 * version of scope that dir no longer has. *applied (may be NULL) receives
 * the number of files applied. */
int rp_store_migrate_dir(rp_store *s, const char *scope, const char *dir,
                         int *applied, rp_err *err);

/* The highest migration version recorded for scope, 0 when none. */
int rp_store_schema_version(rp_store *s, const char *scope, int *version, rp_err *err);

/* The vault that seals customers' sensitive values (see vault.h). The store
 * takes ownership of v and frees it when closed or when another vault is set.
 * Without a vault (tests on a bare store) values are stored in clear. */
void rp_store_set_vault(rp_store *s, rp_vault *v);
rp_vault *rp_store_vault(const rp_store *s);

/* Value of the singleton settings table (key/value text), or NULL when absent;
 * returns a malloc'ed string the caller frees. */
char *rp_store_setting_get(rp_store *s, const char *key);
int rp_store_setting_set(rp_store *s, const char *key, const char *value, rp_err *err);

#endif
