/* cli: what every `rapport` command shares: global options, opening the
 * database and the runtime, printing results for people or (--json) for
 * programs, and the exit codes (0 ok, 1 usage error, 2 runtime error).
 *
 * Each command lives in its own cli_NAME.c and has the signature of
 * rp_cli_cmd; main.c holds the table of commands. Nothing below the CLI layer
 * includes this header. */
#ifndef RP_CLI_H
#define RP_CLI_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "config.h"
#include "err.h"
#include "store.h"

enum { RP_EXIT_OK = 0, RP_EXIT_USAGE = 1, RP_EXIT_RUNTIME = 2 };

typedef struct rp_cli {
  const char *db_path;     /* --db, RAPPORT_DB, or ./rapport.db */
  const char *config_path; /* --config, RAPPORT_CONFIG, or rapport.json beside the db */
  int json;                /* --json: machine-readable output */
  int quiet;               /* --quiet: no progress output */
  rp_config *cfg;          /* loaded before the command runs; owned by main */
} rp_cli;

/* A command: argv[0] is the command name; options follow. Returns an exit
 * code. */
typedef int (*rp_cli_cmd)(rp_cli *cli, int argc, char **argv);

/* Opens cli->db_path with flags (see store.h). On failure prints the error
 * and returns RP_EXIT_RUNTIME; *out is then NULL. */
int rp_cli_open_store(rp_cli *cli, int flags, rp_store **out);

/* Prints "rapport: <msg>" (or {"error": {...}} with --json) to stderr and
 * returns RP_EXIT_RUNTIME. Commands that validate their arguments through a
 * core call return RP_EXIT_USAGE themselves when that call says RP_EINVAL. */
int rp_cli_fail(const rp_cli *cli, const rp_err *err);

struct rp_runtime;
/* Opens the store (creating it) and a runtime with every enabled plugin
 * loaded. On failure prints the error and returns RP_EXIT_RUNTIME with both
 * outputs NULL. Close with rp_cli_close_runtime. */
int rp_cli_open_runtime(rp_cli *cli, rp_store **store, struct rp_runtime **rt);
void rp_cli_close_runtime(rp_store *store, struct rp_runtime *rt);

/* Prints a usage error ("rapport CMD: ...; see rapport CMD --help") and
 * returns RP_EXIT_USAGE. */
int rp_cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* True when argv holds -h or --help. */
int rp_cli_wants_help(int argc, char **argv);

/* Prints j to stdout, indented, followed by a newline. Does not take j. */
void rp_cli_print_json(const cJSON *j);

/* Progress for long work on a terminal: shown only when stderr is a TTY and
 * not --quiet. done/total (total 0 when unknown), a label and a rate. */
typedef struct rp_progress {
  int enabled;
  const char *label;
  unsigned long long total;
  unsigned long long done;
  unsigned long long last_ns;
  unsigned long long start_ns;
} rp_progress;
void rp_progress_start(rp_progress *p, const rp_cli *cli, const char *label,
                       unsigned long long total);
void rp_progress_update(rp_progress *p, unsigned long long done);
void rp_progress_finish(rp_progress *p);

/* The commands. */
int rp_cmd_init(rp_cli *cli, int argc, char **argv);
int rp_cmd_import(rp_cli *cli, int argc, char **argv);
int rp_cmd_customer(rp_cli *cli, int argc, char **argv);
int rp_cmd_events(rp_cli *cli, int argc, char **argv);
int rp_cmd_run(rp_cli *cli, int argc, char **argv);
int rp_cmd_repl(rp_cli *cli, int argc, char **argv);
int rp_cmd_plugin(rp_cli *cli, int argc, char **argv);
int rp_cmd_jobs(rp_cli *cli, int argc, char **argv);
int rp_cmd_dlq(rp_cli *cli, int argc, char **argv);
int rp_cmd_serve(rp_cli *cli, int argc, char **argv);
int rp_cmd_keys(rp_cli *cli, int argc, char **argv);
/* `keys rotate-data-key` and `keys reseal` (cli_datakey.c). */
int rp_cli_keys_rotate(rp_cli *cli, int argc, char **argv);
int rp_cli_keys_reseal(rp_cli *cli, int argc, char **argv);
int rp_cmd_audit(rp_cli *cli, int argc, char **argv);
int rp_cmd_gdpr(rp_cli *cli, int argc, char **argv);
/* `rapport PLUGIN COMMAND ...`: argv[0] is the plugin's name. */
int rp_cmd_plugin_command(rp_cli *cli, int argc, char **argv);

#endif
