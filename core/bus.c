/* bus: cursors, batches, savepoints and dead letters. */
#include "bus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "fault.h"
#include "hostint.h"
#include "log.h"

typedef struct bus_event {
  rp_host_event ev;
  char *strings; /* one block for event_id, type, source, properties */
} bus_event;

static void free_batch(bus_event *b, size_t n) {
  for (size_t i = 0; i < n; i++) free(b[i].strings);
  free(b);
}

/* The filter of p's subscriptions as SQL, with literals bound from ?3 on.
 * Written into sql; returns 0 when some pattern is "*" (no filter). */
static int build_query(const rp_manifest *m, char *sql, size_t size) {
  int all = 0;
  for (size_t i = 0; i < m->n_subs; i++)
    if (strcmp(m->subs[i].pattern, "*") == 0) all = 1;
  size_t len = (size_t)snprintf(sql, size,
                                "SELECT id, event_id, customer_id, type, occurred_at, "
                                "received_at, source, properties FROM events WHERE id > ?1 "
                                "AND id <= ?2");
  if (!all && m->n_subs) {
    len += (size_t)snprintf(sql + len, size - len, " AND (");
    for (size_t i = 0; i < m->n_subs && len < size; i++) {
      const char *pat = m->subs[i].pattern;
      size_t n = strlen(pat);
      if (n >= 2 && pat[n - 1] == '*')
        len += (size_t)snprintf(sql + len, size - len, "%ssubstr(type, 1, %d) = ?%d",
                                i ? " OR " : "", (int)(n - 1), (int)i + 3);
      else
        len += (size_t)snprintf(sql + len, size - len, "%stype = ?%d", i ? " OR " : "",
                                (int)i + 3);
    }
    len += (size_t)snprintf(sql + len, size - len, ")");
  }
  snprintf(sql + len, size - len, " ORDER BY id LIMIT ?%d", (int)m->n_subs + 3);
  return !all;
}

static void bind_patterns(sqlite3_stmt *st, const rp_manifest *m) {
  for (size_t i = 0; i < m->n_subs; i++) {
    const char *pat = m->subs[i].pattern;
    size_t n = strlen(pat);
    if (n >= 2 && pat[n - 1] == '*') sqlite3_bind_text(st, (int)i + 3, pat, (int)n - 1, SQLITE_STATIC);
    else sqlite3_bind_text(st, (int)i + 3, pat, -1, SQLITE_STATIC);
  }
}

static char *copy_col(sqlite3_stmt *st, int col, char **at) {
  if (sqlite3_column_type(st, col) == SQLITE_NULL) return NULL;
  const char *s = (const char *)sqlite3_column_text(st, col);
  size_t n = (size_t)sqlite3_column_bytes(st, col);
  char *out = *at;
  memcpy(out, s, n);
  out[n] = '\0';
  *at += n + 1;
  return out;
}

/* Reads the batch into memory so that no statement is open while handlers
 * run (they prepare their own). */
static int fetch_batch(rp_host *h, rp_plugin *p, int64_t cursor, int64_t hi, int limit,
                       bus_event **out, size_t *n_out, rp_err *err) {
  *out = NULL;
  *n_out = 0;
  char sql[4096];
  build_query(p->m, sql, sizeof sql);
  sqlite3_stmt *st;
  int rc = rp_store_prepare(h->store, sql, &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, cursor);
  sqlite3_bind_int64(st, 2, hi);
  bind_patterns(st, p->m);
  sqlite3_bind_int(st, (int)p->m->n_subs + 3, limit);
  bus_event *b = calloc((size_t)limit, sizeof *b);
  if (!b) {
    rp_store_done(st);
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  size_t n = 0;
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    size_t need = 4;
    for (int c = 1; c <= 7; c++)
      if (c != 2 && c != 4 && c != 5) need += (size_t)sqlite3_column_bytes(st, c) + 1;
    char *block = malloc(need), *at = block;
    if (!block) {
      rc = rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
      break;
    }
    bus_event *e = &b[n++];
    e->strings = block;
    e->ev.id = sqlite3_column_int64(st, 0);
    e->ev.event_id = copy_col(st, 1, &at);
    e->ev.customer_id = sqlite3_column_int64(st, 2);
    e->ev.type = copy_col(st, 3, &at);
    e->ev.occurred_at = sqlite3_column_int64(st, 4);
    e->ev.received_at = sqlite3_column_int64(st, 5);
    e->ev.source = copy_col(st, 6, &at);
    e->ev.properties = copy_col(st, 7, &at);
    if (!e->ev.type) e->ev.type = "";
  }
  if (rc == RP_OK && step != SQLITE_DONE) rc = rp_store_error(h->store, "reading events", err);
  rp_store_done(st);
  if (rc) {
    free_batch(b, n);
    return rc;
  }
  *out = b;
  *n_out = n;
  return RP_OK;
}

static int dead_letter(rp_host *h, rp_plugin *p, int64_t event_id, const char *handler,
                       const rp_err *why, const char *traceback, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(h->store,
                            "INSERT INTO dead_letters(plugin, event_id, handler, error, traceback, "
                            "attempts, status, created_at, updated_at) "
                            "VALUES (?1, ?2, ?3, ?4, ?5, 1, 'pending', ?6, ?6)", &st, err);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, event_id);
  sqlite3_bind_text(st, 3, handler, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, why->msg, -1, SQLITE_STATIC);
  if (traceback && traceback[0]) sqlite3_bind_text(st, 5, traceback, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 6, rp_clock_now_ms());
  rc = sqlite3_step(st) == SQLITE_DONE ? RP_OK : rp_store_error(h->store, "dead letter", err);
  rp_store_done(st);
  return rc;
}

/* Calls handler for one event under a savepoint. Returns RP_OK when the
 * handler succeeded, 1 when it failed and was dead-lettered, or a store
 * error (the caller's transaction must then be rolled back). */
static int deliver_one(rp_host *h, rp_plugin *p, const char *handler, const rp_host_event *ev,
                       int *suspended, rp_err *err) {
  int rc = rp_store_tx_begin(h->store, err);
  if (rc) return rc;
  rp_err why;
  rp_err_clear(&why);
  if (rp_plugin_deliver(p, handler, ev, &why) == RP_OK) {
    if ((rc = rp_store_tx_commit(h->store, err))) return rc;
    rp_plugin_record_success(p);
    return RP_OK;
  }
  rp_store_tx_rollback(h->store);
  if ((rc = dead_letter(h, p, ev->id, handler, &why, rp_sandbox_traceback(p->sb), err))) return rc;
  rp_plugin_record_failure(p, &why, suspended);
  return 1;
}

static int64_t read_cursor(rp_host *h, const char *plugin, int *found, rp_err *err) {
  sqlite3_stmt *st;
  *found = 0;
  if (rp_store_prepare(h->store, "SELECT last_event_id FROM bus_cursors WHERE plugin = ?1", &st,
                       err))
    return -1;
  sqlite3_bind_text(st, 1, plugin, -1, SQLITE_STATIC);
  int64_t c = 0;
  if (sqlite3_step(st) == SQLITE_ROW) {
    c = sqlite3_column_int64(st, 0);
    *found = 1;
  }
  rp_store_done(st);
  return c;
}

static int64_t max_event_id(rp_host *h) {
  sqlite3_stmt *st;
  if (rp_store_prepare(h->store, "SELECT coalesce(max(id), 0) FROM events", &st, NULL)) return 0;
  int64_t hi = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  rp_store_done(st);
  return hi;
}

/* One info line per plugin at most every second while events flow, and one
 * when it has caught up: enough to watch a backlog drain, not a line per
 * event. */
static void log_progress(rp_plugin *p, int64_t delivered, int64_t lag) {
  p->delivered_unlogged += delivered;
  if (p->delivered_unlogged == 0) return;
  uint64_t now = rp_clock_mono_ns();
  if (lag > 0 && now - p->delivered_logged_ns < 1000000000ULL) return;
  rp_log(RP_LOG_INFO, "bus", "%s: %lld event(s) delivered, %lld to go", p->name,
         (long long)p->delivered_unlogged, (long long)lag);
  p->delivered_unlogged = 0;
  p->delivered_logged_ns = now;
}

int rp_bus_pump_plugin(rp_host *h, rp_plugin *p, int64_t *processed, rp_err *err) {
  *processed = 0;
  if (!rp_plugin_active(p) || !p->m) return RP_OK;
  rp_store *s = h->store;
  int rc = rp_store_tx_begin(s, err);
  if (rc) return rc;
  int found;
  int64_t cursor = read_cursor(h, p->name, &found, err);
  int64_t hi = max_event_id(h);
  if (cursor < 0 || !found || hi <= cursor) {
    rp_store_tx_rollback(s);
    if (cursor < 0) return err ? err->code : RP_EDB;
    return RP_OK;
  }
  int limit = h->cfg->bus_batch > 0 ? h->cfg->bus_batch : 500;
  bus_event *batch;
  size_t n;
  if ((rc = fetch_batch(h, p, cursor, hi, limit, &batch, &n, err))) {
    rp_store_tx_rollback(s);
    return rc;
  }
  int64_t new_cursor = (int)n < limit ? hi : batch[n - 1].ev.id;
  int suspended = 0;
  for (size_t i = 0; i < n && !suspended; i++) {
    const rp_host_event *ev = &batch[i].ev;
    /* Each distinct handler whose pattern matches, once, in manifest order. */
    for (size_t k = 0; k < p->m->n_subs && !suspended; k++) {
      const rp_subscription *sub = &p->m->subs[k];
      if (!rp_pattern_match(sub->pattern, ev->type)) continue;
      int seen = 0;
      for (size_t j = 0; j < k; j++)
        if (strcmp(p->m->subs[j].handler, sub->handler) == 0 &&
            rp_pattern_match(p->m->subs[j].pattern, ev->type))
          seen = 1;
      if (seen) continue;
      rc = deliver_one(h, p, sub->handler, ev, &suspended, err);
      if (rc < 0) break;
      rc = RP_OK;
    }
    if (rc < 0) break;
    (*processed)++;
    if (suspended) new_cursor = ev->id;
  }
  free_batch(batch, n);
  if (rc == RP_OK) {
    sqlite3_stmt *st;
    if ((rc = rp_store_prepare(s, "UPDATE bus_cursors SET last_event_id = ?2, updated_at = ?3 "
                                  "WHERE plugin = ?1", &st, err)) == RP_OK) {
      sqlite3_bind_text(st, 1, p->name, -1, SQLITE_STATIC);
      sqlite3_bind_int64(st, 2, new_cursor);
      sqlite3_bind_int64(st, 3, rp_clock_now_ms());
      if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "advancing the cursor", err);
      rp_store_done(st);
    }
  }
  if (rc == RP_OK) {
    /* The instant the exactly-once guarantee is about: handlers ran and the
     * cursor moved, nothing is committed yet. */
    rp_fault_point("bus.before_commit");
    rc = rp_store_tx_commit(s, err);
  }
  if (rc) {
    rp_store_tx_rollback(s);
    *processed = 0;
    return rc;
  }
  log_progress(p, *processed, hi - new_cursor);
  return RP_OK;
}

int rp_bus_pump(rp_host *h, int64_t *processed, rp_err *err) {
  int64_t total = 0;
  for (size_t i = 0; i < rp_host_count(h); i++) {
    int64_t n = 0;
    int rc = rp_bus_pump_plugin(h, rp_host_plugin_at(h, i), &n, err);
    if (rc) {
      if (processed) *processed = total;
      return rc;
    }
    total += n;
  }
  if (processed) *processed = total;
  return RP_OK;
}

int rp_bus_drain(rp_host *h, int max_rounds, int64_t *processed, rp_err *err) {
  int64_t total = 0;
  for (int round = 0; round < max_rounds; round++) {
    int64_t before = max_event_id(h);
    int busy = 0;
    for (size_t i = 0; i < rp_host_count(h); i++) {
      rp_plugin *p = rp_host_plugin_at(h, i);
      int64_t n = 1;
      while (n > 0) {
        int rc = rp_bus_pump_plugin(h, p, &n, err);
        if (rc) {
          if (processed) *processed = total;
          return rc;
        }
        total += n;
        if (n) busy = 1;
      }
    }
    if (!busy && max_event_id(h) == before) break;
  }
  if (processed) *processed = total;
  return RP_OK;
}

int rp_bus_lag(rp_host *h, const char *plugin, int64_t *lag, rp_err *err) {
  int found;
  int64_t c = read_cursor(h, plugin, &found, err);
  if (c < 0) return err ? err->code : RP_EDB;
  if (!found) return rp_err_set(err, RP_ENOTFOUND, plugin, "plugin '%s' has no cursor", plugin);
  *lag = max_event_id(h) - c;
  return RP_OK;
}

int rp_dlq_list(rp_store *s, const char *plugin, int all, int limit, cJSON **out, rp_err *err) {
  *out = NULL;
  sqlite3_stmt *st;
  int rc = rp_store_prepare(
      s,
      "SELECT d.id, d.plugin, d.event_id, e.type, d.handler, d.error, d.traceback, d.attempts, "
      "d.status, d.created_at, d.updated_at FROM dead_letters d LEFT JOIN events e ON "
      "e.id = d.event_id WHERE (?1 IS NULL OR d.plugin = ?1) AND (?2 OR d.status = 'pending') "
      "ORDER BY d.id DESC LIMIT ?3", &st, err);
  if (rc) return rc;
  if (plugin) sqlite3_bind_text(st, 1, plugin, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, all);
  sqlite3_bind_int(st, 3, limit > 0 ? limit : 100);
  cJSON *arr = cJSON_CreateArray();
  while (arr && sqlite3_step(st) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
    cJSON_AddStringToObject(o, "plugin", (const char *)sqlite3_column_text(st, 1));
    cJSON_AddNumberToObject(o, "event_id", (double)sqlite3_column_int64(st, 2));
    if (sqlite3_column_type(st, 3) != SQLITE_NULL)
      cJSON_AddStringToObject(o, "event_type", (const char *)sqlite3_column_text(st, 3));
    cJSON_AddStringToObject(o, "handler", (const char *)sqlite3_column_text(st, 4));
    cJSON_AddStringToObject(o, "error", (const char *)sqlite3_column_text(st, 5));
    if (sqlite3_column_type(st, 6) != SQLITE_NULL)
      cJSON_AddStringToObject(o, "traceback", (const char *)sqlite3_column_text(st, 6));
    cJSON_AddNumberToObject(o, "attempts", sqlite3_column_int(st, 7));
    cJSON_AddStringToObject(o, "status", (const char *)sqlite3_column_text(st, 8));
    cJSON_AddNumberToObject(o, "created_at", (double)sqlite3_column_int64(st, 9));
    cJSON_AddNumberToObject(o, "updated_at", (double)sqlite3_column_int64(st, 10));
    cJSON_AddItemToArray(arr, o);
  }
  rp_store_done(st);
  if (!arr) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  *out = arr;
  return RP_OK;
}

int rp_dlq_retry(rp_host *h, int64_t id, rp_err *err) {
  rp_store *s = h->store;
  sqlite3_stmt *st;
  int rc = rp_store_prepare(
      s,
      "SELECT d.plugin, d.handler, d.status, e.id, e.event_id, e.customer_id, e.type, "
      "e.occurred_at, e.received_at, e.source, e.properties FROM dead_letters d "
      "LEFT JOIN events e ON e.id = d.event_id WHERE d.id = ?1", &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, id);
  if (sqlite3_step(st) != SQLITE_ROW) {
    rp_store_done(st);
    return rp_err_set(err, RP_ENOTFOUND, "id", "no dead letter %lld", (long long)id);
  }
  char plugin[64], handler[72], status[16];
  snprintf(plugin, sizeof plugin, "%s", (const char *)sqlite3_column_text(st, 0));
  snprintf(handler, sizeof handler, "%s", (const char *)sqlite3_column_text(st, 1));
  snprintf(status, sizeof status, "%s", (const char *)sqlite3_column_text(st, 2));
  if (sqlite3_column_type(st, 3) == SQLITE_NULL) {
    rp_store_done(st);
    return rp_err_set(err, RP_ENOTFOUND, "id", "dead letter %lld: its event no longer exists",
                      (long long)id);
  }
  size_t need = 8;
  for (int c = 4; c <= 10; c++) need += (size_t)sqlite3_column_bytes(st, c) + 1;
  char *block = malloc(need), *at = block;
  if (!block) {
    rp_store_done(st);
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  rp_host_event ev;
  ev.id = sqlite3_column_int64(st, 3);
  ev.event_id = copy_col(st, 4, &at);
  ev.customer_id = sqlite3_column_int64(st, 5);
  ev.type = copy_col(st, 6, &at);
  ev.occurred_at = sqlite3_column_int64(st, 7);
  ev.received_at = sqlite3_column_int64(st, 8);
  ev.source = copy_col(st, 9, &at);
  ev.properties = copy_col(st, 10, &at);
  if (!ev.type) ev.type = "";
  rp_store_done(st);
  if (strcmp(status, "pending") != 0) {
    free(block);
    return rp_err_set(err, RP_ECONFLICT, "id", "dead letter %lld was already retried successfully",
                      (long long)id);
  }
  rp_plugin *p = rp_host_plugin(h, plugin);
  if (!p || !rp_plugin_active(p)) {
    free(block);
    return rp_err_set(err, RP_ECONFLICT, plugin,
                      "plugin '%s' is not enabled (or is suspended): `rapport plugin enable %s` "
                      "first", plugin, plugin);
  }
  if ((rc = rp_store_tx_begin(s, err))) {
    free(block);
    return rc;
  }
  rp_err why;
  rp_err_clear(&why);
  int ok = 0;
  if ((rc = rp_store_tx_begin(s, err)) == RP_OK) {
    if (rp_plugin_deliver(p, handler, &ev, &why) == RP_OK) {
      rc = rp_store_tx_commit(s, err);
      ok = rc == RP_OK;
    } else {
      rp_store_tx_rollback(s);
    }
  }
  free(block);
  if (rc == RP_OK &&
      (rc = rp_store_prepare(s,
                             "UPDATE dead_letters SET attempts = attempts + 1, updated_at = ?2, "
                             "status = CASE WHEN ?3 THEN 'retried' ELSE 'pending' END, "
                             "error = CASE WHEN ?3 THEN error ELSE ?4 END, "
                             "traceback = CASE WHEN ?3 THEN traceback ELSE ?5 END WHERE id = ?1",
                             &st, err)) == RP_OK) {
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, rp_clock_now_ms());
    sqlite3_bind_int(st, 3, ok);
    sqlite3_bind_text(st, 4, why.msg, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, rp_sandbox_traceback(p->sb), -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "dead letter", err);
    rp_store_done(st);
  }
  if (rc == RP_OK) rc = rp_store_tx_commit(s, err);
  if (rc) {
    rp_store_tx_rollback(s);
    return rc;
  }
  if (!ok) {
    if (err) *err = why;
    return why.code ? why.code : RP_EPLUGIN;
  }
  rp_plugin_record_success(p);
  return RP_OK;
}
