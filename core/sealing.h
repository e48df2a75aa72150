/* sealing: a database and its data key.
 *
 * rp_sealing_attach gives an open store its vault (vault.h): it loads the key
 * ring (the file named by config "data_key_file", else the database path +
 * ".key", or RAPPORT_DATA_KEY), creates the key on a database's first use,
 * refuses a ring that lacks the key the database records (settings
 * "data_key_fingerprint"), and brings the database in line with the
 * declared PII attributes when they changed.
 *
 * rp_sealing_reseal walks the sealed tables in batches, one transaction each,
 * and rewrites every value not as it should be: stored in clear but sealed
 * by rule (a database from before encryption, a newly declared PII
 * attribute), sealed by an older key of the ring, or sealed but no longer
 * declared PII. Other writers go on between batches: this is what `rapport
 * keys rotate-data-key` and `rapport keys reseal` run. */
#ifndef RP_SEALING_H
#define RP_SEALING_H

#include <stdint.h>

#include "config.h"
#include "err.h"
#include "store.h"

/* Attaches the vault of the database at db_path to s (":memory:" gets a key
 * of its own). read_only: never creates a key nor writes; with no key and
 * nothing recorded, no vault is attached. */
int rp_sealing_attach(rp_store *s, const rp_config *cfg, const char *db_path, int read_only,
                      rp_err *err);

/* The key file for a database: cfg's data_key_file or db_path + ".key";
 * malloc'ed, freed by the caller. */
char *rp_sealing_key_path(const rp_config *cfg, const char *db_path);

typedef struct rp_reseal_stats {
  int64_t scanned;  /* rows looked at */
  int64_t sealed;   /* clear values sealed, or re-sealed under the current key */
  int64_t unsealed; /* values no longer declared PII, stored in clear again */
} rp_reseal_stats;

/* Called after each batch with the running totals. */
typedef void (*rp_reseal_progress)(void *ctx, const rp_reseal_stats *st);

/* Reseals the whole database in batches of `batch` rows (0: 1000). On
 * success, records the current key as the database's key. */
int rp_sealing_reseal(rp_store *s, int batch, rp_reseal_progress progress, void *ctx,
                      rp_reseal_stats *stats, rp_err *err);

#endif
