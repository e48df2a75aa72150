/* main: the `rapport` command line: global options, then one command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "config.h"

typedef struct command {
  const char *name;
  rp_cli_cmd fn;
  const char *summary;
} command;

static const command commands[] = {
    {"init", rp_cmd_init, "create or upgrade the database, data key and bundled plugins"},
    {"import", rp_cmd_import, "import customers or events from CSV or JSON Lines"},
    {"customer", rp_cmd_customer, "show the unified view of one customer"},
    {"events", rp_cmd_events, "tail the event log"},
    {"run", rp_cmd_run, "run an operator script (SCRIPT.lua [ARGS])"},
    {"repl", rp_cmd_repl, "an interactive Lua prompt with the operator API"},
    {"plugin", rp_cmd_plugin, "list, enable, disable, inspect, scaffold and test plugins"},
    {"jobs", rp_cmd_jobs, "list, add, remove and run scheduled jobs; show their history"},
    {"dlq", rp_cmd_dlq, "list and retry events a plugin failed on"},
    {"serve", rp_cmd_serve, "run the HTTP API, the event bus and the scheduler until SIGTERM"},
    {"keys", rp_cmd_keys, "API keys (create, list, revoke); the data key (rotate, reseal)"},
    {"audit", rp_cmd_audit, "verify and show the audit log of access to customers' data"},
    {"gdpr", rp_cmd_gdpr, "export or erase everything held on one customer"},
    {NULL, NULL, NULL},
};

static void usage(FILE *out) {
  fprintf(out,
          "usage: rapport [--db PATH] [--config PATH] [--json] [--quiet] COMMAND [ARGS]\n"
          "\n"
          "Rapport %s: a CRM core with Lua plugins.\n"
          "\n"
          "Commands:\n",
          RP_VERSION);
  for (const command *c = commands; c->name; c++)
    fprintf(out, "  %-10s %s\n", c->name, c->summary);
  fprintf(out,
          "  PLUGIN     the commands of an enabled plugin (`rapport PLUGIN --help`,\n"
          "             for example `rapport loyalty balance 42`)\n"
          "\n"
          "Global options (before or after the command):\n"
          "  --db PATH       database file (default $RAPPORT_DB or ./rapport.db)\n"
          "  --config PATH   settings file (default $RAPPORT_CONFIG, or rapport.json\n"
          "                  beside the database when it exists)\n"
          "  --json          machine-readable output\n"
          "  --quiet         no progress output\n"
          "  -h, --help      help; `rapport COMMAND --help` (or `rapport help COMMAND`)\n"
          "                  for a command\n"
          "  --version       the version of this binary\n"
          "\n"
          "Exit codes: 0 success, 1 usage error, 2 runtime error.\n");
}

/* Finds rapport.json beside the database; returns a malloc'ed path or NULL. */
static char *config_beside(const char *db) {
  const char *slash = strrchr(db, '/');
  size_t dirlen = slash ? (size_t)(slash - db) + 1 : 0;
  char *p = malloc(dirlen + sizeof "rapport.json");
  if (!p) return NULL;
  memcpy(p, db, dirlen);
  memcpy(p + dirlen, "rapport.json", sizeof "rapport.json");
  struct stat st;
  if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) return p;
  free(p);
  return NULL;
}

int main(int argc, char **argv) {
  rp_cli cli = {0};
  cli.db_path = getenv("RAPPORT_DB");
  if (!cli.db_path || !*cli.db_path) cli.db_path = "rapport.db";
  cli.config_path = getenv("RAPPORT_CONFIG");
  if (cli.config_path && !*cli.config_path) cli.config_path = NULL;

  /* Global options may appear anywhere before "--"; they are removed from
   * argv so that each command sees only its own. */
  char **args = calloc((size_t)argc + 1, sizeof *args);
  if (!args) return RP_EXIT_RUNTIME;
  int n = 0, passthrough = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (passthrough || (n >= 2 && strcmp(args[0], "run") == 0)) {
      args[n++] = argv[i];
      continue;
    }
    if (strcmp(a, "--") == 0) {
      passthrough = 1;
      args[n++] = argv[i];
    } else if (strcmp(a, "--db") == 0 || strcmp(a, "--config") == 0) {
      if (i + 1 >= argc) {
        fprintf(stderr, "rapport: %s needs a value\n", a);
        free(args);
        return RP_EXIT_USAGE;
      }
      if (a[2] == 'd') cli.db_path = argv[++i];
      else cli.config_path = argv[++i];
    } else if (strncmp(a, "--db=", 5) == 0) {
      cli.db_path = a + 5;
    } else if (strncmp(a, "--config=", 9) == 0) {
      cli.config_path = a + 9;
    } else if (strcmp(a, "--json") == 0) {
      cli.json = 1;
    } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
      cli.quiet = 1;
    } else {
      args[n++] = argv[i];
    }
  }
  static char help_flag[] = "--help";
  if (n == 2 && strcmp(args[0], "help") == 0) {
    /* `rapport help CMD` is `rapport CMD --help`. */
    args[0] = args[1];
    args[1] = help_flag;
  }
  if (n == 0 || strcmp(args[0], "-h") == 0 || strcmp(args[0], "--help") == 0 ||
      strcmp(args[0], "help") == 0) {
    usage(n == 0 ? stderr : stdout);
    free(args);
    return n == 0 ? RP_EXIT_USAGE : RP_EXIT_OK;
  }
  if (strcmp(args[0], "--version") == 0 || strcmp(args[0], "version") == 0) {
    printf("rapport %s\n", RP_VERSION);
    free(args);
    return RP_EXIT_OK;
  }
  /* Not a command of the core: a command of the plugin of that name. */
  rp_cli_cmd fn = rp_cmd_plugin_command;
  for (const command *c = commands; c->name; c++)
    if (strcmp(c->name, args[0]) == 0) fn = c->fn;

  char *found = NULL;
  if (!cli.config_path) cli.config_path = found = config_beside(cli.db_path);
  rp_err err;
  rp_err_clear(&err);
  int rc;
  if (rp_config_load(cli.config_path, &cli.cfg, &err) != RP_OK) {
    rc = rp_cli_fail(&cli, &err);
  } else {
    rc = fn(&cli, n, args);
  }
  rp_config_free(cli.cfg);
  free(found);
  free(args);
  return rc;
}
