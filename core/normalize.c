/* normalize: canonical forms of identities, attribute names and money.
 *
 * Every function here is pure: no database, no allocation. Messages start
 * with the name of the value that was refused ("email: ...", "phone: ...")
 * so that a caller can prefix its own path ("identities.") and hand the
 * result to a person unchanged. */
#include "normalize.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- small helpers --------------------------------------------------------- */

/* True for ASCII white space. */
static int is_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Finds the trimmed span of in: leading and trailing ASCII white space and
 * UTF-8 no-break spaces (U+00A0, common in spreadsheet exports) are skipped.
 * Returns the start and sets *len. */
static const char *trim_span(const char *in, size_t *len) {
  const unsigned char *p = (const unsigned char *)in;
  size_t n = strlen(in);
  for (;;) {
    if (n && is_space(*p)) { p++; n--; }
    else if (n >= 2 && p[0] == 0xC2 && p[1] == 0xA0) { p += 2; n -= 2; }
    else break;
  }
  for (;;) {
    if (n && is_space(p[n - 1])) n--;
    else if (n >= 2 && p[n - 2] == 0xC2 && p[n - 1] == 0xA0) n -= 2;
    else break;
  }
  *len = n;
  return (const char *)p;
}

/* Copies a span into out (NUL-terminated), optionally lower-casing ASCII.
 * Returns -1 when it does not fit. */
static int copy_span(const char *p, size_t n, char *out, size_t size, int lower) {
  if (n + 1 > size) return -1;
  for (size_t i = 0; i < n; i++)
    out[i] = lower ? (char)tolower((unsigned char)p[i]) : p[i];
  out[n] = '\0';
  return 0;
}

/* Writes a printable, shortened quotation of text for messages. */
static void quote_for_msg(const char *text, size_t n, char *buf, size_t size) {
  size_t j = 0;
  for (size_t i = 0; i < n && j + 4 < size; i++) {
    unsigned char c = (unsigned char)text[i];
    buf[j++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    if (i + 1 < n && j + 4 >= size) {
      buf[j++] = '.';
      buf[j++] = '.';
      buf[j++] = '.';
      break;
    }
  }
  buf[j] = '\0';
}

/* ---- kinds ------------------------------------------------------------------ */

int rp_norm_kind(const char *kind, rp_err *err) {
  size_t n = kind ? strlen(kind) : 0;
  int ok = n >= 1 && n <= RP_NORM_MAX_KIND;
  for (size_t i = 0; ok && i < n; i++) {
    char c = kind[i];
    ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  }
  if (ok) return RP_OK;
  char q[48];
  quote_for_msg(kind ? kind : "", n, q, sizeof q);
  return rp_err_set(err, RP_EINVAL, "kind",
                    "identity kind \"%s\" must be 1 to %d characters of a-z, 0-9 and _", q,
                    RP_NORM_MAX_KIND);
}

/* ---- email ------------------------------------------------------------------ */

int rp_norm_email(const char *in, char *out, size_t size, rp_err *err) {
  size_t n;
  const char *p = trim_span(in ? in : "", &n);
  char q[80];
  quote_for_msg(p, n, q, sizeof q);
  if (n == 0) return rp_err_set(err, RP_EINVAL, "email", "email: is empty");
  if (n > RP_NORM_MAX_EMAIL)
    return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" is longer than %d bytes", q,
                      RP_NORM_MAX_EMAIL);
  if (copy_span(p, n, out, size, 1) != 0)
    return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" is too long", q);
  const char *at = strchr(out, '@');
  if (!at) return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" has no '@'", q);
  if (strchr(at + 1, '@'))
    return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" has more than one '@'", q);
  size_t local = (size_t)(at - out);
  if (local == 0) return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" has nothing before '@'", q);
  if (local > 64)
    return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" has a local part longer than 64 bytes", q);
  for (size_t i = 0; i < local; i++) {
    unsigned char c = (unsigned char)out[i];
    if (is_space(c) || c < 0x20 || c == 0x7f)
      return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" contains a space or control character", q);
    if (strchr("<>()[]\\,;:\"", c))
      return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" contains '%c' before '@'", q, c);
  }
  const char *dots = strstr(out, "..");
  if (out[0] == '.' || out[local - 1] == '.' || (dots && dots < at))
    return rp_err_set(err, RP_EINVAL, "email",
                      "email: \"%s\" has a misplaced '.' before '@'", q);
  const char *dom = at + 1;
  if (!*dom) return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" has no domain after '@'", q);
  if (!strchr(dom, '.'))
    return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" has a domain without a dot", q);
  const char *label = dom;
  for (;;) {
    const char *end = strchr(label, '.');
    size_t ln = end ? (size_t)(end - label) : strlen(label);
    if (ln == 0)
      return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" has an empty domain label", q);
    if (ln > 63)
      return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" has a domain label longer than 63", q);
    for (size_t i = 0; i < ln; i++) {
      unsigned char c = (unsigned char)label[i];
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
        if (is_space(c))
          return rp_err_set(err, RP_EINVAL, "email", "email: \"%s\" contains a space", q);
        return rp_err_set(err, RP_EINVAL, "email",
                          "email: \"%s\" has a domain with characters other than a-z, 0-9, '-' and '.'",
                          q);
      }
    }
    if (label[0] == '-' || label[ln - 1] == '-')
      return rp_err_set(err, RP_EINVAL, "email",
                        "email: \"%s\" has a domain label starting or ending with '-'", q);
    if (!end) {
      /* The top-level domain: letters only rules out IP-looking domains. */
      int alpha = ln >= 2;
      for (size_t i = 0; alpha && i < ln; i++) alpha = isalpha((unsigned char)label[i]) || label[i] == '-';
      if (!alpha && !(ln >= 4 && strncmp(label, "xn--", 4) == 0))
        return rp_err_set(err, RP_EINVAL, "email",
                          "email: \"%s\" does not end in a top-level domain", q);
      break;
    }
    label = end + 1;
  }
  return RP_OK;
}

/* ---- phone ------------------------------------------------------------------ */

typedef struct country_code {
  char alpha2[3];
  int code;
} country_code;

/* ISO 3166-1 alpha-2 to ITU-T E.164 country calling code. */
static const country_code countries[] = {
    {"AD", 376}, {"AE", 971}, {"AF", 93},  {"AG", 1},   {"AI", 1},   {"AL", 355}, {"AM", 374},
    {"AO", 244}, {"AR", 54},  {"AS", 1},   {"AT", 43},  {"AU", 61},  {"AW", 297}, {"AX", 358},
    {"AZ", 994}, {"BA", 387}, {"BB", 1},   {"BD", 880}, {"BE", 32},  {"BF", 226}, {"BG", 359},
    {"BH", 973}, {"BI", 257}, {"BJ", 229}, {"BL", 590}, {"BM", 1},   {"BN", 673}, {"BO", 591},
    {"BQ", 599}, {"BR", 55},  {"BS", 1},   {"BT", 975}, {"BW", 267}, {"BY", 375}, {"BZ", 501},
    {"CA", 1},   {"CC", 61},  {"CD", 243}, {"CF", 236}, {"CG", 242}, {"CH", 41},  {"CI", 225},
    {"CK", 682}, {"CL", 56},  {"CM", 237}, {"CN", 86},  {"CO", 57},  {"CR", 506}, {"CU", 53},
    {"CV", 238}, {"CW", 599}, {"CX", 61},  {"CY", 357}, {"CZ", 420}, {"DE", 49},  {"DJ", 253},
    {"DK", 45},  {"DM", 1},   {"DO", 1},   {"DZ", 213}, {"EC", 593}, {"EE", 372}, {"EG", 20},
    {"EH", 212}, {"ER", 291}, {"ES", 34},  {"ET", 251}, {"FI", 358}, {"FJ", 679}, {"FK", 500},
    {"FM", 691}, {"FO", 298}, {"FR", 33},  {"GA", 241}, {"GB", 44},  {"GD", 1},   {"GE", 995},
    {"GF", 594}, {"GG", 44},  {"GH", 233}, {"GI", 350}, {"GL", 299}, {"GM", 220}, {"GN", 224},
    {"GP", 590}, {"GQ", 240}, {"GR", 30},  {"GT", 502}, {"GU", 1},   {"GW", 245}, {"GY", 592},
    {"HK", 852}, {"HN", 504}, {"HR", 385}, {"HT", 509}, {"HU", 36},  {"ID", 62},  {"IE", 353},
    {"IL", 972}, {"IM", 44},  {"IN", 91},  {"IO", 246}, {"IQ", 964}, {"IR", 98},  {"IS", 354},
    {"IT", 39},  {"JE", 44},  {"JM", 1},   {"JO", 962}, {"JP", 81},  {"KE", 254}, {"KG", 996},
    {"KH", 855}, {"KI", 686}, {"KM", 269}, {"KN", 1},   {"KP", 850}, {"KR", 82},  {"KW", 965},
    {"KY", 1},   {"KZ", 7},   {"LA", 856}, {"LB", 961}, {"LC", 1},   {"LI", 423}, {"LK", 94},
    {"LR", 231}, {"LS", 266}, {"LT", 370}, {"LU", 352}, {"LV", 371}, {"LY", 218}, {"MA", 212},
    {"MC", 377}, {"MD", 373}, {"ME", 382}, {"MF", 590}, {"MG", 261}, {"MH", 692}, {"MK", 389},
    {"ML", 223}, {"MM", 95},  {"MN", 976}, {"MO", 853}, {"MP", 1},   {"MQ", 596}, {"MR", 222},
    {"MS", 1},   {"MT", 356}, {"MU", 230}, {"MV", 960}, {"MW", 265}, {"MX", 52},  {"MY", 60},
    {"MZ", 258}, {"NA", 264}, {"NC", 687}, {"NE", 227}, {"NF", 672}, {"NG", 234}, {"NI", 505},
    {"NL", 31},  {"NO", 47},  {"NP", 977}, {"NR", 674}, {"NU", 683}, {"NZ", 64},  {"OM", 968},
    {"PA", 507}, {"PE", 51},  {"PF", 689}, {"PG", 675}, {"PH", 63},  {"PK", 92},  {"PL", 48},
    {"PM", 508}, {"PR", 1},   {"PS", 970}, {"PT", 351}, {"PW", 680}, {"PY", 595}, {"QA", 974},
    {"RE", 262}, {"RO", 40},  {"RS", 381}, {"RU", 7},   {"RW", 250}, {"SA", 966}, {"SB", 677},
    {"SC", 248}, {"SD", 249}, {"SE", 46},  {"SG", 65},  {"SH", 290}, {"SI", 386}, {"SJ", 47},
    {"SK", 421}, {"SL", 232}, {"SM", 378}, {"SN", 221}, {"SO", 252}, {"SR", 597}, {"SS", 211},
    {"ST", 239}, {"SV", 503}, {"SX", 1},   {"SY", 963}, {"SZ", 268}, {"TC", 1},   {"TD", 235},
    {"TG", 228}, {"TH", 66},  {"TJ", 992}, {"TK", 690}, {"TL", 670}, {"TM", 993}, {"TN", 216},
    {"TO", 676}, {"TR", 90},  {"TT", 1},   {"TV", 688}, {"TW", 886}, {"TZ", 255}, {"UA", 380},
    {"UG", 256}, {"US", 1},   {"UY", 598}, {"UZ", 998}, {"VA", 39},  {"VC", 1},   {"VE", 58},
    {"VG", 1},   {"VI", 1},   {"VN", 84},  {"VU", 678}, {"WF", 681}, {"WS", 685}, {"XK", 383},
    {"YE", 967}, {"YT", 262}, {"ZA", 27},  {"ZM", 260}, {"ZW", 263},
};

int rp_norm_calling_code(const char *alpha2, int *code) {
  if (!alpha2 || strlen(alpha2) != 2) return RP_ENOTFOUND;
  char up[3] = {(char)toupper((unsigned char)alpha2[0]), (char)toupper((unsigned char)alpha2[1]),
                '\0'};
  for (size_t i = 0; i < sizeof countries / sizeof countries[0]; i++) {
    if (memcmp(countries[i].alpha2, up, 2) == 0) {
      *code = countries[i].code;
      return RP_OK;
    }
  }
  return RP_ENOTFOUND;
}

int rp_norm_phone(const char *in, const char *default_country, char *out, size_t size,
                  rp_err *err) {
  size_t n;
  const char *p = trim_span(in ? in : "", &n);
  char q[64];
  quote_for_msg(p, n, q, sizeof q);
  if (n == 0) return rp_err_set(err, RP_EINVAL, "phone", "phone: is empty");
  if (n > 64) return rp_err_set(err, RP_EINVAL, "phone", "phone: \"%s\" is too long", q);

  /* Collect the digits; separators may appear only between them. */
  char digits[72];
  size_t nd = 0;
  int plus = 0;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c >= '0' && c <= '9') {
      digits[nd++] = c;
    } else if (c == '+') {
      if (i != 0)
        return rp_err_set(err, RP_EINVAL, "phone", "phone: \"%s\" has a '+' that is not first", q);
      plus = 1;
    } else if (c == '(' && plus && nd > 0 && i + 2 < n && p[i + 1] == '0' && p[i + 2] == ')') {
      /* "+33 (0)6 ..." : the national trunk prefix written in parentheses. */
      i += 2;
    } else if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '/') {
      continue;
    } else {
      return rp_err_set(err, RP_EINVAL, "phone",
                        "phone: \"%s\" holds characters other than digits, '+', spaces, "
                        "'-', '.', '/' and parentheses", q);
    }
  }
  digits[nd] = '\0';
  if (nd == 0) return rp_err_set(err, RP_EINVAL, "phone", "phone: \"%s\" has no digits", q);

  char e164[96];
  if (plus || (nd > 2 && digits[0] == '0' && digits[1] == '0')) {
    const char *d = plus ? digits : digits + 2;
    if (d[0] == '0')
      return rp_err_set(err, RP_EINVAL, "phone",
                        "phone: \"%s\" has a country code starting with 0", q);
    if (strlen(d) > 15 || strlen(d) < 8)
      return rp_err_set(err, RP_EINVAL, "phone",
                        "phone: \"%s\" must have 8 to 15 digits with its country code", q);
    snprintf(e164, sizeof e164, "+%s", d);
  } else {
    if (!default_country || !*default_country)
      return rp_err_set(err, RP_EINVAL, "phone",
                        "phone: \"%s\" is a national number; write it with +country code "
                        "or set default_country", q);
    int cc;
    if (rp_norm_calling_code(default_country, &cc) != RP_OK)
      return rp_err_set(err, RP_EINVAL, "default_country",
                        "default_country \"%s\" is not a known ISO 3166 country code",
                        default_country);
    const char *d = digits;
    size_t dn = nd;
    if (cc == 1) {
      /* North American numbering plan: 10 digits, an optional trunk "1". */
      if (dn == 11 && d[0] == '1') { d++; dn--; }
      if (dn != 10)
        return rp_err_set(err, RP_EINVAL, "phone",
                          "phone: \"%s\" must have 10 digits as a %s number", q, default_country);
    } else if (cc != 39 && cc != 378) {
      /* Italy and San Marino keep their leading 0; elsewhere it is the
       * trunk prefix dialled only inside the country. */
      if (d[0] == '0') { d++; dn--; }
    }
    if (dn == 0 || d[0] == '0')
      return rp_err_set(err, RP_EINVAL, "phone", "phone: \"%s\" is not a valid national number", q);
    char ccs[8];
    int cl = snprintf(ccs, sizeof ccs, "%d", cc);
    if ((size_t)cl + dn > 15 || (size_t)cl + dn < 8)
      return rp_err_set(err, RP_EINVAL, "phone",
                        "phone: \"%s\" is too %s for a %s number", q,
                        (size_t)cl + dn > 15 ? "long" : "short", default_country);
    snprintf(e164, sizeof e164, "+%s%s", ccs, d);
  }
  if (strlen(e164) + 1 > size)
    return rp_err_set(err, RP_EINVAL, "phone", "phone: output buffer too small");
  memcpy(out, e164, strlen(e164) + 1);
  return RP_OK;
}

/* ---- placeholders and identities -------------------------------------------- */

static const char *const builtin_placeholders[] = {
    "null", "none", "unknown", "n/a", "0", "-1", "test@test.com", NULL,
};

int rp_norm_is_placeholder(const rp_config *cfg, const char *value) {
  size_t n;
  const char *p = trim_span(value ? value : "", &n);
  if (n == 0) return 1;
  for (const char *const *b = builtin_placeholders; *b; b++)
    if (strlen(*b) == n && strncasecmp(*b, p, n) == 0) return 1;
  if (cfg) {
    for (size_t i = 0; i < cfg->n_placeholders; i++) {
      const char *c = cfg->placeholders[i];
      size_t cn;
      const char *cp = trim_span(c ? c : "", &cn);
      if (cn == n && strncasecmp(cp, p, n) == 0) return 1;
    }
  }
  return 0;
}

int rp_norm_identity(const rp_config *cfg, const char *kind, const char *value, char *out,
                     size_t size, int *placeholder, rp_err *err) {
  if (placeholder) *placeholder = 0;
  int rc = rp_norm_kind(kind, err);
  if (rc) return rc;
  size_t n;
  const char *p = trim_span(value ? value : "", &n);
  if (size == 0) return rp_err_set(err, RP_EINVAL, kind, "%s: output buffer too small", kind);
  if (rp_norm_is_placeholder(cfg, p)) {
    /* Reported as a placeholder even when it would not validate. */
    if (copy_span(p, n < size ? n : size - 1, out, size, 0) != 0) out[0] = '\0';
    if (placeholder) *placeholder = 1;
    return RP_OK;
  }
  if (strcmp(kind, "email") == 0) {
    rc = rp_norm_email(p, out, size, err);
  } else if (strcmp(kind, "phone") == 0) {
    rc = rp_norm_phone(p, cfg ? cfg->default_country : NULL, out, size, err);
  } else {
    char q[64];
    quote_for_msg(p, n, q, sizeof q);
    if (n > RP_NORM_MAX_VALUE)
      return rp_err_set(err, RP_EINVAL, kind, "%s: \"%s\" is longer than %d bytes", kind, q,
                        RP_NORM_MAX_VALUE);
    for (size_t i = 0; i < n; i++) {
      unsigned char c = (unsigned char)p[i];
      if (c < 0x20 || c == 0x7f)
        return rp_err_set(err, RP_EINVAL, kind, "%s: \"%s\" contains a control character", kind, q);
    }
    if (copy_span(p, n, out, size, 0) != 0)
      return rp_err_set(err, RP_EINVAL, kind, "%s: output buffer too small", kind);
    rc = RP_OK;
  }
  if (rc) return rc;
  if (rp_norm_is_placeholder(cfg, out) && placeholder) *placeholder = 1;
  return RP_OK;
}

/* ---- attributes, booleans, money ---------------------------------------------- */

int rp_norm_attr_name(const char *name, rp_err *err) {
  size_t n = name ? strlen(name) : 0;
  int ok = n >= 1 && n <= RP_NORM_MAX_ATTR && name[0] >= 'a' && name[0] <= 'z';
  for (size_t i = 1; ok && i < n; i++) {
    char c = name[i];
    ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
  }
  if (ok) return RP_OK;
  char q[80];
  quote_for_msg(name ? name : "", n, q, sizeof q);
  return rp_err_set(err, RP_EINVAL, "attribute",
                    "attribute name \"%s\" must start with a-z and hold only a-z, 0-9 and _ "
                    "(at most %d characters)", q, RP_NORM_MAX_ATTR);
}

int rp_norm_bool(const char *text, const char *field, int *out, rp_err *err) {
  static const char *const yes[] = {"yes", "true", "1", "y", NULL};
  static const char *const no[] = {"no", "false", "0", "n", NULL};
  size_t n;
  const char *p = trim_span(text ? text : "", &n);
  for (int i = 0; yes[i]; i++)
    if (strlen(yes[i]) == n && strncasecmp(yes[i], p, n) == 0) return *out = 1, RP_OK;
  for (int i = 0; no[i]; i++)
    if (strlen(no[i]) == n && strncasecmp(no[i], p, n) == 0) return *out = 0, RP_OK;
  char q[64];
  quote_for_msg(p, n, q, sizeof q);
  const char *f = field ? field : "value";
  return rp_err_set(err, RP_EINVAL, f, "%s: \"%s\" is not a boolean (yes/no, true/false, 1/0, y/n)",
                    f, q);
}

int rp_norm_currency_exponent(const char *currency, int *exponent, rp_err *err) {
  static const char zero[] = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF";
  static const char three[] = "BHD IQD JOD KWD LYD OMR TND";
  static const char four[] = "CLF UYW";
  if (!currency || strlen(currency) != 3 || !isupper((unsigned char)currency[0]) ||
      !isupper((unsigned char)currency[1]) || !isupper((unsigned char)currency[2]) ||
      !isalpha((unsigned char)currency[0]) || !isalpha((unsigned char)currency[1]) ||
      !isalpha((unsigned char)currency[2])) {
    char q[32];
    quote_for_msg(currency ? currency : "", currency ? strlen(currency) : 0, q, sizeof q);
    return rp_err_set(err, RP_EINVAL, "currency",
                      "currency: \"%s\" is not an ISO 4217 code (three upper-case letters)", q);
  }
  /* Codes in the tables are four bytes apart: "ABC ". */
  const char *tables[] = {zero, three, four};
  const int exps[] = {0, 3, 4};
  for (int t = 0; t < 3; t++)
    for (const char *c = tables[t]; *c; c += (c[3] ? 4 : 3))
      if (memcmp(c, currency, 3) == 0) return *exponent = exps[t], RP_OK;
  *exponent = 2;
  return RP_OK;
}

int rp_norm_money(const char *text, const char *default_currency, const char *field,
                  int64_t *minor, char currency[4], rp_err *err) {
  const char *f = field ? field : "amount";
  size_t n;
  const char *p = trim_span(text ? text : "", &n);
  char q[64];
  quote_for_msg(p, n, q, sizeof q);
  if (n == 0) return rp_err_set(err, RP_EINVAL, f, "%s: is empty", f);
  if (n > 64) return rp_err_set(err, RP_EINVAL, f, "%s: \"%s\" is too long", f, q);

  /* Split into an optional currency (before or after) and the number. */
  char cur[4] = "";
  const char *num = p;
  size_t nn = n;
  if (n >= 3 && isalpha((unsigned char)p[0])) {
    if (n > 3 && isalpha((unsigned char)p[3]))
      return rp_err_set(err, RP_EINVAL, f, "%s: \"%s\" is not an amount such as \"12.50 EUR\"", f, q);
    for (int i = 0; i < 3; i++) cur[i] = (char)toupper((unsigned char)p[i]);
    cur[3] = '\0';
    num = p + 3;
    nn = n - 3;
  } else if (n >= 3 && isalpha((unsigned char)p[n - 1])) {
    if (n > 3 && isalpha((unsigned char)p[n - 4]))
      return rp_err_set(err, RP_EINVAL, f, "%s: \"%s\" is not an amount such as \"12.50 EUR\"", f, q);
    for (int i = 0; i < 3; i++) cur[i] = (char)toupper((unsigned char)p[n - 3 + i]);
    cur[3] = '\0';
    nn = n - 3;
  }
  while (nn && (*num == ' ')) { num++; nn--; }
  while (nn && num[nn - 1] == ' ') nn--;

  if (cur[0]) {
    for (int i = 0; i < 3; i++)
      if (!isalpha((unsigned char)cur[i]))
        return rp_err_set(err, RP_EINVAL, f, "%s: \"%s\" has a malformed currency", f, q);
    if (default_currency && *default_currency && strcasecmp(default_currency, cur) != 0)
      return rp_err_set(err, RP_EINVAL, f, "%s: \"%s\" is in %s, expected %s", f, q, cur,
                        default_currency);
  } else {
    if (!default_currency || !*default_currency)
      return rp_err_set(err, RP_EINVAL, f, "%s: \"%s\" names no currency (write \"12.50 EUR\")",
                        f, q);
    if (strlen(default_currency) != 3)
      return rp_err_set(err, RP_EINVAL, "currency", "currency: \"%s\" is not an ISO 4217 code",
                        default_currency);
    for (int i = 0; i < 3; i++) cur[i] = (char)toupper((unsigned char)default_currency[i]);
    cur[3] = '\0';
  }
  int exp;
  int rc = rp_norm_currency_exponent(cur, &exp, err);
  if (rc) return rc;

  /* The number: [+-]digits[.digits] */
  size_t i = 0;
  int neg = 0;
  if (i < nn && (num[i] == '-' || num[i] == '+')) neg = num[i++] == '-';
  uint64_t whole = 0;
  int nwhole = 0, nfrac = 0;
  uint64_t frac = 0;
  const uint64_t limit = (uint64_t)INT64_MAX / 10;
  for (; i < nn && isdigit((unsigned char)num[i]); i++, nwhole++) {
    if (whole > limit) return rp_err_set(err, RP_EINVAL, f, "%s: \"%s\" is too large", f, q);
    whole = whole * 10 + (uint64_t)(num[i] - '0');
  }
  if (i < nn && num[i] == '.') {
    for (i++; i < nn && isdigit((unsigned char)num[i]); i++, nfrac++) {
      if (nfrac >= exp) {
        if (num[i] != '0')
          return rp_err_set(err, RP_EINVAL, f,
                            "%s: \"%s\" has more decimals than %s allows (%d)", f, q, cur, exp);
        continue;
      }
      frac = frac * 10 + (uint64_t)(num[i] - '0');
    }
  }
  if (i != nn || nwhole == 0) {
    if (memchr(num, ',', nn))
      return rp_err_set(err, RP_EINVAL, f,
                        "%s: \"%s\" uses ','; write amounts with '.' as the decimal point and "
                        "no thousands separator", f, q);
    return rp_err_set(err, RP_EINVAL, f, "%s: \"%s\" is not an amount such as \"12.50 EUR\"", f, q);
  }
  for (int k = nfrac < exp ? nfrac : exp; k < exp; k++) frac *= 10;
  uint64_t scale = 1;
  for (int k = 0; k < exp; k++) scale *= 10;
  if (whole > ((uint64_t)INT64_MAX - frac) / scale)
    return rp_err_set(err, RP_EINVAL, f, "%s: \"%s\" is too large", f, q);
  int64_t v = (int64_t)(whole * scale + frac);
  *minor = neg ? -v : v;
  memcpy(currency, cur, 4);
  return RP_OK;
}
