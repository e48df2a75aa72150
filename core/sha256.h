/* sha256: SHA-256 with the algorithm fetched from OpenSSL once.
 *
 * OpenSSL 3 looks an algorithm up in its provider tables on every one-shot
 * call (SHA256(), EVP_DigestInit_ex with EVP_sha256()); for the key check
 * and the audit record of every HTTP read, the lookup cost more than the
 * hashing. The fetched method lives as long as the process. */
#ifndef RP_SHA256_H
#define RP_SHA256_H

#include <openssl/evp.h>
#include <stddef.h>

/* The SHA-256 method, for EVP_DigestInit_ex; never NULL with a working
 * libcrypto (EVP_sha256() is the fallback). Loop thread only. */
const EVP_MD *rp_sha256_md(void);

/* out = SHA-256(data). Returns 0, or -1 when libcrypto fails (out zeroed). */
int rp_sha256(const void *data, size_t len, unsigned char out[32]);

#endif
