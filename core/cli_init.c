/* cli_init: `rapport init`, create or upgrade a database. */
#include <dirent.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "host.h"

static const char help[] =
    "usage: rapport init [--enable NAME|PATH]... [--enable-all]\n"
    "\n"
    "Creates the database (or upgrades it: pending core migrations, then the\n"
    "migrations of every enabled plugin, each exactly once, in order). A database\n"
    "whose schema is newer than this binary is refused.\n"
    "  --enable NAME   also enable a plugin (by name from the plugin folders, or a path)\n"
    "  --enable-all    enable every plugin found in the plugin folders\n";

int rp_cmd_init(rp_cli *cli, int argc, char **argv) {
  if (rp_cli_wants_help(argc, argv)) {
    fputs(help, stdout);
    return RP_EXIT_OK;
  }
  int all = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--enable-all") == 0) all = 1;
    else if (strcmp(argv[i], "--enable") == 0 && i + 1 < argc) i++;
    else return rp_cli_usage("init", "unknown argument '%s'", argv[i]);
  }
  rp_store *s;
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, &s);
  if (code) return code;
  rp_host *h = NULL;
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_host_new(s, cli->cfg, &h, &err);
  if (rc == RP_OK) rc = rp_host_load_enabled(h, &err);
  for (int i = 1; rc == RP_OK && i < argc; i++)
    if (strcmp(argv[i], "--enable") == 0) rc = rp_host_enable(h, argv[++i], &err);
  for (size_t k = 0; rc == RP_OK && all && k < cli->cfg->n_plugin_paths; k++) {
    DIR *d = opendir(cli->cfg->plugin_paths[k]);
    struct dirent *de;
    while (rc == RP_OK && d && (de = readdir(d))) {
      char man[PATH_MAX], dir[PATH_MAX];
      snprintf(dir, sizeof dir, "%s/%s", cli->cfg->plugin_paths[k], de->d_name);
      snprintf(man, sizeof man, "%.*s/plugin.json", (int)(sizeof man - 13), dir);
      struct stat st;
      if (de->d_name[0] == '.' || stat(man, &st) != 0) continue;
      rc = rp_host_enable(h, dir, &err);
    }
    if (d) closedir(d);
  }
  int version = 0;
  if (rc == RP_OK) rc = rp_store_schema_version(s, "core", &version, &err);
  if (rc == RP_OK) {
    if (cli->json) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "database", rp_store_path(s));
      cJSON_AddNumberToObject(o, "schema_version", version);
      cJSON *arr = cJSON_AddArrayToObject(o, "plugins");
      for (size_t i = 0; i < rp_host_count(h); i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(rp_plugin_name(rp_host_plugin_at(h, i))));
      rp_cli_print_json(o);
      cJSON_Delete(o);
    } else {
      printf("%s: schema version %d, %zu plugin(s) enabled", rp_store_path(s), version,
             rp_host_count(h));
      for (size_t i = 0; i < rp_host_count(h); i++)
        printf("%s%s", i ? ", " : ": ", rp_plugin_name(rp_host_plugin_at(h, i)));
      printf("\n");
    }
  }
  rp_host_free(h);
  rp_store_close(s);
  return rc ? rp_cli_fail(cli, &err) : RP_EXIT_OK;
}
