/* cli_plugincmd: `rapport PLUGIN COMMAND [ARGS] [--NAME VALUE]`, the commands
 * an enabled plugin declares in its manifest ("commands"). The command runs
 * in the plugin's sandbox, with its permissions and budget, in one
 * transaction; its audit records name the local user. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "audit.h"
#include "cli.h"
#include "host.h"
#include "runtime.h"

static void list_commands(FILE *out, const rp_manifest *m) {
  fprintf(out, "usage: rapport %s COMMAND [ARGS] [--NAME VALUE ...]\n\n", m->name);
  if (m->description) fprintf(out, "%s\n\n", m->description);
  fprintf(out, "Commands of plugin '%s' %s:\n", m->name, m->version);
  for (size_t i = 0; i < m->n_commands; i++) {
    const rp_manifest_command *c = &m->commands[i];
    char head[96];
    snprintf(head, sizeof head, "%s%s%s", c->name, c->usage ? " " : "", c->usage ? c->usage : "");
    fprintf(out, "  %-34s %s\n", head, c->description ? c->description : "");
  }
  fprintf(out,
          "\n--NAME VALUE pairs are the command's options (--NAME alone is true;\n"
          "--NAME @FILE passes the file's content, @@ a literal @); with --json the\n"
          "result is printed as JSON.\n");
}

/* An option's value: "@PATH" is the content of the file at PATH (a Lua
 * rule, a template: up to 1 MiB), "@@..." the literal "@...". NULL with
 * *problem set when the file cannot be read. Owned by the caller. */
static char *option_value(const char *v, char *problem, size_t size) {
  if (v[0] != '@' || v[1] == '@') return strdup(v[0] == '@' ? v + 1 : v);
  FILE *f = fopen(v + 1, "rb");
  if (!f) {
    snprintf(problem, size, "cannot read '%s': %s", v + 1, strerror(errno));
    return NULL;
  }
  char *buf = malloc((1u << 20) + 1);
  size_t n = buf ? fread(buf, 1, 1u << 20, f) : 0;
  int too_big = buf && n == 1u << 20 && fgetc(f) != EOF;
  int failed = ferror(f);
  fclose(f);
  if (!buf || too_big || failed) {
    free(buf);
    if (failed) snprintf(problem, size, "cannot read '%s'", v + 1);
    else snprintf(problem, size, "'%s' is larger than 1 MiB", v + 1);
    return NULL;
  }
  if (memchr(buf, '\0', n)) {
    free(buf);
    snprintf(problem, size, "'%s' is not text (it holds a NUL byte)", v + 1);
    return NULL;
  }
  buf[n] = '\0';
  return buf;
}

/* {args = [...], options = {...}} from argv after the command name; "--"
 * ends the options. NULL with *problem set when an @file cannot be read. */
static cJSON *command_input(int argc, char **argv, char *problem, size_t size) {
  cJSON *in = cJSON_CreateObject();
  cJSON *args = cJSON_AddArrayToObject(in, "args");
  cJSON *opts = cJSON_AddObjectToObject(in, "options");
  int only_args = 0;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (!only_args && strcmp(a, "--") == 0) {
      only_args = 1;
    } else if (!only_args && strncmp(a, "--", 2) == 0 && a[2]) {
      const char *name = a + 2;
      const char *eq = strchr(name, '=');
      char key[64];
      size_t kl = eq ? (size_t)(eq - name) : strlen(name);
      if (kl >= sizeof key) {
        snprintf(problem, size, "option --%.20s...: names are at most 63 characters", name);
        cJSON_Delete(in);
        return NULL;
      }
      memcpy(key, name, kl);
      key[kl] = '\0';
      cJSON_DeleteItemFromObjectCaseSensitive(opts, key);
      const char *raw = eq ? eq + 1
                           : i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0 ? argv[++i]
                                                                                 : NULL;
      if (!raw) {
        cJSON_AddTrueToObject(opts, key);
        continue;
      }
      char *value = option_value(raw, problem, size);
      if (!value) {
        cJSON_Delete(in);
        return NULL;
      }
      cJSON_AddStringToObject(opts, key, value);
      free(value);
    } else {
      cJSON_AddItemToArray(args, cJSON_CreateString(a));
    }
  }
  return in;
}

int rp_cmd_plugin_command(rp_cli *cli, int argc, char **argv) {
  /* A typo of a core command must not create a database: open, not create. */
  struct stat sb;
  if (stat(cli->db_path, &sb) != 0) {
    fprintf(stderr, "rapport: unknown command '%s' (see `rapport --help`)\n", argv[0]);
    return RP_EXIT_USAGE;
  }
  rp_store *s;
  rp_runtime *rt;
  int code = rp_cli_open_runtime(cli, &s, &rt);
  if (code) return code;
  rp_plugin *p = rp_host_plugin(rp_runtime_host(rt), argv[0]);
  const rp_manifest *m = p ? rp_plugin_manifest(p) : NULL;
  if (!m || !rp_plugin_active(p)) {
    rp_cli_close_runtime(s, rt);
    if (m) {
      fprintf(stderr, "rapport: plugin '%s' is disabled or suspended (`rapport plugin enable %s`)\n",
              argv[0], argv[0]);
      return RP_EXIT_RUNTIME;
    }
    fprintf(stderr, "rapport: unknown command '%s' (see `rapport --help`; plugin commands need "
                    "the plugin enabled)\n", argv[0]);
    return RP_EXIT_USAGE;
  }
  if (argc < 2 || rp_cli_wants_help(argc, argv)) {
    list_commands(argc < 2 ? stderr : stdout, m);
    rp_cli_close_runtime(s, rt);
    return argc < 2 ? RP_EXIT_USAGE : RP_EXIT_OK;
  }
  const rp_manifest_command *cmd = NULL;
  for (size_t i = 0; i < m->n_commands && !cmd; i++)
    if (strcmp(m->commands[i].name, argv[1]) == 0) cmd = &m->commands[i];
  if (!cmd) {
    fprintf(stderr, "rapport %s: unknown command '%s' (see `rapport %s --help`)\n", argv[0],
            argv[1], argv[0]);
    rp_cli_close_runtime(s, rt);
    return RP_EXIT_USAGE;
  }
  char problem[512];
  cJSON *input = command_input(argc - 2, argv + 2, problem, sizeof problem);
  if (!input) {
    fprintf(stderr, "rapport %s %s: %s\n", argv[0], argv[1], problem);
    rp_cli_close_runtime(s, rt);
    return RP_EXIT_USAGE;
  }
  char user[96];
  rp_audit_local_actor("cli", user, sizeof user);
  rp_plugin_set_caller(p, user, "local");
  rp_err err;
  rp_err_clear(&err);
  cJSON *value = NULL;
  char *text = NULL;
  int rc = rp_store_tx_begin(s, &err);
  if (rc == RP_OK) {
    rc = rp_plugin_command(p, cmd->handler, input, &value, &text, &err);
    if (rc == RP_OK) rc = rp_store_tx_commit(s, &err);
    if (rc) rp_store_tx_rollback(s);
  }
  rp_plugin_set_caller(p, NULL, NULL);
  cJSON_Delete(input);
  if (rc == RP_OK) {
    if (cli->json) {
      if (value) rp_cli_print_json(value);
      else printf("null\n");
    } else if (text) {
      fputs(text, stdout);
      if (text[0] && text[strlen(text) - 1] != '\n') putchar('\n');
    } else if (value) {
      char *pretty = cJSON_Print(value);
      if (pretty) printf("%s\n", pretty);
      cJSON_free(pretty);
    }
  }
  cJSON_Delete(value);
  free(text);
  rp_cli_close_runtime(s, rt);
  return rc ? rp_cli_fail(cli, &err) : RP_EXIT_OK;
}
