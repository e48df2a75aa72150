/* clock: the time source of the core, in UTC epoch milliseconds.
 *
 * rp_clock_now_ms() is what every timestamp the core stores comes from. Tests
 * and plugin specs replace it with a fake clock that moves only when told, so
 * schedules and windows can be tested without sleeping. Time zones appear only
 * at the edges (cron evaluation, formatting for people). */
#ifndef RP_CLOCK_H
#define RP_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* Now, from the fake clock when one is set, otherwise the system clock. */
int64_t rp_clock_now_ms(void);
/* The real system clock, whatever the fake clock says (for logs, durations). */
int64_t rp_clock_wall_ms(void);
/* A monotonic clock in nanoseconds, for budgets and durations. */
uint64_t rp_clock_mono_ns(void);

/* Sets the fake clock to ms; rp_clock_now_ms() returns it from then on.
 * RAPPORT_FAKE_NOW (ms or ISO 8601) in the environment sets it at start. */
void rp_clock_set_fake(int64_t ms);
/* Moves the fake clock forward by delta_ms (no effect without a fake clock). */
void rp_clock_advance(int64_t delta_ms);
/* Back to the system clock. */
void rp_clock_clear_fake(void);
int rp_clock_is_fake(void);

/* Writes ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (at least 25 bytes). */
void rp_clock_format_iso(int64_t ms, char *buf, size_t size);

/* Parses an ISO 8601 / RFC 3339 timestamp ("2024-03-01", "2024-03-01T10:00:00Z",
 * "2024-03-01T10:00:00.123+02:00"; a time without offset is UTC) or a plain
 * integer of epoch milliseconds. Returns 0 and sets *ms, or -1 when malformed. */
int rp_clock_parse(const char *text, int64_t *ms);

/* Parses a duration: "500ms", "30s", "15m", "2h", "3d", "1w" or a plain number
 * of milliseconds. Returns 0 and sets *ms (> 0), or -1. */
int rp_clock_parse_duration(const char *text, int64_t *ms);

#endif
