/* cli_keys: `rapport keys create|list|revoke` (API keys); the data key's
 * subcommands are in cli_datakey.c. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "clock.h"
#include "keys.h"

static const char help[] =
    "usage: rapport keys create --role ROLE [--name NAME] [--plugin PLUGIN]\n"
    "       rapport keys list\n"
    "       rapport keys revoke ID\n"
    "       rapport keys rotate-data-key [--batch N] [--grace-ms MS]\n"
    "       rapport keys reseal [--batch N]\n"
    "\n"
    "API keys authenticate HTTP requests (Authorization: Bearer rpk_...). The key\n"
    "is printed once, by `create`: only a hash of it is stored. Roles:\n"
    "  admin     everything, plugins, jobs and dead letters included\n"
    "  operator  events, customers with their contact details, changes\n"
    "  analyst   customers without personal identities (aggregates, segments)\n"
    "  support   customers with contact details; attribute and consent changes\n"
    "  partner   only the routes of one plugin (--plugin)\n"
    "`revoke` stops a key at once.\n"
    "\n"
    "The data key seals customers' emails, phones and PII attributes at rest\n"
    "(AES-256-GCM; a blind index for lookups). It lives in DB.key (mode 0600;\n"
    "config \"data_key_file\") or in RAPPORT_DATA_KEY.\n"
    "`rotate-data-key` writes a new key in front of the current one in the key\n"
    "file, waits MS milliseconds (default 2000) for running servers to pick it\n"
    "up, re-seals every value in batches of N rows (default 1000, one\n"
    "transaction each; servers keep working), then removes the old key. An\n"
    "interrupted rotation is finished by running it again.\n"
    "`reseal` brings every value in line with the key ring and the declared\n"
    "PII attributes: values in clear are sealed, values under an older key are\n"
    "re-sealed, values no longer PII are stored in clear (after a rotation by\n"
    "RAPPORT_DATA_KEY=NEW,OLD, or a change of \"pii_attributes\").\n";

static int create(rp_cli *cli, int argc, char **argv) {
  const char *role = NULL, *name = NULL, *plugin = NULL;
  for (int i = 2; i < argc; i++) {
    if (i + 1 >= argc) return rp_cli_usage("keys", "option '%s' needs a value", argv[i]);
    if (strcmp(argv[i], "--role") == 0) role = argv[++i];
    else if (strcmp(argv[i], "--name") == 0) name = argv[++i];
    else if (strcmp(argv[i], "--plugin") == 0) plugin = argv[++i];
    else return rp_cli_usage("keys", "unknown option '%s'", argv[i]);
  }
  if (!role) return rp_cli_usage("keys", "create needs --role");
  if (!rp_role_valid(role))
    return rp_cli_usage("keys", "unknown role '%s' (admin, operator, analyst, support, partner)",
                        role);
  rp_store *s;
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, &s);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  int64_t id;
  char key[RP_KEY_TEXT];
  int rc = rp_keys_create(s, role, name, plugin, &id, key, &err);
  rp_store_close(s);
  if (rc == RP_EINVAL) {
    rp_cli_fail(cli, &err);
    return RP_EXIT_USAGE;
  }
  if (rc) return rp_cli_fail(cli, &err);
  if (cli->json) {
    printf("{\"id\": %" PRId64 ", \"role\": \"%s\", \"key\": \"%s\"}\n", id, role, key);
  } else {
    printf("%s\n", key);
    fprintf(stderr, "key %" PRId64 " (%s) created; it is shown only now: keep it safe\n", id,
            role);
  }
  return RP_EXIT_OK;
}

static int list(rp_cli *cli) {
  rp_store *s;
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, &s);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  cJSON *arr;
  if (rp_keys_list(s, &arr, &err)) {
    rp_store_close(s);
    return rp_cli_fail(cli, &err);
  }
  rp_store_close(s);
  if (cli->json) {
    rp_cli_print_json(arr);
  } else {
    printf("%-5s %-24s %-9s %-26s %s\n", "ID", "NAME", "ROLE", "CREATED (UTC)", "STATE");
    cJSON *k;
    cJSON_ArrayForEach(k, arr) {
      char created[40];
      rp_clock_format_iso((int64_t)cJSON_GetObjectItem(k, "created_at")->valuedouble, created,
                          sizeof created);
      int revoked = !cJSON_IsNull(cJSON_GetObjectItem(k, "revoked_at"));
      printf("%-5.0f %-24s %-9s %-26s %s\n", cJSON_GetObjectItem(k, "id")->valuedouble,
             cJSON_GetObjectItem(k, "name")->valuestring,
             cJSON_GetObjectItem(k, "role")->valuestring, created, revoked ? "revoked" : "active");
    }
  }
  cJSON_Delete(arr);
  return RP_EXIT_OK;
}

static int revoke(rp_cli *cli, int argc, char **argv) {
  if (argc != 3) return rp_cli_usage("keys", "revoke needs one key ID");
  char *end;
  long long id = strtoll(argv[2], &end, 10);
  if (*end || id <= 0) return rp_cli_usage("keys", "'%s' is not a key id", argv[2]);
  rp_store *s;
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, &s);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_keys_revoke(s, id, &err);
  rp_store_close(s);
  if (rc) return rp_cli_fail(cli, &err);
  if (!cli->json) printf("key %lld revoked\n", id);
  else printf("{\"revoked\": %lld}\n", id);
  return RP_EXIT_OK;
}

int rp_cmd_keys(rp_cli *cli, int argc, char **argv) {
  if (argc < 2 || rp_cli_wants_help(argc, argv)) {
    fputs(help, argc < 2 ? stderr : stdout);
    return argc < 2 ? RP_EXIT_USAGE : RP_EXIT_OK;
  }
  if (strcmp(argv[1], "create") == 0) return create(cli, argc, argv);
  if (strcmp(argv[1], "list") == 0 && argc == 2) return list(cli);
  if (strcmp(argv[1], "revoke") == 0) return revoke(cli, argc, argv);
  if (strcmp(argv[1], "rotate-data-key") == 0) return rp_cli_keys_rotate(cli, argc, argv);
  if (strcmp(argv[1], "reseal") == 0) return rp_cli_keys_reseal(cli, argc, argv);
  return rp_cli_usage("keys", "unknown subcommand '%s'", argv[1]);
}
