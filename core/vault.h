/* vault: the key ring that seals customers' sensitive values at rest, and the
 * rule of what is sealed.
 *
 * The ring holds the current data key, which seals new values and computes
 * the blind indexes, and older keys that still open what they sealed while
 * `rapport keys rotate-data-key` re-seals the database. Keys come from
 * RAPPORT_DATA_KEY (64 hex digits per key, comma-separated, current first)
 * or else from a key file (one key per line, current first) that must be a
 * regular file of mode 0600 or stricter. A vault read from a file notices
 * when the file is replaced (rp_vault_refresh, and whenever a value names a
 * key it does not hold), so a rotation run by one process reaches a running
 * server without a restart.
 *
 * What is sealed: identities of kind email and phone (stored as their blind
 * index, the value sealed beside it) and attributes whose name is declared
 * PII (config "pii_attributes"; by default names, addresses and birth dates).
 *
 * Ownership: the creator owns a vault and frees it with rp_vault_free, or
 * hands it to a store (rp_store_set_vault), which then frees it. Sealed and
 * opened buffers are malloc'ed and freed by the caller. */
#ifndef RP_VAULT_H
#define RP_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include "datakey.h"
#include "err.h"

typedef struct rp_vault rp_vault;

enum { RP_VAULT_MAX_KEYS = 4 };

/* Loads the ring: from RAPPORT_DATA_KEY when it is set, else from the file
 * at path. With create set, a missing file is created with one new random
 * key (mode 0600). RP_ENOTFOUND when the file is missing and not created;
 * RP_EINVAL naming the file (or the variable) when it is readable by others
 * or malformed. */
int rp_vault_load(const char *path, int create, rp_vault **out, rp_err *err);

/* A vault with one random key held only in memory (":memory:" databases,
 * plugin specs). */
int rp_vault_ephemeral(rp_vault **out, rp_err *err);

void rp_vault_free(rp_vault *v);

/* True when the keys come from RAPPORT_DATA_KEY rather than a file. */
int rp_vault_from_env(const rp_vault *v);

/* The number of keys in the ring (the current one first). */
int rp_vault_key_count(rp_vault *v);

/* The fingerprint of the current key, and whether the ring holds a key with
 * fingerprint fp. */
void rp_vault_fingerprint(rp_vault *v, char out[17]);
int rp_vault_has_key(rp_vault *v, const char *fp);

/* Declares the PII attribute names (replacing the defaults); the vault
 * copies them. */
int rp_vault_set_pii(rp_vault *v, char *const *names, size_t n, rp_err *err);

/* True when attribute name is sealed (v NULL: by the default list, so that
 * what counts as PII does not depend on a key being loaded); true when
 * identities of kind are. */
int rp_vault_pii_attribute(const rp_vault *v, const char *name);
int rp_vault_sealed_kind(const char *kind);

/* The PII attribute names in force (borrowed). */
char *const *rp_vault_pii_names(const rp_vault *v, size_t *n);

/* Seals n bytes of plain under the current key (see rp_datakey_seal). */
int rp_vault_seal(rp_vault *v, const char *context, const void *plain, size_t n,
                  unsigned char **sealed, size_t *sealed_len, rp_err *err);

/* Opens a sealed value with whichever key of the ring sealed it (see
 * rp_datakey_open); RP_EINVAL naming the missing key when the ring has no
 * key of that id. */
int rp_vault_open(rp_vault *v, const char *context, const unsigned char *sealed,
                  size_t sealed_len, char **plain, size_t *n, rp_err *err);

/* True when sealed was sealed by the current key. */
int rp_vault_is_current(rp_vault *v, const unsigned char *sealed, size_t sealed_len);

/* The blind index of value under every key of the ring, current first;
 * returns how many were written (at least 1). */
int rp_vault_blinds(rp_vault *v, const char *context, const char *value,
                    char out[RP_VAULT_MAX_KEYS][RP_BLIND_HEX + 1]);

/* Key file rotation. rotate writes a new random key in front of the keys of
 * the file at path; retire rewrites the file with its first key only. Both
 * replace the file atomically (mode 0600) and fsync it. */
int rp_vault_file_rotate(const char *path, rp_err *err);
int rp_vault_file_retire(const char *path, rp_err *err);

/* Rereads the key file when it changed: rp_vault_reload now, rp_vault_refresh
 * at most once a second. The other calls never reload on their own (except
 * rp_vault_open meeting an unknown key id), so that one operation, which
 * refreshes once at its start, blinds and seals with one current key. */
int rp_vault_reload(rp_vault *v, rp_err *err);
void rp_vault_refresh(rp_vault *v);

#endif
