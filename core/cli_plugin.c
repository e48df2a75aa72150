/* cli_plugin: `rapport plugin list|enable|disable|status|new|test|meta`. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "assets.h"
#include "cli.h"
#include "host.h"
#include "manifest.h"
#include "spec.h"

static const char help[] =
    "usage: rapport plugin list\n"
    "       rapport plugin enable NAME|PATH\n"
    "       rapport plugin disable NAME\n"
    "       rapport plugin status NAME\n"
    "       rapport plugin new NAME [--dir DIR]\n"
    "       rapport plugin test [NAME|PATH...]\n"
    "       rapport plugin meta\n"
    "\n"
    "  list     every plugin the instance knows or can find in its plugin folders,\n"
    "           with its status (enabled, disabled, suspended, broken, available)\n"
    "  enable   validates the plugin, applies its migrations, registers its jobs\n"
    "           and starts its bus cursor; also resumes a suspended plugin. A PATH\n"
    "           installs a plugin from any folder\n"
    "  disable  stops deliveries and pauses its jobs (data and cursor are kept)\n"
    "  status   one plugin in detail: manifest, cursor and lag, failures, jobs\n"
    "  new      scaffolds a working plugin (manifest, code, migration, spec) in\n"
    "           DIR/NAME (default: ./plugins when it exists, else .)\n"
    "  test     runs the specs of the named plugins (default: every plugin with a\n"
    "           spec/ folder in the plugin folders) against scratch databases\n"
    "  meta     prints the LuaLS ---@meta definitions of the crm API\n";

static int open_host(rp_cli *cli, rp_store **s, rp_host **h) {
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, s);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  if (rp_host_new(*s, cli->cfg, h, &err)) {
    rp_store_close(*s);
    return rp_cli_fail(cli, &err);
  }
  return RP_EXIT_OK;
}

static void close_host(rp_store *s, rp_host *h) {
  rp_host_free(h);
  rp_store_close(s);
}

static const char *str_of(const cJSON *o, const char *key) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  return cJSON_IsString(v) ? v->valuestring : "";
}

static int list(rp_cli *cli) {
  rp_store *s;
  rp_host *h;
  int code = open_host(cli, &s, &h);
  if (code) return code;
  cJSON *arr;
  rp_err err;
  rp_err_clear(&err);
  if (rp_host_list(h, &arr, &err)) {
    close_host(s, h);
    return rp_cli_fail(cli, &err);
  }
  if (cli->json) {
    rp_cli_print_json(arr);
  } else {
    printf("%-16s %-9s %-10s %-8s %s\n", "NAME", "VERSION", "STATUS", "LAG", "DESCRIPTION");
    const cJSON *p;
    cJSON_ArrayForEach(p, arr) {
      const cJSON *lag = cJSON_GetObjectItemCaseSensitive(p, "lag");
      char lagbuf[32] = "-";
      if (cJSON_IsNumber(lag)) snprintf(lagbuf, sizeof lagbuf, "%.0f", lag->valuedouble);
      printf("%-16s %-9s %-10s %-8s %s\n", str_of(p, "name"), str_of(p, "version"),
             str_of(p, "status"), lagbuf,
             str_of(p, "manifest_error")[0] ? str_of(p, "manifest_error")
                                            : str_of(p, "description"));
      if (str_of(p, "reason")[0]) printf("%16s reason: %s\n", "", str_of(p, "reason"));
    }
  }
  cJSON_Delete(arr);
  close_host(s, h);
  return RP_EXIT_OK;
}

static int enable(rp_cli *cli, const char *name) {
  rp_store *s;
  rp_host *h;
  int code = open_host(cli, &s, &h);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  if (rp_host_enable(h, name, &err)) {
    close_host(s, h);
    return rp_cli_fail(cli, &err);
  }
  rp_plugin *p = rp_host_plugin_at(h, rp_host_count(h) - 1);
  if (cli->json)
    printf("{\"name\": \"%s\", \"status\": \"enabled\"}\n", rp_plugin_name(p));
  else
    printf("plugin '%s' %s enabled\n", rp_plugin_name(p), rp_plugin_manifest(p)->version);
  close_host(s, h);
  return RP_EXIT_OK;
}

static int disable(rp_cli *cli, const char *name) {
  rp_store *s;
  rp_host *h;
  int code = open_host(cli, &s, &h);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  if (rp_host_disable(h, name, &err)) {
    close_host(s, h);
    return rp_cli_fail(cli, &err);
  }
  if (!cli->json) printf("plugin '%s' disabled\n", name);
  else printf("{\"name\": \"%s\", \"status\": \"disabled\"}\n", name);
  close_host(s, h);
  return RP_EXIT_OK;
}

static int status(rp_cli *cli, const char *name) {
  rp_store *s;
  rp_host *h;
  int code = open_host(cli, &s, &h);
  if (code) return code;
  cJSON *arr;
  rp_err err;
  rp_err_clear(&err);
  if (rp_host_list(h, &arr, &err)) {
    close_host(s, h);
    return rp_cli_fail(cli, &err);
  }
  cJSON *found = NULL, *p;
  cJSON_ArrayForEach(p, arr) if (strcmp(str_of(p, "name"), name) == 0) found = p;
  if (!found) {
    cJSON_Delete(arr);
    close_host(s, h);
    rp_err_set(&err, RP_ENOTFOUND, name, "unknown plugin '%s' (see `rapport plugin list`)", name);
    return rp_cli_fail(cli, &err);
  }
  rp_cli_print_json(found);
  cJSON_Delete(arr);
  close_host(s, h);
  return RP_EXIT_OK;
}

/* ---- new ------------------------------------------------------------------ */

static int write_template(const char *path, const char *asset, const char *name, rp_err *err) {
  const rp_asset *a = rp_asset_find(asset);
  if (!a) return rp_err_set(err, RP_EIO, asset, "template %s missing from this build", asset);
  FILE *f = fopen(path, "wx");
  if (!f) return rp_err_set(err, RP_EIO, path, "%s: %s", path, strerror(errno));
  const char *t = a->text;
  for (;;) {
    const char *mark = strstr(t, "{{name}}");
    if (!mark) {
      fputs(t, f);
      break;
    }
    fwrite(t, 1, (size_t)(mark - t), f);
    fputs(name, f);
    t = mark + 8;
  }
  if (fclose(f) != 0) return rp_err_set(err, RP_EIO, path, "%s: %s", path, strerror(errno));
  return RP_OK;
}

static int scaffold(rp_cli *cli, int argc, char **argv) {
  const char *name = NULL, *dir = NULL;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) dir = argv[++i];
    else if (!name) name = argv[i];
    else return rp_cli_usage("plugin", "unexpected argument '%s'", argv[i]);
  }
  if (!name) return rp_cli_usage("plugin", "new needs a NAME");
  if (!rp_manifest_valid_name(name))
    return rp_cli_usage("plugin", "'%s' is not a plugin name: [a-z][a-z0-9_]{0,31}, not core, "
                        "operator or sqlite*", name);
  struct stat st;
  if (!dir) dir = stat("plugins", &st) == 0 && S_ISDIR(st.st_mode) ? "plugins" : ".";
  char root[PATH_MAX], path[PATH_MAX + 64];
  snprintf(root, sizeof root, "%s/%s", dir, name);
  rp_err err;
  rp_err_clear(&err);
  /* --dir may name a folder that does not exist yet (one level). */
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    rp_err_set(&err, RP_EIO, dir, "%s: %s", dir, strerror(errno));
    return rp_cli_fail(cli, &err);
  }
  if (mkdir(root, 0755) != 0) {
    rp_err_set(&err, RP_EIO, root, "%s: %s", root,
               errno == EEXIST ? "already exists (choose another name or --dir)" : strerror(errno));
    return rp_cli_fail(cli, &err);
  }
  static const char *const subdirs[] = {"migrations", "spec", "types", NULL};
  for (int i = 0; subdirs[i]; i++) {
    snprintf(path, sizeof path, "%s/%s", root, subdirs[i]);
    if (mkdir(path, 0755) != 0) {
      rp_err_set(&err, RP_EIO, path, "%s: %s", path, strerror(errno));
      return rp_cli_fail(cli, &err);
    }
  }
  static const struct {
    const char *file, *asset;
  } files[] = {{"plugin.json", "scaffold_plugin.json"},
               {"init.lua", "scaffold_init.lua"},
               {"migrations/001_init.sql", "scaffold_migration.sql"},
               {"spec/NAME_spec.lua", "scaffold_spec.lua"},
               {".luarc.json", "scaffold_luarc.json"},
               {"types/crm.lua", "crm_meta.lua"},
               {NULL, NULL}};
  for (int i = 0; files[i].file; i++) {
    if (strncmp(files[i].file, "spec/NAME", 9) == 0)
      snprintf(path, sizeof path, "%s/spec/%s_spec.lua", root, name);
    else
      snprintf(path, sizeof path, "%s/%s", root, files[i].file);
    if (write_template(path, files[i].asset, name, &err)) return rp_cli_fail(cli, &err);
  }
  if (cli->json) {
    printf("{\"name\": \"%s\", \"path\": \"%s\"}\n", name, root);
  } else {
    printf("created %s\n"
           "  %s/plugin.json              manifest: permissions, subscriptions, jobs, config\n"
           "  %s/init.lua                 handlers and jobs\n"
           "  %s/migrations/001_init.sql  the plugin's tables (prefixed %s_)\n"
           "  %s/spec/%s_spec.lua         its tests\n"
           "next: rapport plugin test %s   then   rapport plugin enable %s\n",
           root, root, root, root, name, root, name, root, root);
  }
  return RP_EXIT_OK;
}

/* ---- test ----------------------------------------------------------------- */

static int test_one(rp_cli *cli, rp_host *h, const char *ref, int *total_failed) {
  char *dir = NULL;
  rp_err err;
  rp_err_clear(&err);
  if (rp_host_locate(h, ref, &dir, &err)) {
    (*total_failed)++;
    return rp_cli_fail(cli, &err);
  }
  int passed = 0, failed = 0;
  FILE *out = cli->json ? stderr : stdout;
  fprintf(out, "%s\n", ref);
  int rc = rp_spec_run(cli->cfg, dir, out, &passed, &failed, &err);
  free(dir);
  if (rc) {
    (*total_failed)++;
    return rp_cli_fail(cli, &err);
  }
  fprintf(out, "%s: %d passed, %d failed\n", ref, passed, failed);
  if (cli->json) printf("{\"plugin\": \"%s\", \"passed\": %d, \"failed\": %d}\n", ref, passed, failed);
  *total_failed += failed;
  return failed ? RP_EXIT_RUNTIME : RP_EXIT_OK;
}

static int test(rp_cli *cli, int argc, char **argv) {
  /* Specs never touch the instance's database: a scratch one locates
   * plugins by name through the configured folders. */
  rp_store *s;
  rp_err err;
  rp_err_clear(&err);
  if (rp_store_open(":memory:", RP_STORE_CREATE, &s, &err)) return rp_cli_fail(cli, &err);
  rp_host *h;
  if (rp_host_new(s, cli->cfg, &h, &err)) {
    rp_store_close(s);
    return rp_cli_fail(cli, &err);
  }
  int failed = 0, code = RP_EXIT_OK;
  if (argc > 2) {
    for (int i = 2; i < argc; i++)
      if (test_one(cli, h, argv[i], &failed) != RP_EXIT_OK) code = RP_EXIT_RUNTIME;
  } else {
    int any = 0;
    for (size_t k = 0; k < cli->cfg->n_plugin_paths; k++) {
      DIR *d = opendir(cli->cfg->plugin_paths[k]);
      if (!d) continue;
      struct dirent *de;
      while ((de = readdir(d))) {
        char spec[PATH_MAX], dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/%s", cli->cfg->plugin_paths[k], de->d_name);
        snprintf(spec, sizeof spec, "%.*s/spec", (int)(sizeof spec - 6), dir);
        struct stat st;
        if (de->d_name[0] == '.' || stat(spec, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        any = 1;
        if (test_one(cli, h, dir, &failed) != RP_EXIT_OK) code = RP_EXIT_RUNTIME;
      }
      closedir(d);
    }
    if (!any) fprintf(stderr, "rapport plugin test: no plugin with a spec/ folder found\n");
  }
  rp_host_free(h);
  rp_store_close(s);
  return code;
}

int rp_cmd_plugin(rp_cli *cli, int argc, char **argv) {
  if (argc < 2 || rp_cli_wants_help(argc, argv)) {
    fputs(help, argc < 2 ? stderr : stdout);
    return argc < 2 ? RP_EXIT_USAGE : RP_EXIT_OK;
  }
  const char *sub = argv[1];
  if (strcmp(sub, "list") == 0) return list(cli);
  if (strcmp(sub, "new") == 0) return scaffold(cli, argc, argv);
  if (strcmp(sub, "test") == 0) return test(cli, argc, argv);
  if (strcmp(sub, "meta") == 0) {
    const rp_asset *a = rp_asset_find("crm_meta.lua");
    if (a) fwrite(a->text, 1, a->len, stdout);
    return a ? RP_EXIT_OK : RP_EXIT_RUNTIME;
  }
  if (strcmp(sub, "enable") == 0 || strcmp(sub, "disable") == 0 || strcmp(sub, "status") == 0) {
    if (argc != 3) return rp_cli_usage("plugin", "%s needs one plugin name", sub);
    if (sub[0] == 'e') return enable(cli, argv[2]);
    if (sub[0] == 'd') return disable(cli, argv[2]);
    return status(cli, argv[2]);
  }
  return rp_cli_usage("plugin", "unknown subcommand '%s'", sub);
}
