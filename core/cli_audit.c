/* cli_audit: `rapport audit verify|show`. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cli.h"
#include "clock.h"
#include "profile.h"

static const char help[] =
    "usage: rapport audit verify\n"
    "       rapport audit show [--customer ID|IDENTITY] [-n N]\n"
    "\n"
    "Every read or change of a customer's data (HTTP, CLI, operator scripts,\n"
    "plugins) appends a record: when, who (API key, local user, plugin), what\n"
    "(action, customer, field names; never the data), from where. Records are\n"
    "hash-chained: `verify` walks the chain and names the first record that was\n"
    "edited, inserted or deleted (exit 2), checks the index of records by\n"
    "customer against the log, and prints the head (the newest record's id and\n"
    "hash): keep it elsewhere, since cutting the newest records off leaves a\n"
    "shorter chain that is intact. `show` lists records, newest first\n"
    "(default 50).\n";

static int verify(rp_cli *cli) {
  rp_store *s;
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, &s);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  int64_t n = 0;
  int rc = rp_audit_verify(s, &n, &err);
  /* The head: removing the newest records leaves a valid shorter chain, so
   * the head is worth writing down elsewhere and comparing later. */
  char head[80] = "none";
  sqlite3_stmt *st;
  if (rc == RP_OK &&
      rp_store_prepare(s, "SELECT id, hex(hash) FROM audit_log ORDER BY id DESC LIMIT 1", &st,
                       NULL) == RP_OK) {
    if (sqlite3_step(st) == SQLITE_ROW)
      snprintf(head, sizeof head, "%lld:%s", (long long)sqlite3_column_int64(st, 0),
               (const char *)sqlite3_column_text(st, 1));
    rp_store_done(st);
  }
  rp_store_close(s);
  if (rc) return rp_cli_fail(cli, &err);
  if (cli->json) printf("{\"verified\": %" PRId64 ", \"head\": \"%s\"}\n", n, head);
  else printf("audit log intact: %" PRId64 " record(s) verified; head %s\n", n, head);
  return RP_EXIT_OK;
}

static int show(rp_cli *cli, int argc, char **argv) {
  const char *ref = NULL;
  long limit = 50;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--customer") == 0 && i + 1 < argc) ref = argv[++i];
    else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      char *end;
      limit = strtol(argv[++i], &end, 10);
      if (*end || limit < 1 || limit > 100000)
        return rp_cli_usage("audit", "-n needs a number from 1 to 100000");
    } else return rp_cli_usage("audit", "unknown argument '%s'", argv[i]);
  }
  rp_store *s;
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, &s);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  int64_t id = 0;
  cJSON *list = NULL;
  int rc = ref ? rp_profile_lookup(s, cli->cfg, ref, &id, &err) : RP_OK;
  if (rc == RP_OK) rc = rp_audit_list(s, id, (int)limit, &list, &err);
  rp_store_close(s);
  if (rc) return rp_cli_fail(cli, &err);
  if (cli->json) {
    rp_cli_print_json(list);
  } else {
    cJSON *r;
    cJSON_ArrayForEach(r, list) {
      char at[40];
      rp_clock_format_iso((int64_t)cJSON_GetObjectItem(r, "at")->valuedouble, at, sizeof at);
      cJSON *cid = cJSON_GetObjectItem(r, "customer_id");
      char customer[24] = "-";
      if (cJSON_IsNumber(cid)) snprintf(customer, sizeof customer, "%.0f", cid->valuedouble);
      char *fields = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "fields"));
      printf("#%-6.0f %s  %-16s %-22s customer %-8s %-16s %s\n",
             cJSON_GetObjectItem(r, "id")->valuedouble, at,
             cJSON_GetObjectItem(r, "actor")->valuestring,
             cJSON_GetObjectItem(r, "action")->valuestring, customer,
             cJSON_GetObjectItem(r, "origin")->valuestring, fields ? fields : "");
      free(fields);
    }
    if (!cJSON_GetArraySize(list)) printf("no audit records\n");
  }
  cJSON_Delete(list);
  return RP_EXIT_OK;
}

int rp_cmd_audit(rp_cli *cli, int argc, char **argv) {
  if (argc < 2 || rp_cli_wants_help(argc, argv)) {
    fputs(help, argc < 2 ? stderr : stdout);
    return argc < 2 ? RP_EXIT_USAGE : RP_EXIT_OK;
  }
  if (strcmp(argv[1], "verify") == 0 && argc == 2) return verify(cli);
  if (strcmp(argv[1], "show") == 0) return show(cli, argc, argv);
  return rp_cli_usage("audit", "unknown subcommand '%s'", argv[1]);
}
