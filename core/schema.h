/* schema: the core's own migrations, in order. Appended to, never edited once
 * released: a database records which versions it has applied. */
#ifndef RP_SCHEMA_H
#define RP_SCHEMA_H

typedef struct rp_migration {
  int version;
  const char *name;
  const char *sql;
} rp_migration;

/* Terminated by an entry with version 0. */
extern const rp_migration rp_core_migrations[];

#endif
