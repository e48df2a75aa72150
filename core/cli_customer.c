/* cli_customer: `rapport customer show`, the unified view of one customer:
 * what the core holds (attributes, identities, consent, recent events) and
 * what each enabled plugin contributes through its profile hook. */
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "cli.h"
#include "host.h"
#include "profile.h"
#include "runtime.h"

static const char help[] =
    "usage: rapport customer show ID|IDENTITY [--events N]\n"
    "\n"
    "Prints the unified view of one customer as JSON: attributes (typed),\n"
    "identities, consent per channel, the N most recent events (default 10),\n"
    "the ids merged into it, and under \"plugins\" what each enabled plugin\n"
    "contributes (its profile hook).\n"
    "\n"
    "A customer is named by its internal id (123), by kind:value\n"
    "(email:ana@example.com, phone:+33612345678, external_id:CUS-1), or by a\n"
    "bare email, phone or external id. An id absorbed by a merge shows the\n"
    "surviving customer.\n";

/* Adds {"plugins": {name: contribution}} from every active plugin with a
 * profile hook. A failing hook shows its error instead of hiding the rest. */
static int add_plugins(rp_host *h, int64_t id, cJSON *view) {
  cJSON *plugins = cJSON_AddObjectToObject(view, "plugins");
  if (!plugins) return RP_ENOMEM;
  for (size_t i = 0; i < rp_host_count(h); i++) {
    rp_plugin *p = rp_host_plugin_at(h, i);
    if (!rp_plugin_active(p)) continue;
    cJSON *out = NULL;
    rp_err err;
    rp_err_clear(&err);
    if (rp_plugin_profile(p, id, &out, &err) != RP_OK) {
      cJSON *e = cJSON_CreateObject();
      cJSON_AddStringToObject(e, "error", err.msg);
      cJSON_AddItemToObject(plugins, rp_plugin_name(p), e);
    } else if (out) {
      cJSON_AddItemToObject(plugins, rp_plugin_name(p), out);
    }
  }
  return RP_OK;
}

int rp_cmd_customer(rp_cli *cli, int argc, char **argv) {
  if (rp_cli_wants_help(argc, argv)) {
    fputs(help, stdout);
    return RP_EXIT_OK;
  }
  if (argc < 2 || strcmp(argv[1], "show") != 0)
    return rp_cli_usage("customer", argc < 2 ? "missing subcommand" : "unknown subcommand '%s'",
                        argc < 2 ? "" : argv[1]);
  const char *ref = NULL;
  int recent = 10;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--events") == 0 && i + 1 < argc) {
      char *end;
      long n = strtol(argv[++i], &end, 10);
      if (*end || n < 0 || n > 1000)
        return rp_cli_usage("customer", "--events takes a number from 0 to 1000");
      recent = (int)n;
    } else if (!ref && argv[i][0] != '-') {
      ref = argv[i];
    } else {
      return rp_cli_usage("customer", "unexpected argument '%s'", argv[i]);
    }
  }
  if (!ref) return rp_cli_usage("customer", "show needs a customer id or identity");
  rp_store *s;
  rp_runtime *rt;
  int code = rp_cli_open_runtime(cli, &s, &rt);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  int64_t id;
  cJSON *view = NULL;
  int rc = rp_profile_lookup(s, cli->cfg, ref, &id, &err);
  if (rc == RP_OK) rc = rp_profile_view(s, id, RP_VIEW_ALL, recent, &view, &err);
  if (rc == RP_OK) rc = add_plugins(rp_runtime_host(rt), id, view);
  if (rc == RP_OK) {
    /* Recorded before the data is shown: no record, no output. */
    char actor[96];
    rp_audit_local_actor("cli", actor, sizeof actor);
    static const char *const fields[] = {"attributes", "identities", "consent", "recent_events",
                                         "plugins"};
    cJSON *f = cJSON_CreateStringArray(fields, 5);
    rc = rp_audit_record(s, actor, "customer.read",
                         (int64_t)cJSON_GetObjectItem(view, "id")->valuedouble, f, "local", &err);
    cJSON_Delete(f);
  }
  if (rc == RP_OK) rp_cli_print_json(view);
  cJSON_Delete(view);
  rp_cli_close_runtime(s, rt);
  return rc ? rp_cli_fail(cli, &err) : RP_EXIT_OK;
}
