/* authz: permission bits and the SQL authorizer for plugin code. */
#include "authz.h"

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

const char *const rp_perm_names[] = {"customers:read", "customers:write", "pii:read",
                                     "consent:read",   "events:read",     "events:emit",
                                     "schedule",       NULL};

uint32_t rp_perm_parse(const char *name) {
  for (int i = 0; rp_perm_names[i]; i++)
    if (strcmp(rp_perm_names[i], name) == 0) return 1u << i;
  return 0;
}

const char *rp_perm_name(uint32_t bit) {
  for (int i = 0; rp_perm_names[i]; i++)
    if (bit == 1u << i) return rp_perm_names[i];
  return "?";
}

void rp_principal_plugin(rp_principal *p, const char *name, uint32_t perms) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  snprintf(p->table_prefix, sizeof p->table_prefix, "%s_", name);
  p->perms = perms;
}

void rp_principal_operator(rp_principal *p) {
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "operator");
  snprintf(p->table_prefix, sizeof p->table_prefix, "operator_");
  p->perms = RP_PERM_ALL;
  p->operator = 1;
}

int rp_authz_require(const rp_principal *p, uint32_t bit, const char *what, rp_err *err) {
  if (p->perms & bit) return RP_OK;
  return rp_err_set(err, RP_EDENIED, rp_perm_name(bit),
                    "%s '%s' lacks permission '%s' for %s (add it to \"permissions\" in "
                    "plugin.json)", p->operator ? "principal" : "plugin", p->name,
                    rp_perm_name(bit), what);
}

/* Core tables a plugin may read, and the permission each needs. Everything
 * else of the core (jobs, bus cursors, plugins, settings...) is host-private. */
static const struct {
  const char *table;
  uint32_t perm;
} readable[] = {
    {"customers", RP_PERM_CUSTOMERS_READ},
    {"customer_attributes", RP_PERM_CUSTOMERS_READ},
    {"customer_merges", RP_PERM_CUSTOMERS_READ},
    {"customer_identities", RP_PERM_PII_READ},
    {"customer_consent", RP_PERM_CONSENT_READ},
    {"customer_consent_history", RP_PERM_CONSENT_READ},
    {"events", RP_PERM_EVENTS_READ},
    {NULL, 0},
};

static int owns(const rp_principal *p, const char *table) {
  size_t n = strlen(p->table_prefix);
  return table && strncmp(table, p->table_prefix, n) == 0 && table[n] != '\0';
}

static int deny(rp_principal *p, const char *fmt, const char *a, const char *b) {
  snprintf(p->denial, sizeof p->denial, fmt, p->name, a ? a : "", b ? b : "");
  return SQLITE_DENY;
}

static int read_table(rp_principal *p, const char *table) {
  if (owns(p, table)) return SQLITE_OK;
  /* SQLite reads its own catalogue while preparing some statements. */
  if (strcmp(table, "sqlite_master") == 0 || strcmp(table, "sqlite_schema") == 0 ||
      strcmp(table, "sqlite_temp_master") == 0)
    return SQLITE_OK;
  /* Table-valued functions over their arguments, reading nothing stored:
   * a list of ids passed as one JSON parameter (IN (SELECT value FROM
   * json_each(?))) is how a plugin works on a batch. */
  if (strcmp(table, "json_each") == 0 || strcmp(table, "json_tree") == 0) return SQLITE_OK;
  if (p->operator) return SQLITE_OK;
  for (int i = 0; readable[i].table; i++) {
    if (strcmp(readable[i].table, table) != 0) continue;
    if (p->perms & readable[i].perm) return SQLITE_OK;
    return deny(p, "plugin '%s': reading table '%s' needs permission '%s'", table,
                rp_perm_name(readable[i].perm));
  }
  return deny(p, "plugin '%s': table '%s' is not readable by plugins%s", table,
              " (a plugin reads its own tables, prefixed with its name, and the core tables "
              "its permissions grant)");
}

static int write_table(rp_principal *p, const char *table, const char *verb) {
  if (owns(p, table)) return SQLITE_OK;
  /* SQLite maintains sqlite_sequence for AUTOINCREMENT tables, and writes
   * its catalogue while executing DDL that was itself authorized; direct
   * writes to the catalogue are refused by SQLite on its own. */
  if (strcmp(table, "sqlite_sequence") == 0 || strcmp(table, "sqlite_master") == 0 ||
      strcmp(table, "sqlite_schema") == 0)
    return SQLITE_OK;
  return deny(p, "plugin '%s': %s table '%s' denied: plugins write only their own tables; "
              "core data changes through the crm API", verb, table);
}

int rp_authz_sql(void *principal, int action, const char *a1, const char *a2,
                 const char *a3, const char *a4) {
  rp_principal *p = principal;
  (void)a4;
  /* Only the main database: no temp schema, no attached files. */
  if (a3 && strcmp(a3, "main") != 0 && action != SQLITE_FUNCTION)
    return deny(p, "plugin '%s': database '%s' is not accessible%s", a3, "");
  switch (action) {
  case SQLITE_SELECT:
  case SQLITE_RECURSIVE:
    return SQLITE_OK;
  case SQLITE_FUNCTION:
    if (a2 && strcmp(a2, "load_extension") == 0)
      return deny(p, "plugin '%s': function '%s' is not allowed%s", a2, "");
    return SQLITE_OK;
  case SQLITE_READ:
    return read_table(p, a1);
  case SQLITE_INSERT:
    return write_table(p, a1, "inserting into");
  case SQLITE_UPDATE:
    return write_table(p, a1, "updating");
  case SQLITE_DELETE:
    return write_table(p, a1, "deleting from");
  case SQLITE_CREATE_TABLE:
  case SQLITE_DROP_TABLE:
  case SQLITE_CREATE_VIEW:
  case SQLITE_DROP_VIEW:
    return write_table(p, a1, "creating or dropping");
  case SQLITE_CREATE_INDEX:
  case SQLITE_DROP_INDEX:
  case SQLITE_CREATE_TRIGGER:
  case SQLITE_DROP_TRIGGER:
    /* a1 is the index or trigger, a2 its table: both must be the plugin's.
     * SQLite names the indexes behind UNIQUE and PRIMARY KEY constraints
     * itself (sqlite_autoindex_<table>_N); the table check covers those. */
    if (!owns(p, a1) && !(action == SQLITE_CREATE_INDEX && a1 &&
                          strncmp(a1, "sqlite_autoindex_", 17) == 0))
      return deny(p, "plugin '%s': index or trigger '%s' must be prefixed with the plugin "
                  "name%s", a1, "");
    return write_table(p, a2, "indexing or triggering on");
  case SQLITE_ALTER_TABLE:
    return write_table(p, a2, "altering");
  case SQLITE_REINDEX:
  case SQLITE_ANALYZE:
    return write_table(p, a1, "reindexing or analysing");
  case SQLITE_TRANSACTION:
  case SQLITE_SAVEPOINT:
    return deny(p, "plugin '%s': transaction control (%s) is the host's: handlers already "
                "run in a transaction; use crm.db.atomic(fn) for an atomic group%s",
                a1 ? a1 : "", "");
  case SQLITE_PRAGMA:
    return deny(p, "plugin '%s': PRAGMA %s is not allowed%s", a1, "");
  case SQLITE_ATTACH:
  case SQLITE_DETACH:
    return deny(p, "plugin '%s': ATTACH/DETACH is not allowed%s%s", "", "");
  default:
    /* Temp objects, virtual tables and anything newer: refused. */
    return deny(p, "plugin '%s': this kind of statement is not allowed%s%s", "", "");
  }
}
