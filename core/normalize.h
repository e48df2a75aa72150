/* normalize: turns identity values, attribute names and money amounts from
 * the outside world into the one canonical form the core stores and matches.
 *
 * It owns the rules (email syntax, E.164 phones with a table of country
 * calling codes, placeholder values, ISO 4217 exponents) and nothing else: it
 * never touches the database and never allocates. Every function writes into
 * caller storage and explains a refusal in rp_err, naming the field. */
#ifndef RP_NORMALIZE_H
#define RP_NORMALIZE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"

enum {
  RP_NORM_MAX_VALUE = 256, /* longest identity value, in bytes, after normalisation */
  RP_NORM_MAX_EMAIL = 254, /* RFC 5321 path limit */
  RP_NORM_MAX_KIND = 32,   /* longest identity kind */
  RP_NORM_MAX_ATTR = 64,   /* longest attribute name */
  RP_NORM_BUF = RP_NORM_MAX_VALUE + 1 /* a big enough output buffer */
};

/* Checks an identity kind: "email", "phone", "external_id", "anonymous_id",
 * or a custom kind of 1..RP_NORM_MAX_KIND characters in [a-z0-9_]. */
int rp_norm_kind(const char *kind, rp_err *err);

/* Trims and lower-cases an email address into out (size >= RP_NORM_BUF) and
 * validates it: one '@', a non-empty local part, a domain with a dot, made of
 * labels of [a-z0-9-] not starting or ending with '-', no spaces, at most
 * RP_NORM_MAX_EMAIL bytes. RP_EINVAL with the reason otherwise. */
int rp_norm_email(const char *in, char *out, size_t size, rp_err *err);

/* Normalises a phone number to E.164 ("+" and 8..15 digits) into out.
 * Accepts spaces, dashes, dots and parentheses between digits, a leading "+"
 * or "00" international prefix, and a national number (trunk prefix 0, or
 * plain digits) when default_country (ISO 3166-1 alpha-2, may be NULL) is
 * known; without one a national number is refused with the reason. */
int rp_norm_phone(const char *in, const char *default_country, char *out, size_t size,
                  rp_err *err);

/* The country calling code of an ISO 3166-1 alpha-2 code (case-insensitive):
 * "FR" -> 33, "US" -> 1. RP_ENOTFOUND for an unknown code. */
int rp_norm_calling_code(const char *alpha2, int *code);

/* True when value (already normalised) is a placeholder that must never
 * match or merge: empty, "null", "none", "unknown", "n/a", "0", "-1",
 * "test@test.com", or one of cfg->placeholders (cfg may be NULL); compared
 * case-insensitively. */
int rp_norm_is_placeholder(const rp_config *cfg, const char *value);

/* Normalises value for kind into out (size >= RP_NORM_BUF): email and phone
 * as above, every other kind trimmed (external_id and custom kinds keep their
 * case: they are the source system's keys). *placeholder (may be NULL) is set
 * to 1 when the value is a placeholder; the call then still returns RP_OK
 * with out holding the text (trimmed; normalised when the placeholder was
 * recognised only after normalisation), and the caller must drop it. A raw
 * placeholder that fails validation ("n/a" as an email) is reported as a
 * placeholder, not as invalid. Uses cfg (may be NULL) for default_country and
 * the configured placeholders. */
int rp_norm_identity(const rp_config *cfg, const char *kind, const char *value, char *out,
                     size_t size, int *placeholder, rp_err *err);

/* Checks an attribute name: [a-z][a-z0-9_]{0,63}. */
int rp_norm_attr_name(const char *name, rp_err *err);

/* Parses yes/no/true/false/1/0/y/n (case-insensitive, trimmed) into *out.
 * RP_EINVAL otherwise. field names the value in the message. */
int rp_norm_bool(const char *text, const char *field, int *out, rp_err *err);

/* The ISO 4217 minor-unit exponent of a currency code (upper-case, three
 * letters): 0 for JPY, KRW, ..., 3 for BHD, KWD, OMR, JOD, TND, IQD, LYD,
 * 2 for every other well-formed code. RP_EINVAL for a malformed code. */
int rp_norm_currency_exponent(const char *currency, int *exponent, rp_err *err);

/* Parses a money amount such as "123.45 EUR", "EUR 123.45", "-5" or
 * "1234.5" into minor units by the currency's exponent ("123.45 EUR" ->
 * 12345). default_currency (may be NULL) applies when text names none; a
 * currency in text must then equal it. More decimals than the exponent
 * allows is refused, never rounded. currency receives the upper-case code. */
int rp_norm_money(const char *text, const char *default_currency, const char *field,
                  int64_t *minor, char currency[4], rp_err *err);

#endif
