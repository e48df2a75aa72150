/* cli_serve: `rapport serve`, the long-running instance. */
#include <string.h>

#include "bus.h"
#include "cli.h"
#include "log.h"
#include "runtime.h"

static const char help[] =
    "usage: rapport serve [--once]\n"
    "\n"
    "Runs the instance: loads the enabled plugins, recovers the scheduler (missed\n"
    "runs follow each job's policy), fires jobs when due and dispatches every new\n"
    "event to the plugins subscribed to it. Stops cleanly on SIGINT or SIGTERM,\n"
    "after finishing the transaction in hand.\n"
    "\n"
    "  --once   fire what is due, dispatch what is pending, then exit (for tests\n"
    "           and for running Rapport from an external scheduler)\n";

int rp_cmd_serve(rp_cli *cli, int argc, char **argv) {
  if (rp_cli_wants_help(argc, argv)) {
    fputs(help, stdout);
    return RP_EXIT_OK;
  }
  int once = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--once") == 0) once = 1;
    else return rp_cli_usage("serve", "unknown argument '%s'", argv[i]);
  }
  rp_store *store;
  rp_runtime *rt;
  int code = rp_cli_open_runtime(cli, &store, &rt);
  if (code) return code;
  rp_host *h = rp_runtime_host(rt);
  char names[1024] = "";
  for (size_t i = 0; i < rp_host_count(h); i++) {
    size_t len = strlen(names);
    snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "",
             rp_plugin_name(rp_host_plugin_at(h, i)));
  }
  rp_log(RP_LOG_INFO, "core", "serving %s with %zu plugin(s)%s%s%s", rp_store_path(store),
         rp_host_count(h), names[0] ? " (" : "", names, names[0] ? ")" : "");
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_runtime_run(rt, once, &err);
  rp_cli_close_runtime(store, rt);
  if (rc) return rp_cli_fail(cli, &err);
  rp_log(RP_LOG_INFO, "core", "stopped");
  return RP_EXIT_OK;
}
