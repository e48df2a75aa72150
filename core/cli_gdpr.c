/* cli_gdpr: `rapport gdpr export|erase`. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cli.h"
#include "gdpr.h"
#include "profile.h"
#include "runtime.h"

static const char help[] =
    "usage: rapport gdpr export ID|IDENTITY [--out FILE]\n"
    "       rapport gdpr erase ID|IDENTITY --yes\n"
    "\n"
    "Data-subject requests. `export` writes one JSON document with everything\n"
    "Rapport holds on the customer: profile, identities, consent and its\n"
    "history, events, merges, the audit records about them, and what every\n"
    "plugin keeps (its export hook). `erase` removes every personal value from\n"
    "the core tables and from every plugin (its erase hook), keeping anonymous\n"
    "aggregates (event types and times), records the erasure in the audit log,\n"
    "and purges the values from the database file and its WAL. It cannot be\n"
    "undone: it needs --yes. A customer merged into another is the same person:\n"
    "both requests cover every id of theirs.\n";

int rp_cmd_gdpr(rp_cli *cli, int argc, char **argv) {
  if (argc < 2 || rp_cli_wants_help(argc, argv)) {
    fputs(help, argc < 2 ? stderr : stdout);
    return argc < 2 ? RP_EXIT_USAGE : RP_EXIT_OK;
  }
  int is_export = strcmp(argv[1], "export") == 0, is_erase = strcmp(argv[1], "erase") == 0;
  if (!is_export && !is_erase) return rp_cli_usage("gdpr", "unknown subcommand '%s'", argv[1]);
  const char *ref = NULL, *out_path = NULL;
  int yes = 0;
  for (int i = 2; i < argc; i++) {
    if (is_export && strcmp(argv[i], "--out") == 0 && i + 1 < argc) out_path = argv[++i];
    else if (is_erase && strcmp(argv[i], "--yes") == 0) yes = 1;
    else if (!ref && argv[i][0] != '-') ref = argv[i];
    else return rp_cli_usage("gdpr", "unknown argument '%s'", argv[i]);
  }
  if (!ref) return rp_cli_usage("gdpr", "%s needs a customer", argv[1]);
  if (is_erase && !yes)
    return rp_cli_usage("gdpr", "erase cannot be undone: add --yes to erase %s", ref);
  rp_store *s;
  rp_runtime *rt;
  int code = rp_cli_open_runtime(cli, &s, &rt);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  int64_t id = 0;
  int rc = rp_profile_lookup(s, cli->cfg, ref, &id, &err);
  char actor[96];
  rp_audit_local_actor("cli", actor, sizeof actor);
  if (rc == RP_OK && is_export) {
    cJSON *doc = NULL;
    rc = rp_gdpr_export(rp_runtime_host(rt), id, &doc, &err);
    if (rc == RP_OK) {
      cJSON *survivor = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "customer"), "id");
      cJSON *fields = cJSON_CreateArray();
      cJSON_AddItemToArray(fields, cJSON_CreateString("everything"));
      rc = rp_audit_record(s, actor, "customer.export", (int64_t)survivor->valuedouble, fields,
                           "local", &err);
      cJSON_Delete(fields);
    }
    if (rc == RP_OK) {
      char *text = cJSON_Print(doc);
      FILE *f = out_path ? fopen(out_path, "w") : stdout;
      if (!text || !f) {
        rc = rp_err_set(&err, RP_EIO, "out", "cannot write %s", out_path ? out_path : "stdout");
      } else {
        fprintf(f, "%s\n", text);
        if (out_path && fclose(f) != 0) rc = rp_err_set(&err, RP_EIO, "out", "cannot write %s", out_path);
        if (out_path && rc == RP_OK) fprintf(stderr, "exported to %s\n", out_path);
      }
      free(text);
    }
    cJSON_Delete(doc);
  } else if (rc == RP_OK) {
    int64_t erased = 0;
    rc = rp_gdpr_erase(rp_runtime_host(rt), id, actor, "local", &erased, &err);
    if (rc == RP_OK) {
      if (cli->json) printf("{\"erased\": %" PRId64 "}\n", erased);
      else printf("customer %" PRId64 " erased\n", erased);
    }
  }
  rp_cli_close_runtime(s, rt);
  return rc ? rp_cli_fail(cli, &err) : RP_EXIT_OK;
}
