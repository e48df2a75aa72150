/* cron: five-field cron expressions and their next firing time in a time
 * zone.
 *
 * Syntax (Vixie cron): minute hour day-of-month month day-of-week, each a
 * comma list of `*`, `N`, `N-M`, with an optional `/step`; months JAN-DEC and
 * weekdays SUN-SAT by name; 0 and 7 are both Sunday; the shorthands @yearly,
 * @annually, @monthly, @weekly, @daily, @midnight and @hourly. When both
 * day-of-month and day-of-week are restricted, a day matching either fires
 * (the Vixie rule).
 *
 * Time zones: an expression names local wall-clock times in the zone given
 * (an IANA name such as "Europe/Paris"; NULL, "" or "UTC" mean UTC). Across a
 * daylight-saving change, a local time that does not exist (spring forward)
 * fires at the first instant after the gap, and a local time that happens
 * twice (fall back) fires once, at its first occurrence.
 *
 * Everything here is plain values: no allocation, nothing to free. */
#ifndef RP_CRON_H
#define RP_CRON_H

#include <stdint.h>

#include "err.h"

typedef struct rp_cron {
  uint64_t minutes;  /* bit m set: minute m (0-59) matches */
  uint32_t hours;    /* bit h: hour 0-23 */
  uint32_t days;     /* bit d: day of month 1-31 */
  uint16_t months;   /* bit m: month 1-12 */
  uint8_t weekdays;  /* bit w: weekday 0-6, 0 = Sunday */
  int days_star;     /* day-of-month field was `*` (or a `*` step) */
  int weekdays_star; /* day-of-week field was `*` (or a `*` step) */
} rp_cron;

/* Parses expr into *out. RP_EINVAL with field "schedule" and a message naming
 * the offending part (wrong field count, value out of range, reversed range,
 * zero step, unknown name, a date that never exists such as "0 0 30 2 *"). */
int rp_cron_parse(const char *expr, rp_cron *out, rp_err *err);

/* The first time strictly after after_ms (UTC epoch ms) at which c fires in
 * time zone tz, into *next_ms (a whole minute). RP_EINVAL on an unknown time
 * zone; RP_ENOTFOUND when nothing fires in the next eight years. */
int rp_cron_next(const rp_cron *c, const char *tz, int64_t after_ms, int64_t *next_ms,
                 rp_err *err);

/* RP_OK when tz is NULL, "", "UTC" or a zone in the system's zoneinfo
 * database; otherwise RP_EINVAL with field "timezone". */
int rp_cron_check_tz(const char *tz, rp_err *err);

#endif
