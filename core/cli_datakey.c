/* cli_datakey: `rapport keys rotate-data-key` and `rapport keys reseal`, the
 * data key's side of `rapport keys`. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "sealing.h"
#include "vault.h"

static void on_progress(void *ctx, const rp_reseal_stats *st) {
  rp_progress_update(ctx, (unsigned long long)st->scanned);
}

/* Parses --batch N and (when grace is not NULL) --grace-ms N. */
static int options(int argc, char **argv, int *batch, long *grace) {
  for (int i = 2; i < argc; i++) {
    int is_batch = strcmp(argv[i], "--batch") == 0;
    int is_grace = grace && strcmp(argv[i], "--grace-ms") == 0;
    if (!is_batch && !is_grace) return rp_cli_usage("keys", "unknown option '%s'", argv[i]);
    if (i + 1 >= argc) return rp_cli_usage("keys", "option '%s' needs a value", argv[i]);
    char *end;
    long v = strtol(argv[++i], &end, 10);
    if (*end || v < (is_batch ? 1 : 0) || v > (is_batch ? 100000 : 600000))
      return rp_cli_usage("keys", "%s: '%s' is out of range", argv[i - 1], argv[i]);
    if (is_batch) *batch = (int)v;
    else *grace = v;
  }
  return RP_EXIT_OK;
}

static int reseal_and_report(rp_cli *cli, rp_store *s, int batch, const char *previous,
                             int resumed) {
  rp_err err;
  rp_err_clear(&err);
  rp_progress p;
  rp_progress_start(&p, cli, "resealing", 0);
  rp_reseal_stats st;
  int rc = rp_sealing_reseal(s, batch, on_progress, &p, &st, &err);
  rp_progress_finish(&p);
  if (rc) return rp_cli_fail(cli, &err);
  char fp[17];
  rp_vault_fingerprint(rp_store_vault(s), fp);
  if (cli->json) {
    printf("{\"key\": \"%s\", ", fp);
    if (previous) printf("\"previous_key\": \"%s\", \"resumed\": %s, ", previous,
                         resumed ? "true" : "false");
    printf("\"scanned\": %" PRId64 ", \"sealed\": %" PRId64 ", \"unsealed\": %" PRId64 "}\n",
           st.scanned, st.sealed, st.unsealed);
  } else {
    if (previous) printf("data key %s replaced by %s%s\n", previous, fp,
                         resumed ? " (an interrupted rotation, finished)" : "");
    printf("%" PRId64 " values looked at, %" PRId64 " sealed under key %s, %" PRId64
           " no longer PII stored in clear\n", st.scanned, st.sealed, fp, st.unsealed);
  }
  return RP_EXIT_OK;
}

int rp_cli_keys_rotate(rp_cli *cli, int argc, char **argv) {
  int batch = 1000;
  long grace = 2000;
  int code = options(argc, argv, &batch, &grace);
  if (code) return code;
  rp_store *s;
  if ((code = rp_cli_open_store(cli, RP_STORE_CREATE, &s))) return code;
  rp_err err;
  rp_err_clear(&err);
  rp_vault *v = rp_store_vault(s);
  if (rp_vault_from_env(v)) {
    rp_store_close(s);
    rp_err_set(&err, RP_EINVAL, "RAPPORT_DATA_KEY",
               "the data keys come from RAPPORT_DATA_KEY: put a new key (`openssl rand -hex "
               "32`) in front of the current one (RAPPORT_DATA_KEY=NEW,OLD) for every process, "
               "run `rapport keys reseal`, then drop OLD");
    return rp_cli_fail(cli, &err);
  }
  /* The key the database records: the current one, or during an interrupted
   * rotation the one being replaced. */
  char previous[17];
  char *recorded = rp_store_setting_get(s, "data_key_fingerprint");
  if (recorded) snprintf(previous, sizeof previous, "%s", recorded);
  else rp_vault_fingerprint(v, previous);
  free(recorded);
  char *path = rp_sealing_key_path(cli->cfg, cli->db_path);
  int rc = path ? RP_OK : rp_err_set(&err, RP_ENOMEM, NULL, "out of memory");
  /* A ring of several keys is a rotation that was interrupted: finish it
   * rather than start another. */
  int resumed = rc == RP_OK && rp_vault_key_count(v) > 1;
  if (rc == RP_OK && !resumed) rc = rp_vault_file_rotate(path, &err);
  if (rc == RP_OK) rc = rp_vault_reload(v, &err);
  if (rc == RP_OK && grace > 0) {
    /* Running servers look at the key file at most once a second: after
     * the grace period, every writer seals under the new key. */
    struct timespec ts = {grace / 1000, (grace % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  if (rc) {
    free(path);
    rp_store_close(s);
    return rp_cli_fail(cli, &err);
  }
  code = reseal_and_report(cli, s, batch, previous, resumed);
  if (code == RP_EXIT_OK && (rc = rp_vault_file_retire(path, &err)) != RP_OK)
    code = rp_cli_fail(cli, &err);
  free(path);
  rp_store_close(s);
  return code;
}

int rp_cli_keys_reseal(rp_cli *cli, int argc, char **argv) {
  int batch = 1000;
  int code = options(argc, argv, &batch, NULL);
  if (code) return code;
  rp_store *s;
  if ((code = rp_cli_open_store(cli, RP_STORE_CREATE, &s))) return code;
  code = reseal_and_report(cli, s, batch, NULL, 0);
  if (code == RP_EXIT_OK && !cli->json && rp_vault_key_count(rp_store_vault(s)) > 1)
    fprintf(stderr, "every value is sealed under the first key: the others can be removed\n");
  rp_store_close(s);
  return code;
}
