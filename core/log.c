/* log: leveled logging to stderr. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"

static int g_level = -1;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

int rp_log_parse_level(const char *name) {
  for (int i = 0; i <= RP_LOG_OFF; i++)
    if (name && strcmp(name, level_names[i]) == 0) return i;
  return -1;
}

rp_log_level rp_log_get_level(void) {
  if (g_level < 0) {
    int l = rp_log_parse_level(getenv("RAPPORT_LOG"));
    g_level = l < 0 ? RP_LOG_INFO : l;
  }
  return (rp_log_level)g_level;
}

void rp_log_set_level(rp_log_level level) { g_level = (int)level; }

static struct {
  int on, exit_hook;
  size_t used;
  char buf[65536];
} held;

void rp_log_flush(void) {
  if (held.used) fwrite(held.buf, 1, held.used, stderr);
  held.used = 0;
}

void rp_log_hold(int on) {
  if (on && !held.exit_hook) held.exit_hook = atexit(rp_log_flush) == 0;
  if (!on) rp_log_flush();
  held.on = on;
}

void rp_log(rp_log_level level, const char *component, const char *fmt, ...) {
  if ((int)level < (int)rp_log_get_level()) return;
  char when[32];
  rp_clock_format_iso(rp_clock_wall_ms(), when, sizeof when);
  char msg[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  char line[4096 + 128];
  int n = snprintf(line, sizeof line, "%s %-5s [%s] %s\n", when, level_names[level], component,
                   msg);
  if (n < 0) return;
  size_t len = (size_t)n;
  if (len >= sizeof line) { /* cut short: still one line */
    len = sizeof line - 1;
    line[len - 1] = '\n';
  }
  if (held.on && level <= RP_LOG_INFO) {
    if (held.used + len > sizeof held.buf) rp_log_flush();
    memcpy(held.buf + held.used, line, len);
    held.used += len;
    return;
  }
  rp_log_flush();
  fwrite(line, 1, len, stderr);
}
