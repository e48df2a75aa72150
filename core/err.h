/* err: the one error shape of the core.
 *
 * Every fallible function returns an int status: RP_OK (0) or a negative
 * RP_E* code, and fills an optional rp_err with a message a person can act on
 * and, where bad input is to blame, the field (or file:line) that was wrong.
 * rp_err is plain storage owned by the caller; nothing in it is heap memory. */
#ifndef RP_ERR_H
#define RP_ERR_H

enum {
  RP_OK = 0,
  RP_EINVAL = -1,    /* bad input: malformed, unknown field, out of range */
  RP_ENOTFOUND = -2, /* the thing named does not exist */
  RP_ECONFLICT = -3, /* exists already, or state forbids it */
  RP_EDB = -4,       /* SQLite failed */
  RP_ENOMEM = -5,
  RP_EIO = -6,       /* file system or network */
  RP_EDENIED = -7,   /* a permission is missing */
  RP_ELIMIT = -8,    /* a memory, instruction or size limit was exceeded */
  RP_EPLUGIN = -9,   /* plugin code raised an error */
  RP_ESCHEMA = -10   /* database schema newer than this binary */
};

typedef struct rp_err {
  int code;
  char field[96];   /* the offending field, or "" */
  char msg[1024];   /* one line, no trailing newline */
} rp_err;

/* Clears e (may be NULL). */
void rp_err_clear(rp_err *e);

/* Records code, field (may be NULL) and a printf-style message into e (may be
 * NULL) and returns code, so that callers can write
 * `return rp_err_set(err, RP_EINVAL, "email", "...")`. */
int rp_err_set(rp_err *e, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefixes the existing message with a printf-style context ("file.csv:12: ")
 * and returns e->code (or RP_EINVAL when e is NULL). */
int rp_err_prefix(rp_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A short stable name for a code ("invalid", "not_found", ...). */
const char *rp_err_name(int code);

#endif
