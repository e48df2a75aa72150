/* log: leveled, line-oriented logging to stderr.
 *
 * One line per record: time (UTC, ISO 8601 with milliseconds), level, the
 * component ("core", "bus", or "plugin:NAME"), the message. Never logs secrets
 * or PII on its own; callers keep customer data out of messages. */
#ifndef RP_LOG_H
#define RP_LOG_H

typedef enum { RP_LOG_DEBUG, RP_LOG_INFO, RP_LOG_WARN, RP_LOG_ERROR, RP_LOG_OFF } rp_log_level;

/* Records below level are dropped. Default RP_LOG_INFO, or RAPPORT_LOG
 * (debug|info|warn|error|off) when set. */
void rp_log_set_level(rp_log_level level);
rp_log_level rp_log_get_level(void);
/* Parses "debug".."off"; returns -1 when unknown. */
int rp_log_parse_level(const char *name);

void rp_log(rp_log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* While held, debug and info records collect in a 64 KiB buffer instead of
 * costing a write each (the access log of a busy server); the buffer is
 * written when full, by rp_log_flush, at exit, and before any warning or
 * error (so lines keep their order). A crash loses at most the lines held.
 * `rapport serve` holds and flushes once per turn of its loop. */
void rp_log_hold(int on);
void rp_log_flush(void);

#endif
