/* datakey: the data key that encrypts customers' sensitive fields at rest,
 * and the primitives that use it (OpenSSL libcrypto).
 *
 * The key is 32 random bytes, read from RAPPORT_DATA_KEY (64 hex digits) or
 * from a key file (by default the database path + ".key"), which must be a
 * regular file of mode 0600 (or stricter) holding the 64 hex digits; `rapport
 * init` creates one when there is none. Two subkeys are derived from it with
 * HMAC-SHA-256: one seals values (AES-256-GCM, a fresh 12-byte nonce per
 * value), one computes blind indexes (HMAC-SHA-256 of a normalised value,
 * so that exact lookups work on values stored encrypted).
 *
 * Ownership: rp_datakey is opaque, freed with rp_datakey_free (which wipes
 * it); sealed and opened buffers are malloc'ed, freed by the caller. */
#ifndef RP_DATAKEY_H
#define RP_DATAKEY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct rp_datakey rp_datakey;

enum {
  RP_SEAL_OVERHEAD = 1 + 12 + 16, /* version byte, nonce, tag */
  RP_BLIND_HEX = 64               /* hex digits of a blind index */
};

/* Loads the key: RAPPORT_DATA_KEY when set, else the file at path. With
 * create set and neither present, writes a new random key to path (mode
 * 0600). RP_EINVAL naming the file for a key file readable by others or
 * malformed; RP_ENOTFOUND when absent and not created. */
int rp_datakey_load(const char *path, int create, rp_datakey **out, rp_err *err);

/* A key from 32 bytes (tests). */
int rp_datakey_from_bytes(const unsigned char key[32], rp_datakey **out, rp_err *err);

void rp_datakey_free(rp_datakey *k);

/* A short fingerprint of the key (16 hex digits), stored with the database
 * so that opening it with another key is refused instead of misreading. */
void rp_datakey_fingerprint(const rp_datakey *k, char out[17]);

/* Encrypts n bytes of plain with a fresh nonce, binding context (e.g.
 * "email") as associated data: *sealed is n + RP_SEAL_OVERHEAD bytes. */
int rp_datakey_seal(const rp_datakey *k, const char *context, const void *plain, size_t n,
                    unsigned char **sealed, size_t *sealed_len, rp_err *err);

/* Decrypts what rp_datakey_seal made under the same context: *plain is
 * NUL-terminated (n bytes before it). RP_EINVAL when the data was altered,
 * sealed under another key or another context. */
int rp_datakey_open(const rp_datakey *k, const char *context, const unsigned char *sealed,
                    size_t sealed_len, char **plain, size_t *n, rp_err *err);

/* The blind index of value under context: 64 hex digits and a NUL. */
void rp_datakey_blind(const rp_datakey *k, const char *context, const char *value,
                      char out[RP_BLIND_HEX + 1]);

#endif
