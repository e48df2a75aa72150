/* config: the settings of one Rapport instance, from a JSON file.
 *
 * The file is optional: `--config PATH`, else RAPPORT_CONFIG, else
 * rapport.json beside the database when it exists; missing keys take the
 * defaults below. Unknown keys are refused with their name, so a typo never
 * silently does nothing. rp_config is owned by whoever loaded it. */
#ifndef RP_CONFIG_H
#define RP_CONFIG_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct rp_config {
  char *path;             /* the file it came from, or NULL for defaults */
  char *timezone;         /* IANA zone for cron evaluation; "UTC" */
  char *default_country;  /* ISO 3166-1 alpha-2 for phone numbers, or NULL */
  char **placeholders;    /* extra identity values that never match (lower-case) */
  size_t n_placeholders;
  char **plugin_paths;    /* folders searched for plugins, in order */
  size_t n_plugin_paths;
  int64_t plugin_memory;        /* bytes per plugin state; 64 MiB */
  int64_t plugin_instructions;  /* per handler or route call; 50 million */
  int64_t job_instructions;     /* per job run; 10 billion */
  int64_t job_slice_ms;         /* a job yields to the loop after this; 5 */
  int bus_batch;                /* events per plugin per transaction; 500 */
  int suspend_after;            /* consecutive failures before suspension; 25 */
  int64_t http_max_body;        /* bytes of a request body; 1 MiB */
  int http_max_connections;     /* open connections; 4096 */
  int64_t http_idle_timeout_ms; /* idle or slow connection closed after; 30000 */
  int64_t cache_mib;            /* SQLite page cache per open database, MiB; 64 */
  int64_t view_cache_mib;       /* rendered customer views kept by serve, MiB; 64; 0: off */
  char **pii_attributes;        /* attribute names sealed at rest; NULL: the defaults */
  size_t n_pii_attributes;
  int pii_attributes_set;       /* "pii_attributes" given (it may be empty) */
  char *data_key_file;          /* the data key file; NULL: the database path + ".key" */
  cJSON *plugins;               /* object: plugin name -> config overrides */
} rp_config;

/* Loads path (NULL: defaults only). RP_EINVAL with the file and key on a bad
 * file. *out is owned by the caller: rp_config_free. */
int rp_config_load(const char *path, rp_config **out, rp_err *err);
void rp_config_free(rp_config *cfg);

/* The overrides for one plugin (borrowed, may be NULL). */
const cJSON *rp_config_plugin(const rp_config *cfg, const char *plugin);

#endif
