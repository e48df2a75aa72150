/* audit: who read or changed which customer's data, when, from where.
 *
 * An append-only table whose records are hash-chained: each record's hash is
 * SHA-256 over the previous record's hash and its own fields, so that an
 * edited, inserted or deleted record breaks the chain from that point on
 * (rp_audit_verify finds where). Records hold who, what and which fields,
 * never the data itself.
 *
 * Actors: "key:<id>" (HTTP), "cli:<user>", "operator:<user>" (scripts and
 * the REPL), "plugin:<name>". Origins: a client address, or "local". */
#ifndef RP_AUDIT_H
#define RP_AUDIT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

/* Appends one record: within the caller's transaction when there is one (a
 * change and its record commit together), else in a transaction of its own. customer_id
 * 0 when none; fields (may be NULL) a JSON array of field names, borrowed. */
int rp_audit_record(rp_store *s, const char *actor, const char *action, int64_t customer_id,
                    const cJSON *fields, const char *origin, rp_err *err);

/* As rp_audit_record, with the fields already printed: fields_text (may be
 * NULL) is the JSON text of an array of field names, borrowed. */
int rp_audit_append(rp_store *s, const char *actor, const char *action, int64_t customer_id,
                    const char *fields_text, const char *origin, rp_err *err);

/* audit_customers groups records in buckets of 2^12 (bucket = id >> 12,
 * schema v8), as SQL text: a batch of RP_AUDIT_INDEX_EVERY records lands
 * in the few pages of one bucket, and a customer's records cost one seek
 * per bucket. Changing it needs a migration. */
#define RP_AUDIT_BUCKET_SHIFT "12"

/* SQL: the ids of the audit records about customer ?1, for use as
 * "... WHERE id IN (" RP_AUDIT_IDS_OF_CUSTOMER ")": those indexed in
 * audit_customers, bucket by bucket, and those appended since. */
#define RP_AUDIT_IDS_OF_CUSTOMER                                                           \
  "WITH RECURSIVE b(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM b "                        \
  "WHERE n < (SELECT through >> " RP_AUDIT_BUCKET_SHIFT " FROM audit_indexed)) "            \
  "SELECT x.audit_id FROM b JOIN audit_customers x ON x.bucket = b.n AND x.customer_id = ?1 " \
  "UNION ALL SELECT id FROM audit_log WHERE id > (SELECT through FROM audit_indexed) "     \
  "AND customer_id = ?1"

/* Records appended since the last bulk indexing are indexed by the append
 * whose id is a multiple of this, in its transaction. */
enum { RP_AUDIT_INDEX_EVERY = 1024 };

/* Indexes every record not yet in audit_customers, in the caller's
 * transaction (or one of its own). */
int rp_audit_index(rp_store *s, rp_err *err);

/* Walks the whole chain. RP_OK with *checked records; RP_ECONFLICT naming
 * the first record whose hash does not follow (edited, inserted or deleted
 * before it), or, when the chain holds, an index by customer that does not
 * match the log (a record left out, or one that is not the log's). */
int rp_audit_verify(rp_store *s, int64_t *checked, rp_err *err);

/* The records about customer_id (0: all), newest first, at most limit:
 * [{id, at, actor, action, customer_id, fields, origin}]; owned by the
 * caller. */
int rp_audit_list(rp_store *s, int64_t customer_id, int limit, cJSON **out, rp_err *err);

/* The actor of the local user for a CLI command or an operator script:
 * "<prefix>:<login name>" into buf. */
void rp_audit_local_actor(const char *prefix, char *buf, size_t size);

#endif
