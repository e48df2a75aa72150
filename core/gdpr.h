/* gdpr: data-subject requests on one customer: export everything Rapport
 * holds on them, or erase it.
 *
 * Both reach the core tables and every loaded plugin (through its export and
 * erase hooks, which a plugin keeping customer data must have). A customer
 * merged into another is the same person: the request covers the survivor
 * and every id absorbed into it.
 *
 * Erasure removes identities, attributes, consent and its history, the
 * properties and client ids of their events, and the evidence of merges;
 * what stays is anonymous: the customer id, the event types and times (so
 * counts and funnels keep adding up), and the audit records, which never
 * held values. It runs in one transaction with SQLite's secure_delete on,
 * then checkpoints and truncates the WAL, so that the erased values are
 * gone from the database file and its journal. */
#ifndef RP_GDPR_H
#define RP_GDPR_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "err.h"
#include "host.h"
#include "store.h"

/* Everything about customer id (any id of theirs): {"customer", "ids",
 * "events", "consent_history", "merges", "audit", "plugins": {name: ...},
 * "exported_at"}. *out owned by the caller. */
int rp_gdpr_export(rp_host *h, int64_t id, cJSON **out, rp_err *err);

/* Erases customer id (any id of theirs) and records it in the audit log as
 * actor from origin. *erased (may be NULL) receives the surviving id. */
int rp_gdpr_erase(rp_host *h, int64_t id, const char *actor, const char *origin,
                  int64_t *erased, rp_err *err);

#endif
