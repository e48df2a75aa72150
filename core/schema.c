/* schema: core tables. Table and column names are part of the plugin SQL
 * contract (plugins granted a permission may read them); see docs/schema.md. */
#include "schema.h"

#include <stddef.h>

/* Enumerations are CHECKed with OR chains, not IN lists: SQLite 3.40 builds an
 * ephemeral table for a constant IN list on every execution of an INSERT,
 * which cost a third of the import time. */
static const char v1_core[] =
    "CREATE TABLE settings(\n"
    "  key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;\n"

    /* Customers. merged_into is set on an absorbed customer: its id keeps
     * resolving to the survivor. */
    "CREATE TABLE customers(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  external_id TEXT,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  merged_into INTEGER);\n"
    "CREATE UNIQUE INDEX customers_external_id ON customers(external_id)\n"
    "  WHERE external_id IS NOT NULL;\n"
    "CREATE INDEX customers_merged_into ON customers(merged_into)\n"
    "  WHERE merged_into IS NOT NULL;\n"

    /* Identities: kind is email, phone, external_id or anonymous_id (or a
     * custom kind); values are normalised. A value names one customer. */
    "CREATE TABLE customer_identities(\n"
    "  kind TEXT NOT NULL,\n"
    "  value TEXT NOT NULL,\n"
    "  customer_id INTEGER NOT NULL,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  PRIMARY KEY(kind, value)) WITHOUT ROWID;\n"
    "CREATE INDEX customer_identities_customer ON customer_identities(customer_id);\n"

    /* Typed attributes. value holds text, integer (also boolean 0/1,
     * timestamp ms, money minor units); currency is set for money only. */
    "CREATE TABLE customer_attributes(\n"
    "  customer_id INTEGER NOT NULL,\n"
    "  name TEXT NOT NULL,\n"
    "  type TEXT NOT NULL CHECK(type = 'text' OR type = 'integer' OR type = 'boolean' OR "
    "type = 'timestamp' OR type = 'money'),\n"
    "  value,\n"
    "  currency TEXT,\n"
    "  updated_at INTEGER NOT NULL,\n"
    "  PRIMARY KEY(customer_id, name)) WITHOUT ROWID;\n"

    /* Consent per channel: the current state, and every change. */
    "CREATE TABLE customer_consent(\n"
    "  customer_id INTEGER NOT NULL,\n"
    "  channel TEXT NOT NULL CHECK(channel = 'email' OR channel = 'sms' OR channel = 'push' OR "
    "channel = 'phone'),\n"
    "  granted INTEGER NOT NULL CHECK(granted = 0 OR granted = 1),\n"
    "  source TEXT NOT NULL,\n"
    "  recorded_at INTEGER NOT NULL,\n"
    "  PRIMARY KEY(customer_id, channel)) WITHOUT ROWID;\n"
    "CREATE TABLE customer_consent_history(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  customer_id INTEGER NOT NULL,\n"
    "  channel TEXT NOT NULL,\n"
    "  granted INTEGER NOT NULL,\n"
    "  source TEXT NOT NULL,\n"
    "  recorded_at INTEGER NOT NULL);\n"
    "CREATE INDEX customer_consent_history_customer\n"
    "  ON customer_consent_history(customer_id);\n"

    /* Merges: what happened, and enough detail to explain it later. */
    "CREATE TABLE customer_merges(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  survivor_id INTEGER NOT NULL,\n"
    "  absorbed_id INTEGER NOT NULL,\n"
    "  reason TEXT NOT NULL,\n"
    "  detail TEXT NOT NULL,\n"
    "  merged_at INTEGER NOT NULL);\n"
    "CREATE INDEX customer_merges_survivor ON customer_merges(survivor_id);\n"

    /* The event log: append-only, ordered by id. event_id is the client's id;
     * the same one twice is stored once. */
    "CREATE TABLE events(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  event_id TEXT,\n"
    "  customer_id INTEGER NOT NULL,\n"
    "  type TEXT NOT NULL,\n"
    "  occurred_at INTEGER NOT NULL,\n"
    "  received_at INTEGER NOT NULL,\n"
    "  source TEXT NOT NULL,\n"
    "  properties TEXT NOT NULL DEFAULT '{}');\n"
    "CREATE UNIQUE INDEX events_event_id ON events(event_id) WHERE event_id IS NOT NULL;\n"
    "CREATE INDEX events_customer ON events(customer_id, occurred_at);\n"

    /* Plugins known to this database and their state. */
    "CREATE TABLE plugins(\n"
    "  name TEXT PRIMARY KEY,\n"
    "  path TEXT NOT NULL,\n"
    "  version TEXT NOT NULL,\n"
    "  enabled INTEGER NOT NULL DEFAULT 0,\n"
    "  status TEXT NOT NULL DEFAULT 'disabled'\n"
    "    CHECK(status = 'enabled' OR status = 'disabled' OR status = 'suspended' OR "
    "status = 'broken'),\n"
    "  status_reason TEXT,\n"
    "  failures INTEGER NOT NULL DEFAULT 0,\n"
    "  errors_total INTEGER NOT NULL DEFAULT 0,\n"
    "  updated_at INTEGER NOT NULL) WITHOUT ROWID;\n"

    /* Bus: one cursor per plugin (the last event id it has seen), and the
     * events its handler failed on. */
    "CREATE TABLE bus_cursors(\n"
    "  plugin TEXT PRIMARY KEY,\n"
    "  last_event_id INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL) WITHOUT ROWID;\n"
    "CREATE TABLE dead_letters(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  plugin TEXT NOT NULL,\n"
    "  event_id INTEGER NOT NULL,\n"
    "  handler TEXT NOT NULL,\n"
    "  error TEXT NOT NULL,\n"
    "  traceback TEXT,\n"
    "  attempts INTEGER NOT NULL DEFAULT 1,\n"
    "  status TEXT NOT NULL DEFAULT 'pending' CHECK(status = 'pending' OR status = 'retried'),\n"
    "  created_at INTEGER NOT NULL,\n"
    "  updated_at INTEGER NOT NULL);\n"
    "CREATE INDEX dead_letters_plugin ON dead_letters(plugin, status);\n"

    /* Scheduler: jobs (cron, every, at) with their next due time, and every
     * run. A one-shot is deleted when it has run; its run stays. */
    "CREATE TABLE jobs(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  owner TEXT NOT NULL,\n"
    "  name TEXT,\n"
    "  kind TEXT NOT NULL CHECK(kind = 'cron' OR kind = 'every' OR kind = 'at'),\n"
    "  spec TEXT NOT NULL,\n"
    "  target TEXT NOT NULL,\n"
    "  payload TEXT,\n"
    "  missed TEXT NOT NULL DEFAULT 'run_once' CHECK(missed = 'run_once' OR missed = 'skip'),\n"
    "  origin TEXT NOT NULL DEFAULT 'api' CHECK(origin = 'manifest' OR origin = 'api' OR "
    "origin = 'cli'),\n"
    "  enabled INTEGER NOT NULL DEFAULT 1,\n"
    "  next_run_at INTEGER,\n"
    "  last_run_at INTEGER,\n"
    "  created_at INTEGER NOT NULL);\n"
    "CREATE UNIQUE INDEX jobs_owner_name ON jobs(owner, name) WHERE name IS NOT NULL;\n"
    "CREATE INDEX jobs_due ON jobs(next_run_at) WHERE next_run_at IS NOT NULL AND enabled = 1;\n"
    "CREATE TABLE job_runs(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  job_id INTEGER NOT NULL,\n"
    "  owner TEXT NOT NULL,\n"
    "  name TEXT,\n"
    "  target TEXT NOT NULL,\n"
    "  scheduled_for INTEGER NOT NULL,\n"
    "  started_at INTEGER NOT NULL,\n"
    "  finished_at INTEGER,\n"
    "  outcome TEXT NOT NULL CHECK(outcome = 'running' OR outcome = 'ok' OR "
    "outcome = 'error' OR outcome = 'skipped' OR outcome = 'interrupted'),\n"
    "  error TEXT);\n"
    "CREATE INDEX job_runs_job ON job_runs(job_id, id);\n";

/* v2: API keys. Only a SHA-256 of each key's secret is stored; the key itself
 * is shown once, when it is created. */
static const char v2_api_keys[] =
    "CREATE TABLE api_keys(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  name TEXT NOT NULL,\n"
    "  role TEXT NOT NULL CHECK(role = 'admin' OR role = 'operator' OR role = 'analyst' OR "
    "role = 'support' OR role = 'partner'),\n"
    "  plugin TEXT,\n"
    "  secret_sha256 BLOB NOT NULL,\n"
    "  created_at INTEGER NOT NULL,\n"
    "  last_used_at INTEGER,\n"
    "  revoked_at INTEGER);\n";

/* v3: the audit log of access to customers' data: append-only, each record
 * carrying the SHA-256 of the previous one's hash and its own content. */
static const char v3_audit[] =
    "CREATE TABLE audit_log(\n"
    "  id INTEGER PRIMARY KEY,\n"
    "  at INTEGER NOT NULL,\n"
    "  actor TEXT NOT NULL,\n"
    "  action TEXT NOT NULL,\n"
    "  customer_id INTEGER,\n"
    "  fields TEXT,\n"
    "  origin TEXT NOT NULL,\n"
    "  hash BLOB NOT NULL);\n"
    "CREATE INDEX audit_log_customer ON audit_log(customer_id, id) WHERE customer_id IS NOT NULL;\n";

/* v4: the version of the text a customer agreed to (or refused), with each
 * consent decision. */
static const char v4_consent_version[] =
    "ALTER TABLE customer_consent ADD COLUMN version TEXT;\n"
    "ALTER TABLE customer_consent_history ADD COLUMN version TEXT;\n";

/* v5: email and phone identities are stored as a blind index (value) with
 * the value sealed beside it; see vault.h. Rows written before keep their
 * value in clear until the first open with a data key seals them. */
static const char v5_sealed_identities[] =
    "ALTER TABLE customer_identities ADD COLUMN sealed BLOB;\n";

/* v6: indexes that serve a customer's view without sorting: identities in
 * the order the view lists them (the key's value completes it), and events
 * newest first through events_customer (occurred_at, then the rowid). */
static const char v6_view_indexes[] =
    "DROP INDEX customer_identities_customer;\n"
    "CREATE INDEX customer_identities_customer ON customer_identities(customer_id, kind, "
    "created_at);\n";

/* v7: the audit log's index by customer is built behind the log, in bulk,
 * instead of one random B-tree page written per record (with an audited
 * read at a time, that index was most of the cost of a read's commit).
 * audit_customers holds (bucket = id >> 16, customer, record id): a batch
 * lands in the one bucket region the log is filling; a customer's records
 * are one seek per bucket. Records past
 * audit_indexed.through are not in it yet; queries read them from the log
 * (audit.h: RP_AUDIT_IDS_OF_CUSTOMER). */
static const char v7_audit_customers[] =
    "CREATE TABLE audit_customers(\n"
    "  bucket INTEGER NOT NULL,\n"
    "  customer_id INTEGER NOT NULL,\n"
    "  audit_id INTEGER NOT NULL,\n"
    "  PRIMARY KEY(bucket, customer_id, audit_id)) WITHOUT ROWID;\n"
    "CREATE TABLE audit_indexed(through INTEGER NOT NULL);\n"
    "INSERT INTO audit_customers SELECT id >> 16, customer_id, id FROM audit_log\n"
    "  WHERE customer_id IS NOT NULL ORDER BY 1, 2, 3;\n"
    "INSERT INTO audit_indexed SELECT coalesce(max(id), 0) FROM audit_log;\n"
    "DROP INDEX IF EXISTS audit_log_customer;\n";

/* v8: buckets of 4096 records (id >> 12) instead of 65536. A batch of 1024
 * sorted by customer went to random places of a region up to 320 pages
 * wide, and wrote most of them to the WAL again (about 1 KB per audited
 * read); a region of 4096 records is about 20 pages. A customer's records
 * cost one seek per 4096 records of the log instead of per 65536. */
static const char v8_audit_buckets[] =
    "CREATE TABLE audit_customers_v8(\n"
    "  bucket INTEGER NOT NULL,\n"
    "  customer_id INTEGER NOT NULL,\n"
    "  audit_id INTEGER NOT NULL,\n"
    "  PRIMARY KEY(bucket, customer_id, audit_id)) WITHOUT ROWID;\n"
    "INSERT INTO audit_customers_v8 SELECT audit_id >> 12, customer_id, audit_id\n"
    "  FROM audit_customers ORDER BY 1, 2, 3;\n"
    "DROP TABLE audit_customers;\n"
    "ALTER TABLE audit_customers_v8 RENAME TO audit_customers;\n";

/* The feed of profile changes: every change of a customer's attributes,
 * identities or consent, and every merge, moves customers.updated_at;
 * plugins that keep something derived from profiles (segments) read the
 * customers changed since they last looked, in this order. */
static const char v9_customers_updated[] =
    "CREATE INDEX customers_updated ON customers(updated_at);\n";

const rp_migration rp_core_migrations[] = {
    {1, "core", v1_core},
    {2, "api_keys", v2_api_keys},
    {3, "audit", v3_audit},
    {4, "consent_version", v4_consent_version},
    {5, "sealed_identities", v5_sealed_identities},
    {6, "view_indexes", v6_view_indexes},
    {7, "audit_customers", v7_audit_customers},
    {8, "audit_buckets", v8_audit_buckets},
    {9, "customers_updated", v9_customers_updated},
    {0, NULL, NULL},
};
