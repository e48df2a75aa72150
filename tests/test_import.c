/* Unit tests of import: CSV and JSON Lines customers and events, rejects,
 * batches. Each test writes its input into a temporary folder and imports it
 * into an in-memory database. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "import.h"
#include "profile.h"
#include "store.h"
#include "test.h"

static char tmpdir[256];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void cleanup(void) {
  if (tmpdir[0]) nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Writes content to name in the temporary folder; returns the path (static
 * storage of a small ring, enough for a test's files). */
static const char *write_file(const char *name, const char *content) {
  static char paths[8][512];
  static int next;
  if (!tmpdir[0]) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/rp_test_import_XXXXXX");
    ASSERT(mkdtemp(tmpdir) != NULL);
    atexit(cleanup);
  }
  char *p = paths[next++ % 8];
  snprintf(p, 512, "%s/%s", tmpdir, name);
  FILE *f = fopen(p, "wb");
  ASSERT(f != NULL);
  ASSERT_EQ(fwrite(content, 1, strlen(content), f), strlen(content));
  ASSERT_EQ(fclose(f), 0);
  return p;
}

/* The whole content of path (malloc'ed), or NULL when it does not exist. */
static char *read_all(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *buf = malloc((size_t)n + 1);
  ASSERT(buf != NULL);
  ASSERT_EQ(fread(buf, 1, (size_t)n, f), n);
  buf[n] = '\0';
  fclose(f);
  return buf;
}

static rp_store *open_db(void) {
  rp_store *s;
  rp_err err;
  rp_err_clear(&err);
  ASSERT_EQ(rp_store_open(":memory:", RP_STORE_CREATE, &s, &err), RP_OK);
  return s;
}

/* Runs an import; returns its status with sum and err filled. */
static int import(rp_store *s, const char *path, rp_import_kind kind, int batch,
                  rp_import_summary *sum, rp_err *err) {
  rp_import_opts o;
  memset(&o, 0, sizeof o);
  o.kind = kind;
  o.batch = batch;
  o.source = "test";
  rp_err_clear(err);
  return rp_import_file(s, NULL, path, &o, sum, err);
}

/* The first column of the first row of sql, as an integer (-1 when none). */
static long long q_int(rp_store *s, const char *sql) {
  sqlite3_stmt *st;
  ASSERT_EQ(sqlite3_prepare_v2(rp_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
  long long v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  return v;
}

/* The first column of the first row of sql as text, into buf ("" when none). */
static const char *q_text(rp_store *s, const char *sql, char *buf, size_t size) {
  sqlite3_stmt *st;
  ASSERT_EQ(sqlite3_prepare_v2(rp_store_db(s), sql, -1, &st, NULL), SQLITE_OK);
  buf[0] = '\0';
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
    snprintf(buf, size, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return buf;
}

static int64_t resolve(rp_store *s, const char *kind, const char *value) {
  int64_t id = 0;
  rp_err err;
  rp_err_clear(&err);
  if (rp_profile_resolve(s, NULL, kind, value, &id, &err) != RP_OK) return 0;
  return id;
}

/* ---- customers CSV ---------------------------------------------------------------- */

static void test_csv_customers_every_column_kind(void) {
  const char *path = write_file(
      "all.csv",
      "external_id,email,phone,anonymous_id,identity.loyalty_card,consent.email,consent.sms,"
      "first_name,age:integer,vip:boolean,signed_up:timestamp,ltv:money,note:text\n"
      "CRM-1,Alice@Example.COM,+33 6 12 34 56 78,anon-1,LC-9,yes,no,Alice,42,true,"
      "2024-03-01T10:00:00Z,12.50 EUR,\"likes, commas\"\n"
      "CRM-2,bob@example.com,,,,,,Bob,,,,,\n");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.format, RP_IMPORT_CSV);
  ASSERT_EQ(sum.rows, 2);
  ASSERT_EQ(sum.created, 2);
  ASSERT_EQ(sum.rejected, 0);
  ASSERT_STR_EQ(sum.rejects_path, "");

  int64_t alice = resolve(s, "external_id", "CRM-1");
  ASSERT(alice > 0);
  ASSERT_EQ(resolve(s, "email", "alice@example.com"), alice);
  ASSERT_EQ(resolve(s, "phone", "+33612345678"), alice);
  ASSERT_EQ(resolve(s, "anonymous_id", "anon-1"), alice);
  ASSERT_EQ(resolve(s, "loyalty_card", "LC-9"), alice);

  cJSON *v = NULL;
  ASSERT_EQ(rp_profile_view(s, alice, RP_VIEW_ALL, 0, &v, &err), RP_OK);
  const cJSON *attrs = cJSON_GetObjectItem(v, "attributes");
  const cJSON *types = cJSON_GetObjectItem(v, "attribute_types");
  ASSERT_STR_EQ(cJSON_GetObjectItem(attrs, "first_name")->valuestring, "Alice");
  ASSERT_STR_EQ(cJSON_GetObjectItem(types, "first_name")->valuestring, "text");
  ASSERT_EQ(cJSON_GetObjectItem(attrs, "age")->valuedouble, 42);
  ASSERT_STR_EQ(cJSON_GetObjectItem(types, "age")->valuestring, "integer");
  ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(attrs, "vip")));
  ASSERT_STR_EQ(cJSON_GetObjectItem(types, "vip")->valuestring, "boolean");
  ASSERT_EQ(cJSON_GetObjectItem(attrs, "signed_up")->valuedouble, 1709287200000.0);
  ASSERT_STR_EQ(cJSON_GetObjectItem(types, "signed_up")->valuestring, "timestamp");
  const cJSON *ltv = cJSON_GetObjectItem(attrs, "ltv");
  ASSERT_EQ(cJSON_GetObjectItem(ltv, "amount")->valuedouble, 1250);
  ASSERT_STR_EQ(cJSON_GetObjectItem(ltv, "currency")->valuestring, "EUR");
  ASSERT_STR_EQ(cJSON_GetObjectItem(attrs, "note")->valuestring, "likes, commas");
  const cJSON *consent = cJSON_GetObjectItem(v, "consent");
  ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(consent, "email"), "granted")));
  ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(consent, "sms"), "granted")));
  ASSERT_STR_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(consent, "email"), "source")->valuestring,
                "test");
  cJSON_Delete(v);

  /* Empty cells set nothing: Bob has one attribute and no consent. */
  int64_t bob = resolve(s, "email", "bob@example.com");
  ASSERT(bob > 0 && bob != alice);
  char sql[256];
  snprintf(sql, sizeof sql, "SELECT count(*) FROM customer_attributes WHERE customer_id = %lld",
           (long long)bob);
  ASSERT_EQ(q_int(s, sql), 1);
  snprintf(sql, sizeof sql, "SELECT count(*) FROM customer_consent WHERE customer_id = %lld",
           (long long)bob);
  ASSERT_EQ(q_int(s, sql), 0);
  rp_store_close(s);
}

static void test_typed_attributes_stored_with_their_types(void) {
  const char *path = write_file("typed.csv",
                                "email,n:integer,b:boolean,t:timestamp,m:money,x\n"
                                "a@example.com,-7,no,1700000000000,3 JPY,007\n");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.created, 1);
  char buf[64];
  ASSERT_STR_EQ(q_text(s, "SELECT type || ':' || typeof(value) || ':' || value FROM "
                          "customer_attributes WHERE name = 'n'", buf, sizeof buf),
                "integer:integer:-7");
  ASSERT_STR_EQ(q_text(s, "SELECT type || ':' || typeof(value) || ':' || value FROM "
                          "customer_attributes WHERE name = 'b'", buf, sizeof buf),
                "boolean:integer:0");
  ASSERT_STR_EQ(q_text(s, "SELECT type || ':' || typeof(value) || ':' || value FROM "
                          "customer_attributes WHERE name = 't'", buf, sizeof buf),
                "timestamp:integer:1700000000000");
  ASSERT_STR_EQ(q_text(s, "SELECT type || ':' || value || ':' || currency FROM "
                          "customer_attributes WHERE name = 'm'", buf, sizeof buf),
                "money:3:JPY");
  /* An untyped column is text, even when it looks like a number. */
  ASSERT_STR_EQ(q_text(s, "SELECT type || ':' || typeof(value) || ':' || value FROM "
                          "customer_attributes WHERE name = 'x'", buf, sizeof buf),
                "text:text:007");
  rp_store_close(s);
}

static void test_bad_typed_cell_rejected_naming_the_field(void) {
  const char *path = write_file("badtyped.csv",
                                "email,age:integer,vip:boolean,consent.email\n"
                                "ok@example.com,1,yes,yes\n"
                                "bob@,2,yes,yes\n"
                                "c@example.com,old,yes,yes\n"
                                "d@example.com,3,maybe,yes\n"
                                "e@example.com,3,no,perhaps\n");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.rows, 5);
  ASSERT_EQ(sum.created, 1);
  ASSERT_EQ(sum.rejected, 4);
  char *rej = read_all(sum.rejects_path);
  ASSERT(rej != NULL);
  ASSERT_CONTAINS(rej, "email,age:integer,vip:boolean,consent.email,_line,_error\n");
  ASSERT_CONTAINS(rej, "bob@,2,yes,yes,3,\"email: \"\"bob@\"\" has no domain after '@'\"\n");
  ASSERT_CONTAINS(rej, ",4,\"attributes.age: not a whole number (column age:integer: \"\"old\"\")\"\n");
  ASSERT_CONTAINS(rej, ",5,\"attributes.vip: \"\"maybe\"\" is not a boolean");
  ASSERT_CONTAINS(rej, ",6,\"consent.email: \"\"perhaps\"\" is not a boolean");
  free(rej);
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM customers"), 1);
  rp_store_close(s);
}

static void test_email_normalised_mixed_case_updates(void) {
  const char *path = write_file("case.csv",
                                "email,city\n"
                                "  Mixed.Case@Example.COM ,Paris\n"
                                "mixed.case@example.com,Lyon\n"
                                "MIXED.CASE@EXAMPLE.COM,Lyon\n");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.created, 1);
  ASSERT_EQ(sum.updated, 1);
  ASSERT_EQ(sum.unchanged, 1);
  char buf[64];
  ASSERT_STR_EQ(q_text(s, "SELECT value FROM customer_identities", buf, sizeof buf),
                "mixed.case@example.com");
  ASSERT_STR_EQ(q_text(s, "SELECT value FROM customer_attributes WHERE name = 'city'", buf,
                       sizeof buf), "Lyon");
  rp_store_close(s);
}

static void test_placeholders_do_not_merge(void) {
  const char *path = write_file("placeholder.csv",
                                "external_id,email,phone\n"
                                "P-1,n/a,unknown\n"
                                "P-2,n/a,unknown\n"
                                "P-3,test@test.com,\n"
                                ",N/A,null\n");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.created, 3);
  ASSERT_EQ(sum.merged, 0);
  ASSERT_EQ(sum.rejected, 1); /* only placeholders: nobody is named */
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM customers"), 3);
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM customer_identities WHERE kind <> 'external_id'"), 0);
  char *rej = read_all(sum.rejects_path);
  ASSERT_CONTAINS(rej, ",5,\"identities: no usable identity");
  free(rej);
  rp_store_close(s);
}

static void test_duplicate_person_merges(void) {
  const char *path = write_file("merge.csv",
                                "email,phone,name\n"
                                "jo@example.com,,Jo\n"
                                ",+33612345678,Joanne\n"
                                "jo@example.com,+33612345678,\n");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.created, 2);
  ASSERT_EQ(sum.merged, 1);
  int64_t a = resolve(s, "email", "jo@example.com");
  ASSERT(a > 0);
  ASSERT_EQ(resolve(s, "phone", "+33612345678"), a);
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM customers WHERE merged_into IS NULL"), 1);
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM customer_merges"), 1);
  char buf[64];
  ASSERT_STR_EQ(q_text(s, "SELECT reason FROM customer_merges", buf, sizeof buf), "identity");
  rp_store_close(s);
}

/* A header problem refuses the import before anything is written. */
static void test_bad_header_refused_nothing_written(void) {
  static const struct {
    const char *header;
    const char *msg;
  } cases[] = {
      {"email,first_name,age:float\n", "column 3 \"age:float\": unknown type \"float\""},
      {"email,First Name\n", "column 2 \"First Name\""},
      {"email,consent.fax\n", "column 2 \"consent.fax\": unknown consent channel"},
      {"email,identity.Bad-Kind\n", "column 2 \"identity.Bad-Kind\""},
      {"email,name,name\n", "column 3 \"name\" repeats column 2"},
      {"email,,name\n", "column 2 has no name"},
      {"first_name,age:integer\n", "no identity column"},
      {"\"email,name\n", "bad header"},
      {"", "no header row"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char content[256];
    snprintf(content, sizeof content, "%sa@example.com,x,y\nb@example.com,x,y\n", cases[i].header);
    if (!cases[i].header[0]) content[0] = '\0';
    const char *path = write_file("header.csv", content);
    rp_store *s = open_db();
    rp_import_summary sum;
    rp_err err;
    ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_EINVAL);
    ASSERT_CONTAINS(err.msg, path);
    ASSERT_CONTAINS(err.msg, cases[i].msg);
    ASSERT_EQ(q_int(s, "SELECT count(*) FROM customers"), 0);
    ASSERT_EQ(sum.rows, 0);
    rp_store_close(s);
  }
  /* Events have their own columns. */
  const char *path = write_file("ev_header.csv", "id,type,email,color\n1,a,a@example.com,red\n");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_EVENTS, 0, &sum, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "column 4 \"color\": unknown column");
  path = write_file("ev_header2.csv", "id,type,email,properties.n:money\n");
  ASSERT_EQ(import(s, path, RP_IMPORT_EVENTS, 0, &sum, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "column 4 \"properties.n:money\": unknown type \"money\"");
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM events"), 0);
  rp_store_close(s);
}

static void test_missing_file_and_unknown_format(void) {
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, "/nonexistent/customers.csv", RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_EIO);
  ASSERT_CONTAINS(err.msg, "/nonexistent/customers.csv: cannot open");
  ASSERT_EQ(import(s, "/tmp/customers.xlsx", RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "cannot tell the format");
  ASSERT_EQ(rp_import_format_for_path("a/b.CSV"), RP_IMPORT_CSV);
  ASSERT_EQ(rp_import_format_for_path("x.ndjson"), RP_IMPORT_JSONL);
  ASSERT_EQ(rp_import_format_for_path("x.json"), RP_IMPORT_JSONL);
  ASSERT_EQ(rp_import_format_for_path("dir.csv/file"), RP_IMPORT_AUTO);
  rp_store_close(s);
}

static void test_malformed_rows_rejected_with_line_numbers(void) {
  const char *path = write_file("malformed.csv",
                                "email,name\n"                  /* 1 */
                                "a@example.com,Ann\n"           /* 2 */
                                "b@example.com,Bo\"b\n"         /* 3: quote in unquoted cell */
                                "c@example.com,\"Cy\"x\n"       /* 4: text after closing quote */
                                "d@example.com,\"multi\nline\"\n" /* 5-6: a valid quoted newline */
                                "e@example.com,\"never closed\n" /* 7: unterminated */
                                "f@example.com,Fay\n"           /* 8 */
                                "g@example.com,Gus\n");         /* 9 */
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.created, 4); /* a, d, f, g */
  ASSERT_EQ(sum.rejected, 3);
  ASSERT_EQ(sum.rows, 7);
  ASSERT(resolve(s, "email", "f@example.com") > 0);
  ASSERT(resolve(s, "email", "g@example.com") > 0);
  ASSERT(resolve(s, "email", "b@example.com") == 0);
  char buf[64];
  ASSERT_STR_EQ(q_text(s, "SELECT value FROM customer_attributes WHERE value LIKE 'multi%'", buf,
                       sizeof buf), "multi\nline");
  char *rej = read_all(sum.rejects_path);
  ASSERT_CONTAINS(rej, ",,3,\"malformed CSV: cell 2: a quote inside an unquoted cell");
  ASSERT_CONTAINS(rej, ",,4,\"malformed CSV: cell 2:");
  ASSERT_CONTAINS(rej, ",,7,\"malformed CSV: ");
  ASSERT(strstr(rej, ",8,") == NULL);
  free(rej);
  rp_store_close(s);
}

static void test_unterminated_quote_at_end(void) {
  const char *path = write_file("unterminated.csv",
                                "email,name\n"
                                "a@example.com,Ann\n"
                                "b@example.com,\"Bob\n"
                                "c@example.com,Cy");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.created, 2); /* a and c (no final newline) */
  ASSERT_EQ(sum.rejected, 1);
  char *rej = read_all(sum.rejects_path);
  ASSERT_CONTAINS(rej, ",,3,\"malformed CSV: cell 2: a quoted cell is never closed");
  free(rej);
  rp_store_close(s);
}

static void test_wrong_cell_count(void) {
  const char *path = write_file("count.csv",
                                "email,first_name,last_name\n"
                                "a@example.com,Ann,Lee\n"
                                "b@example.com,Bob\n"
                                "c@example.com,Cy,Do,extra\n"
                                "\n"
                                "d@example.com,Di,Ng\r\n");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.created, 2);
  ASSERT_EQ(sum.rejected, 2);
  char *rej = read_all(sum.rejects_path);
  ASSERT_CONTAINS(rej, "b@example.com,Bob,,3,\"expected 3 cells, found 2\"\n");
  ASSERT_CONTAINS(rej, "c@example.com,Cy,Do,4,\"expected 3 cells, found 4\"\n");
  free(rej);
  char buf[64];
  ASSERT_STR_EQ(q_text(s, "SELECT value FROM customer_attributes WHERE name = 'last_name' "
                          "AND value LIKE 'N%'", buf, sizeof buf), "Ng");
  rp_store_close(s);
}

static void test_oversized_lines_rejected(void) {
  size_t big = RP_IMPORT_MAX_LINE + 100;
  char *content = malloc(big + 256);
  ASSERT(content != NULL);
  int n = snprintf(content, 256, "email,note\na@example.com,short\nb@example.com,");
  memset(content + n, 'x', big);
  snprintf(content + n + big, 256, "\nc@example.com,fine\n");
  const char *path = write_file("big.csv", content);
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.created, 2);
  ASSERT_EQ(sum.rejected, 1);
  char *rej = read_all(sum.rejects_path);
  ASSERT_CONTAINS(rej, ",,3,the line is longer than 1 MiB\n");
  free(rej);

  /* The same in JSON Lines. */
  n = snprintf(content, 256, "{\"email\": \"d@example.com\"}\n{\"email\": \"e@example.com\", "
                             "\"attributes\": {\"note\": \"");
  memset(content + n, 'y', big);
  snprintf(content + n + big, 256, "\"}}\n{\"email\": \"f@example.com\"}\n");
  path = write_file("big.jsonl", content);
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.created, 2);
  ASSERT_EQ(sum.rejected, 1);
  rej = read_all(sum.rejects_path);
  ASSERT_CONTAINS(rej, "{\"line\":2,\"error\":\"the line is longer than 1 MiB\",\"input\":");
  ASSERT_CONTAINS(rej, "\"truncated\":true}\n");
  free(rej);
  free(content);
  rp_store_close(s);
}

/* A quote that never closes swallows the lines after it until the record
 * passes 1 MiB: only its first line is rejected, the others are read again. */
static void test_runaway_quote_recovers(void) {
  size_t lines = 6000, width = 200;
  char *content = malloc(lines * (width + 32) + 128);
  ASSERT(content != NULL);
  size_t n = (size_t)sprintf(content, "email,note\na@example.com,\"open\n");
  for (size_t i = 0; i < lines; i++) {
    n += (size_t)sprintf(content + n, "r%zu@example.com,", i);
    memset(content + n, 'z', width);
    n += width;
    content[n++] = '\n';
  }
  content[n] = '\0';
  const char *path = write_file("runaway.csv", content);
  free(content);
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.rejected, 1);
  ASSERT_EQ(sum.created, (int64_t)lines);
  ASSERT_EQ(sum.rows, (int64_t)lines + 1);
  char *rej = read_all(sum.rejects_path);
  ASSERT_CONTAINS(rej, ",,2,\"malformed CSV: the record is longer than 1 MiB");
  free(rej);
  ASSERT(resolve(s, "email", "r0@example.com") > 0);
  ASSERT(resolve(s, "email", "r5999@example.com") > 0);
  rp_store_close(s);
}

static void test_bom_crlf_and_blank_lines(void) {
  const char *path = write_file("bom.csv",
                                "\xEF\xBB\xBF" "email , name\r\n"
                                "\r\n"
                                "a@example.com, Ann \r\n"
                                "   \r\n"
                                "b@example.com,\" Bo \"\r\n");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.rows, 2);
  ASSERT_EQ(sum.created, 2);
  char buf[64];
  /* Unquoted cells are trimmed; quoted ones keep their spaces. */
  ASSERT_STR_EQ(q_text(s, "SELECT group_concat('[' || value || ']', '') FROM "
                          "(SELECT value FROM customer_attributes ORDER BY customer_id)", buf,
                       sizeof buf), "[Ann][ Bo ]");
  rp_store_close(s);
}

/* ---- JSON Lines -------------------------------------------------------------------- */

static void test_jsonl_customers(void) {
  const char *path = write_file(
      "customers.jsonl",
      "{\"external_id\": \"J-1\", \"email\": \"Jay@Example.com\", \"attributes\": {\"age\": 30, "
      "\"ltv\": {\"type\": \"money\", \"value\": \"9.99 USD\"}}, \"consent\": {\"email\": true}}\n"
      "\n"
      "   \n"
      "{\"email\": \"jay@example.com\", \"attributes\": {\"age\": 31}}\r\n"
      "{\"email\": \"broken\"\n"
      "[1, 2]\n"
      "{\"email\": \"k@example.com\"} trailing\n"
      "{\"email\": \"k@example.com\", \"colour\": \"red\"}\n"
      "{\"phone\": \"+14155550100\"}");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.format, RP_IMPORT_JSONL);
  ASSERT_EQ(sum.rows, 7);
  ASSERT_EQ(sum.created, 2);
  ASSERT_EQ(sum.updated, 1);
  ASSERT_EQ(sum.rejected, 4);
  int64_t jay = resolve(s, "external_id", "J-1");
  ASSERT_EQ(resolve(s, "email", "jay@example.com"), jay);
  char buf[64];
  ASSERT_STR_EQ(q_text(s, "SELECT value FROM customer_attributes WHERE name = 'age'", buf,
                       sizeof buf), "31");
  ASSERT_STR_EQ(q_text(s, "SELECT source FROM customer_consent", buf, sizeof buf), "test");
  char *rej = read_all(sum.rejects_path);
  ASSERT(strstr(sum.rejects_path, "customers.jsonl.rejects.jsonl") != NULL);
  ASSERT_CONTAINS(rej, "{\"line\":5,\"error\":\"malformed JSON at byte");
  ASSERT_CONTAINS(rej, "\"input\":\"{\\\"email\\\": \\\"broken\\\"\"}\n");
  ASSERT_CONTAINS(rej, "{\"line\":6,\"error\":\"a customer must be a JSON object\"");
  ASSERT_CONTAINS(rej, "{\"line\":7,\"error\":\"unexpected text after the JSON value at byte 28\"");
  ASSERT_CONTAINS(rej, "{\"line\":8,\"error\":\"colour: unknown field \\\"colour\\\"");
  free(rej);
  rp_store_close(s);
}

static void test_jsonl_events_and_duplicates(void) {
  const char *path = write_file(
      "events.jsonl",
      "{\"id\": \"e1\", \"type\": \"order.placed\", \"email\": \"ann@example.com\", "
      "\"occurred_at\": \"2024-03-01T10:00:00Z\", \"properties\": {\"total\": 12}}\n"
      "{\"id\": \"e2\", \"type\": \"page.viewed\", \"anonymous_id\": \"anon-7\"}\n"
      "{\"id\": \"e1\", \"type\": \"order.placed\", \"email\": \"ann@example.com\"}\n"
      "{\"id\": \"e3\", \"type\": \"Bad Type\", \"email\": \"ann@example.com\"}\n"
      "{\"id\": \"e4\", \"type\": \"x\"}\n"
      "{\"id\": \"e5\", \"type\": \"order.placed\", \"email\": \"ann@example.com\", "
      "\"source\": \"shop\"}\n");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_EVENTS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.rows, 6);
  ASSERT_EQ(sum.accepted, 3);
  ASSERT_EQ(sum.duplicate, 1);
  ASSERT_EQ(sum.rejected, 2);
  ASSERT_EQ(sum.customers_created, 2);
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM events"), 3);
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM events WHERE source = 'test'"), 2);
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM events WHERE source = 'shop'"), 1);
  ASSERT_EQ(q_int(s, "SELECT occurred_at FROM events WHERE event_id = 'e1'"), 1709287200000LL);
  char *rej = read_all(sum.rejects_path);
  ASSERT_CONTAINS(rej, "{\"line\":4,\"error\":\"type: ");
  ASSERT_CONTAINS(rej, "{\"line\":5,\"error\":\"customer: an event names its customer");
  free(rej);

  /* Importing the file again stores nothing new. */
  ASSERT_EQ(import(s, path, RP_IMPORT_EVENTS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.accepted, 0);
  ASSERT_EQ(sum.duplicate, 4);
  ASSERT_EQ(sum.rejected, 2);
  ASSERT_EQ(sum.customers_created, 0);
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM events"), 3);
  rp_store_close(s);
}

static void test_csv_events(void) {
  const char *path = write_file(
      "events.csv",
      "event_id,type,occurred_at,customer_id,email,source,properties.sku,properties.qty:integer,"
      "properties.gift:boolean,properties.price:number\n"
      "o1,order.placed,2024-03-01T10:00:00Z,,ann@example.com,,A-1,2,yes,19.5\n"
      "o2,order.placed,1709287200000,1,,pos,B-2,,,\n"
      "o3,order.placed,,,ann@example.com,,C-3,two,,\n"
      "o4,order.placed,,999,,,,,,\n"
      "o5,order.placed,,x,,,,,,\n"
      ",page.viewed,,,bo@example.com,,,,,\n");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_EVENTS, 0, &sum, &err), RP_OK);
  ASSERT_EQ(sum.accepted, 3);
  ASSERT_EQ(sum.rejected, 3);
  ASSERT_EQ(sum.customers_created, 2);
  char buf[256];
  ASSERT_STR_EQ(q_text(s, "SELECT properties FROM events WHERE event_id = 'o1'", buf, sizeof buf),
                "{\"sku\":\"A-1\",\"qty\":2,\"gift\":true,\"price\":19.5}");
  ASSERT_STR_EQ(q_text(s, "SELECT source || ':' || customer_id FROM events WHERE event_id = 'o2'",
                       buf, sizeof buf), "pos:1");
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM events WHERE event_id IS NULL"), 1);
  char *rej = read_all(sum.rejects_path);
  ASSERT_CONTAINS(rej, ",4,\"properties.qty:integer: \"\"two\"\" is not a whole number\"\n");
  ASSERT_CONTAINS(rej, ",5,customer_id: no customer with id 999");
  ASSERT_CONTAINS(rej, ",6,\"customer_id: \"\"x\"\" is not a customer id");
  free(rej);
  rp_store_close(s);
}

/* ---- batches and re-imports --------------------------------------------------------- */

static int commits;
static int count_commit(void *ctx) {
  (void)ctx;
  commits++;
  return 0;
}

static void test_batch_boundaries(void) {
  const char *path = write_file("five.csv",
                                "email\n1@example.com\n2@example.com\nbad\n4@example.com\n"
                                "5@example.com\n6@example.com\n");
  rp_store *s = open_db();
  sqlite3_commit_hook(rp_store_db(s), count_commit, NULL);
  commits = 0;
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 2, &sum, &err), RP_OK);
  ASSERT_EQ(sum.created, 5);
  ASSERT_EQ(sum.rejected, 1);
  ASSERT_EQ(commits, 3); /* 2 + 2 + 2 rows, the rejected one rolled back alone */
  ASSERT_EQ(rp_store_tx_depth(s), 0);
  sqlite3_commit_hook(rp_store_db(s), NULL, NULL);
  rp_store_close(s);
}

/* A database failure in the middle keeps the committed batches and drops
 * the batch in progress whole. */
static void test_fatal_error_loses_only_the_batch(void) {
  const char *path = write_file("boom.csv",
                                "email,flag\n1@example.com,\n2@example.com,\n3@example.com,\n"
                                "4@example.com,boom\n5@example.com,\n");
  rp_store *s = open_db();
  rp_err err;
  ASSERT_EQ(rp_store_exec(s, "CREATE TEMP TRIGGER boom BEFORE INSERT ON customer_attributes "
                             "WHEN new.value = 'boom' BEGIN SELECT RAISE(ROLLBACK, 'disk on "
                             "fire'); END", &err), RP_OK);
  rp_import_summary sum;
  int rc = import(s, path, RP_IMPORT_CUSTOMERS, 2, &sum, &err);
  ASSERT(rc == RP_EDB || rc == RP_ECONFLICT);
  ASSERT_CONTAINS(err.msg, "boom.csv:5: ");
  ASSERT_CONTAINS(err.msg, "disk on fire");
  ASSERT_EQ(sum.created, 2);
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM customers"), 2);
  ASSERT_EQ(rp_store_tx_depth(s), 0);
  rp_store_close(s);
}

static void test_reimport_is_unchanged(void) {
  const char *path = write_file("again.csv",
                                "external_id,email,consent.email,age:integer,ltv:money\n"
                                "R-1,r1@example.com,yes,20,1.00 EUR\n"
                                "R-2,r2@example.com,no,21,\n"
                                "R-3,r3@example.com,,,\n");
  rp_store *s = open_db();
  rp_import_summary sum;
  rp_err err;
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 2, &sum, &err), RP_OK);
  ASSERT_EQ(sum.created, 3);
  ASSERT_EQ(import(s, path, RP_IMPORT_CUSTOMERS, 2, &sum, &err), RP_OK);
  ASSERT_EQ(sum.created, 0);
  ASSERT_EQ(sum.updated, 0);
  ASSERT_EQ(sum.merged, 0);
  ASSERT_EQ(sum.unchanged, 3);
  ASSERT_EQ(q_int(s, "SELECT count(*) FROM customer_consent_history"), 2);
  rp_store_close(s);
}

static void test_rejects_path_option_and_guard(void) {
  const char *path = write_file("opt.csv", "email\nnope\n");
  const char *rejects = write_file("my_rejects.csv", "old content\n");
  rp_store *s = open_db();
  rp_import_opts o;
  memset(&o, 0, sizeof o);
  o.kind = RP_IMPORT_CUSTOMERS;
  o.rejects_path = rejects;
  rp_import_summary sum;
  rp_err err;
  rp_err_clear(&err);
  ASSERT_EQ(rp_import_file(s, NULL, path, &o, &sum, &err), RP_OK);
  ASSERT_STR_EQ(sum.rejects_path, rejects);
  char *rej = read_all(rejects);
  ASSERT_CONTAINS(rej, "email,_line,_error\nnope,2,\"email: \"\"nope\"\" has no '@'\"\n");
  ASSERT(strstr(rej, "old content") == NULL);
  free(rej);
  /* No rejects: no file. */
  const char *clean = write_file("clean.csv", "email\nok@example.com\n");
  ASSERT_EQ(import(s, clean, RP_IMPORT_CUSTOMERS, 0, &sum, &err), RP_OK);
  ASSERT_STR_EQ(sum.rejects_path, "");
  char other[600];
  snprintf(other, sizeof other, "%s.rejects.csv", clean);
  ASSERT(access(other, F_OK) != 0);
  /* The input itself is never overwritten. */
  o.rejects_path = path;
  ASSERT_EQ(rp_import_file(s, NULL, path, &o, &sum, &err), RP_EINVAL);
  rej = read_all(path);
  ASSERT_STR_EQ(rej, "email\nnope\n");
  free(rej);
  rp_store_close(s);
}

static uint64_t last_done, last_total;
static int progress_calls;
static void on_progress(void *ctx, uint64_t done, uint64_t total) {
  (void)ctx;
  last_done = done;
  last_total = total;
  progress_calls++;
}

static void test_progress_reports_bytes(void) {
  const char *path = write_file("progress.csv", "email\na@example.com\nb@example.com\n");
  rp_store *s = open_db();
  rp_import_opts o;
  memset(&o, 0, sizeof o);
  o.kind = RP_IMPORT_CUSTOMERS;
  o.progress = on_progress;
  rp_import_summary sum;
  rp_err err;
  rp_err_clear(&err);
  ASSERT_EQ(rp_import_file(s, NULL, path, &o, &sum, &err), RP_OK);
  ASSERT(progress_calls >= 1);
  ASSERT_EQ(last_total, strlen("email\na@example.com\nb@example.com\n"));
  ASSERT_EQ(last_done, last_total);
  rp_store_close(s);
}

RP_TEST_LIST{
    RP_TEST(csv_customers_every_column_kind),
    RP_TEST(typed_attributes_stored_with_their_types),
    RP_TEST(bad_typed_cell_rejected_naming_the_field),
    RP_TEST(email_normalised_mixed_case_updates),
    RP_TEST(placeholders_do_not_merge),
    RP_TEST(duplicate_person_merges),
    RP_TEST(bad_header_refused_nothing_written),
    RP_TEST(missing_file_and_unknown_format),
    RP_TEST(malformed_rows_rejected_with_line_numbers),
    RP_TEST(unterminated_quote_at_end),
    RP_TEST(wrong_cell_count),
    RP_TEST(oversized_lines_rejected),
    RP_TEST(runaway_quote_recovers),
    RP_TEST(bom_crlf_and_blank_lines),
    RP_TEST(jsonl_customers),
    RP_TEST(jsonl_events_and_duplicates),
    RP_TEST(csv_events),
    RP_TEST(batch_boundaries),
    RP_TEST(fatal_error_loses_only_the_batch),
    RP_TEST(reimport_is_unchanged),
    RP_TEST(rejects_path_option_and_guard),
    RP_TEST(progress_reports_bytes),
    RP_TEST_END,
};
