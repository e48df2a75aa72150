/* profile: customers, their identities, typed attributes and consent, and
 * the merge of two records that turn out to be one person.
 *
 * It owns the customers and customer_* tables and the rules that keep them
 * coherent: every identity value is normalised before it is stored or
 * matched (normalize.h), placeholders never match or merge, a customer that
 * was absorbed by a merge keeps resolving to its survivor. It never knows
 * about HTTP, the CLI or plugins. Every writing call runs in its own nested
 * transaction, so it is atomic whether or not the caller holds one.
 *
 * Ownership: cJSON inputs are borrowed; cJSON outputs (*out) are owned by
 * the caller, who frees them with cJSON_Delete. */
#ifndef RP_PROFILE_H
#define RP_PROFILE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "store.h"

enum {
  RP_PROFILE_MAX_TEXT = 64 * 1024, /* longest text attribute value, in bytes */
  RP_PROFILE_MAX_ATTRS = 256,      /* attributes in one call */
  RP_PROFILE_MAX_IDENTITIES = 64   /* identity values in one call */
};

/* What an upsert did. */
typedef struct rp_upsert {
  int64_t customer_id; /* the (surviving) customer the input resolved to */
  int created;         /* 1 when a new customer was created */
  int merged;          /* customers absorbed into customer_id by this call */
  int updated;         /* 1 when an existing customer changed (an identity,
                          attribute or consent was added or changed, or a
                          merge happened); 0 when the input changed nothing */
} rp_upsert;

/* Creates or updates one customer from in, a JSON object:
 *
 *   {"id": 12,                         internal id; must exist (RP_ENOTFOUND)
 *    "external_id": "CRM-1",           identity of kind external_id
 *    "email": "a@b.c", "phone": "+33..", "anonymous_id": "..."  shorthands
 *    "identities": {"email": "a@b.c" | ["a@b.c", ...], "<kind>": ...},
 *    "attributes": {"name": value | null | {"type": T, "value": V,
 *                   "currency": "EUR"} | {"amount": 1250, "currency": "EUR"}},
 *    "consent": {"email": {"granted": true, "source": "..", "at": ms|ISO}
 *                | true | false}}
 *
 * Unknown keys are refused (RP_EINVAL) naming the field. Identity values
 * (strings, or whole numbers for non-email/phone kinds) are normalised;
 * placeholders are dropped silently; an invalid one is refused with its path
 * ("identities.email: ..."). Nothing is written unless the whole input is
 * valid. The input must name the customer: an id or at least one usable
 * identity (RP_EINVAL "no usable identity" otherwise).
 *
 * Resolution: known identities resolve to their customer (following
 * merges). When they resolve to two or more customers, those merge into the
 * oldest (lowest id), as rp_profile_merge with reason "identity"; res->merged
 * counts them. A new identity is attached to the resolved customer; when
 * nothing resolves, a customer is created.
 *
 * Attributes: a JSON string is text (at most RP_PROFILE_MAX_TEXT bytes), a
 * boolean is boolean, a whole number is integer; a number with a fraction is
 * refused (money is never a float: use {"type": "money", "value": "12.50",
 * "currency": "EUR"} or "12.50 EUR"). The typed form converts its value:
 * integer from a whole number or decimal string, boolean from a boolean, 0/1
 * or yes/no text, timestamp from epoch ms or ISO 8601 (stored as ms), money
 * from "12.50 EUR" text, a number of major units or "amount" in minor units.
 * JSON null deletes the attribute. Attribute names follow rp_norm_attr_name.
 *
 * Consent: channel email|sms|push|phone; "at" defaults to now and "source"
 * to the source argument. A change is recorded in the history; the current
 * state keeps the latest "at".
 *
 * source (may be NULL: "api") is recorded with consent and merges.
 * res (may be NULL) receives what happened. */
int rp_profile_upsert(rp_store *s, const rp_config *cfg, const cJSON *in, const char *source,
                      rp_upsert *res, rp_err *err);

/* Finds the customer holding identity kind:value. The value is normalised
 * first (an invalid one is RP_EINVAL); a placeholder is never found; the
 * result follows merges. RP_ENOTFOUND when nobody holds it. */
int rp_profile_resolve(rp_store *s, const rp_config *cfg, const char *kind, const char *value,
                       int64_t *id, rp_err *err);

/* Follows merged_into from id to the surviving customer (id itself when it
 * was never merged). RP_ENOTFOUND when id does not exist. */
int rp_profile_canonical(rp_store *s, int64_t id, int64_t *survivor, rp_err *err);

/* Finds a customer from a reference a person typed: "123" (internal id),
 * "kind:value" ("email:a@b.c", "phone:+33612345678", "external_id:CRM-1",
 * any identity kind), or a bare value: an email (has '@'), a phone (starts
 * with '+' or is made of digits and separators, when it is not a plain
 * number) or else an external id. Follows merges. RP_ENOTFOUND, or
 * RP_EINVAL for a reference that cannot be read. */
int rp_profile_lookup(rp_store *s, const rp_config *cfg, const char *ref, int64_t *id,
                      rp_err *err);

/* Sets attributes of customer id (followed to its survivor) from an object
 * of the same forms as upsert's "attributes"; null deletes. All or nothing. */
int rp_profile_set_attributes(rp_store *s, int64_t id, const cJSON *attrs, rp_err *err);

/* Records consent for channel (email|sms|push|phone) at at_ms (0: now) from
 * source (may be NULL: "api"), with a history row. The current state changes
 * only when at_ms is not older than the state recorded. */
int rp_profile_set_consent(rp_store *s, int64_t id, const char *channel, int granted,
                           const char *source, int64_t at_ms, rp_err *err);

/* Merges customer absorbed into survivor (both followed to their current
 * survivors first; RP_ECONFLICT when they are already one customer): moves
 * identities, consent history and events to survivor; per attribute and per
 * consent channel the more recently updated value wins (survivor on a tie);
 * sets absorbed.merged_into (and re-points customers it had absorbed); keeps
 * customers.external_id on the survivor when it had none; records a
 * customer_merges row with reason (may be NULL: "manual"). */
int rp_profile_merge(rp_store *s, int64_t survivor, int64_t absorbed, const char *reason,
                     rp_err *err);

enum { RP_VIEW_PII = 1, RP_VIEW_CONSENT = 2, RP_VIEW_EVENTS = 4, RP_VIEW_ALL = 7 };

/* The unified view of customer id (an absorbed id gives its survivor's view):
 *
 *   {"id", "external_id" (or null), "created_at", "updated_at" (epoch ms),
 *    "merged_from": [absorbed ids],
 *    "identities": {"email": ["a@b.c"], ...}           with RP_VIEW_PII
 *    "attributes": {"name": text | number | bool | {"amount", "currency"}},
 *                  PII attributes (vault.h) only with RP_VIEW_PII
 *    "attribute_types": {"name": "text|integer|boolean|timestamp|money"},
 *    "consent": {"email": {"granted", "source", "at"}}  with RP_VIEW_CONSENT
 *    "recent_events": [event, ...]}   newest first, with RP_VIEW_EVENTS and
 *                                     recent_events > 0 (see event.h)
 *
 * Timestamps (created_at, a timestamp attribute, consent at) are epoch ms.
 * Sealed values are opened with the store's vault; RP_EINVAL naming the
 * field when one does not open (no key, another key, altered).
 * *out is owned by the caller. RP_ENOTFOUND when id does not exist. */
int rp_profile_view(rp_store *s, int64_t id, unsigned flags, int recent_events, cJSON **out,
                    rp_err *err);

#endif
