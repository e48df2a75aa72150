/* cli_plugin: `rapport plugin` (being written). */
#include "cli.h"

int rp_cmd_plugin(rp_cli *cli, int argc, char **argv) {
  (void)cli;
  (void)argc;
  fprintf(stderr, "rapport %s: not available yet\n", argv[0]);
  return RP_EXIT_RUNTIME;
}
