/* manifest: a plugin's plugin.json, parsed and validated.
 *
 * Every problem is refused with the file and the field path
 * ("plugins/x/plugin.json: subscriptions[1].handler: ..."), never ignored:
 * unknown keys included. The manifest says nothing about whether handlers
 * exist in init.lua; the plugin loader checks that. */
#ifndef RP_MANIFEST_H
#define RP_MANIFEST_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* The host API this binary implements: a plugin's "api" must have the same
 * major and a minor no greater than this. */
#define RP_API_MAJOR 1
#define RP_API_MINOR 2

typedef struct rp_subscription {
  char *pattern; /* "order.placed", "order.*" or "*" */
  char *handler; /* key in the plugin's handlers table */
} rp_subscription;

typedef struct rp_manifest_job {
  char *name;
  char *kind;    /* "cron" | "every" | "at" */
  char *spec;    /* cron expression, interval ms, or due time ms (as text) */
  char *handler; /* key in the plugin's jobs table */
  char *missed;  /* "run_once" | "skip" */
} rp_manifest_job;

/* An HTTP route of the plugin, served under /v1/p/<plugin><path>. */
typedef struct rp_manifest_route {
  char *method;  /* "GET", "POST", "PUT", "PATCH" or "DELETE" */
  char *path;    /* "/answer": '/' then [a-z0-9_/-] */
  char *handler; /* key in the plugin's routes table */
  int public_;   /* reachable without an API key, by a token the plugin issued */
} rp_manifest_route;

/* A command of the plugin, run as `rapport <plugin> <name> [ARGS]`. */
typedef struct rp_manifest_command {
  char *name;        /* [a-z][a-z0-9_-]{0,31} */
  char *handler;     /* key in the plugin's commands table */
  char *description; /* one line for --help; may be NULL */
  char *usage;       /* the arguments, for --help ("CUSTOMER POINTS --reason R"); may be NULL */
} rp_manifest_command;

typedef struct rp_manifest {
  char *file; /* path of plugin.json */
  char *name;
  char *version;
  char *description;
  int api_major, api_minor;
  uint32_t perms;        /* RP_PERM_* */
  rp_subscription *subs;
  size_t n_subs;
  rp_manifest_job *jobs;
  size_t n_jobs;
  rp_manifest_route *routes;
  size_t n_routes;
  rp_manifest_command *commands;
  size_t n_commands;
  cJSON *config;         /* defaults; an object, owned */
  int64_t memory;        /* limits.memory_mb in bytes; 0 = instance default */
  int64_t instructions;  /* limits.instructions; 0 = instance default */
  int replay;            /* "start": "beginning": the cursor starts at 0 */
} rp_manifest;

/* Reads dir/plugin.json. *out is owned by the caller: rp_manifest_free. */
int rp_manifest_load(const char *dir, rp_manifest **out, rp_err *err);
void rp_manifest_free(rp_manifest *m);

/* True when name is a valid plugin name: [a-z][a-z0-9_]{0,31}, not a
 * reserved word ("core", "operator", "sqlite"). */
int rp_manifest_valid_name(const char *name);

/* True when the event type matches the subscription pattern: exact, "*"
 * (everything), or "prefix.*" (every type starting with "prefix."). */
int rp_pattern_match(const char *pattern, const char *type);

#endif
