/* clock: system, monotonic and fake clocks; ISO 8601 and duration parsing. */
#include "clock.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int g_fake_init;
static int g_fake_on;
static int64_t g_fake_ms;

static void fake_from_env(void) {
  if (g_fake_init) return;
  g_fake_init = 1;
  const char *v = getenv("RAPPORT_FAKE_NOW");
  int64_t ms;
  if (v && *v && rp_clock_parse(v, &ms) == 0) {
    g_fake_on = 1;
    g_fake_ms = ms;
  }
}

int64_t rp_clock_wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rp_clock_now_ms(void) {
  fake_from_env();
  return g_fake_on ? g_fake_ms : rp_clock_wall_ms();
}

uint64_t rp_clock_mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void rp_clock_set_fake(int64_t ms) {
  g_fake_init = 1;
  g_fake_on = 1;
  g_fake_ms = ms;
}

void rp_clock_advance(int64_t delta_ms) {
  fake_from_env();
  if (g_fake_on) g_fake_ms += delta_ms;
}

void rp_clock_clear_fake(void) {
  g_fake_init = 1;
  g_fake_on = 0;
}

int rp_clock_is_fake(void) {
  fake_from_env();
  return g_fake_on;
}

void rp_clock_format_iso(int64_t ms, char *buf, size_t size) {
  time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  int milli = (int)(ms - (int64_t)secs * 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
}

/* Reads exactly n digits at *p into *out; advances *p. */
static int digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (!isdigit((unsigned char)(*p)[i])) return -1;
    v = v * 10 + ((*p)[i] - '0');
  }
  *p += n;
  *out = v;
  return 0;
}

static int days_in_month(int year, int month) {
  static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (month == 2 && ((year % 4 == 0 && year % 100 != 0) || year % 400 == 0)) return 29;
  return dm[month - 1];
}

int rp_clock_parse(const char *text, int64_t *ms) {
  if (!text) return -1;
  while (isspace((unsigned char)*text)) text++;
  size_t len = strlen(text);
  while (len > 0 && isspace((unsigned char)text[len - 1])) len--;
  if (len == 0 || len > 64) return -1;
  char s[65];
  memcpy(s, text, len);
  s[len] = '\0';

  /* Plain integer: epoch milliseconds. */
  int all_digits = 1;
  for (size_t i = (s[0] == '-'); i < len; i++)
    if (!isdigit((unsigned char)s[i])) all_digits = 0;
  if (all_digits && len > (size_t)(s[0] == '-')) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (*end) return -1;
    *ms = v;
    return 0;
  }

  const char *p = s;
  int year, mon, day, hour = 0, min = 0, sec = 0, milli = 0;
  if (digits(&p, 4, &year) || *p++ != '-' || digits(&p, 2, &mon) || *p++ != '-' ||
      digits(&p, 2, &day))
    return -1;
  if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon)) return -1;
  int offset_min = 0;
  if (*p == 'T' || *p == 't' || *p == ' ') {
    p++;
    if (digits(&p, 2, &hour) || *p++ != ':' || digits(&p, 2, &min)) return -1;
    if (*p == ':') {
      p++;
      if (digits(&p, 2, &sec)) return -1;
      if (*p == '.' || *p == ',') {
        p++;
        int n = 0, frac = 0;
        while (isdigit((unsigned char)*p)) {
          if (n < 3) frac = frac * 10 + (*p - '0');
          n++;
          p++;
        }
        if (n == 0) return -1;
        for (; n < 3; n++) frac *= 10;
        milli = frac;
      }
    }
    if (hour > 23 || min > 59 || sec > 60) return -1;
    if (*p == 'Z' || *p == 'z') {
      p++;
    } else if (*p == '+' || *p == '-') {
      int sign = *p == '-' ? -1 : 1, oh, om = 0;
      p++;
      if (digits(&p, 2, &oh)) return -1;
      if (*p == ':') p++;
      if (*p && digits(&p, 2, &om)) return -1;
      if (oh > 23 || om > 59) return -1;
      offset_min = sign * (oh * 60 + om);
    }
  }
  if (*p) return -1;
  struct tm tm = {0};
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  *ms = ((int64_t)t - (int64_t)offset_min * 60) * 1000 + milli;
  return 0;
}

int rp_clock_parse_duration(const char *text, int64_t *ms) {
  if (!text || !*text) return -1;
  char *end;
  long long v = strtoll(text, &end, 10);
  if (end == text || v <= 0) return -1;
  int64_t unit;
  if (*end == '\0' || strcmp(end, "ms") == 0) unit = 1;
  else if (strcmp(end, "s") == 0) unit = 1000;
  else if (strcmp(end, "m") == 0) unit = 60 * 1000;
  else if (strcmp(end, "h") == 0) unit = 3600 * 1000;
  else if (strcmp(end, "d") == 0) unit = 86400 * 1000;
  else if (strcmp(end, "w") == 0) unit = 7 * 86400 * 1000LL;
  else return -1;
  if (v > INT64_MAX / unit) return -1;
  *ms = (int64_t)v * unit;
  return 0;
}
