/* bare_insert: the baseline of scripts/bench. Reads a JSON Lines file of
 * events and inserts each into a table shaped like Rapport's events table
 * (same columns, same unique index on the client event id), with the same
 * SQLite settings (WAL, synchronous=FULL) and transactions of the same size:
 * what any importer must at least do. Prints the rows inserted and the
 * seconds taken, as JSON.
 *
 * usage: bare_insert EVENTS.jsonl DB [BATCH] */
#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bare.h"

static double now_s(void) { return bare_now_s(); }

static int exec(sqlite3 *db, const char *sql) { return bare_exec("bare_insert", db, sql); }

static const char *str_of(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bare_insert EVENTS.jsonl DB [BATCH]\n");
    return 1;
  }
  long batch = argc > 3 ? strtol(argv[3], NULL, 10) : 50000;
  if (batch < 1) batch = 50000;
  FILE *in = fopen(argv[1], "r");
  if (!in) {
    perror(argv[1]);
    return 2;
  }
  sqlite3 *db;
  if (sqlite3_open(argv[2], &db) != SQLITE_OK) {
    fprintf(stderr, "bare_insert: cannot open %s\n", argv[2]);
    return 2;
  }
  /* The page cache Rapport runs with (config cache_mib, default 64). */
  if (exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;"
               "CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, event_id TEXT,"
               " customer TEXT NOT NULL, type TEXT NOT NULL, occurred_at TEXT,"
               " received_at INTEGER NOT NULL, source TEXT NOT NULL,"
               " properties TEXT NOT NULL DEFAULT '{}');"
               "CREATE UNIQUE INDEX IF NOT EXISTS events_event_id ON events(event_id)"
               " WHERE event_id IS NOT NULL;"
               "CREATE INDEX IF NOT EXISTS events_customer ON events(customer, occurred_at);"))
    return 2;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "INSERT OR IGNORE INTO events(event_id, customer, type, occurred_at, "
                         "received_at, source, properties) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                         -1, &st, NULL) != SQLITE_OK) {
    fprintf(stderr, "bare_insert: %s\n", sqlite3_errmsg(db));
    return 2;
  }
  double t0 = now_s();
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long rows = 0, in_tx = 0;
  if (exec(db, "BEGIN")) return 2;
  while ((len = getline(&line, &cap, in)) > 0) {
    cJSON *o = cJSON_ParseWithLength(line, (size_t)len);
    if (!o) continue;
    const char *customer = str_of(o, "external_id");
    if (!customer) customer = str_of(o, "email");
    if (!customer) customer = str_of(o, "anonymous_id");
    if (!customer) customer = "";
    char *props = NULL;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "properties");
    if (cJSON_IsObject(p)) props = cJSON_PrintUnformatted(p);
    const char *source = str_of(o, "source");
    sqlite3_bind_text(st, 1, str_of(o, "id"), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, customer, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, str_of(o, "type"), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, str_of(o, "occurred_at"), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL) * 1000);
    sqlite3_bind_text(st, 6, source ? source : "import", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, props ? props : "{}", -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
      fprintf(stderr, "bare_insert: %s\n", sqlite3_errmsg(db));
      return 2;
    }
    sqlite3_reset(st);
    cJSON_free(props);
    cJSON_Delete(o);
    rows++;
    if (++in_tx == batch) {
      if (exec(db, "COMMIT; BEGIN")) return 2;
      in_tx = 0;
    }
  }
  if (exec(db, "COMMIT")) return 2;
  double secs = now_s() - t0;
  free(line);
  fclose(in);
  sqlite3_finalize(st);
  sqlite3_close(db);
  printf("{\"rows\": %ld, \"seconds\": %.6f}\n", rows, secs);
  return 0;
}
