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

void rp_log(rp_log_level level, const char *component, const char *fmt, ...) {
  if ((int)level < (int)rp_log_get_level()) return;
  char when[32];
  rp_clock_format_iso(rp_clock_wall_ms(), when, sizeof when);
  char line[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s %-5s [%s] %s\n", when, level_names[level], component, line);
}
