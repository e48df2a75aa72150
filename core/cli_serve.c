/* cli_serve: `rapport serve`, the long-running instance. */
#include <string.h>

#include "api_http.h"
#include "bus.h"
#include "checkpointer.h"
#include "cli.h"
#include "log.h"
#include "runtime.h"

static const char help[] =
    "usage: rapport serve [--listen ADDRESS:PORT] [--once]\n"
    "\n"
    "Runs the instance: serves the HTTP API, loads the enabled plugins, recovers\n"
    "the scheduler (missed runs follow each job's policy), fires jobs when due and\n"
    "dispatches every new event to the plugins subscribed to it. Stops cleanly on\n"
    "SIGINT or SIGTERM: no new connections, open requests answered, the\n"
    "transaction in hand finished.\n"
    "\n"
    "  --listen A:P  where the HTTP API listens (default 127.0.0.1:8080; port 0\n"
    "                picks a free one; \"off\" serves no HTTP)\n"
    "  --once        fire what is due, dispatch what is pending, then exit (no\n"
    "                HTTP; for tests and for running Rapport from an external\n"
    "                scheduler)\n";

int rp_cmd_serve(rp_cli *cli, int argc, char **argv) {
  if (rp_cli_wants_help(argc, argv)) {
    fputs(help, stdout);
    return RP_EXIT_OK;
  }
  int once = 0;
  const char *listen = "127.0.0.1:8080";
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--once") == 0) once = 1;
    else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) listen = argv[++i];
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
  rp_checkpointer *checkpoints = NULL;
  if (rp_checkpointer_start(rp_runtime_loop(rt), store, 1000, &checkpoints, &err) != RP_OK) {
    rp_cli_close_runtime(store, rt);
    return rp_cli_fail(cli, &err);
  }
  rp_api_http *api = NULL;
  if (!once && strcmp(listen, "off") != 0) {
    if (rp_api_http_start(rt, store, cli->cfg, listen, &api, &err) != RP_OK) {
      rp_checkpointer_stop(checkpoints);
      rp_cli_close_runtime(store, rt);
      return rp_cli_fail(cli, &err);
    }
    rp_log(RP_LOG_INFO, "http", "listening on http://%.*s:%d", (int)(strrchr(listen, ':') - listen),
           listen, rp_api_http_port(api));
  }
  int rc = rp_runtime_run(rt, once, &err);
  /* In this order: a checkpoint under way ends while the runtime closes its
   * handles, as may a request still arriving; the API's view cache watches
   * the store. */
  rp_checkpointer_stop(checkpoints);
  rp_runtime_free(rt);
  rp_api_http_free(api);
  rp_store_close(store);
  if (rc) return rp_cli_fail(cli, &err);
  rp_log(RP_LOG_INFO, "core", "stopped");
  return RP_EXIT_OK;
}
