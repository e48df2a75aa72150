/* cli_events: `rapport events tail`, the event log as it grows. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "clock.h"
#include "event.h"
#include "profile.h"

static const char help[] =
    "usage: rapport events tail [-n N] [--follow] [--type PATTERN] [--customer REF]\n"
    "\n"
    "Prints the last N events of the log (default 20), oldest first: id, when\n"
    "it occurred (UTC), type, customer, source and properties. --json prints\n"
    "one JSON object per line. --follow keeps printing new events as they are\n"
    "committed (by `rapport serve`, imports or scripts) until Ctrl-C.\n"
    "--type filters by type, with * as a wildcard (order.*); --customer shows\n"
    "one customer's events (id or identity, as in `rapport customer show`).\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig) {
  (void)sig;
  stop_requested = 1;
}

static void print_event(const rp_cli *cli, sqlite3_stmt *st) {
  cJSON *e = NULL;
  if (rp_event_row_to_json(st, &e) != RP_OK) return;
  if (cli->json) {
    char *text = cJSON_PrintUnformatted(e);
    if (text) puts(text);
    free(text);
  } else {
    char when[32];
    rp_clock_format_iso(sqlite3_column_int64(st, 4), when, sizeof when);
    const char *props = (const char *)sqlite3_column_text(st, 7);
    printf("#%lld  %s  %-24s customer %-8lld %-10s %s\n", (long long)sqlite3_column_int64(st, 0),
           when, (const char *)sqlite3_column_text(st, 3), (long long)sqlite3_column_int64(st, 2),
           (const char *)sqlite3_column_text(st, 6), props ? props : "{}");
  }
  cJSON_Delete(e);
}

/* Prints events with id > *after (at most limit when limit > 0, the newest
 * ones), oldest first, and moves *after to the last printed id. */
static int print_since(rp_cli *cli, rp_store *s, const char *type, int64_t customer, int limit,
                       int64_t *after, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s,
                            "SELECT * FROM (SELECT " RP_EVENT_COLUMNS " FROM events "
                            "WHERE id > ?1 AND (?2 IS NULL OR type GLOB ?2) "
                            "AND (?3 = 0 OR customer_id = ?3) ORDER BY id DESC LIMIT ?4) "
                            "ORDER BY id",
                            &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, *after);
  if (type) sqlite3_bind_text(st, 2, type, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, customer);
  sqlite3_bind_int(st, 4, limit > 0 ? limit : -1);
  int step;
  while ((step = sqlite3_step(st)) == SQLITE_ROW) {
    print_event(cli, st);
    *after = sqlite3_column_int64(st, 0);
  }
  rp_store_done(st);
  fflush(stdout);
  return step == SQLITE_DONE ? RP_OK : rp_store_error(s, "reading events", err);
}

int rp_cmd_events(rp_cli *cli, int argc, char **argv) {
  if (rp_cli_wants_help(argc, argv)) {
    fputs(help, stdout);
    return RP_EXIT_OK;
  }
  if (argc < 2 || strcmp(argv[1], "tail") != 0)
    return rp_cli_usage("events", argc < 2 ? "missing subcommand%s" : "unknown subcommand '%s'",
                        argc < 2 ? "" : argv[1]);
  int limit = 20, follow = 0;
  const char *type = NULL, *ref = NULL;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--follow") == 0 || strcmp(a, "-f") == 0) {
      follow = 1;
    } else if ((strcmp(a, "-n") == 0 || strcmp(a, "--type") == 0 || strcmp(a, "--customer") == 0)) {
      if (i + 1 >= argc) return rp_cli_usage("events", "option '%s' needs a value", a);
      const char *v = argv[++i];
      if (a[1] == 'n') {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 0 || n > 100000)
          return rp_cli_usage("events", "-n takes a number from 0 to 100000");
        limit = (int)n;
      } else if (a[2] == 't') {
        type = v;
      } else {
        ref = v;
      }
    } else {
      return rp_cli_usage("events", "unknown argument '%s'", a);
    }
  }
  rp_store *s;
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, &s);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  int64_t customer = 0, after = 0;
  int rc = ref ? rp_profile_lookup(s, cli->cfg, ref, &customer, &err) : RP_OK;
  if (rc == RP_OK && limit > 0) rc = print_since(cli, s, type, customer, limit, &after, &err);
  if (rc == RP_OK && limit == 0) after = rp_event_last_id(s);
  if (rc == RP_OK && follow) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (after == 0) after = limit > 0 ? 0 : rp_event_last_id(s);
    struct timespec pause = {0, 200 * 1000 * 1000};
    while (rc == RP_OK && !stop_requested) {
      nanosleep(&pause, NULL);
      rc = print_since(cli, s, type, customer, 0, &after, &err);
    }
  }
  rp_store_close(s);
  return rc ? rp_cli_fail(cli, &err) : RP_EXIT_OK;
}
