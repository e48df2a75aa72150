/* cron: parsing and next-time search. The search walks local wall-clock
 * fields (month, then day, then hour, then minute), jumping over whole units
 * that cannot match, and converts to an instant only when every field
 * matches: a yearly expression costs a handful of steps, not 525,600. */
#include "cron.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_EXPR 256
#define SEARCH_YEARS 8

typedef struct field_def {
  const char *name;
  int lo, hi;
  const char *const *names; /* names[i] stands for lo + i, or NULL */
} field_def;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const weekday_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT",
                                            NULL};

static const field_def fields[5] = {
    {"minute", 0, 59, NULL},
    {"hour", 0, 23, NULL},
    {"day of month", 1, 31, NULL},
    {"month", 1, 12, month_names},
    /* 7 is accepted as Sunday and folded onto 0 below. */
    {"day of week", 0, 7, weekday_names},
};

static int bad(rp_err *err, const char *expr, const char *fmt, const char *a, const char *b) {
  char detail[256];
  snprintf(detail, sizeof detail, fmt, a, b);
  return rp_err_set(err, RP_EINVAL, "schedule", "cron \"%s\": %s", expr, detail);
}

/* One value: a number or (for months and weekdays) a three-letter name. */
static int parse_value(const field_def *f, const char *s, size_t n, int *out) {
  if (n == 0) return -1;
  if (isdigit((unsigned char)s[0])) {
    int v = 0;
    for (size_t i = 0; i < n; i++) {
      if (!isdigit((unsigned char)s[i]) || v > 1000) return -1;
      v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
  }
  if (!f->names || n != 3) return -1;
  for (int i = 0; f->names[i]; i++) {
    if (toupper((unsigned char)s[0]) == f->names[i][0] &&
        toupper((unsigned char)s[1]) == f->names[i][1] &&
        toupper((unsigned char)s[2]) == f->names[i][2]) {
      *out = f->lo + i;
      return 0;
    }
  }
  return -1;
}

/* Parses one field (a comma list) into a bit mask; *star is set when the
 * field starts with `*` (so that `*` and `*`/2 count as unrestricted for the
 * day-of-month / day-of-week rule, as in Vixie cron). */
static int parse_field(const char *expr, const field_def *f, const char *text, uint64_t *mask,
                       int *star, rp_err *err) {
  *mask = 0;
  *star = text[0] == '*';
  const char *p = text;
  for (;;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char item[64];
    if (len == 0) return bad(err, expr, "empty item in the %s field \"%s\"", f->name, text);
    if (len >= sizeof item) return bad(err, expr, "the %s field \"%s\" is too long", f->name, text);
    memcpy(item, p, len);
    item[len] = 0;

    int lo, hi, step = 1;
    char *slash = strchr(item, '/');
    if (slash) {
      *slash = 0;
      const char *s = slash + 1;
      size_t sn = strlen(s);
      if (sn == 0 || sn > 3 || strspn(s, "0123456789") != sn)
        return bad(err, expr, "bad step in the %s field \"%s\"", f->name, text);
      step = atoi(s);
      if (step == 0) return bad(err, expr, "zero step in the %s field \"%s\"", f->name, text);
    }
    if (strcmp(item, "*") == 0) {
      lo = f->lo;
      hi = f->hi == 7 ? 6 : f->hi;
    } else {
      char *dash = strchr(item, '-');
      size_t an = dash ? (size_t)(dash - item) : strlen(item);
      if (parse_value(f, item, an, &lo) != 0)
        return bad(err, expr, "\"%s\" is not a valid %s", item, f->name);
      if (dash) {
        if (parse_value(f, dash + 1, strlen(dash + 1), &hi) != 0)
          return bad(err, expr, "\"%s\" is not a valid %s", dash + 1, f->name);
      } else {
        /* "N/S" means from N to the end of the range, as in Vixie cron. */
        hi = slash ? f->hi : lo;
      }
      if (lo < f->lo || lo > f->hi || hi < f->lo || hi > f->hi) {
        char range[32];
        snprintf(range, sizeof range, "%d-%d", f->lo, f->hi);
        return bad(err, expr, "the %s field is out of range (%s)", f->name, range);
      }
      if (lo > hi) return bad(err, expr, "reversed range \"%s\" in the %s field", item, f->name);
    }
    for (int v = lo; v <= hi; v += step) *mask |= (uint64_t)1 << (f->hi == 7 && v == 7 ? 0 : v);
    if (!end) break;
    p = end + 1;
  }
  return RP_OK;
}

static const int month_days[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

static int is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in(int y, int m) { return m == 2 && !is_leap(y) ? 28 : month_days[m]; }

int rp_cron_parse(const char *expr, rp_cron *out, rp_err *err) {
  static const struct {
    const char *name, *expansion;
  } shorthands[] = {{"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
                    {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
                    {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
                    {"@hourly", "0 * * * *"}};
  if (!expr) return rp_err_set(err, RP_EINVAL, "schedule", "a cron job needs an expression");
  const char *src = expr;
  while (isspace((unsigned char)*src)) src++;
  if (src[0] == '@') {
    size_t n = strcspn(src, " \t\r\n");
    const char *rest = src + n + strspn(src + n, " \t\r\n");
    const char *found = NULL;
    for (size_t i = 0; i < sizeof shorthands / sizeof shorthands[0]; i++)
      if (strlen(shorthands[i].name) == n && strncmp(src, shorthands[i].name, n) == 0)
        found = shorthands[i].expansion;
    if (!found || *rest)
      return rp_err_set(err, RP_EINVAL, "schedule",
                        "cron \"%s\": unknown shorthand (use @yearly, @monthly, @weekly, "
                        "@daily or @hourly)",
                        expr);
    src = found;
  }
  if (strlen(src) >= MAX_EXPR)
    return rp_err_set(err, RP_EINVAL, "schedule", "a cron expression has at most %d characters",
                      MAX_EXPR - 1);

  char buf[MAX_EXPR];
  strcpy(buf, src);
  char *parts[6];
  int n = 0;
  for (char *save = NULL, *t = strtok_r(buf, " \t\r\n", &save); t;
       t = strtok_r(NULL, " \t\r\n", &save)) {
    if (n == 5) {
      n++;
      break;
    }
    parts[n++] = t;
  }
  if (n != 5)
    return rp_err_set(err, RP_EINVAL, "schedule",
                      "cron \"%s\": expected 5 fields (minute hour day-of-month month "
                      "day-of-week), got %s%d",
                      expr, n > 5 ? "more than " : "", n > 5 ? 5 : n);

  uint64_t m[5];
  int star[5];
  for (int i = 0; i < 5; i++) {
    int rc = parse_field(expr, &fields[i], parts[i], &m[i], &star[i], err);
    if (rc) return rc;
  }
  rp_cron c = {.minutes = m[0],
               .hours = (uint32_t)m[1],
               .days = (uint32_t)m[2],
               .months = (uint16_t)m[3],
               .weekdays = (uint8_t)m[4],
               .days_star = star[2],
               .weekdays_star = star[4]};

  /* With day-of-week unrestricted only day-of-month decides; refuse a date
   * that no month offers (30 February), rather than a job that never runs. */
  if (!c.days_star && c.weekdays_star) {
    int possible = 0;
    for (int mo = 1; mo <= 12 && !possible; mo++) {
      if (!(c.months & (1u << mo))) continue;
      for (int d = 1; d <= month_days[mo]; d++)
        if (c.days & (1u << d)) possible = 1;
    }
    if (!possible)
      return rp_err_set(err, RP_EINVAL, "schedule",
                        "cron \"%s\": no month in the expression has that day, so it never fires",
                        expr);
  }
  *out = c;
  return RP_OK;
}

/* ---- time zones -------------------------------------------------------------- */

static int is_utc(const char *tz) {
  return !tz || !tz[0] || strcmp(tz, "UTC") == 0 || strcmp(tz, "Etc/UTC") == 0;
}

int rp_cron_check_tz(const char *tz, rp_err *err) {
  if (is_utc(tz)) return RP_OK;
  if (tz[0] == '/' || strstr(tz, "..") || strlen(tz) > 64)
    return rp_err_set(err, RP_EINVAL, "timezone", "\"%s\" is not a time zone name", tz);
  const char *dir = getenv("TZDIR");
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir && dir[0] ? dir : "/usr/share/zoneinfo", tz);
  struct stat sb;
  if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
    return rp_err_set(err, RP_EINVAL, "timezone",
                      "unknown time zone \"%s\" (expected an IANA name such as Europe/Paris; "
                      "is the tzdata package installed?)",
                      tz);
  return RP_OK;
}

/* TZ is process state: set it for the duration of one computation and put the
 * old value back. The core is single-threaded (the loop thread), so nothing
 * else reads TZ meanwhile. */
typedef struct tz_guard {
  char *saved;
  int had;
} tz_guard;

static int tz_enter(tz_guard *g, const char *tz) {
  const char *old = getenv("TZ");
  g->had = old != NULL;
  g->saved = old ? strdup(old) : NULL;
  if (old && !g->saved) return -1;
  if (setenv("TZ", is_utc(tz) ? "UTC0" : tz, 1) != 0) {
    free(g->saved);
    return -1;
  }
  tzset();
  return 0;
}

static void tz_leave(tz_guard *g) {
  if (g->had)
    setenv("TZ", g->saved, 1);
  else
    unsetenv("TZ");
  tzset();
  free(g->saved);
}

/* ---- search --------------------------------------------------------------- */

typedef struct wall {
  int y, mo, d, h, mi; /* month 1-12 */
} wall;

static int wall_cmp(const wall *a, const wall *b) {
  int x[5] = {a->y, a->mo, a->d, a->h, a->mi}, y[5] = {b->y, b->mo, b->d, b->h, b->mi};
  for (int i = 0; i < 5; i++)
    if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
  return 0;
}

static void wall_of(time_t t, wall *w) {
  struct tm tm;
  localtime_r(&t, &tm);
  *w = (wall){tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min};
}

/* Day of week (0 = Sunday) of a civil date (Sakamoto's method). */
static int weekday_of(int y, int m, int d) {
  static const int t[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
  if (m < 3) y -= 1;
  return (y + y / 4 - y / 100 + y / 400 + t[m - 1] + d) % 7;
}

static int day_matches(const rp_cron *c, const wall *w) {
  int dom = (c->days >> w->d) & 1;
  int dow = (c->weekdays >> weekday_of(w->y, w->mo, w->d)) & 1;
  if (c->days_star || c->weekdays_star) return dom && dow;
  return dom || dow;
}

/* The instant a wall-clock time first occurs; for a time skipped by a
 * daylight-saving change, the first instant after the gap. */
static time_t instant_of(const wall *w) {
  time_t best = (time_t)-1;
  for (int dst = 0; dst <= 1; dst++) {
    struct tm tm = {.tm_year = w->y - 1900, .tm_mon = w->mo - 1, .tm_mday = w->d,
                    .tm_hour = w->h, .tm_min = w->mi, .tm_isdst = dst};
    time_t t = mktime(&tm);
    if (t == (time_t)-1) continue;
    wall back;
    wall_of(t, &back);
    if (wall_cmp(&back, w) == 0 && (best == (time_t)-1 || t < best)) best = t;
  }
  if (best != (time_t)-1) return best;

  /* In a gap: find the first second whose wall time is later than w. Local
   * time only moves forward across a gap, so the search is monotonic. */
  struct tm tm = {.tm_year = w->y - 1900, .tm_mon = w->mo - 1, .tm_mday = w->d,
                  .tm_hour = w->h, .tm_min = w->mi, .tm_isdst = -1};
  time_t mid = mktime(&tm);
  time_t lo = mid - 86400, hi = mid + 86400; /* wall(lo) < w <= wall(hi) */
  while (hi - lo > 1) {
    time_t m = lo + (hi - lo) / 2;
    wall x;
    wall_of(m, &x);
    if (wall_cmp(&x, w) > 0)
      hi = m;
    else
      lo = m;
  }
  return hi;
}

static void next_day(wall *w) {
  w->h = 0;
  w->mi = 0;
  if (++w->d > days_in(w->y, w->mo)) {
    w->d = 1;
    if (++w->mo > 12) {
      w->mo = 1;
      w->y++;
    }
  }
}

int rp_cron_next(const rp_cron *c, const char *tz, int64_t after_ms, int64_t *next_ms,
                 rp_err *err) {
  int rc = rp_cron_check_tz(tz, err);
  if (rc) return rc;
  tz_guard g;
  if (tz_enter(&g, tz) != 0) return rp_err_set(err, RP_ENOMEM, "timezone", "out of memory");

  /* Start at the first whole minute after `after`, in local time. Floor
   * division keeps times before 1970 right. */
  int64_t after_s = after_ms >= 0 ? after_ms / 1000 : -((-after_ms + 999) / 1000);
  time_t start = (time_t)(after_s - (((after_s % 60) + 60) % 60) + 60);
  wall w;
  wall_of(start, &w);
  int last_year = w.y + SEARCH_YEARS;

  rc = RP_ENOTFOUND;
  while (w.y <= last_year) {
    if (!(c->months & (1u << w.mo))) {
      w.d = 1;
      w.h = 0;
      w.mi = 0;
      if (++w.mo > 12) {
        w.mo = 1;
        w.y++;
      }
      continue;
    }
    if (!day_matches(c, &w)) {
      next_day(&w);
      continue;
    }
    if (!(c->hours & (1u << w.h))) {
      w.mi = 0;
      if (++w.h > 23) next_day(&w);
      continue;
    }
    if (!(c->minutes & ((uint64_t)1 << w.mi))) {
      if (++w.mi > 59) {
        w.mi = 0;
        if (++w.h > 23) next_day(&w);
      }
      continue;
    }
    time_t t = instant_of(&w);
    if ((int64_t)t * 1000 > after_ms) {
      *next_ms = (int64_t)t * 1000;
      rc = RP_OK;
      break;
    }
    /* Already past (the second pass of a repeated hour, or a skipped time
     * whose gap end is not later than `after`): try the next minute. */
    if (++w.mi > 59) {
      w.mi = 0;
      if (++w.h > 23) next_day(&w);
    }
  }
  tz_leave(&g);
  if (rc == RP_ENOTFOUND)
    return rp_err_set(err, RP_ENOTFOUND, "schedule",
                      "the cron expression does not fire in the next %d years", SEARCH_YEARS);
  return RP_OK;
}
