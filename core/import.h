/* import: bulk loading of customers and events from CSV or JSON Lines files.
 *
 * It owns reading the file as a stream (never all of it in memory), mapping
 * a CSV header to upsert or event inputs, batching the writes into
 * transactions with a savepoint per row, and the rejects file. What a row
 * means is profile's and event's business (rp_profile_upsert,
 * rp_event_append): a row they refuse is rejected and reported with its line
 * number, and the import goes on. It never prints: progress and rejections
 * reach the caller through optional callbacks.
 *
 * Customers CSV: a header row names the columns. external_id, email, phone,
 * anonymous_id and identity.<kind> are identities; consent.<channel>
 * (email|sms|push|phone) takes yes/no/true/false/1/0; every other column is
 * an attribute name[:type], type text (default), integer, boolean, timestamp
 * or money ("12.50 EUR"). An empty cell changes nothing. A bad header refuses
 * the whole import before anything is written.
 *
 * Events CSV: id|event_id, type, occurred_at, customer_id, email, phone,
 * external_id, anonymous_id, source and properties.<name>[:type] (text,
 * integer, boolean, number).
 *
 * JSON Lines: one rp_profile_upsert input (customers) or one
 * rp_event_from_json object (events) per line; blank lines are skipped.
 *
 * Ownership: everything passed in is borrowed. */
#ifndef RP_IMPORT_H
#define RP_IMPORT_H

#include <stdint.h>

#include "config.h"
#include "err.h"
#include "store.h"

enum {
  RP_IMPORT_MAX_LINE = 1024 * 1024, /* longest line (or CSV record), in bytes */
  RP_IMPORT_BATCH = 50000           /* default rows per transaction */
};

typedef enum rp_import_kind { RP_IMPORT_CUSTOMERS, RP_IMPORT_EVENTS } rp_import_kind;

typedef enum rp_import_format {
  RP_IMPORT_AUTO = 0, /* from the file name's extension */
  RP_IMPORT_CSV,
  RP_IMPORT_JSONL
} rp_import_format;

/* Progress: done bytes of the file consumed out of total (0 when the size is
 * unknown). Called every 1024 rows and once at the end. */
typedef void (*rp_import_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* A rejected row: its first physical line and the reason (which names the
 * field, e.g. "email: \"bob@\" has no domain after '@'"). Called as rows are
 * rejected; the row is also written to the rejects file. */
typedef void (*rp_import_reject_fn)(void *ctx, int64_t line, const char *msg);

typedef struct rp_import_opts {
  rp_import_kind kind;
  rp_import_format format;    /* RP_IMPORT_AUTO: from the extension */
  const char *source;         /* recorded with customers and events; NULL: "import" */
  int batch;                  /* rows per transaction; <= 0: RP_IMPORT_BATCH */
  const char *rejects_path;   /* NULL: <file>.rejects.csv or <file>.rejects.jsonl */
  rp_import_progress_fn progress; /* may be NULL */
  rp_import_reject_fn on_reject;  /* may be NULL */
  void *ctx;                  /* passed to both callbacks */
} rp_import_opts;

/* What an import did. For customers every row is exactly one of created,
 * updated, merged (its identities joined two or more existing customers),
 * unchanged or rejected; for events one of accepted, duplicate (its id was
 * already in the log) or rejected. Those counts cover committed batches only,
 * except rejected, which counts every row written to the rejects file. */
typedef struct rp_import_summary {
  rp_import_kind kind;
  rp_import_format format;     /* the format actually read */
  int64_t rows;                /* data rows read, rejected ones included */
  int64_t created, updated, merged, unchanged; /* customers */
  int64_t accepted, duplicate; /* events */
  int64_t customers_created;   /* events: customers the events created */
  int64_t rejected;
  char rejects_path[4096];     /* "" when nothing was rejected */
} rp_import_summary;

/* The format a file name implies: .csv is CSV; .jsonl, .ndjson and .json are
 * JSON Lines (case-insensitive); RP_IMPORT_AUTO when the extension says
 * nothing. */
rp_import_format rp_import_format_for_path(const char *path);

/* Imports path into s. Rows are written in transactions of opts->batch rows
 * (nested savepoints when the caller already holds a transaction), each row
 * under its own savepoint (the nested transaction of rp_profile_upsert or
 * rp_event_append), so a rejected row undoes only itself and an
 * interrupted import loses at most the batch in progress, never half a row.
 *
 * Returns RP_OK when the file was read to its end, even when rows were
 * rejected (see out->rejected and out->rejects_path). Otherwise, with the
 * message naming the file (and line or column): RP_EIO when the file (or the
 * rejects file) cannot be opened, read or written; RP_EINVAL for a bad or
 * missing CSV header, an unknown format or bad options, before anything is
 * written; RP_EDB or RP_ENOMEM when the database fails (or the failing
 * call's status when SQLite itself rolled the transaction back), after
 * rolling back the batch in progress (out still counts the committed
 * batches). cfg may be NULL (defaults); out may not be NULL. */
int rp_import_file(rp_store *s, const rp_config *cfg, const char *path,
                   const rp_import_opts *opts, rp_import_summary *out, rp_err *err);

#endif
