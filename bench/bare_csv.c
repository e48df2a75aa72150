/* bare_csv: the customer import's baseline in scripts/bench. Reads a CSV
 * file with libcsv and inserts every row after the header into a table with
 * one text column per header column and a unique index on the first (the
 * external id), with Rapport's SQLite settings (WAL, synchronous=FULL, 64 MiB
 * page cache) and 50,000 rows per transaction: the same rows, with no
 * normalisation, identities, encryption, attributes or consent. Prints the
 * rows inserted and the seconds taken, as JSON.
 *
 * usage: bare_csv CUSTOMERS.csv DB */
#include <csv.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bare.h"

#define MAX_COLS 64
#define BATCH 50000

typedef struct loader {
  sqlite3 *db;
  sqlite3_stmt *insert;
  int ncols, col, header_done, failed;
  long rows, in_tx;
} loader;

static double now_s(void) { return bare_now_s(); }

static int exec(sqlite3 *db, const char *sql) { return bare_exec("bare_csv", db, sql); }

/* The table and statement, once the header is known: columns c0, c1, ... */
static int make_table(loader *l) {
  char create[4096], insert[4096];
  size_t a = (size_t)snprintf(create, sizeof create, "CREATE TABLE customers(id INTEGER PRIMARY KEY");
  size_t b = (size_t)snprintf(insert, sizeof insert, "INSERT OR IGNORE INTO customers(");
  for (int i = 0; i < l->ncols; i++) {
    a += (size_t)snprintf(create + a, sizeof create - a, ", c%d TEXT", i);
    b += (size_t)snprintf(insert + b, sizeof insert - b, "%sc%d", i ? ", " : "", i);
  }
  snprintf(create + a, sizeof create - a, "); CREATE UNIQUE INDEX customers_c0 ON customers(c0);");
  b += (size_t)snprintf(insert + b, sizeof insert - b, ") VALUES (");
  for (int i = 0; i < l->ncols; i++)
    b += (size_t)snprintf(insert + b, sizeof insert - b, "%s?%d", i ? ", " : "", i + 1);
  snprintf(insert + b, sizeof insert - b, ")");
  if (exec(l->db, create)) return -1;
  if (sqlite3_prepare_v2(l->db, insert, -1, &l->insert, NULL) != SQLITE_OK) {
    fprintf(stderr, "bare_csv: %s\n", sqlite3_errmsg(l->db));
    return -1;
  }
  return exec(l->db, "BEGIN");
}

static void on_field(void *s, size_t len, void *data) {
  loader *l = data;
  if (l->failed) return;
  if (!l->header_done) {
    if (l->ncols < MAX_COLS) l->ncols++;
    return;
  }
  if (l->col < l->ncols) sqlite3_bind_text(l->insert, l->col + 1, s, (int)len, SQLITE_TRANSIENT);
  l->col++;
}

static void on_row(int c, void *data) {
  (void)c;
  loader *l = data;
  if (l->failed) return;
  if (!l->header_done) {
    l->header_done = 1;
    if (make_table(l)) l->failed = 1;
    return;
  }
  if (sqlite3_step(l->insert) != SQLITE_DONE) {
    fprintf(stderr, "bare_csv: %s\n", sqlite3_errmsg(l->db));
    l->failed = 1;
  }
  sqlite3_reset(l->insert);
  sqlite3_clear_bindings(l->insert);
  l->col = 0;
  l->rows++;
  if (++l->in_tx == BATCH) {
    if (exec(l->db, "COMMIT; BEGIN")) l->failed = 1;
    l->in_tx = 0;
  }
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: bare_csv CUSTOMERS.csv DB\n");
    return 1;
  }
  FILE *in = fopen(argv[1], "rb");
  if (!in) {
    perror(argv[1]);
    return 2;
  }
  loader l = {0};
  if (sqlite3_open(argv[2], &l.db) != SQLITE_OK ||
      exec(l.db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-65536;")) {
    fprintf(stderr, "bare_csv: cannot open %s\n", argv[2]);
    return 2;
  }
  struct csv_parser p;
  if (csv_init(&p, CSV_APPEND_NULL) != 0) return 2;
  double t0 = now_s();
  char buf[1 << 16];
  size_t n;
  while (!l.failed && (n = fread(buf, 1, sizeof buf, in)) > 0) {
    if (csv_parse(&p, buf, n, on_field, on_row, &l) != n) {
      fprintf(stderr, "bare_csv: %s: %s\n", argv[1], csv_strerror(csv_error(&p)));
      return 2;
    }
  }
  csv_fini(&p, on_field, on_row, &l);
  csv_free(&p);
  if (l.failed || !l.header_done || exec(l.db, "COMMIT")) return 2;
  double secs = now_s() - t0;
  fclose(in);
  sqlite3_finalize(l.insert);
  sqlite3_close(l.db);
  printf("{\"rows\": %ld, \"seconds\": %.6f}\n", l.rows, secs);
  return 0;
}
