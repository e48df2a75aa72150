/* cli_jobs: `rapport jobs list|add|remove|run|history`. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "host.h"
#include "clock.h"
#include "runtime.h"
#include "sched.h"

static const char help[] =
    "usage: rapport jobs list [--owner NAME] [--one-shots [-n N]]\n"
    "       rapport jobs add --name NAME (--cron EXPR | --every DURATION | --at TIME)\n"
    "                        (--plugin NAME --job FUNCTION | --script FILE.lua)\n"
    "                        [--payload JSON] [--missed run_once|skip]\n"
    "       rapport jobs remove JOB\n"
    "       rapport jobs run JOB\n"
    "       rapport jobs history [JOB] [-n N]\n"
    "\n"
    "Jobs come from plugin manifests, from plugins (crm.schedule) and from here.\n"
    "JOB is a job id, OWNER/NAME, or a NAME that only one owner uses.\n"
    "  --cron EXPR      5 fields (minute hour day month weekday) with lists, ranges,\n"
    "                   steps and names, evaluated in the configured time zone\n"
    "  --every DURATION a fixed interval: 30s, 15m, 2h, 1d\n"
    "  --at TIME        once, at an ISO 8601 time or epoch milliseconds\n"
    "  --plugin/--job   run FUNCTION of the plugin's jobs table\n"
    "  --script FILE    run an operator script (with the operator's permissions)\n"
    "  --missed POLICY  after downtime: run once (default) or skip missed runs\n"
    "`list` shows recurring jobs (cron, every) and counts pending one-shots;\n"
    "--one-shots lists the N one-shots due soonest instead (default 50).\n"
    "`run` runs a job now (its schedule is unchanged) and waits for the outcome.\n"
    "`history` lists recorded runs: start, end, outcome, error.\n";

static void fmt_time(const sqlite3_stmt *cst, int col, char *buf, size_t size) {
  sqlite3_stmt *st = (sqlite3_stmt *)cst;
  if (sqlite3_column_type(st, col) == SQLITE_NULL) snprintf(buf, size, "-");
  else rp_clock_format_iso(sqlite3_column_int64(st, col), buf, size);
}

static const char *col_text(sqlite3_stmt *st, int col) {
  const char *s = (const char *)sqlite3_column_text(st, col);
  return s ? s : "";
}

/* Resolves JOB to an id. */
static int resolve(rp_store *s, const char *ref, int64_t *id, rp_err *err) {
  char *end;
  long long n = strtoll(ref, &end, 10);
  if (*end == '\0' && n > 0) {
    *id = n;
    return RP_OK;
  }
  char owner[128] = "";
  const char *name = ref, *slash = strchr(ref, '/');
  if (slash) {
    snprintf(owner, sizeof owner, "%.*s", (int)(slash - ref), ref);
    name = slash + 1;
  }
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, "SELECT id FROM jobs WHERE name = ?1 AND (?2 = '' OR owner = ?2)",
                            &st, err);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, owner, -1, SQLITE_STATIC);
  int found = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    *id = sqlite3_column_int64(st, 0);
    found++;
  }
  rp_store_done(st);
  if (found == 0) return rp_err_set(err, RP_ENOTFOUND, "job", "no job '%s'", ref);
  if (found > 1)
    return rp_err_set(err, RP_EINVAL, "job", "'%s' names jobs of several owners: use OWNER/NAME",
                      ref);
  return RP_OK;
}

static int list(rp_cli *cli, int argc, char **argv) {
  const char *owner = NULL;
  int one_shots = 0;
  long limit = 50;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--owner") == 0 && i + 1 < argc) owner = argv[++i];
    else if (strcmp(argv[i], "--one-shots") == 0) one_shots = 1;
    else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      char *end;
      limit = strtol(argv[++i], &end, 10);
      if (*end || limit < 1 || limit > 1000000)
        return rp_cli_usage("jobs", "-n needs a number from 1 to 1000000, not '%s'", argv[i]);
    } else return rp_cli_usage("jobs", "unknown argument '%s'", argv[i]);
  }
  rp_store *s;
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, &s);
  if (code) return code;
  sqlite3_stmt *st;
  rp_err err;
  rp_err_clear(&err);
  if (rp_store_prepare(s,
                       "SELECT id, owner, name, kind, spec, target, next_run_at, last_run_at, "
                       "enabled, missed, origin FROM jobs WHERE (?1 IS NULL OR owner = ?1) "
                       "AND kind <> 'at' ORDER BY owner, name", &st, &err) ||
      (one_shots &&
       rp_store_prepare(s,
                        "SELECT id, owner, name, kind, spec, target, next_run_at, last_run_at, "
                        "enabled, missed, origin FROM jobs WHERE (?1 IS NULL OR owner = ?1) "
                        "AND kind = 'at' ORDER BY next_run_at, id LIMIT ?2", &st, &err))) {
    rp_store_close(s);
    return rp_cli_fail(cli, &err);
  }
  if (owner) sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
  if (one_shots) sqlite3_bind_int64(st, 2, limit);
  cJSON *arr = cJSON_CreateArray();
  if (!cli->json)
    printf("%-5s %-22s %-6s %-16s %-20s %-24s %s\n", "ID", "OWNER/NAME", "KIND", "SPEC", "TARGET",
           "NEXT RUN (UTC)", "STATE");
  while (sqlite3_step(st) == SQLITE_ROW) {
    char next[40], last[40], full[160];
    fmt_time(st, 6, next, sizeof next);
    fmt_time(st, 7, last, sizeof last);
    if (sqlite3_column_type(st, 2) == SQLITE_NULL)
      snprintf(full, sizeof full, "%s/-", col_text(st, 1));
    else
      snprintf(full, sizeof full, "%s/%s", col_text(st, 1), col_text(st, 2));
    if (cli->json) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
      cJSON_AddStringToObject(o, "owner", col_text(st, 1));
      if (sqlite3_column_type(st, 2) == SQLITE_NULL) cJSON_AddNullToObject(o, "name");
      else cJSON_AddStringToObject(o, "name", col_text(st, 2));
      cJSON_AddStringToObject(o, "kind", col_text(st, 3));
      cJSON_AddStringToObject(o, "spec", col_text(st, 4));
      cJSON_AddStringToObject(o, "target", col_text(st, 5));
      if (sqlite3_column_type(st, 6) != SQLITE_NULL)
        cJSON_AddNumberToObject(o, "next_run_at", (double)sqlite3_column_int64(st, 6));
      if (sqlite3_column_type(st, 7) != SQLITE_NULL)
        cJSON_AddNumberToObject(o, "last_run_at", (double)sqlite3_column_int64(st, 7));
      cJSON_AddBoolToObject(o, "enabled", sqlite3_column_int(st, 8));
      cJSON_AddStringToObject(o, "missed", col_text(st, 9));
      cJSON_AddStringToObject(o, "origin", col_text(st, 10));
      cJSON_AddItemToArray(arr, o);
    } else {
      printf("%-5lld %-22s %-6s %-16s %-20s %-24s %s\n", (long long)sqlite3_column_int64(st, 0),
             full, col_text(st, 3), col_text(st, 4), col_text(st, 5), next,
             sqlite3_column_int(st, 8) ? "enabled" : "paused");
    }
  }
  rp_store_done(st);
  /* One-shots can be millions (one per customer in a journey): count them. */
  int64_t oneshots = 0;
  if (rp_store_prepare(s, "SELECT count(*) FROM jobs WHERE kind = 'at' AND (?1 IS NULL OR "
                          "owner = ?1)", &st, &err) == RP_OK) {
    if (owner) sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) oneshots = sqlite3_column_int64(st, 0);
    rp_store_done(st);
  }
  if (cli->json) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddItemToObject(root, "jobs", arr);
    cJSON_AddNumberToObject(root, "pending_one_shots", (double)oneshots);
    rp_cli_print_json(root);
    cJSON_Delete(root);
  } else {
    cJSON_Delete(arr);
    printf("%lld one-shot(s) pending%s\n", (long long)oneshots,
           one_shots || oneshots == 0 ? "" : " (`rapport jobs list --one-shots` lists them)");
  }
  rp_store_close(s);
  return RP_EXIT_OK;
}

static int add(rp_cli *cli, int argc, char **argv) {
  rp_job_spec js = {.origin = "cli"};
  const char *plugin = NULL, *job = NULL, *script = NULL;
  char real[PATH_MAX];
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 >= argc) return rp_cli_usage("jobs", "option '%s' needs a value", a);
    const char *v = argv[++i];
    if (strcmp(a, "--name") == 0) js.name = v;
    else if (strcmp(a, "--cron") == 0) js.kind = "cron", js.spec = v;
    else if (strcmp(a, "--every") == 0) js.kind = "every", js.spec = v;
    else if (strcmp(a, "--at") == 0) js.kind = "at", js.spec = v;
    else if (strcmp(a, "--plugin") == 0) plugin = v;
    else if (strcmp(a, "--job") == 0) job = v;
    else if (strcmp(a, "--script") == 0) script = v;
    else if (strcmp(a, "--payload") == 0) js.payload = v;
    else if (strcmp(a, "--missed") == 0) js.missed = v;
    else return rp_cli_usage("jobs", "unknown option '%s'", a);
  }
  if (!js.kind) return rp_cli_usage("jobs", "add needs --cron, --every or --at");
  if (!js.name && strcmp(js.kind, "at") != 0) return rp_cli_usage("jobs", "add needs --name");
  if (script) {
    if (plugin || job) return rp_cli_usage("jobs", "--script excludes --plugin and --job");
    if (!realpath(script, real)) return rp_cli_usage("jobs", "cannot find script '%s'", script);
    js.owner = "operator";
    js.target = real;
  } else {
    if (!plugin || !job) return rp_cli_usage("jobs", "add needs --plugin and --job, or --script");
    js.owner = plugin;
    js.target = job;
  }
  /* Load the plugins, so that a typo in --plugin or --job fails now and
   * not at 3 a.m. when the job fires. */
  rp_store *s;
  rp_runtime *rt;
  int code = rp_cli_open_runtime(cli, &s, &rt);
  if (code) return code;
  if (plugin) {
    rp_plugin *p = rp_host_plugin(rp_runtime_host(rt), plugin);
    if (!p || !rp_plugin_manifest(p)) {
      rp_cli_close_runtime(s, rt);
      return rp_cli_usage("jobs", "no enabled plugin '%s'", plugin);
    }
    if (!rp_plugin_has_function(p, "jobs", job)) {
      rp_cli_close_runtime(s, rt);
      return rp_cli_usage("jobs", "plugin '%s' has no function jobs.%s in its init.lua", plugin,
                          job);
    }
  }
  rp_err err;
  rp_err_clear(&err);
  int64_t id;
  if (rp_sched_add(s, cli->cfg, &js, &id, &err)) {
    rp_cli_close_runtime(s, rt);
    /* A bad schedule, payload or policy is a usage error, like a bad option. */
    if (err.code == RP_EINVAL) {
      rp_cli_fail(cli, &err);
      return RP_EXIT_USAGE;
    }
    return rp_cli_fail(cli, &err);
  }
  if (cli->json) printf("{\"id\": %lld}\n", (long long)id);
  else printf("job %lld added\n", (long long)id);
  rp_cli_close_runtime(s, rt);
  return RP_EXIT_OK;
}

static int remove_job(rp_cli *cli, int argc, char **argv) {
  if (argc != 3) return rp_cli_usage("jobs", "remove needs one JOB");
  rp_store *s;
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, &s);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  int64_t id;
  int rc = resolve(s, argv[2], &id, &err);
  if (rc == RP_OK) rc = rp_sched_remove(s, NULL, NULL, id, &err);
  rp_store_close(s);
  if (rc) return rp_cli_fail(cli, &err);
  if (!cli->json) printf("job %lld removed\n", (long long)id);
  return RP_EXIT_OK;
}

static int print_runs(rp_cli *cli, rp_store *s, int64_t job_id, int64_t run_id, int limit) {
  sqlite3_stmt *st;
  rp_err err;
  rp_err_clear(&err);
  if (rp_store_prepare(s,
                       "SELECT id, job_id, owner, name, target, scheduled_for, started_at, "
                       "finished_at, outcome, error FROM job_runs WHERE (?1 = 0 OR job_id = ?1) "
                       "AND (?2 = 0 OR id = ?2) ORDER BY id DESC LIMIT ?3", &st, &err))
    return rp_cli_fail(cli, &err);
  sqlite3_bind_int64(st, 1, job_id);
  sqlite3_bind_int64(st, 2, run_id);
  sqlite3_bind_int(st, 3, limit);
  cJSON *arr = cJSON_CreateArray();
  int failed = 0, rows = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    rows++;
    char started[40], finished[40], full[160];
    fmt_time(st, 6, started, sizeof started);
    fmt_time(st, 7, finished, sizeof finished);
    snprintf(full, sizeof full, "%s/%s", col_text(st, 2),
             sqlite3_column_type(st, 3) == SQLITE_NULL ? col_text(st, 4) : col_text(st, 3));
    const char *outcome = col_text(st, 8);
    if (strcmp(outcome, "error") == 0) failed = 1;
    if (cli->json) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "run_id", (double)sqlite3_column_int64(st, 0));
      cJSON_AddNumberToObject(o, "job_id", (double)sqlite3_column_int64(st, 1));
      cJSON_AddStringToObject(o, "job", full);
      cJSON_AddNumberToObject(o, "scheduled_for", (double)sqlite3_column_int64(st, 5));
      cJSON_AddNumberToObject(o, "started_at", (double)sqlite3_column_int64(st, 6));
      if (sqlite3_column_type(st, 7) != SQLITE_NULL)
        cJSON_AddNumberToObject(o, "finished_at", (double)sqlite3_column_int64(st, 7));
      cJSON_AddStringToObject(o, "outcome", outcome);
      if (sqlite3_column_type(st, 9) != SQLITE_NULL)
        cJSON_AddStringToObject(o, "error", col_text(st, 9));
      cJSON_AddItemToArray(arr, o);
    } else {
      printf("run %-6lld %-24s %s -> %s  %s%s%s\n", (long long)sqlite3_column_int64(st, 0), full,
             started, finished, outcome, sqlite3_column_type(st, 9) == SQLITE_NULL ? "" : ": ",
             col_text(st, 9));
    }
  }
  rp_store_done(st);
  if (cli->json) rp_cli_print_json(arr);
  else if (rows == 0) printf("no runs recorded\n");
  cJSON_Delete(arr);
  return run_id && failed ? RP_EXIT_RUNTIME : RP_EXIT_OK;
}

static int run_job(rp_cli *cli, int argc, char **argv) {
  if (argc != 3) return rp_cli_usage("jobs", "run needs one JOB");
  rp_store *s;
  rp_runtime *rt;
  int code = rp_cli_open_runtime(cli, &s, &rt);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  int64_t id, run_id = 0;
  int rc = resolve(s, argv[2], &id, &err);
  if (rc == RP_OK) rc = rp_sched_run_now(rp_runtime_sched(rt), id, 1, &run_id, &err);
  if (rc && !run_id) {
    rp_cli_close_runtime(s, rt);
    return rp_cli_fail(cli, &err);
  }
  code = print_runs(cli, s, id, run_id, 1);
  rp_cli_close_runtime(s, rt);
  return code;
}

static int history(rp_cli *cli, int argc, char **argv) {
  const char *ref = NULL;
  int limit = 20;
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 1000000)
        return rp_cli_usage("jobs", "-n needs a number from 1 to 1000000, not '%s'", argv[i]);
      limit = (int)v;
    } else if (!ref && argv[i][0] != '-') ref = argv[i];
    else return rp_cli_usage("jobs", "unknown argument '%s'", argv[i]);
  }
  rp_store *s;
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, &s);
  if (code) return code;
  int64_t id = 0;
  rp_err err;
  rp_err_clear(&err);
  if (ref && resolve(s, ref, &id, &err)) {
    /* A one-shot is deleted once it ran: its runs stay, listed without JOB. */
    rp_store_close(s);
    return rp_cli_fail(cli, &err);
  }
  code = print_runs(cli, s, id, 0, limit);
  rp_store_close(s);
  return code;
}

int rp_cmd_jobs(rp_cli *cli, int argc, char **argv) {
  if (argc < 2 || rp_cli_wants_help(argc, argv)) {
    fputs(help, argc < 2 ? stderr : stdout);
    return argc < 2 ? RP_EXIT_USAGE : RP_EXIT_OK;
  }
  if (strcmp(argv[1], "list") == 0) return list(cli, argc, argv);
  if (strcmp(argv[1], "add") == 0) return add(cli, argc, argv);
  if (strcmp(argv[1], "remove") == 0) return remove_job(cli, argc, argv);
  if (strcmp(argv[1], "run") == 0) return run_job(cli, argc, argv);
  if (strcmp(argv[1], "history") == 0) return history(cli, argc, argv);
  return rp_cli_usage("jobs", "unknown subcommand '%s'", argv[1]);
}
