/* keys: API keys and the roles they carry.
 *
 * A key reads "rpk_<id>_<secret>": the id finds the row, the 32-byte random
 * secret (hex) proves it. Only SHA-256(secret) is stored, compared in
 * constant time; the key is printed once, by rp_keys_create. A role names a
 * set of API permissions (rp_role_allows); the HTTP layer asks it, in one
 * place, for every route. */
#ifndef RP_KEYS_H
#define RP_KEYS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

enum { RP_KEY_TEXT = 96 }; /* room for a key's text, NUL included */

/* HTTP API permissions. */
enum {
  RP_API_EVENTS_WRITE = 1u << 0,    /* ingest events, identify */
  RP_API_CUSTOMERS_READ = 1u << 1,  /* profiles without identities */
  RP_API_PII_READ = 1u << 2,        /* identities and consent in profiles, lookup by email/phone */
  RP_API_CUSTOMERS_WRITE = 1u << 3, /* change attributes and consent */
  RP_API_ADMIN = 1u << 4            /* plugins, jobs, dead letters, keys */
};

/* True when role (e.g. "operator") exists. */
int rp_role_valid(const char *role);
/* The permissions of a role (0 for an unknown one). */
uint32_t rp_role_permissions(const char *role);
/* A short name of one permission bit ("customers:read"). */
const char *rp_api_permission_name(uint32_t bit);

/* Creates a key for role (name may be NULL: "key <id>"; plugin names the
 * plugin whose routes a partner key may use, NULL otherwise). Writes the key
 * text into key (RP_KEY_TEXT bytes): it is never stored. */
int rp_keys_create(rp_store *s, const char *role, const char *name, const char *plugin,
                   int64_t *id, char key[RP_KEY_TEXT], rp_err *err);

/* Every key (never the secret): [{id, name, role, plugin, created_at,
 * last_used_at, revoked_at}]; *out owned by the caller. */
int rp_keys_list(rp_store *s, cJSON **out, rp_err *err);

/* Revokes key id: it stops working at once. RP_ENOTFOUND when unknown. */
int rp_keys_revoke(rp_store *s, int64_t id, rp_err *err);

/* Keys a server verified lately, so that a key seen again costs its hash
 * and no query. An entry proves a key only while no other connection has
 * committed since it was verified (rp_store_data_version: that is how a
 * `rapport keys revoke` in another process is seen) and no key was revoked
 * in this process; the presented secret's SHA-256 is still compared, in
 * constant time. Zero-initialised by its owner; the loop thread's. */
enum { RP_KEYS_SEEN = 16 };
typedef struct rp_keys_seen {
  struct rp_key_seen {
    int64_t id; /* 0: empty */
    int64_t data_version;
    uint64_t revocations;
    int64_t used_at; /* last_used_at as written, ms */
    unsigned char digest[32];
    char role[16];
  } at[RP_KEYS_SEEN];
  unsigned next; /* the entry replaced next */
} rp_keys_seen;

/* Checks a presented key and notes when it was last used (to the minute).
 * seen (may be NULL) remembers keys verified lately, see above.
 * RP_OK with *id and role (at least 16 bytes);
 * RP_EDENIED for a malformed, unknown, wrong or revoked key (one message for
 * all, so that it tells an attacker nothing). */
int rp_keys_verify(rp_store *s, rp_keys_seen *seen, const char *key, int64_t *id, char *role,
                   size_t role_size, rp_err *err);

#endif
