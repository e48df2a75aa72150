/* cli: shared helpers of the commands. */
#include "cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "runtime.h"
#include "sealing.h"

int rp_cli_open_store(rp_cli *cli, int flags, rp_store **out) {
  rp_err err;
  rp_err_clear(&err);
  if (rp_store_open(cli->db_path, flags, out, &err) != RP_OK) return rp_cli_fail(cli, &err);
  /* SQLite's default page cache (2 MiB) makes a server re-read hot pages
   * from the file system on every request; the cache fills only as used. */
  char pragma[64];
  snprintf(pragma, sizeof pragma, "PRAGMA cache_size = -%lld",
           (long long)cli->cfg->cache_mib * 1024);
  if (rp_store_exec(*out, pragma, &err) != RP_OK) {
    rp_store_close(*out);
    *out = NULL;
    return rp_cli_fail(cli, &err);
  }
  if (rp_sealing_attach(*out, cli->cfg, cli->db_path, (flags & RP_STORE_READONLY) != 0, &err) !=
      RP_OK) {
    rp_store_close(*out);
    *out = NULL;
    return rp_cli_fail(cli, &err);
  }
  return RP_EXIT_OK;
}

int rp_cli_open_runtime(rp_cli *cli, rp_store **store, struct rp_runtime **rt) {
  *rt = NULL;
  int code = rp_cli_open_store(cli, RP_STORE_CREATE, store);
  if (code) return code;
  rp_err err;
  rp_err_clear(&err);
  if (rp_runtime_new(*store, cli->cfg, rt, &err) != RP_OK) {
    rp_store_close(*store);
    *store = NULL;
    return rp_cli_fail(cli, &err);
  }
  return RP_EXIT_OK;
}

void rp_cli_close_runtime(rp_store *store, struct rp_runtime *rt) {
  rp_runtime_free(rt);
  rp_store_close(store);
}

int rp_cli_fail(const rp_cli *cli, const rp_err *err) {
  if (cli && cli->json) {
    cJSON *root = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(e, "code", rp_err_name(err->code));
    cJSON_AddStringToObject(e, "message", err->msg);
    if (err->field[0]) cJSON_AddStringToObject(e, "field", err->field);
    char *s = cJSON_PrintUnformatted(root);
    fprintf(stderr, "%s\n", s ? s : "{}");
    cJSON_free(s);
    cJSON_Delete(root);
  } else {
    fprintf(stderr, "rapport: %s\n", err->msg[0] ? err->msg : rp_err_name(err->code));
  }
  return RP_EXIT_RUNTIME;
}

int rp_cli_usage(const char *cmd, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "rapport %s: %s (see `rapport %s --help`)\n", cmd, msg, cmd);
  return RP_EXIT_USAGE;
}

int rp_cli_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) break;
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return 1;
  }
  return 0;
}

void rp_cli_print_json(const cJSON *j) {
  char *s = cJSON_Print(j);
  if (s) {
    fputs(s, stdout);
    fputc('\n', stdout);
  }
  cJSON_free(s);
}

void rp_progress_start(rp_progress *p, const rp_cli *cli, const char *label,
                       unsigned long long total) {
  memset(p, 0, sizeof *p);
  p->enabled = (!cli || !cli->quiet) && isatty(STDERR_FILENO);
  p->label = label;
  p->total = total;
  p->start_ns = rp_clock_mono_ns();
  p->last_ns = p->start_ns; /* first drawn after 100 ms, with a rate worth reading */
}

static void progress_draw(rp_progress *p, unsigned long long now) {
  double secs = (double)(now - p->start_ns) / 1e9;
  double rate = secs > 0 ? (double)p->done / secs : 0;
  char rate_text[32] = "";
  /* Over the first half second a rate says more about start-up than speed. */
  if (secs >= 0.5) snprintf(rate_text, sizeof rate_text, "  %.0f/s", rate);
  if (p->total) {
    int width = 30;
    int fill = (int)((double)p->done / (double)p->total * width);
    if (fill > width) fill = width;
    char bar[64];
    memset(bar, '#', (size_t)fill);
    memset(bar + fill, '.', (size_t)(width - fill));
    bar[width] = '\0';
    fprintf(stderr, "\r%s [%s] %3d%% %llu/%llu%s ", p->label, bar,
            (int)(100.0 * (double)p->done / (double)p->total), p->done, p->total, rate_text);
  } else {
    fprintf(stderr, "\r%s %llu%s ", p->label, p->done, rate_text);
  }
  fflush(stderr);
}

void rp_progress_update(rp_progress *p, unsigned long long done) {
  p->done = done;
  if (!p->enabled) return;
  unsigned long long now = rp_clock_mono_ns();
  if (now - p->last_ns < 100000000ULL) return; /* redraw at most 10 times a second */
  p->last_ns = now;
  progress_draw(p, now);
}

void rp_progress_finish(rp_progress *p) {
  if (!p->enabled) return;
  progress_draw(p, rp_clock_mono_ns());
  fputc('\n', stderr);
}
