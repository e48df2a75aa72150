/* datakey: one data key and the primitives that use it (OpenSSL libcrypto).
 *
 * A data key is 32 random bytes (where they come from is the vault's
 * business, see vault.h). Three subkeys are derived from it with
 * HMAC-SHA-256: one seals values (AES-256-GCM, a fresh 12-byte nonce per
 * value), one computes blind indexes (HMAC-SHA-256 of a normalised value, so
 * that exact lookups work on values stored encrypted), one names the key
 * (its fingerprint and the 4-byte id written in front of what it seals, so
 * that a key ring knows which key opens a value).
 *
 * Sealed format: version byte (1), key id (4 bytes, big-endian), nonce (12),
 * ciphertext, GCM tag (16).
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
  RP_SEAL_OVERHEAD = 1 + 4 + 12 + 16, /* version byte, key id, nonce, tag */
  RP_BLIND_HEX = 64               /* hex digits of a blind index */
};

/* A key from its 32 bytes (which the caller then wipes). */
int rp_datakey_from_bytes(const unsigned char key[32], rp_datakey **out, rp_err *err);

void rp_datakey_free(rp_datakey *k);

/* A short fingerprint of the key (16 hex digits), stored with the database
 * so that opening it with another key is refused instead of misreading. */
void rp_datakey_fingerprint(const rp_datakey *k, char out[17]);

/* The id written in front of every value k seals. */
uint32_t rp_datakey_id(const rp_datakey *k);

/* The id of the key that sealed a value; -1 when it is not a sealed value. */
int rp_datakey_sealed_id(const unsigned char *sealed, size_t sealed_len, uint32_t *id);

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
