/* viewcache: customers' unified views as answered over HTTP, kept rendered
 * (JSON text) while nothing they show has changed.
 *
 * Rendering a view costs a handful of indexed queries, one AES-GCM opening
 * per sealed value and a JSON print: most of a GET /v1/customers/{id}. A
 * cached view is only as good as its invalidation, so it rests on SQLite
 * rather than on the code paths that write:
 *  - this connection's changes: TEMP triggers on every table a view reads
 *    (customers, customer_identities, customer_attributes, customer_consent,
 *    events) drop the views of each customer a row change touches, whatever
 *    statement made it; except for events appended, where rp_event_append
 *    (the one INSERT into events) tells the store's customer listener, since
 *    a trigger there would cost every ingested event a statement journal;
 *  - other connections' commits (a CLI import, `gdpr erase` in another
 *    process): PRAGMA data_version moves, and everything is dropped;
 *  - a rollback (a failed group commit): everything is dropped, since a view
 *    rendered inside the transaction may show what never committed.
 * Views are only stored at transaction depth 1 or less (never inside a
 * savepoint that could still roll back alone) and only under the customer's
 * canonical id (a merged-away id is looked up, not cached).
 *
 * Memory is bounded by max_bytes (view_cache_mib); the least recently used
 * views go first. 0 turns the cache off. Belongs to the loop thread, like
 * the store it watches. */
#ifndef RP_VIEWCACHE_H
#define RP_VIEWCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

typedef struct rp_viewcache rp_viewcache;

/* Creates a cache over s holding at most max_bytes of views and installs
 * its triggers, SQL function and rollback hook on s. The cache is owned by
 * the caller (rp_viewcache_free), and must be freed before s is closed. With
 * max_bytes 0, *out is NULL and nothing is installed: every call below
 * accepts a NULL cache and does nothing (or finds nothing). */
int rp_viewcache_open(rp_store *s, size_t max_bytes, rp_viewcache **out, rp_err *err);
void rp_viewcache_free(rp_viewcache *vc);

/* The view of customer id rendered with flags (RP_VIEW_*), or NULL. The
 * text (len bytes, not NUL-terminated) is borrowed until the next call on
 * the cache or on the store. Checks data_version first. */
const char *rp_viewcache_get(rp_viewcache *vc, int64_t id, unsigned flags, size_t *len);

/* Stores a copy of text as the view of id with flags, when the store is at
 * transaction depth 1 or less; a view larger than the whole cache, or one
 * that does not fit in memory, is simply not kept. */
void rp_viewcache_put(rp_viewcache *vc, int64_t id, unsigned flags, const char *text,
                      size_t len);

/* Counters for /metrics. */
typedef struct rp_viewcache_stats {
  uint64_t hits, misses, dropped; /* dropped: by a change, a rollback or memory */
  size_t views, bytes;
} rp_viewcache_stats;
void rp_viewcache_stats_of(const rp_viewcache *vc, rp_viewcache_stats *out);

#endif
