/* import: streaming CSV and JSON Lines import of customers and events.
 *
 * The file is read line by line through one bounded buffer. CSV lines are fed
 * to libcsv (strict mode) one at a time, which lets every record carry the
 * number of the physical line it started on, and lets a malformed record be
 * dropped at a line boundary: when a record that spans several lines turns
 * out to be broken (typically an unterminated quote swallowing the lines
 * after it), only its first line is rejected and the following lines are read
 * again as records of their own. */
#include "import.h"

#include <csv.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "event.h"
#include "normalize.h"
#include "profile.h"

/* ---- line reader ------------------------------------------------------------ */

enum { READ_CHUNK = 256 * 1024 };

typedef struct reader {
  FILE *f;
  char *buf; /* file bytes [pos, len) not yet returned */
  size_t cap, pos, len;
  size_t scanned;  /* bytes after pos known to hold no newline */
  int eof;
  int skip;        /* discard up to the next newline (after an oversized line) */
  char *replay;    /* bytes read again before the file's, [replay_pos, replay_len) */
  size_t replay_pos, replay_len;
  int64_t line;    /* number of the last line returned */
  uint64_t consumed; /* bytes of the file consumed */
} reader;

/* Reads more of the file after the bytes kept. Returns 0, or -1 on a read
 * error (errno set). */
static int reader_fill(reader *r) {
  if (r->pos > 0) {
    memmove(r->buf, r->buf + r->pos, r->len - r->pos);
    r->len -= r->pos;
    r->pos = 0;
  }
  size_t n = fread(r->buf + r->len, 1, r->cap - r->len, r->f);
  r->len += n;
  if (n == 0) {
    if (ferror(r->f)) return -1;
    r->eof = 1;
  }
  return 0;
}

/* Returns the next line in *line (not NUL-terminated; *len bytes including
 * its newline, when it has one): 1, or 0 at the end, or -1 on a read error.
 * A line longer than RP_IMPORT_MAX_LINE sets *oversize and gives only its
 * first bytes; the rest is skipped. *line stays valid until the next call. */
static int reader_next(reader *r, const char **line, size_t *len, int *oversize) {
  *oversize = 0;
  if (r->replay) {
    char *p = r->replay + r->replay_pos;
    size_t left = r->replay_len - r->replay_pos;
    char *nl = memchr(p, '\n', left);
    size_t n = nl ? (size_t)(nl - p) + 1 : left;
    *line = p;
    *len = n;
    r->replay_pos += n;
    r->line++;
    if (r->replay_pos >= r->replay_len) {
      /* The caller may still read the line: keep the memory until the next
       * call frees it. */
      r->replay_len = r->replay_pos = 0;
    }
    return 1;
  }
  while (r->skip) {
    char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
    if (nl) {
      size_t n = (size_t)(nl - (r->buf + r->pos)) + 1;
      r->consumed += n;
      r->pos += n;
      r->skip = 0;
      break;
    }
    r->consumed += r->len - r->pos;
    r->pos = r->len;
    if (r->eof) {
      r->skip = 0;
      return 0;
    }
    if (reader_fill(r)) return -1;
  }
  for (;;) {
    char *start = r->buf + r->pos;
    size_t avail = r->len - r->pos;
    char *nl = r->scanned < avail ? memchr(start + r->scanned, '\n', avail - r->scanned) : NULL;
    if (nl) {
      size_t n = (size_t)(nl - start) + 1;
      if (n > RP_IMPORT_MAX_LINE + 1) {
        /* Oversized, and its end is in the buffer already. */
        *oversize = 1;
        *line = start;
        *len = 256;
        r->pos += n;
        r->consumed += n;
        r->scanned = 0;
        r->line++;
        return 1;
      }
      *line = start;
      *len = n;
      r->pos += n;
      r->consumed += n;
      r->scanned = 0;
      r->line++;
      return 1;
    }
    r->scanned = avail;
    if (avail > RP_IMPORT_MAX_LINE) break;
    if (r->eof) {
      if (avail == 0) return 0;
      *line = start;
      *len = avail;
      r->pos = r->len;
      r->consumed += avail;
      r->scanned = 0;
      r->line++;
      return 1;
    }
    if (reader_fill(r)) return -1;
  }
  /* Oversized: hand out a prefix, skip the rest at the next call. */
  *oversize = 1;
  *line = r->buf + r->pos;
  *len = 256;
  r->consumed += r->len - r->pos;
  r->pos = r->len;
  r->scanned = 0;
  r->skip = 1;
  r->line++;
  return 1;
}

/* Makes the reader return text (lines first_line, first_line + 1, ...)
 * before whatever it had left to return. */
static int reader_push_back(reader *r, const char *text, size_t n, int64_t first_line) {
  size_t left = r->replay ? r->replay_len - r->replay_pos : 0;
  char *nb = malloc(n + left + 1);
  if (!nb) return RP_ENOMEM;
  memcpy(nb, text, n);
  if (left) memcpy(nb + n, r->replay + r->replay_pos, left);
  free(r->replay);
  r->replay = nb;
  r->replay_pos = 0;
  r->replay_len = n + left;
  r->line = first_line - 1;
  if (r->replay_len == 0) {
    free(r->replay);
    r->replay = NULL;
  }
  return RP_OK;
}

/* Frees a spent replay buffer; called before each read. */
static void reader_settle(reader *r) {
  if (r->replay && r->replay_len == 0) {
    free(r->replay);
    r->replay = NULL;
  }
}

/* ---- columns -------------------------------------------------------------------- */

enum role {
  COL_IDENT_SHORT, /* email, phone, external_id, anonymous_id: key is the name */
  COL_IDENT,       /* identity.<kind>: key is kind */
  COL_CONSENT,     /* consent.<channel>: key is channel */
  COL_ATTR,        /* attribute name[:type]: key is name */
  COL_EV_ID,
  COL_EV_TYPE,
  COL_EV_OCCURRED,
  COL_EV_CUSTOMER_ID,
  COL_EV_SOURCE,
  COL_EV_PROP      /* properties.<name>[:type]: key is name */
};

enum { TY_TEXT, TY_INTEGER, TY_BOOLEAN, TY_TIMESTAMP, TY_MONEY, TY_NUMBER };
static const char *const type_names[] = {"text", "integer", "boolean", "timestamp", "money",
                                         "number"};

typedef struct column {
  int role;
  int type;
  char *name; /* the header cell as written */
  char *key;  /* the JSON key the column fills */
} column;

/* ---- the import ---------------------------------------------------------------- */

typedef struct counts {
  int64_t created, updated, merged, unchanged, accepted, duplicate;
} counts;

typedef struct importer {
  rp_store *s;
  const rp_config *cfg;
  const char *path;
  const rp_import_opts *opts;
  rp_import_summary *out;
  rp_err *err;
  const char *source;
  int batch;
  uint64_t total;
  reader rd;

  /* transactions */
  int in_batch;
  int batch_rows;
  int64_t max_customer; /* events: highest customer id when the batch began */
  counts pending;       /* of the batch in progress */
  int fatal;            /* a status that ends the import */

  /* CSV */
  struct csv_parser csv;
  int csv_ready;
  column *cols;
  int ncols;
  int have_header;
  char *cells; /* the current record's cells, each NUL-terminated */
  size_t cells_len, cells_cap;
  size_t *cell_off;
  int ncells;
  size_t cells_n_cap;
  int cell_nul;       /* a cell held a NUL byte */
  int64_t rec_line;   /* the line the current record started on */
  char *raw;          /* the current record's lines, for replays and messages */
  size_t raw_len, raw_cap;

  /* JSON Lines: the current line, for the rejects file */
  const char *cur;
  size_t cur_len;
  int cur_oversize;

  FILE *rejects;
} importer;

static int nomem(importer *im) {
  return rp_err_set(im->err, RP_ENOMEM, NULL, "out of memory");
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 64;
  while (n < need) n *= 2;
  void *q = realloc(*p, n * elem);
  if (!q) return -1;
  *p = q;
  *cap = n;
  return 0;
}

/* ---- rejects ---------------------------------------------------------------------- */

static void put_csv_cell(FILE *f, const char *v, size_t n) {
  int quote = n && (v[0] == ' ' || v[0] == '\t' || v[n - 1] == ' ' || v[n - 1] == '\t');
  for (size_t i = 0; !quote && i < n; i++)
    quote = v[i] == ',' || v[i] == '"' || v[i] == '\r' || v[i] == '\n';
  if (!quote) {
    fwrite(v, 1, n, f);
    return;
  }
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    if (v[i] == '"') fputc('"', f);
    fputc(v[i], f);
  }
  fputc('"', f);
}

static int open_rejects(importer *im) {
  rp_import_summary *out = im->out;
  if (im->opts->rejects_path) {
    snprintf(out->rejects_path, sizeof out->rejects_path, "%s", im->opts->rejects_path);
  } else {
    snprintf(out->rejects_path, sizeof out->rejects_path, "%s.rejects.%s", im->path,
             out->format == RP_IMPORT_CSV ? "csv" : "jsonl");
  }
  im->rejects = fopen(out->rejects_path, "w");
  if (!im->rejects)
    return rp_err_set(im->err, RP_EIO, NULL, "%s: cannot write the rejects file: %s",
                      out->rejects_path, strerror(errno));
  if (out->format == RP_IMPORT_CSV) {
    for (int i = 0; i < im->ncols; i++) {
      put_csv_cell(im->rejects, im->cols[i].name, strlen(im->cols[i].name));
      fputc(',', im->rejects);
    }
    fputs("_line,_error\n", im->rejects);
  }
  return RP_OK;
}

/* Records a rejected row: the row as read (the cells of the current CSV
 * record when has_cells, else empty cells; the current JSON line), its line
 * and msg. A failure to write is fatal (im->fatal). */
static void reject(importer *im, int64_t line, const char *msg, int has_cells) {
  im->out->rejected++;
  if (im->opts->on_reject) im->opts->on_reject(im->opts->ctx, line, msg);
  if (!im->rejects && (im->fatal = open_rejects(im)) != RP_OK) return;
  FILE *f = im->rejects;
  if (im->out->format == RP_IMPORT_CSV) {
    for (int i = 0; i < im->ncols; i++) {
      if (has_cells && i < im->ncells) {
        const char *v = im->cells + im->cell_off[i];
        put_csv_cell(f, v, strlen(v));
      }
      fputc(',', f);
    }
    fprintf(f, "%" PRId64 ",", line);
    put_csv_cell(f, msg, strlen(msg));
    fputc('\n', f);
  } else {
    cJSON *o = cJSON_CreateObject();
    char *text = malloc(im->cur_len + 1);
    char *s = NULL;
    if (o && text) {
      memcpy(text, im->cur, im->cur_len);
      text[im->cur_len] = '\0';
      cJSON_AddNumberToObject(o, "line", (double)line);
      cJSON_AddStringToObject(o, "error", msg);
      cJSON_AddStringToObject(o, "input", text);
      if (im->cur_oversize) cJSON_AddBoolToObject(o, "truncated", 1);
      s = cJSON_PrintUnformatted(o);
    }
    if (s) {
      fputs(s, f);
      fputc('\n', f);
    } else {
      im->fatal = nomem(im);
    }
    cJSON_free(s);
    free(text);
    cJSON_Delete(o);
  }
  if (!im->fatal && ferror(f))
    im->fatal = rp_err_set(im->err, RP_EIO, NULL, "%s: cannot write the rejects file: %s",
                           im->out->rejects_path, strerror(errno));
}

/* ---- transactions ------------------------------------------------------------------ */

static int max_customer(importer *im, int64_t *v) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(im->s, "SELECT coalesce(max(id), 0) FROM customers", &st, im->err);
  if (rc) return rc;
  if (sqlite3_step(st) == SQLITE_ROW) *v = sqlite3_column_int64(st, 0);
  else rc = rp_store_error(im->s, "count customers", im->err);
  rp_store_done(st);
  return rc;
}

static int batch_open(importer *im) {
  if (im->in_batch) return RP_OK;
  int rc = rp_store_tx_begin(im->s, im->err);
  if (rc) return rc;
  im->in_batch = 1;
  im->batch_rows = 0;
  memset(&im->pending, 0, sizeof im->pending);
  /* A customer created by an event gets the next rowid: inside our write
   * transaction the growth of max(id) is what this batch created. */
  if (im->opts->kind == RP_IMPORT_EVENTS && (rc = max_customer(im, &im->max_customer))) {
    rp_store_tx_rollback(im->s);
    im->in_batch = 0;
  }
  return rc;
}

static void batch_abort(importer *im) {
  if (!im->in_batch) return;
  rp_store_tx_rollback(im->s);
  im->in_batch = 0;
}

static int batch_commit(importer *im) {
  if (!im->in_batch) return RP_OK;
  int64_t now_max = im->max_customer;
  int rc = RP_OK;
  if (im->opts->kind == RP_IMPORT_EVENTS) rc = max_customer(im, &now_max);
  if (rc == RP_OK) rc = rp_store_tx_commit(im->s, im->err);
  if (rc) {
    batch_abort(im);
    return rc;
  }
  im->in_batch = 0;
  rp_import_summary *o = im->out;
  o->created += im->pending.created;
  o->updated += im->pending.updated;
  o->merged += im->pending.merged;
  o->unchanged += im->pending.unchanged;
  o->accepted += im->pending.accepted;
  o->duplicate += im->pending.duplicate;
  o->customers_created += now_max - im->max_customer;
  return RP_OK;
}

/* Whether a failed row's status must end the import rather than reject the
 * row: the database itself failed, or SQLite rolled back our transaction. */
static int is_fatal(importer *im, int rc) {
  if (rc == RP_EDB || rc == RP_ENOMEM || rc == RP_EIO) return 1;
  return sqlite3_get_autocommit(rp_store_db(im->s));
}

/* The message of a refused row, starting with the field it names. */
static const char *named(rp_err *e) {
  size_t n = strlen(e->field);
  if (n && !(strncmp(e->msg, e->field, n) == 0 && e->msg[n] == ':')) {
    size_t m = strlen(e->msg);
    if (n + 2 + m >= sizeof e->msg) m = sizeof e->msg - n - 3;
    memmove(e->msg + n + 2, e->msg, m);
    memcpy(e->msg, e->field, n);
    e->msg[n] = ':';
    e->msg[n + 1] = ' ';
    e->msg[n + 2 + m] = '\0';
  }
  return e->msg;
}

/* When e names the field a cell of the current CSV record filled and does
 * not show the cell already, appends the column and the cell's text, so
 * that "attributes.age: not a whole number" says which text was refused. */
static void cell_note(importer *im, rp_err *e) {
  static const char *const prefixes[] = {"", "attributes.", "identities.", "consent.",
                                         "properties.", NULL};
  for (int i = 0; i < im->ncols && i < im->ncells && e->field[0]; i++) {
    const column *col = &im->cols[i];
    for (int k = 0; prefixes[k]; k++) {
      size_t n = strlen(prefixes[k]);
      if (strncmp(e->field, prefixes[k], n) != 0 || strcmp(e->field + n, col->key) != 0) continue;
      const char *v = im->cells + im->cell_off[i];
      char quoted[80];
      snprintf(quoted, sizeof quoted, "\"%.64s\"", v);
      if (strstr(e->msg, quoted) || (strlen(v) >= 3 && strstr(e->msg, v))) return;
      size_t m = strlen(e->msg);
      snprintf(e->msg + m, sizeof e->msg - m, " (column %.64s: %s)", col->name, quoted);
      return;
    }
  }
}

/* Runs one row: customer (an upsert input) or ev, inside the batch. A
 * refused row is rejected; a fatal error is left in im->fatal.
 *
 * The row's savepoint is the one rp_profile_upsert and rp_event_append open
 * themselves (a nested rp_store transaction, rolled back when they fail):
 * a row is exactly one such call, so a second savepoint around it would
 * only cost two more statements per row (measured: 3 to 5% of an import). */
static void run_row(importer *im, int64_t line, const cJSON *customer, const rp_event_in *ev,
                    int has_cells) {
  rp_err row_err;
  rp_err_clear(&row_err);
  int rc = batch_open(im);
  if (rc) {
    im->fatal = rc;
    return;
  }
  rp_upsert res;
  int64_t id;
  int dup = 0;
  if (customer) rc = rp_profile_upsert(im->s, im->cfg, customer, im->source, &res, &row_err);
  else rc = rp_event_append(im->s, im->cfg, ev, &id, &dup, &row_err);
  if (rc != RP_OK) {
    if (is_fatal(im, rc)) {
      *im->err = row_err;
      rp_err_prefix(im->err, "%s:%" PRId64 ": ", im->path, line);
      im->fatal = rc;
      return;
    }
    if (has_cells) cell_note(im, &row_err);
    reject(im, line, named(&row_err), has_cells);
  } else if (customer) {
    if (res.created) im->pending.created++;
    else if (res.merged) im->pending.merged++;
    else if (res.updated) im->pending.updated++;
    else im->pending.unchanged++;
  } else {
    if (dup) im->pending.duplicate++;
    else im->pending.accepted++;
  }
  if (++im->batch_rows >= im->batch && (rc = batch_commit(im))) im->fatal = rc;
}

static void progress(importer *im) {
  if (im->opts->progress) im->opts->progress(im->opts->ctx, im->rd.consumed, im->total);
}

/* ---- CSV header ------------------------------------------------------------------ */

static const char *const ident_shorthands[] = {"external_id", "email", "phone", "anonymous_id",
                                               NULL};
static const char *const channels[] = {"email", "sms", "push", "phone", NULL};

static int in_list(const char *const *list, const char *v) {
  for (int i = 0; list[i]; i++)
    if (strcmp(list[i], v) == 0) return 1;
  return 0;
}

/* Splits "name:type" at its last ':' into col->key and col->type (allowed
 * types: first..last of type_names). */
static int column_type(importer *im, column *col, int pos, const char *spec, int first,
                       int last, const char *allowed) {
  const char *colon = strrchr(spec, ':');
  size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
  col->key = strndup(spec, n);
  if (!col->key) return nomem(im);
  col->type = TY_TEXT;
  if (!colon) return RP_OK;
  for (int t = first; t <= last; t++) {
    if (strcmp(colon + 1, type_names[t]) == 0) {
      col->type = t;
      return RP_OK;
    }
  }
  return rp_err_set(im->err, RP_EINVAL, col->name,
                    "%s: column %d \"%s\": unknown type \"%s\" (%s)", im->path, pos, col->name,
                    colon + 1, allowed);
}

static int header_customers(importer *im, column *col, int pos) {
  const char *name = col->name;
  rp_err why;
  rp_err_clear(&why);
  if (in_list(ident_shorthands, name)) {
    col->role = COL_IDENT_SHORT;
    col->key = strdup(name);
  } else if (strncmp(name, "identity.", 9) == 0) {
    col->role = COL_IDENT;
    if (rp_norm_kind(name + 9, &why))
      return rp_err_set(im->err, RP_EINVAL, name, "%s: column %d \"%s\": %s", im->path, pos, name,
                        why.msg);
    col->key = strdup(name + 9);
  } else if (strncmp(name, "consent.", 8) == 0) {
    col->role = COL_CONSENT;
    if (!in_list(channels, name + 8))
      return rp_err_set(im->err, RP_EINVAL, name,
                        "%s: column %d \"%s\": unknown consent channel \"%s\" (email, sms, push, "
                        "phone)", im->path, pos, name, name + 8);
    col->key = strdup(name + 8);
  } else {
    col->role = COL_ATTR;
    int rc = column_type(im, col, pos, name, TY_TEXT, TY_MONEY,
                         "text, integer, boolean, timestamp, money");
    if (rc) return rc;
    if (rp_norm_attr_name(col->key, &why))
      return rp_err_set(im->err, RP_EINVAL, name,
                        "%s: column %d \"%s\": not an identity (external_id, email, phone, "
                        "anonymous_id, identity.<kind>), consent.<channel> or attribute: %s",
                        im->path, pos, name, why.msg);
  }
  return col->key ? RP_OK : nomem(im);
}

static int header_events(importer *im, column *col, int pos) {
  static const struct {
    const char *name;
    int role;
  } fixed[] = {{"id", COL_EV_ID},
               {"event_id", COL_EV_ID},
               {"type", COL_EV_TYPE},
               {"occurred_at", COL_EV_OCCURRED},
               {"customer_id", COL_EV_CUSTOMER_ID},
               {"source", COL_EV_SOURCE},
               {"email", COL_IDENT_SHORT},
               {"phone", COL_IDENT_SHORT},
               {"external_id", COL_IDENT_SHORT},
               {"anonymous_id", COL_IDENT_SHORT}};
  const char *name = col->name;
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
    if (strcmp(fixed[i].name, name) != 0) continue;
    col->role = fixed[i].role;
    /* id and event_id fill the same field. */
    col->key = strdup(fixed[i].role == COL_EV_ID ? "id" : name);
    return col->key ? RP_OK : nomem(im);
  }
  if (strncmp(name, "properties.", 11) == 0) {
    col->role = COL_EV_PROP;
    int rc = column_type(im, col, pos, name + 11, TY_TEXT, TY_NUMBER,
                         "text, integer, boolean, number");
    if (rc) return rc;
    if (col->type == TY_TIMESTAMP || col->type == TY_MONEY)
      return rp_err_set(im->err, RP_EINVAL, name,
                        "%s: column %d \"%s\": unknown type \"%s\" (text, integer, boolean, "
                        "number)", im->path, pos, name, type_names[col->type]);
    if (!col->key[0])
      return rp_err_set(im->err, RP_EINVAL, name, "%s: column %d \"%s\": the property has no name",
                        im->path, pos, name);
    return RP_OK;
  }
  return rp_err_set(im->err, RP_EINVAL, name,
                    "%s: column %d \"%s\": unknown column (id or event_id, type, occurred_at, "
                    "customer_id, email, phone, external_id, anonymous_id, source, "
                    "properties.<name>[:text|integer|boolean|number])",
                    im->path, pos, name);
}

/* Reads the header record (the current cells) into im->cols. */
static int parse_header(importer *im) {
  if (im->cell_nul)
    return rp_err_set(im->err, RP_EINVAL, NULL, "%s:%" PRId64 ": the header holds a NUL byte",
                      im->path, im->rec_line);
  im->cols = calloc((size_t)im->ncells, sizeof *im->cols);
  if (!im->cols) return nomem(im);
  im->ncols = im->ncells;
  int has_ident = 0, has_type = 0;
  for (int i = 0; i < im->ncols; i++) {
    column *col = &im->cols[i];
    int pos = i + 1;
    col->name = strdup(im->cells + im->cell_off[i]);
    if (!col->name) return nomem(im);
    if (!col->name[0])
      return rp_err_set(im->err, RP_EINVAL, NULL, "%s: column %d has no name", im->path, pos);
    int rc = im->opts->kind == RP_IMPORT_CUSTOMERS ? header_customers(im, col, pos)
                                                   : header_events(im, col, pos);
    if (rc) return rc;
    for (int j = 0; j < i; j++)
      if (im->cols[j].role == col->role && strcmp(im->cols[j].key, col->key) == 0)
        return rp_err_set(im->err, RP_EINVAL, col->name,
                          "%s: column %d \"%s\" repeats column %d \"%s\"", im->path, pos,
                          col->name, j + 1, im->cols[j].name);
    if (col->role == COL_IDENT_SHORT || col->role == COL_IDENT || col->role == COL_EV_CUSTOMER_ID)
      has_ident = 1;
    if (col->role == COL_EV_TYPE) has_type = 1;
  }
  if (!has_ident)
    return rp_err_set(im->err, RP_EINVAL, NULL,
                      im->opts->kind == RP_IMPORT_CUSTOMERS
                          ? "%s: no identity column: the header needs external_id, email, phone, "
                            "anonymous_id or identity.<kind>"
                          : "%s: no customer column: the header needs customer_id, email, phone, "
                            "external_id or anonymous_id",
                      im->path);
  if (im->opts->kind == RP_IMPORT_EVENTS && !has_type)
    return rp_err_set(im->err, RP_EINVAL, NULL, "%s: no type column", im->path);
  im->have_header = 1;
  return RP_OK;
}

/* ---- CSV rows -------------------------------------------------------------------- */

static int blank(const char *v) {
  for (; *v; v++)
    if (*v != ' ' && *v != '\t' && *v != '\r' && *v != '\n') return 0;
  return 1;
}

static cJSON *child(cJSON *obj, const char *key, cJSON **slot) {
  if (!*slot && (*slot = cJSON_CreateObject()) && !cJSON_AddItemToObjectCS(obj, key, *slot)) {
    cJSON_Delete(*slot);
    *slot = NULL;
  }
  return *slot;
}

/* Parses a whole number of at most 2^53 (JSON-safe). */
static int parse_whole(const char *v, double *out) {
  errno = 0;
  char *end;
  long long n = strtoll(v, &end, 10);
  while (*end == ' ' || *end == '\t') end++;
  if (end == v || *end || errno || n > 9007199254740992LL || n < -9007199254740992LL) return 0;
  *out = (double)n;
  return 1;
}

/* The JSON value of property cell v of col, or NULL with why filled. */
static cJSON *property_value(const column *col, const char *v, rp_err *why) {
  double d;
  int b;
  char *end;
  switch (col->type) {
  case TY_INTEGER:
    if (parse_whole(v, &d)) return cJSON_CreateNumber(d);
    rp_err_set(why, RP_EINVAL, col->name, "%s: \"%.64s\" is not a whole number", col->name, v);
    return NULL;
  case TY_BOOLEAN:
    if (rp_norm_bool(v, col->name, &b, why)) return NULL;
    return cJSON_CreateBool(b);
  case TY_NUMBER:
    errno = 0;
    d = strtod(v, &end);
    while (*end == ' ' || *end == '\t') end++;
    if (end != v && !*end && !errno && isfinite(d)) return cJSON_CreateNumber(d);
    rp_err_set(why, RP_EINVAL, col->name, "%s: \"%.64s\" is not a number", col->name, v);
    return NULL;
  default:
    return cJSON_CreateStringReference(v);
  }
}

/* Builds the upsert input (customers) or event object of the current record;
 * cell texts are referenced, not copied, and keys are the columns' (both
 * outlive the object). On a bad cell, fills why and returns NULL (also on
 * out-of-memory, with why->code RP_ENOMEM). */
static cJSON *row_json(importer *im, rp_err *why) {
  cJSON *obj = cJSON_CreateObject();
  cJSON *idents = NULL, *attrs = NULL, *consent = NULL, *props = NULL;
  if (!obj) goto oom;
  for (int i = 0; i < im->ncols; i++) {
    const column *col = &im->cols[i];
    const char *v = im->cells + im->cell_off[i];
    if (blank(v)) continue;
    cJSON *item = NULL, *parent = obj;
    double d;
    int granted;
    switch (col->role) {
    case COL_IDENT:
      parent = child(obj, "identities", &idents);
      item = cJSON_CreateStringReference(v);
      break;
    case COL_CONSENT:
      if (rp_norm_bool(v, col->name, &granted, why)) goto bad;
      parent = child(obj, "consent", &consent);
      item = cJSON_CreateBool(granted);
      break;
    case COL_ATTR:
      parent = child(obj, "attributes", &attrs);
      if (col->type == TY_TEXT) {
        item = cJSON_CreateStringReference(v);
      } else if ((item = cJSON_CreateObject()) &&
                 (!cJSON_AddItemToObjectCS(item, "type",
                                           cJSON_CreateStringReference(type_names[col->type])) ||
                  !cJSON_AddItemToObjectCS(item, "value", cJSON_CreateStringReference(v)))) {
        cJSON_Delete(item);
        item = NULL;
      }
      break;
    case COL_EV_CUSTOMER_ID:
      if (!parse_whole(v, &d) || d < 1) {
        rp_err_set(why, RP_EINVAL, "customer_id",
                   "customer_id: \"%.64s\" is not a customer id (a positive whole number)", v);
        goto bad;
      }
      item = cJSON_CreateNumber(d);
      break;
    case COL_EV_PROP:
      parent = child(obj, "properties", &props);
      rp_err_clear(why);
      item = property_value(col, v, why);
      if (!item && why->code != RP_OK) goto bad;
      break;
    default: /* identities shorthands, id, type, occurred_at, source */
      item = cJSON_CreateStringReference(v);
      break;
    }
    if (!item || !parent || !cJSON_AddItemToObjectCS(parent, col->key, item)) {
      cJSON_Delete(item);
      goto oom;
    }
  }
  return obj;
oom:
  rp_err_set(why, RP_ENOMEM, NULL, "out of memory");
bad:
  cJSON_Delete(obj);
  return NULL;
}

/* Imports one JSON value: an upsert input or an event object. */
static void run_json(importer *im, int64_t line, const cJSON *obj, int has_cells) {
  if (im->opts->kind == RP_IMPORT_CUSTOMERS) {
    run_row(im, line, obj, NULL, has_cells);
    return;
  }
  rp_event_in ev;
  rp_err why;
  rp_err_clear(&why);
  if (rp_event_from_json(obj, &ev, &why)) {
    reject(im, line, named(&why), has_cells);
    return;
  }
  if (!ev.source) ev.source = im->source;
  run_row(im, line, NULL, &ev, has_cells);
}

/* The current record is complete (libcsv's row callback). */
static void on_record(int c, void *data) {
  (void)c;
  importer *im = data;
  if (im->fatal) return;
  int64_t line = im->rec_line;
  if (!im->have_header) {
    im->fatal = parse_header(im);
  } else {
    im->out->rows++;
    rp_err why;
    rp_err_clear(&why);
    if (im->ncells != im->ncols) {
      char msg[128];
      snprintf(msg, sizeof msg, "expected %d cells, found %d", im->ncols, im->ncells);
      reject(im, line, msg, 1);
    } else if (im->cell_nul) {
      reject(im, line, "a cell holds a NUL byte", 1);
    } else {
      cJSON *obj = row_json(im, &why);
      if (!obj && why.code == RP_ENOMEM) im->fatal = nomem(im);
      else if (!obj) reject(im, line, named(&why), 1);
      else run_json(im, line, obj, 1);
      cJSON_Delete(obj);
    }
    if ((im->out->rows & 1023) == 0) progress(im);
  }
  /* A record can end before its line does (a bare CR): the next one starts
   * on the same line. */
  im->rec_line = im->rd.line;
  im->ncells = 0;
  im->cells_len = 0;
  im->cell_nul = 0;
}

/* A cell of the current record (libcsv's field callback). */
static void on_cell(void *text, size_t n, void *data) {
  importer *im = data;
  if (im->fatal) return;
  if (grow((void **)&im->cells, &im->cells_cap, im->cells_len + n + 1, 1) ||
      grow((void **)&im->cell_off, &im->cells_n_cap, (size_t)im->ncells + 1,
           sizeof *im->cell_off)) {
    im->fatal = nomem(im);
    return;
  }
  if (n && memchr(text, '\0', n)) im->cell_nul = 1;
  im->cell_off[im->ncells++] = im->cells_len;
  if (n) memcpy(im->cells + im->cells_len, text, n);
  im->cells_len += n;
  im->cells[im->cells_len++] = '\0';
}

static int csv_restart(importer *im) {
  if (im->csv_ready) csv_free(&im->csv);
  im->csv_ready = 0;
  if (csv_init(&im->csv, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) return nomem(im);
  im->csv_ready = 1;
  im->ncells = 0;
  im->cells_len = 0;
  im->cell_nul = 0;
  return RP_OK;
}

/* Rejects the record in progress, which is broken (msg), and reads the lines
 * after its first one again (plus extra, a line not yet fed) as records of
 * their own. */
static void bad_record(importer *im, const char *msg, const char *extra, size_t extra_len) {
  char full[1024];
  /* Show the start of the record, so the person sees what went wrong. */
  size_t first = 0;
  while (first < im->raw_len && first < 60 && im->raw[first] != '\n' && im->raw[first] != '\r')
    first++;
  snprintf(full, sizeof full, "malformed CSV: %s (the record starts: %.*s%s)", msg, (int)first,
           im->raw, first < im->raw_len && im->raw[first] != '\n' && im->raw[first] != '\r'
                        ? "..." : "");
  int64_t line = im->rec_line;
  if (!im->have_header) {
    im->fatal = rp_err_set(im->err, RP_EINVAL, NULL, "%s:%" PRId64 ": bad header: %s", im->path,
                           line, full);
    return;
  }
  im->out->rows++;
  reject(im, line, full, 0);
  if (im->fatal) return;
  char *nl = memchr(im->raw, '\n', im->raw_len);
  size_t rest = nl ? im->raw_len - (size_t)(nl + 1 - im->raw) : 0;
  if (rest || extra_len) {
    /* Join what follows the first line and extra, then push it back. */
    char *joined = malloc(rest + extra_len + 1);
    if (!joined) {
      im->fatal = nomem(im);
      return;
    }
    if (rest) memcpy(joined, nl + 1, rest);
    if (extra_len) memcpy(joined + rest, extra, extra_len);
    int rc = reader_push_back(&im->rd, joined, rest + extra_len, line + 1);
    free(joined);
    if (rc) {
      im->fatal = nomem(im);
      return;
    }
  }
  im->raw_len = 0;
  im->fatal = csv_restart(im);
}

static const char *parse_error_text(importer *im, char *buf, size_t size) {
  if (im->csv.quoted)
    snprintf(buf, size, "cell %d: a quote inside a quoted cell must be doubled (\"\")",
             im->ncells + 1);
  else
    snprintf(buf, size, "cell %d: a quote inside an unquoted cell (quote the whole cell)",
             im->ncells + 1);
  return buf;
}

/* The next line of the input (see reader_next); on a read error sets
 * im->fatal and returns -1. */
static int next_line(importer *im, const char **line, size_t *len, int *oversize) {
  reader_settle(&im->rd);
  int r = reader_next(&im->rd, line, len, oversize);
  if (r < 0)
    im->fatal = rp_err_set(im->err, RP_EIO, NULL, "%s: read error: %s", im->path,
                           strerror(errno));
  return r;
}

static void import_csv(importer *im) {
  if ((im->fatal = csv_restart(im))) return;
  for (;;) {
    const char *line;
    size_t len;
    int oversize;
    int r = next_line(im, &line, &len, &oversize);
    if (r < 0) return;
    if (r == 0) {
      if (im->csv.pstate == 0) break;
      if (csv_fini(&im->csv, on_cell, on_record, im) != 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "cell %d: a quoted cell is never closed", im->ncells + 1);
        bad_record(im, msg, NULL, 0);
        if (im->fatal) return;
        continue; /* the replayed lines, if any */
      }
      break;
    }
    if (im->rd.line == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
      line += 3;
      len -= 3;
    }
    if (oversize) {
      if (im->csv.pstate != 0 && im->have_header) {
        /* The record in progress dies with the line. */
        im->out->rows++;
        reject(im, im->rec_line, "malformed CSV: the record runs into a line longer than 1 MiB",
               0);
        if (im->fatal || (im->fatal = csv_restart(im))) return;
      }
      if (!im->have_header) {
        im->fatal = rp_err_set(im->err, RP_EINVAL, NULL, "%s:%" PRId64 ": bad header: "
                               "a line longer than 1 MiB", im->path, im->rd.line);
        return;
      }
      im->out->rows++;
      reject(im, im->rd.line, "the line is longer than 1 MiB", 0);
      if (im->fatal) return;
      continue;
    }
    if (im->csv.pstate == 0) {
      im->rec_line = im->rd.line;
      im->raw_len = 0;
    } else if (im->raw_len + len > RP_IMPORT_MAX_LINE) {
      bad_record(im, "the record is longer than 1 MiB (a quote never closed?)", line, len);
      if (im->fatal) return;
      continue;
    }
    if (grow((void **)&im->raw, &im->raw_cap, im->raw_len + len, 1)) {
      im->fatal = nomem(im);
      return;
    }
    memcpy(im->raw + im->raw_len, line, len);
    im->raw_len += len;
    size_t n = csv_parse(&im->csv, line, len, on_cell, on_record, im);
    if (im->fatal) return;
    if (n < len) {
      char msg[160];
      if (csv_error(&im->csv) != CSV_EPARSE) {
        im->fatal = nomem(im);
        return;
      }
      /* The record is broken at this line: when it began on an earlier line,
       * those lines after its first are read again. The rest of this line is
       * dropped with it only when the record began here. */
      parse_error_text(im, msg, sizeof msg);
      if (im->rec_line < im->rd.line) {
        /* raw holds this line too: bad_record replays it. */
        bad_record(im, msg, NULL, 0);
      } else {
        im->raw_len = 0;
        char full[512];
        size_t first = len < 60 ? len : 60;
        while (first && (line[first - 1] == '\n' || line[first - 1] == '\r')) first--;
        snprintf(full, sizeof full, "malformed CSV: %s (the record starts: %.*s%s)", msg,
                 (int)first, line, first < len && line[first] != '\n' && line[first] != '\r'
                                       ? "..." : "");
        if (!im->have_header) {
          im->fatal = rp_err_set(im->err, RP_EINVAL, NULL, "%s:%" PRId64 ": bad header: %s",
                                 im->path, im->rd.line, full);
          return;
        }
        im->out->rows++;
        reject(im, im->rd.line, full, 0);
        if (!im->fatal) im->fatal = csv_restart(im);
      }
      if (im->fatal) return;
    }
  }
  if (!im->have_header)
    im->fatal = rp_err_set(im->err, RP_EINVAL, NULL, "%s: no header row (the file is empty)",
                           im->path);
}

/* ---- JSON Lines ---------------------------------------------------------------- */

static void import_jsonl(importer *im) {
  for (;;) {
    const char *line;
    size_t len;
    int oversize;
    int r = next_line(im, &line, &len, &oversize);
    if (r < 0) return;
    if (r == 0) return;
    int64_t no = im->rd.line;
    if (no == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
      line += 3;
      len -= 3;
    }
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' ||
                   line[len - 1] == '\t'))
      len--;
    size_t lead = 0;
    while (lead < len && (line[lead] == ' ' || line[lead] == '\t')) lead++;
    if (lead == len) continue;
    im->out->rows++;
    im->cur = line;
    im->cur_len = len;
    im->cur_oversize = oversize;
    if (oversize) {
      reject(im, no, "the line is longer than 1 MiB", 0);
    } else {
      const char *end = NULL;
      cJSON *obj = cJSON_ParseWithLengthOpts(line, len, &end, 0);
      if (obj) {
        while (end < line + len && (*end == ' ' || *end == '\t')) end++;
      }
      if (!obj || end != line + len) {
        char msg[128];
        size_t at = end && end >= line ? (size_t)(end - line) + 1 : 1;
        if (!obj) snprintf(msg, sizeof msg, "malformed JSON at byte %zu", at);
        else snprintf(msg, sizeof msg, "unexpected text after the JSON value at byte %zu", at);
        reject(im, no, msg, 0);
      } else {
        run_json(im, no, obj, 0);
      }
      cJSON_Delete(obj);
    }
    if (im->fatal) return;
    if ((im->out->rows & 1023) == 0) progress(im);
  }
}

/* ---- entry points ------------------------------------------------------------------ */

rp_import_format rp_import_format_for_path(const char *path) {
  const char *dot = path ? strrchr(path, '.') : NULL;
  if (!dot || strchr(dot, '/')) return RP_IMPORT_AUTO;
  if (strcasecmp(dot, ".csv") == 0) return RP_IMPORT_CSV;
  if (strcasecmp(dot, ".jsonl") == 0 || strcasecmp(dot, ".ndjson") == 0 ||
      strcasecmp(dot, ".json") == 0)
    return RP_IMPORT_JSONL;
  return RP_IMPORT_AUTO;
}

int rp_import_file(rp_store *s, const rp_config *cfg, const char *path,
                   const rp_import_opts *opts, rp_import_summary *out, rp_err *err) {
  memset(out, 0, sizeof *out);
  out->kind = opts->kind;
  if (opts->kind != RP_IMPORT_CUSTOMERS && opts->kind != RP_IMPORT_EVENTS)
    return rp_err_set(err, RP_EINVAL, "kind", "import: unknown kind %d", (int)opts->kind);
  out->format = opts->format ? opts->format : rp_import_format_for_path(path);
  if (out->format != RP_IMPORT_CSV && out->format != RP_IMPORT_JSONL)
    return rp_err_set(err, RP_EINVAL, "format",
                      "%s: cannot tell the format from the file name: give csv or jsonl", path);
  if (opts->source && (!*opts->source || strlen(opts->source) > RP_EVENT_MAX_SOURCE))
    return rp_err_set(err, RP_EINVAL, "source", "source: must be 1 to %d bytes",
                      RP_EVENT_MAX_SOURCE);

  FILE *f = fopen(path, "rb");
  if (!f) return rp_err_set(err, RP_EIO, NULL, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
    fclose(f);
    return rp_err_set(err, RP_EIO, NULL, "%s: cannot read: is a directory", path);
  }
  if (opts->rejects_path) {
    struct stat rs;
    if (strcmp(opts->rejects_path, path) == 0 ||
        (stat(opts->rejects_path, &rs) == 0 && rs.st_dev == st.st_dev && rs.st_ino == st.st_ino)) {
      fclose(f);
      return rp_err_set(err, RP_EINVAL, "rejects", "%s: the rejects file cannot be the input",
                        opts->rejects_path);
    }
  }

  importer im;
  memset(&im, 0, sizeof im);
  im.s = s;
  im.cfg = cfg;
  im.path = path;
  im.opts = opts;
  im.out = out;
  im.err = err;
  im.source = opts->source ? opts->source : "import";
  im.batch = opts->batch > 0 ? opts->batch : RP_IMPORT_BATCH;
  im.total = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
  im.rd.f = f;
  im.rd.cap = RP_IMPORT_MAX_LINE + READ_CHUNK;
  im.rd.buf = malloc(im.rd.cap);
  if (!im.rd.buf) {
    fclose(f);
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }

  if (out->format == RP_IMPORT_CSV) import_csv(&im);
  else import_jsonl(&im);

  int rc = im.fatal;
  if (rc == RP_OK) rc = batch_commit(&im);
  else batch_abort(&im);
  if (rc == RP_OK) progress(&im);
  if (im.rejects) {
    int bad = ferror(im.rejects);
    if (fclose(im.rejects) != 0 || bad) {
      if (rc == RP_OK)
        rc = rp_err_set(err, RP_EIO, NULL, "%s: cannot write the rejects file: %s",
                        out->rejects_path, strerror(errno));
    }
  }
  if (im.csv_ready) csv_free(&im.csv);
  for (int i = 0; i < im.ncols; i++) {
    free(im.cols[i].name);
    free(im.cols[i].key);
  }
  free(im.cols);
  free(im.cells);
  free(im.cell_off);
  free(im.raw);
  free(im.rd.replay);
  free(im.rd.buf);
  fclose(f);
  return rc;
}
