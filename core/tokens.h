/* tokens: signed, expiring tokens a plugin issues for its public routes
 * (a survey link in an email, say): the only way in for a route that takes
 * no API key.
 *
 * A token is base64url(JSON {"p": plugin, "d": payload, "exp": ms}) "."
 * hex(HMAC-SHA-256(server secret, that text)). The server secret is 32
 * random bytes kept in the settings table, created on first use. A token is
 * valid only for the plugin that issued it and until it expires. */
#ifndef RP_TOKENS_H
#define RP_TOKENS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

/* Issues a token for plugin carrying payload (borrowed; may be NULL), valid
 * for ttl_ms (1 s to 1 year). *out malloc'ed, freed by the caller. */
int rp_token_issue(rp_store *s, const char *plugin, const cJSON *payload, int64_t ttl_ms,
                   char **out, rp_err *err);

/* Checks a token for plugin: RP_OK with *payload (owned by the caller; JSON
 * null when it had none), or RP_EDENIED for a malformed, forged, expired or
 * other plugin's token. */
int rp_token_verify(rp_store *s, const char *plugin, const char *token, cJSON **payload,
                    rp_err *err);

#endif
