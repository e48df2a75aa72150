/* gdpr: see gdpr.h. */
#include "gdpr.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "clock.h"
#include "event.h"
#include "profile.h"

enum { MAX_IDS = 1024 }; /* a survivor and the ids merged into it */

/* The survivor of id and every id absorbed into it (directly or not: merges
 * re-point merged_into to the survivor). */
static int ids_of(rp_store *s, int64_t id, int64_t *ids, int *n, rp_err *err) {
  int64_t survivor;
  int rc = rp_profile_canonical(s, id, &survivor, err);
  if (rc) return rc;
  ids[0] = survivor;
  *n = 1;
  sqlite3_stmt *st;
  if ((rc = rp_store_prepare(s, "SELECT id FROM customers WHERE merged_into = ?1 ORDER BY id",
                             &st, err)))
    return rc;
  sqlite3_bind_int64(st, 1, survivor);
  while (sqlite3_step(st) == SQLITE_ROW && *n < MAX_IDS) ids[(*n)++] = sqlite3_column_int64(st, 0);
  rp_store_done(st);
  return RP_OK;
}

/* The rows of sql (bound to each id in turn, as ?1) as JSON objects. */
static cJSON *rows_json(rp_store *s, const char *sql, const int64_t *ids, int n) {
  cJSON *arr = cJSON_CreateArray();
  sqlite3_stmt *st;
  for (int k = 0; k < n; k++) {
    if (rp_store_prepare(s, sql, &st, NULL) != RP_OK) break;
    sqlite3_bind_int64(st, 1, ids[k]);
    while (sqlite3_step(st) == SQLITE_ROW) {
      cJSON *o = cJSON_CreateObject();
      for (int c = 0; c < sqlite3_column_count(st); c++) {
        const char *name = sqlite3_column_name(st, c);
        switch (sqlite3_column_type(st, c)) {
        case SQLITE_NULL: cJSON_AddNullToObject(o, name); break;
        case SQLITE_INTEGER:
          cJSON_AddNumberToObject(o, name, (double)sqlite3_column_int64(st, c));
          break;
        default:
          cJSON_AddStringToObject(o, name, (const char *)sqlite3_column_text(st, c));
        }
      }
      cJSON_AddItemToArray(arr, o);
    }
    rp_store_done(st);
  }
  return arr;
}

int rp_gdpr_export(rp_host *h, int64_t id, cJSON **out, rp_err *err) {
  *out = NULL;
  rp_store *s = rp_host_store(h);
  int64_t ids[MAX_IDS];
  int n;
  int rc = ids_of(s, id, ids, &n, err);
  if (rc) return rc;
  cJSON *doc = cJSON_CreateObject();
  cJSON *view = NULL;
  if ((rc = rp_profile_view(s, ids[0], RP_VIEW_PII | RP_VIEW_CONSENT, 0, &view, err))) {
    cJSON_Delete(doc);
    return rc;
  }
  cJSON_DeleteItemFromObject(view, "recent_events");
  cJSON_AddItemToObject(doc, "customer", view);
  cJSON *id_list = cJSON_AddArrayToObject(doc, "ids");
  for (int k = 0; k < n; k++) cJSON_AddItemToArray(id_list, cJSON_CreateNumber((double)ids[k]));
  cJSON *events = rows_json(s, "SELECT " RP_EVENT_COLUMNS " FROM events WHERE customer_id = ?1 "
                               "ORDER BY id", ids, n);
  /* properties as JSON, not as text */
  cJSON *e;
  cJSON_ArrayForEach(e, events) {
    cJSON *p = cJSON_GetObjectItem(e, "properties");
    cJSON *parsed = cJSON_IsString(p) ? cJSON_Parse(p->valuestring) : NULL;
    if (parsed) cJSON_ReplaceItemInObject(e, "properties", parsed);
  }
  cJSON_AddItemToObject(doc, "events", events);
  cJSON_AddItemToObject(doc, "consent_history",
                        rows_json(s, "SELECT channel, granted, source, recorded_at, version FROM "
                                     "customer_consent_history WHERE customer_id = ?1 ORDER BY id",
                                  ids, n));
  cJSON_AddItemToObject(doc, "merges",
                        rows_json(s, "SELECT survivor_id, absorbed_id, reason, detail, merged_at "
                                     "FROM customer_merges WHERE survivor_id = ?1 OR "
                                     "absorbed_id = ?1 ORDER BY id", ids, 1));
  cJSON_AddItemToObject(doc, "audit",
                        rows_json(s, "SELECT at, actor, action, fields, origin FROM audit_log "
                                     "WHERE id IN (" RP_AUDIT_IDS_OF_CUSTOMER ") ORDER BY id",
                                  ids, n));
  cJSON *plugins = cJSON_AddObjectToObject(doc, "plugins");
  for (size_t i = 0; i < rp_host_count(h); i++) {
    rp_plugin *p = rp_host_plugin_at(h, i);
    if (!rp_plugin_manifest(p)) continue;
    cJSON *part = NULL;
    rp_err e2;
    rp_err_clear(&e2);
    if (rp_plugin_hook(p, "export", ids[0], &part, &e2) != RP_OK) {
      cJSON_Delete(doc);
      if (err) *err = e2;
      return e2.code ? e2.code : RP_EPLUGIN;
    }
    if (part) cJSON_AddItemToObject(plugins, rp_plugin_name(p), part);
  }
  cJSON_AddNumberToObject(doc, "exported_at", (double)rp_clock_now_ms());
  *out = doc;
  return RP_OK;
}

static int exec_for_ids(rp_store *s, const char *sql, const int64_t *ids, int n, rp_err *err) {
  for (int k = 0; k < n; k++) {
    sqlite3_stmt *st;
    int rc = rp_store_prepare(s, sql, &st, err);
    if (rc) return rc;
    sqlite3_bind_int64(st, 1, ids[k]);
    rc = sqlite3_step(st) == SQLITE_DONE ? RP_OK : rp_store_error(s, "erase", err);
    rp_store_done(st);
    if (rc) return rc;
  }
  return RP_OK;
}

int rp_gdpr_erase(rp_host *h, int64_t id, const char *actor, const char *origin,
                  int64_t *erased, rp_err *err) {
  rp_store *s = rp_host_store(h);
  int64_t ids[MAX_IDS];
  int n;
  int rc = ids_of(s, id, ids, &n, err);
  if (rc) return rc;
  /* Freed space is overwritten with zeros, so erased values do not linger
   * in the file's free pages and cells. */
  if ((rc = rp_store_exec(s, "PRAGMA secure_delete = ON", err))) return rc;
  if ((rc = rp_store_tx_begin(s, err))) {
    rp_store_exec(s, "PRAGMA secure_delete = OFF", NULL);
    return rc;
  }
  for (size_t i = 0; rc == RP_OK && i < rp_host_count(h); i++) {
    rp_plugin *p = rp_host_plugin_at(h, i);
    if (!rp_plugin_manifest(p)) continue;
    for (int k = 0; rc == RP_OK && k < n; k++) {
      cJSON *ignored = NULL;
      rc = rp_plugin_hook(p, "erase", ids[k], &ignored, err);
      cJSON_Delete(ignored);
    }
  }
  static const char *const core[] = {
      "DELETE FROM customer_identities WHERE customer_id = ?1",
      "DELETE FROM customer_attributes WHERE customer_id = ?1",
      "DELETE FROM customer_consent WHERE customer_id = ?1",
      "DELETE FROM customer_consent_history WHERE customer_id = ?1",
      "UPDATE customer_merges SET detail = '{\"erased\":true}' WHERE survivor_id = ?1 OR "
      "absorbed_id = ?1",
      /* Types and times stay, for counts and funnels; what was said goes. */
      "UPDATE events SET properties = '{}', event_id = NULL, source = 'erased' "
      "WHERE customer_id = ?1",
      "UPDATE customers SET external_id = NULL WHERE id = ?1",
      NULL};
  for (int q = 0; rc == RP_OK && core[q]; q++) rc = exec_for_ids(s, core[q], ids, n, err);
  /* Dead letters quote the events' content in their errors. */
  if (rc == RP_OK)
    rc = exec_for_ids(s, "DELETE FROM dead_letters WHERE event_id IN (SELECT id FROM events "
                         "WHERE customer_id = ?1)", ids, n, err);
  if (rc == RP_OK) {
    sqlite3_stmt *st;
    if ((rc = rp_store_prepare(s, "UPDATE customers SET updated_at = ?2 WHERE id = ?1", &st,
                               err)) == RP_OK) {
      sqlite3_bind_int64(st, 1, ids[0]);
      sqlite3_bind_int64(st, 2, rp_clock_now_ms());
      if (sqlite3_step(st) != SQLITE_DONE) rc = rp_store_error(s, "erase", err);
      rp_store_done(st);
    }
  }
  if (rc == RP_OK) {
    cJSON *fields = cJSON_CreateArray();
    static const char *const what[] = {"identities", "attributes", "consent", "events",
                                       "plugins"};
    for (int i = 0; i < 5; i++) cJSON_AddItemToArray(fields, cJSON_CreateString(what[i]));
    rc = rp_audit_record(s, actor, "customer.erase", ids[0], fields, origin, err);
    cJSON_Delete(fields);
  }
  if (rc == RP_OK) rc = rp_store_tx_commit(s, err);
  if (rc) rp_store_tx_rollback(s);
  rp_store_exec(s, "PRAGMA secure_delete = OFF", NULL);
  if (rc) return rc;
  /* The WAL still holds the pages as they were: copy them home and empty it
   * (best effort: a reader in another process may hold it for a moment). A
   * checkpoint already under way (serve runs them on a worker) is waited
   * for, up to a second. */
  for (int tries = 0; tries < 100; tries++) {
    if (sqlite3_wal_checkpoint_v2(rp_store_db(s), NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
                                  NULL) != SQLITE_BUSY)
      break;
    struct timespec pause = {0, 10 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  if (erased) *erased = ids[0];
  return RP_OK;
}
