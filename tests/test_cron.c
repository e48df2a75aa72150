/* Cron expressions: parsing, refusals, next times in UTC and across
 * daylight-saving changes. Expected instants were computed independently
 * with Python's zoneinfo (see the comment on each). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "test.h"

static int64_t next_of(const char *expr, const char *tz, int64_t after) {
  rp_cron c;
  rp_err err;
  rp_err_clear(&err);
  if (rp_cron_parse(expr, &c, &err) != RP_OK) {
    fprintf(stderr, "parse %s: %s\n", expr, err.msg);
    abort();
  }
  int64_t next = 0;
  if (rp_cron_next(&c, tz, after, &next, &err) != RP_OK) {
    fprintf(stderr, "next %s: %s\n", expr, err.msg);
    abort();
  }
  return next;
}

static void test_parse_fields(void) {
  rp_cron c;
  rp_err err;
  ASSERT_EQ(rp_cron_parse("*/15 9-17 * JAN-mar mon-FRI", &c, &err), RP_OK);
  ASSERT_EQ(c.minutes, (1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45));
  ASSERT_EQ(c.hours, 0x3fe00); /* 9..17 */
  ASSERT_EQ(c.months, (1 << 1) | (1 << 2) | (1 << 3));
  ASSERT_EQ(c.weekdays, 0x3e); /* Monday..Friday */
  ASSERT(c.days_star);
  ASSERT(!c.weekdays_star);

  ASSERT_EQ(rp_cron_parse("5/20 0 1,15 * 7", &c, &err), RP_OK);
  ASSERT_EQ(c.minutes, (1ull << 5) | (1ull << 25) | (1ull << 45));
  ASSERT_EQ(c.days, (1u << 1) | (1u << 15));
  ASSERT_EQ(c.weekdays, 1); /* 7 is Sunday */

  ASSERT_EQ(rp_cron_parse("0 0 * * 1-7/2", &c, &err), RP_OK);
  ASSERT_EQ(c.weekdays, (1 << 1) | (1 << 3) | (1 << 5) | 1); /* Mon Wed Fri Sun */

  rp_cron d;
  ASSERT_EQ(rp_cron_parse("@daily", &c, &err), RP_OK);
  ASSERT_EQ(rp_cron_parse("0 0 * * *", &d, &err), RP_OK);
  /* Field by field: the struct has padding, whose bytes are unspecified. */
  ASSERT_EQ(c.minutes, d.minutes);
  ASSERT_EQ(c.hours, d.hours);
  ASSERT_EQ(c.days, d.days);
  ASSERT_EQ(c.months, d.months);
  ASSERT_EQ(c.weekdays, d.weekdays);
  ASSERT_EQ(c.days_star, d.days_star);
  ASSERT_EQ(c.weekdays_star, d.weekdays_star);
  ASSERT_EQ(rp_cron_parse("  @hourly ", &c, &err), RP_OK);
  ASSERT_EQ(c.minutes, 1);
  ASSERT_EQ(c.hours, 0xffffff);
}

static void test_parse_refusals(void) {
  static const struct {
    const char *expr, *says;
  } cases[] = {
      {"", "expected 5 fields"},
      {"* * * *", "got 4"},
      {"* * * * * *", "more than 5"},
      {"60 * * * *", "minute field is out of range (0-59)"},
      {"* 24 * * *", "hour field is out of range"},
      {"* * 0 * *", "day of month field is out of range (1-31)"},
      {"* * * 13 *", "month field is out of range (1-12)"},
      {"* * * * 8", "day of week field is out of range (0-7)"},
      {"5-1 * * * *", "reversed range \"5-1\""},
      {"*/0 * * * *", "zero step"},
      {"*/ * * * *", "bad step"},
      {"1,,2 * * * *", "empty item"},
      {"1, * * * *", "empty item"},
      {"a * * * *", "\"a\" is not a valid minute"},
      {"* * * FOO *", "\"FOO\" is not a valid month"},
      {"* * * * MONDAY", "not a valid day of week"},
      {"1-2-3 * * * *", "not a valid minute"},
      {"-1 * * * *", "not a valid minute"},
      {"0 0 30 2 *", "never fires"},
      {"0 0 31 4,6,9,11 *", "never fires"},
      {"@often", "unknown shorthand"},
      {"@daily 5", "unknown shorthand"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rp_cron c;
    rp_err err;
    rp_err_clear(&err);
    int rc = rp_cron_parse(cases[i].expr, &c, &err);
    if (rc != RP_EINVAL) fprintf(stderr, "accepted: \"%s\"\n", cases[i].expr);
    ASSERT_EQ(rc, RP_EINVAL);
    ASSERT_STR_EQ(err.field, "schedule");
    ASSERT_CONTAINS(err.msg, cases[i].says);
  }
  /* 31 February is impossible, but "31 in February or on Mondays" is not. */
  rp_cron c;
  ASSERT_EQ(rp_cron_parse("0 0 31 2 1", &c, NULL), RP_OK);
  ASSERT_EQ(rp_cron_parse("0 0 29 2 *", &c, NULL), RP_OK);
}

static void test_next_in_utc(void) {
  /* 2026-01-15T00:00:30Z -> 00:05Z */
  ASSERT_EQ(next_of("*/5 * * * *", NULL, 1768435230000), 1768435500000);
  /* strictly after: from exactly 00:05Z the next is 00:10Z */
  ASSERT_EQ(next_of("*/5 * * * *", "UTC", 1768435500000), 1768435800000);
  ASSERT_EQ(next_of("*/5 * * * *", "", 1768435679999), 1768435800000);
  /* 2026-01-15 -> 2026-12-31T23:59Z, then the new year at 2027-01-01T00:00Z */
  ASSERT_EQ(next_of("59 23 31 12 *", NULL, 1768435200000), 1798761540000);
  ASSERT_EQ(next_of("@yearly", NULL, 1798761540000), 1798761600000);
  /* Sat 2026-01-03T12:00Z -> Mon 2026-01-05T09:00Z */
  ASSERT_EQ(next_of("0 9 * * 1-5", NULL, 1767441600000), 1767603600000);
  /* before the epoch: 1969-12-31T23:59:30Z -> 1970-01-01T00:00Z */
  ASSERT_EQ(next_of("* * * * *", NULL, -30000), 0);
  /* 29 February: from 2026-03-01 the next is 2028-02-29T00:00Z */
  ASSERT_EQ(next_of("0 0 29 2 *", NULL, 1772323200000), 1835395200000);
}

static void test_day_of_month_or_weekday(void) {
  /* Both restricted: the 13th OR a Friday (Vixie). From 2026-01-01T00:00Z:
   * Fri 2 Jan, Fri 9 Jan, Tue 13 Jan, Fri 16 Jan. */
  int64_t t = 1767225600000;
  const int64_t want[] = {1767312000000, 1767916800000, 1768262400000, 1768521600000};
  for (int i = 0; i < 4; i++) {
    t = next_of("0 0 13 * 5", NULL, t);
    ASSERT_EQ(t, want[i]);
  }
  /* Only one restricted: that one alone decides. */
  ASSERT_EQ(next_of("0 0 13 * *", NULL, 1767225600000), 1768262400000);
  ASSERT_EQ(next_of("0 0 * * 5", NULL, 1767225600000), 1767312000000);
  ASSERT_EQ(next_of("0 0 */1 * 5", NULL, 1767225600000), 1767312000000);
}

static void test_next_in_a_time_zone(void) {
  /* 09:00 in Paris is 08:00Z in winter and 07:00Z in summer. */
  ASSERT_EQ(next_of("0 9 * * *", "Europe/Paris", 1768435200000), 1768464000000);
  ASSERT_EQ(next_of("0 9 * * *", "Europe/Paris", 1784073600000), 1784098800000);
  /* 09:00 in New York on Monday 2026-03-09, the day after the US change. */
  ASSERT_EQ(next_of("0 9 * * 1-5", "America/New_York", 1773000000000), 1773061200000);
}

static void test_spring_forward(void) {
  /* Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not
   * exist. It fires at the first instant after the gap, 01:00Z, and the next
   * day at 02:30 CEST (00:30Z). */
  int64_t t = next_of("30 2 * * *", "Europe/Paris", 1774738800000);
  ASSERT_EQ(t, 1774746000000);
  ASSERT_EQ(next_of("30 2 * * *", "Europe/Paris", t), 1774830600000);
  /* Every 15 minutes across the gap, from 01:50 CET: once at 03:00 CEST
   * (01:00Z) for the four skipped slots, then 03:15 CEST. */
  t = next_of("*/15 * * * *", "Europe/Paris", 1774745400000);
  ASSERT_EQ(t, 1774746000000);
  ASSERT_EQ(next_of("*/15 * * * *", "Europe/Paris", t), 1774746900000);
  /* Lord Howe moves by 30 minutes, 02:00 -> 02:30 on 2026-10-04: 02:15
   * fires at 02:30 local. */
  ASSERT_EQ(next_of("15 2 * * *", "Australia/Lord_Howe", 1790991000000), 1791041400000);
}

static void test_fall_back(void) {
  /* Paris, 2026-10-25: 03:00 CEST falls back to 02:00 CET, so 02:30 happens
   * twice (00:30Z and 01:30Z). It fires once, at the first; the next run is
   * 02:30 CET on the 26th (01:30Z). */
  int64_t t = next_of("30 2 * * *", "Europe/Paris", 1792886400000);
  ASSERT_EQ(t, 1792888200000);
  ASSERT_EQ(next_of("30 2 * * *", "Europe/Paris", t), 1792978200000);
  /* Asked from inside the second pass (00:45Z + 1h = 01:45Z, i.e. 02:45
   * CET), it does not fire again that day either. */
  ASSERT_EQ(next_of("30 2 * * *", "Europe/Paris", 1792892700000), 1792978200000);
}

static void test_time_zone_refusals_and_restore(void) {
  rp_err err;
  ASSERT_EQ(rp_cron_check_tz("Europe/Paris", &err), RP_OK);
  ASSERT_EQ(rp_cron_check_tz(NULL, &err), RP_OK);
  ASSERT_EQ(rp_cron_check_tz("Mars/Olympus_Mons", &err), RP_EINVAL);
  ASSERT_STR_EQ(err.field, "timezone");
  ASSERT_CONTAINS(err.msg, "Mars/Olympus_Mons");
  ASSERT_EQ(rp_cron_check_tz("../../etc/passwd", &err), RP_EINVAL);
  ASSERT_EQ(rp_cron_check_tz("/etc/localtime", &err), RP_EINVAL);

  rp_cron c;
  int64_t next;
  ASSERT_EQ(rp_cron_parse("* * * * *", &c, &err), RP_OK);
  ASSERT_EQ(rp_cron_next(&c, "Nowhere/Atlantis", 0, &next, &err), RP_EINVAL);

  /* The caller's TZ is put back, set or unset. */
  setenv("TZ", "Asia/Tokyo", 1);
  ASSERT_EQ(rp_cron_next(&c, "Europe/Paris", 0, &next, &err), RP_OK);
  ASSERT_STR_EQ(getenv("TZ"), "Asia/Tokyo");
  unsetenv("TZ");
  ASSERT_EQ(rp_cron_next(&c, "Europe/Paris", 0, &next, &err), RP_OK);
  ASSERT(getenv("TZ") == NULL);
}

/* ---- cross-check against a minute-by-minute scan ---------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return (unsigned)(rng_state % n);
}

static void random_field(char *out, size_t cap, int lo, int hi) {
  switch (rnd(5)) {
  case 0: snprintf(out, cap, "*"); break;
  case 1: snprintf(out, cap, "*/%u", 1 + rnd(7)); break;
  case 2: snprintf(out, cap, "%u", lo + rnd((unsigned)(hi - lo + 1))); break;
  case 3: {
    unsigned a = lo + rnd((unsigned)(hi - lo + 1)), b = lo + rnd((unsigned)(hi - lo + 1));
    snprintf(out, cap, "%u-%u", a < b ? a : b, a < b ? b : a);
    break;
  }
  default:
    snprintf(out, cap, "%u,%u", lo + rnd((unsigned)(hi - lo + 1)),
             lo + rnd((unsigned)(hi - lo + 1)));
  }
}

/* Does the expression fire at minute t (UTC)? Written from the cron(5) rules
 * directly, independently of the search. */
static int fires_at(const rp_cron *c, time_t t) {
  struct tm tm;
  gmtime_r(&t, &tm);
  if (!((c->minutes >> tm.tm_min) & 1) || !((c->hours >> tm.tm_hour) & 1) ||
      !((c->months >> (tm.tm_mon + 1)) & 1))
    return 0;
  int dom = (c->days >> tm.tm_mday) & 1, dow = (c->weekdays >> tm.tm_wday) & 1;
  return (c->days_star || c->weekdays_star) ? dom && dow : dom || dow;
}

static void test_matches_a_brute_force_scan(void) {
  const int64_t start = 1767225600000; /* 2026-01-01T00:00Z */
  const int horizon = 45 * 24 * 60;    /* minutes scanned */
  int compared = 0;
  for (int i = 0; i < 150; i++) {
    char f[5][32], expr[200];
    random_field(f[0], sizeof f[0], 0, 59);
    random_field(f[1], sizeof f[1], 0, 23);
    random_field(f[2], sizeof f[2], 1, 28);
    random_field(f[3], sizeof f[3], 1, 12);
    random_field(f[4], sizeof f[4], 0, 6);
    snprintf(expr, sizeof expr, "%s %s %s %s %s", f[0], f[1], f[2], f[3], f[4]);
    rp_cron c;
    rp_err err;
    if (rp_cron_parse(expr, &c, &err) != RP_OK) {
      fprintf(stderr, "%s: %s\n", expr, err.msg);
      abort();
    }
    int64_t expect = -1;
    for (int m = 1; m <= horizon && expect < 0; m++) {
      time_t t = (time_t)(start / 1000) + (time_t)m * 60;
      if (fires_at(&c, t)) expect = (int64_t)t * 1000;
    }
    int64_t got = 0;
    ASSERT_EQ(rp_cron_next(&c, NULL, start, &got, &err), RP_OK);
    if (expect >= 0) {
      if (got != expect) fprintf(stderr, "%s\n", expr);
      ASSERT_EQ(got, expect);
      compared++;
    } else {
      ASSERT(got > start + (int64_t)horizon * 60000);
    }
  }
  ASSERT(compared > 30); /* the generator must mostly produce firing schedules */
}

RP_TEST_LIST{
    RP_TEST(parse_fields),
    RP_TEST(parse_refusals),
    RP_TEST(next_in_utc),
    RP_TEST(day_of_month_or_weekday),
    RP_TEST(next_in_a_time_zone),
    RP_TEST(spring_forward),
    RP_TEST(fall_back),
    RP_TEST(time_zone_refusals_and_restore),
    RP_TEST(matches_a_brute_force_scan),
    RP_TEST_END,
};
