/* authz: who may do what, for plugin and operator code.
 *
 * A principal is the identity under which Lua code runs: a plugin (its name
 * and the permissions its manifest was granted) or the operator (local
 * scripts and the REPL). This module maps permission names to bits, answers
 * "may this principal call that API function", and is the SQLite authorizer
 * that confines plugin SQL to the plugin's own tables plus the core tables
 * its permissions grant, read-only. It never talks to Lua. */
#ifndef RP_AUTHZ_H
#define RP_AUTHZ_H

#include <stdint.h>

#include "err.h"

enum {
  RP_PERM_CUSTOMERS_READ = 1u << 0,  /* "customers:read" */
  RP_PERM_CUSTOMERS_WRITE = 1u << 1, /* "customers:write" */
  RP_PERM_PII_READ = 1u << 2,        /* "pii:read": identities (email, phone, ...) */
  RP_PERM_CONSENT_READ = 1u << 3,    /* "consent:read" */
  RP_PERM_EVENTS_READ = 1u << 4,     /* "events:read" */
  RP_PERM_EVENTS_EMIT = 1u << 5,     /* "events:emit" */
  RP_PERM_SCHEDULE = 1u << 6,        /* "schedule": own jobs and one-shots */
  RP_PERM_ALL = (1u << 7) - 1
};

typedef struct rp_principal {
  char name[64];     /* plugin name, or "operator" */
  uint32_t perms;    /* RP_PERM_* bits */
  int operator;      /* 1 for operator scripts: reads every table */
  char table_prefix[72]; /* "<name>_": the tables the principal owns */
  char denial[512];  /* why the last statement was refused, for the error */
} rp_principal;

/* Fills p for a plugin called name with perms. */
void rp_principal_plugin(rp_principal *p, const char *name, uint32_t perms);
/* Fills p for the operator: every permission, reads on every table. */
void rp_principal_operator(rp_principal *p);

/* Parses one permission name; returns its bit or 0 when unknown. */
uint32_t rp_perm_parse(const char *name);
/* The name of one bit ("customers:read"), or "?". */
const char *rp_perm_name(uint32_t bit);
/* All known names, NULL-terminated (for docs and error messages). */
extern const char *const rp_perm_names[];

/* RP_OK when p holds bit, otherwise RP_EDENIED with a message naming the
 * principal, the permission and what (e.g. "crm.customers.get"). */
int rp_authz_require(const rp_principal *p, uint32_t bit, const char *what, rp_err *err);

/* The SQLite authorizer for a principal (rp_store_auth_fn shape; principal is
 * an rp_principal*). Records the reason of a refusal in principal->denial. */
int rp_authz_sql(void *principal, int action, const char *a1, const char *a2,
                 const char *a3, const char *a4);

#endif
