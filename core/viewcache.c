/* viewcache: see viewcache.h. A chained hash table of views keyed by
 * (customer id, flags), threaded on a least-recently-used list. */
#include "viewcache.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A place in the least-recently-used list. */
typedef struct lru_link {
  struct lru_link *older, *newer;
} lru_link;

typedef struct view {
  lru_link lru;        /* first: a link is its view (see view_of) */
  int64_t id;
  unsigned flags;
  struct view *chain;  /* next in the bucket */
  size_t len;
  char text[];
} view;

static view *view_of(lru_link *l) { return (view *)(void *)l; }

struct rp_viewcache {
  rp_store *store;
  view **buckets;
  size_t n_buckets;         /* a power of two */
  lru_link lru;             /* sentinel: lru.older is the newest view, lru.newer the oldest */
  size_t bytes, max_bytes, n_views;
  int64_t data_version;     /* as last seen; -1: unknown */
  uint64_t hits, misses, dropped;
};

/* Every table a view reads, and the customers a row change in it touches.
 * customers: a merge sets merged_into on the absorbed row, which changes the
 * survivor's merged_from as well. */
static const struct watched {
  const char *table;
  const char *ids_old, *ids_new; /* the customer ids of OLD and NEW rows */
} watched[] = {
    {"customers", "OLD.id, OLD.merged_into", "NEW.id, NEW.merged_into"},
    {"customer_identities", "OLD.customer_id", "NEW.customer_id"},
    {"customer_attributes", "OLD.customer_id", "NEW.customer_id"},
    {"customer_consent", "OLD.customer_id", "NEW.customer_id"},
    {"events", "OLD.customer_id", "NEW.customer_id"},
};

/* No INSERT trigger on events: rp_event_append, the one statement that
 * inserts there, tells the store's customer listener instead (store.h). */
static int watched_op(const struct watched *w, int op) {
  return !(op == 0 && strcmp(w->table, "events") == 0);
}

static size_t view_size(const view *v) { return sizeof *v + v->len; }

static size_t bucket_of(const rp_viewcache *vc, int64_t id) {
  /* Fibonacci hashing: customer ids are dense and sequential. */
  return (size_t)(((uint64_t)id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (vc->n_buckets - 1);
}

static void lru_unlink(view *v) {
  v->lru.older->newer = v->lru.newer;
  v->lru.newer->older = v->lru.older;
}

static void lru_push_newest(rp_viewcache *vc, view *v) {
  v->lru.newer = &vc->lru;
  v->lru.older = vc->lru.older;
  vc->lru.older->newer = &v->lru;
  vc->lru.older = &v->lru;
}

/* Unlinks *slot (a bucket's chain pointer) and frees its view. */
static void drop_at(rp_viewcache *vc, view **slot) {
  view *v = *slot;
  *slot = v->chain;
  lru_unlink(v);
  vc->bytes -= view_size(v);
  vc->n_views--;
  vc->dropped++;
  free(v);
}

static void drop_customer(rp_viewcache *vc, int64_t id) {
  view **slot = &vc->buckets[bucket_of(vc, id)];
  while (*slot) {
    if ((*slot)->id == id) drop_at(vc, slot);
    else slot = &(*slot)->chain;
  }
}

static void drop_all(rp_viewcache *vc) {
  for (size_t i = 0; i < vc->n_buckets; i++)
    while (vc->buckets[i]) drop_at(vc, &vc->buckets[i]);
}

static view **find_slot(rp_viewcache *vc, int64_t id, unsigned flags) {
  view **slot = &vc->buckets[bucket_of(vc, id)];
  while (*slot && ((*slot)->id != id || (*slot)->flags != flags)) slot = &(*slot)->chain;
  return slot;
}

/* rp_view_stale(id, ...): the views of these customers are out of date.
 * Called by the TEMP triggers for every row change; NULL ids are skipped. */
static void sql_stale(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  rp_viewcache *vc = sqlite3_user_data(ctx);
  if (!vc) return; /* the cache is gone; the triggers outlive it harmlessly */
  for (int i = 0; i < argc; i++)
    if (sqlite3_value_type(argv[i]) == SQLITE_INTEGER)
      drop_customer(vc, sqlite3_value_int64(argv[i]));
}

static void on_rollback(void *ctx) { drop_all(ctx); }

static void on_customer_changed(void *ctx, int64_t customer_id) {
  drop_customer(ctx, customer_id);
}

/* Drops everything when another connection committed since the last look
 * (or when that cannot be known). */
static void sync_data_version(rp_viewcache *vc) {
  int64_t version = rp_store_data_version(vc->store);
  if (version < 0 || version != vc->data_version) drop_all(vc);
  vc->data_version = version;
}

static int install(rp_viewcache *vc, rp_err *err) {
  sqlite3 *db = rp_store_db(vc->store);
  if (sqlite3_create_function_v2(db, "rp_view_stale", -1, SQLITE_UTF8, vc, sql_stale, NULL,
                                 NULL, NULL) != SQLITE_OK)
    return rp_store_error(vc->store, "view cache: SQL function", err);
  static const char *const ops[] = {"INSERT", "UPDATE", "DELETE"};
  for (size_t t = 0; t < sizeof watched / sizeof watched[0]; t++) {
    for (int o = 0; o < 3; o++) {
      const struct watched *w = &watched[t];
      if (!watched_op(w, o)) continue;
      char sql[512];
      const char *ids = o == 0 ? w->ids_new : o == 2 ? w->ids_old : NULL;
      char both[128];
      if (!ids) {
        snprintf(both, sizeof both, "%s, %s", w->ids_old, w->ids_new);
        ids = both;
      }
      snprintf(sql, sizeof sql,
               "CREATE TEMP TRIGGER IF NOT EXISTS rp_view_%s_%s AFTER %s ON main.%s "
               "BEGIN SELECT rp_view_stale(%s); END",
               w->table, ops[o], ops[o], w->table, ids);
      int rc = rp_store_exec(vc->store, sql, err);
      if (rc) return rc;
    }
  }
  sqlite3_rollback_hook(db, on_rollback, vc);
  rp_store_set_customer_listener(vc->store, on_customer_changed, vc);
  return RP_OK;
}

int rp_viewcache_open(rp_store *s, size_t max_bytes, rp_viewcache **out, rp_err *err) {
  *out = NULL;
  if (max_bytes == 0) return RP_OK;
  rp_viewcache *vc = calloc(1, sizeof *vc);
  if (vc) vc->buckets = calloc(1024, sizeof *vc->buckets);
  if (!vc || !vc->buckets) {
    free(vc);
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  vc->store = s;
  vc->n_buckets = 1024;
  vc->max_bytes = max_bytes;
  vc->lru.older = vc->lru.newer = &vc->lru;
  int rc = install(vc, err);
  vc->data_version = rp_store_data_version(s);
  if (rc) {
    rp_viewcache_free(vc);
    return rc;
  }
  *out = vc;
  return RP_OK;
}

void rp_viewcache_free(rp_viewcache *vc) {
  if (!vc) return;
  sqlite3 *db = rp_store_db(vc->store);
  /* The TEMP triggers stay until the connection closes (dropping them could
   * fail inside a transaction): they now call a function that does nothing. */
  sqlite3_create_function_v2(db, "rp_view_stale", -1, SQLITE_UTF8, NULL, sql_stale, NULL, NULL,
                             NULL);
  sqlite3_rollback_hook(db, NULL, NULL);
  rp_store_set_customer_listener(vc->store, NULL, NULL);
  drop_all(vc);
  free(vc->buckets);
  free(vc);
}

const char *rp_viewcache_get(rp_viewcache *vc, int64_t id, unsigned flags, size_t *len) {
  *len = 0;
  if (!vc) return NULL;
  sync_data_version(vc);
  view *v = *find_slot(vc, id, flags);
  if (!v) {
    vc->misses++;
    return NULL;
  }
  vc->hits++;
  lru_unlink(v);
  lru_push_newest(vc, v);
  *len = v->len;
  return v->text;
}

/* Doubles the buckets when views outnumber them, so chains stay short. */
static void grow(rp_viewcache *vc) {
  size_t n = vc->n_buckets * 2;
  view **b = calloc(n, sizeof *b);
  if (!b) return; /* longer chains, still correct */
  view **old = vc->buckets;
  size_t old_n = vc->n_buckets;
  vc->buckets = b;
  vc->n_buckets = n;
  for (size_t i = 0; i < old_n; i++) {
    for (view *v = old[i], *next; v; v = next) {
      next = v->chain;
      size_t k = bucket_of(vc, v->id);
      v->chain = b[k];
      b[k] = v;
    }
  }
  free(old);
}

void rp_viewcache_put(rp_viewcache *vc, int64_t id, unsigned flags, const char *text,
                      size_t len) {
  if (!vc || rp_store_tx_depth(vc->store) > 1) return;
  view **slot = find_slot(vc, id, flags);
  if (*slot) drop_at(vc, slot);
  size_t size = sizeof(view) + len;
  if (size > vc->max_bytes) return;
  while (vc->bytes + size > vc->max_bytes && vc->lru.newer != &vc->lru) {
    view *oldest = view_of(vc->lru.newer);
    drop_at(vc, find_slot(vc, oldest->id, oldest->flags));
  }
  view *v = malloc(size);
  if (!v) return;
  v->id = id;
  v->flags = flags;
  v->len = len;
  memcpy(v->text, text, len);
  if (vc->n_views >= vc->n_buckets) grow(vc);
  size_t k = bucket_of(vc, id);
  v->chain = vc->buckets[k];
  vc->buckets[k] = v;
  lru_push_newest(vc, v);
  vc->bytes += size;
  vc->n_views++;
}

void rp_viewcache_stats_of(const rp_viewcache *vc, rp_viewcache_stats *out) {
  memset(out, 0, sizeof *out);
  if (!vc) return;
  out->hits = vc->hits;
  out->misses = vc->misses;
  out->dropped = vc->dropped;
  out->views = vc->n_views;
  out->bytes = vc->bytes;
}
