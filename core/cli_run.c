/* cli_run: `rapport run SCRIPT.lua [ARGS]`, operator scripts. */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "operator.h"
#include "runtime.h"

static const char help[] =
    "usage: rapport run SCRIPT.lua [ARGS...]\n"
    "\n"
    "Runs an operator script with the `crm` API and the operator's permissions\n"
    "(every crm function; reads on every table; writes to its own operator_*\n"
    "tables). The arguments are the chunk's `...` and the global `arg` table\n"
    "(arg[0] is the script). What the script returns is printed (tables as JSON).\n"
    "require() loads modules from the script's folder. Events it emits are\n"
    "dispatched by `rapport serve` like every other event.\n";

int rp_cmd_run(rp_cli *cli, int argc, char **argv) {
  if (argc < 2 || (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))) {
    fputs(help, argc < 2 ? stderr : stdout);
    return argc < 2 ? RP_EXIT_USAGE : RP_EXIT_OK;
  }
  const char *script = argv[1];
  FILE *f = fopen(script, "r");
  if (!f) return rp_cli_usage("run", "cannot open '%s'", script);
  fclose(f);
  char root[PATH_MAX];
  snprintf(root, sizeof root, "%s", script);
  char *slash = strrchr(root, '/');
  if (slash) *slash = '\0';
  else snprintf(root, sizeof root, ".");
  rp_store *s;
  rp_runtime *rt;
  int code = rp_cli_open_runtime(cli, &s, &rt);
  if (code) return code;
  rp_plugin *op;
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_host_operator(rp_runtime_host(rt), root, &op, &err);
  if (rc == RP_OK) {
    rc = rp_operator_run_file(op, script, argc - 2, argv + 2, 1, stdout, &err);
    if (rc) {
      const char *tb = rp_sandbox_traceback(rp_plugin_sandbox(op));
      if (tb[0] && !cli->json) fprintf(stderr, "%s\n", tb);
    }
    rp_plugin_free_operator(op);
  }
  rp_cli_close_runtime(s, rt);
  if (rc) return rp_cli_fail(cli, &err);
  return RP_EXIT_OK;
}
