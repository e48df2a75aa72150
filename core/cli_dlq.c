/* cli_dlq: `rapport dlq list|retry`, the events plugins failed on. */
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "cli.h"
#include "runtime.h"

static const char help[] =
    "usage: rapport dlq list [--plugin NAME] [--all] [-n N]\n"
    "       rapport dlq retry ID...\n"
    "       rapport dlq retry --plugin NAME\n"
    "\n"
    "A handler that fails (an error, or its memory or instruction limit) has its\n"
    "effects rolled back and the event parked here with the error and the Lua\n"
    "traceback; the bus moves on. `list` shows pending dead letters (--all: also\n"
    "the ones retried successfully). `retry` delivers them again to the plugin,\n"
    "which must be enabled; a dead letter that fails again stays pending with the\n"
    "new error.\n";

static int list(rp_cli *cli, int argc, char **argv) {
  const char *plugin = NULL;
  int all = 0, limit = 100;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--plugin") == 0 && i + 1 < argc) plugin = argv[++i];
    else if (strcmp(argv[i], "--all") == 0) all = 1;
    else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) limit = atoi(argv[++i]);
    else return rp_cli_usage("dlq", "unknown argument '%s'", argv[i]);
  }
  rp_store *s;
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, &s);
  if (code) return code;
  cJSON *arr;
  rp_err err;
  rp_err_clear(&err);
  if (rp_dlq_list(s, plugin, all, limit, &arr, &err)) {
    rp_store_close(s);
    return rp_cli_fail(cli, &err);
  }
  if (cli->json) {
    rp_cli_print_json(arr);
  } else if (!cJSON_GetArraySize(arr)) {
    printf("no dead letters\n");
  } else {
    const cJSON *d;
    cJSON_ArrayForEach(d, arr) {
      const cJSON *type = cJSON_GetObjectItem(d, "event_type");
      printf("#%.0f  %-12s event %.0f (%s) -> %s  [%s, %d attempt(s)]\n    %s\n",
             cJSON_GetObjectItem(d, "id")->valuedouble,
             cJSON_GetObjectItem(d, "plugin")->valuestring,
             cJSON_GetObjectItem(d, "event_id")->valuedouble,
             cJSON_IsString(type) ? type->valuestring : "deleted",
             cJSON_GetObjectItem(d, "handler")->valuestring,
             cJSON_GetObjectItem(d, "status")->valuestring,
             cJSON_GetObjectItem(d, "attempts")->valueint,
             cJSON_GetObjectItem(d, "error")->valuestring);
    }
  }
  cJSON_Delete(arr);
  rp_store_close(s);
  return RP_EXIT_OK;
}

static int retry(rp_cli *cli, int argc, char **argv) {
  const char *plugin = NULL;
  int64_t *ids = calloc((size_t)argc, sizeof *ids);
  int n = 0;
  if (!ids) return RP_EXIT_RUNTIME;
  for (int i = 2; i < argc; i++) {
    char *end;
    if (strcmp(argv[i], "--plugin") == 0 && i + 1 < argc) {
      plugin = argv[++i];
    } else if ((ids[n] = strtoll(argv[i], &end, 10)) > 0 && *end == '\0') {
      n++;
    } else {
      free(ids);
      return rp_cli_usage("dlq", "'%s' is not a dead letter id", argv[i]);
    }
  }
  if (!n && !plugin) {
    free(ids);
    return rp_cli_usage("dlq", "retry needs dead letter ids or --plugin NAME");
  }
  rp_store *s;
  rp_runtime *rt;
  int code = rp_cli_open_runtime(cli, &s, &rt);
  if (code) {
    free(ids);
    return code;
  }
  rp_err err;
  rp_err_clear(&err);
  if (plugin) {
    cJSON *arr;
    if (rp_dlq_list(s, plugin, 0, 1000000, &arr, &err)) {
      free(ids);
      rp_cli_close_runtime(s, rt);
      return rp_cli_fail(cli, &err);
    }
    int64_t *more = realloc(ids, ((size_t)n + (size_t)cJSON_GetArraySize(arr) + 1) * sizeof *ids);
    if (more) {
      ids = more;
      const cJSON *d;
      cJSON_ArrayForEach(d, arr) ids[n++] = (int64_t)cJSON_GetObjectItem(d, "id")->valuedouble;
    }
    cJSON_Delete(arr);
  }
  int ok = 0, failed = 0;
  cJSON *results = cJSON_CreateArray();
  for (int i = n - 1; i >= 0; i--) { /* oldest first */
    rp_err_clear(&err);
    int rc = rp_dlq_retry(rp_runtime_host(rt), ids[i], &err);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "id", (double)ids[i]);
    cJSON_AddBoolToObject(r, "ok", rc == RP_OK);
    if (rc) cJSON_AddStringToObject(r, "error", err.msg);
    cJSON_AddItemToArray(results, r);
    if (rc == RP_OK) ok++;
    else failed++;
    if (!cli->json) {
      if (rc == RP_OK) printf("#%lld retried: ok\n", (long long)ids[i]);
      else printf("#%lld failed again: %s\n", (long long)ids[i], err.msg);
    }
  }
  if (cli->json) rp_cli_print_json(results);
  else printf("%d retried, %d failed\n", ok, failed);
  cJSON_Delete(results);
  free(ids);
  rp_cli_close_runtime(s, rt);
  return failed ? RP_EXIT_RUNTIME : RP_EXIT_OK;
}

int rp_cmd_dlq(rp_cli *cli, int argc, char **argv) {
  if (argc < 2 || rp_cli_wants_help(argc, argv)) {
    fputs(help, argc < 2 ? stderr : stdout);
    return argc < 2 ? RP_EXIT_USAGE : RP_EXIT_OK;
  }
  if (strcmp(argv[1], "list") == 0) return list(cli, argc, argv);
  if (strcmp(argv[1], "retry") == 0) return retry(cli, argc, argv);
  return rp_cli_usage("dlq", "unknown subcommand '%s'", argv[1]);
}
