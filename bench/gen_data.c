/* gen_data: realistic, seeded, reproducible sample data for Rapport, fast
 * enough for a million customers and ten million events in well under a
 * minute. scripts/gen-data runs it; `gen_data --help` says what it writes.
 *
 * How it stays fast and reproducible: every customer draws from a random
 * stream of its own (seed, index), so the output depends on nothing but
 * the arguments. Events are first drawn as 32-byte records (time, customer,
 * kind, a seed for their details), sorted by time, and only then written
 * out, each one's text rebuilt from its record: ten million events cost
 * 320 MB of records, not gigabytes of text. JSON is written with cJSON and
 * CSV fields are quoted by libcsv. */
/* strptime */
#define _XOPEN_SOURCE 700
#include <cjson/cJSON.h>
#include <csv.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- random numbers: splitmix64 seeds xoshiro256** ---------------------- */

typedef struct rng {
  uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* A bijection of 64-bit integers: distinct inputs give distinct event ids. */
static uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed * 0x2545f4914f6cdd1dULL + stream;
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r) {
  uint64_t *s = r->s;
  uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return out;
}

/* Uniform in [0, 1). */
static double rng_unit(rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }
/* Uniform in [lo, hi). */
static int64_t rng_range(rng *r, int64_t lo, int64_t hi) {
  return lo + (int64_t)(rng_unit(r) * (double)(hi - lo));
}
static int rng_chance(rng *r, double p) { return rng_unit(r) < p; }

/* An index drawn by weight. */
static int rng_weighted(rng *r, const int *weights, int n) {
  int total = 0;
  for (int i = 0; i < n; i++) total += weights[i];
  int x = (int)rng_range(r, 0, total);
  for (int i = 0; i < n; i++) {
    if (x < weights[i]) return i;
    x -= weights[i];
  }
  return n - 1;
}

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define PICK(r, a) ((a)[rng_range((r), 0, COUNT(a))])

/* ---- the world ---------------------------------------------------------- */

/* A name as written, and folded to ASCII for email addresses. */
typedef struct name {
  const char *text, *ascii;
} name;

typedef struct zone {
  const char *tz;
  int weight;
  int utc_offset; /* hours, standard time: for the time of day people act */
  int area[8];    /* NANP area codes (US, CA), 0-terminated */
} zone;

typedef struct country {
  const char *code, *currency;
  int weight;
  const zone *zones;
  int n_zones;
  const name *first, *last;
  int n_first, n_last;
} country;

static const name FR_FIRST[] = {
    {"Camille", "camille"}, {"Léa", "lea"},       {"Manon", "manon"},       {"Chloé", "chloe"},
    {"Inès", "ines"},       {"Hélène", "helene"}, {"Lucas", "lucas"},       {"Hugo", "hugo"},
    {"Louis", "louis"},     {"Théo", "theo"},     {"François", "francois"}, {"Jérôme", "jerome"},
    {"Nathalie", "nathalie"}, {"Antoine", "antoine"}, {"Élodie", "elodie"}, {"Zoé", "zoe"}};
static const name FR_LAST[] = {
    {"Martin", "martin"},   {"Bernard", "bernard"}, {"Dubois", "dubois"},   {"Thomas", "thomas"},
    {"Robert", "robert"},   {"Richard", "richard"}, {"Petit", "petit"},     {"Durand", "durand"},
    {"Lefèvre", "lefevre"}, {"Moreau", "moreau"},   {"Girard", "girard"},   {"Fournier", "fournier"},
    {"Chevalier", "chevalier"}, {"Gauthier", "gauthier"}, {"Le Goff", "legoff"}};
static const name DE_FIRST[] = {
    {"Lukas", "lukas"},   {"Leon", "leon"},     {"Jonas", "jonas"},     {"Felix", "felix"},
    {"Jürgen", "jurgen"}, {"Anna", "anna"},     {"Lena", "lena"},       {"Sophie", "sophie"},
    {"Marie", "marie"},   {"Katharina", "katharina"}, {"Stefan", "stefan"}, {"Björn", "bjorn"},
    {"Sabine", "sabine"}, {"Maximilian", "maximilian"}, {"Jörg", "jorg"}};
static const name DE_LAST[] = {
    {"Müller", "muller"}, {"Schmidt", "schmidt"}, {"Schneider", "schneider"}, {"Fischer", "fischer"},
    {"Weber", "weber"},   {"Meyer", "meyer"},     {"Wagner", "wagner"},       {"Becker", "becker"},
    {"Schulz", "schulz"}, {"Hoffmann", "hoffmann"}, {"Schäfer", "schafer"},   {"Koch", "koch"},
    {"Krüger", "kruger"}, {"Weiß", "weiss"}};
static const name GB_FIRST[] = {
    {"Oliver", "oliver"}, {"George", "george"}, {"Harry", "harry"},   {"Jack", "jack"},
    {"Charlie", "charlie"}, {"Amelia", "amelia"}, {"Olivia", "olivia"}, {"Isla", "isla"},
    {"Emily", "emily"},   {"Sophie", "sophie"}, {"Siobhan", "siobhan"}, {"James", "james"},
    {"Poppy", "poppy"},   {"Thomas", "thomas"}, {"Ava", "ava"}};
static const name GB_LAST[] = {
    {"Smith", "smith"},     {"Jones", "jones"},   {"Taylor", "taylor"},   {"Brown", "brown"},
    {"Williams", "williams"}, {"Wilson", "wilson"}, {"Johnson", "johnson"}, {"Davies", "davies"},
    {"Robinson", "robinson"}, {"Wright", "wright"}, {"O'Brien", "obrien"},  {"Evans", "evans"},
    {"Walker", "walker"},   {"Hughes", "hughes"}};
static const name US_FIRST[] = {
    {"Liam", "liam"},       {"Noah", "noah"},     {"Ethan", "ethan"},       {"Mason", "mason"},
    {"Emma", "emma"},       {"Ava", "ava"},       {"Madison", "madison"},   {"Abigail", "abigail"},
    {"Michael", "michael"}, {"Jennifer", "jennifer"}, {"DeShawn", "deshawn"}, {"Maria", "maria"},
    {"Tyler", "tyler"},     {"Ashley", "ashley"}, {"Kevin", "kevin"},       {"Mei", "mei"}};
static const name US_LAST[] = {
    {"Smith", "smith"},       {"Johnson", "johnson"}, {"Williams", "williams"}, {"Brown", "brown"},
    {"Garcia", "garcia"},     {"Miller", "miller"},   {"Davis", "davis"},       {"Rodriguez", "rodriguez"},
    {"Martinez", "martinez"}, {"Anderson", "anderson"}, {"Nguyen", "nguyen"},   {"Jackson", "jackson"},
    {"Lee", "lee"},           {"Harris", "harris"}};
static const name ES_FIRST[] = {
    {"Lucía", "lucia"},   {"Sofía", "sofia"},     {"Martina", "martina"}, {"María", "maria"},
    {"Paula", "paula"},   {"Hugo", "hugo"},       {"Alejandro", "alejandro"}, {"Pablo", "pablo"},
    {"Álvaro", "alvaro"}, {"José", "jose"},       {"Javier", "javier"},   {"Carmen", "carmen"},
    {"Íñigo", "inigo"},   {"Nuria", "nuria"},     {"Sergio", "sergio"}};
static const name ES_LAST[] = {
    {"García", "garcia"},   {"Fernández", "fernandez"}, {"González", "gonzalez"},
    {"Rodríguez", "rodriguez"}, {"López", "lopez"},     {"Martínez", "martinez"},
    {"Sánchez", "sanchez"}, {"Pérez", "perez"},         {"Gómez", "gomez"},
    {"Martín", "martin"},   {"Jiménez", "jimenez"},     {"Ruiz", "ruiz"},
    {"Núñez", "nunez"},     {"Muñoz", "munoz"}};
static const name IT_FIRST[] = {
    {"Giulia", "giulia"}, {"Francesca", "francesca"}, {"Chiara", "chiara"}, {"Sara", "sara"},
    {"Marco", "marco"},   {"Alessandro", "alessandro"}, {"Luca", "luca"},   {"Matteo", "matteo"},
    {"Niccolò", "niccolo"}, {"Andrea", "andrea"},     {"Federica", "federica"}, {"Davide", "davide"}};
static const name IT_LAST[] = {
    {"Rossi", "rossi"},     {"Russo", "russo"},     {"Ferrari", "ferrari"}, {"Esposito", "esposito"},
    {"Bianchi", "bianchi"}, {"Romano", "romano"},   {"Colombo", "colombo"}, {"Ricci", "ricci"},
    {"Marino", "marino"},   {"D'Angelo", "dangelo"}, {"Greco", "greco"},    {"Bruno", "bruno"}};
static const name NL_FIRST[] = {
    {"Daan", "daan"}, {"Sem", "sem"},   {"Lotte", "lotte"}, {"Sanne", "sanne"}, {"Bram", "bram"},
    {"Fleur", "fleur"}, {"Joost", "joost"}, {"Anouk", "anouk"}, {"Thijs", "thijs"}, {"Eva", "eva"}};
static const name NL_LAST[] = {
    {"de Jong", "dejong"},     {"Jansen", "jansen"}, {"de Vries", "devries"}, {"van den Berg", "vandenberg"},
    {"van Dijk", "vandijk"},   {"Bakker", "bakker"}, {"Visser", "visser"},   {"Smit", "smit"},
    {"Meijer", "meijer"},      {"Mulder", "mulder"}};
static const name CA_FIRST[] = {
    {"Olivia", "olivia"}, {"Liam", "liam"},     {"Chloé", "chloe"},  {"William", "william"},
    {"Émile", "emile"},   {"Charlotte", "charlotte"}, {"Noah", "noah"}, {"Léa", "lea"},
    {"Benjamin", "benjamin"}, {"Maya", "maya"}};
static const name CA_LAST[] = {
    {"Tremblay", "tremblay"}, {"Gagnon", "gagnon"}, {"Roy", "roy"},     {"Côté", "cote"},
    {"Smith", "smith"},       {"Brown", "brown"},   {"Wilson", "wilson"}, {"MacDonald", "macdonald"},
    {"Bouchard", "bouchard"}, {"Lee", "lee"}};
static const name CH_FIRST[] = {
    {"Noah", "noah"}, {"Mia", "mia"}, {"Luca", "luca"}, {"Lea", "lea"}, {"Leon", "leon"},
    {"Elena", "elena"}, {"Matteo", "matteo"}, {"Chloé", "chloe"}, {"Jan", "jan"}, {"Nina", "nina"}};
static const name CH_LAST[] = {
    {"Müller", "muller"}, {"Meier", "meier"}, {"Schmid", "schmid"}, {"Keller", "keller"},
    {"Weber", "weber"},   {"Huber", "huber"}, {"Favre", "favre"},   {"Rochat", "rochat"},
    {"Bernasconi", "bernasconi"}, {"Brunner", "brunner"}};

static const zone FR_Z[] = {{"Europe/Paris", 1, 1, {0}}};
static const zone DE_Z[] = {{"Europe/Berlin", 1, 1, {0}}};
static const zone GB_Z[] = {{"Europe/London", 1, 0, {0}}};
static const zone ES_Z[] = {{"Europe/Madrid", 95, 1, {0}}, {"Atlantic/Canary", 5, 0, {0}}};
static const zone IT_Z[] = {{"Europe/Rome", 1, 1, {0}}};
static const zone NL_Z[] = {{"Europe/Amsterdam", 1, 1, {0}}};
static const zone CH_Z[] = {{"Europe/Zurich", 1, 1, {0}}};
static const zone US_Z[] = {
    {"America/New_York", 45, -5, {212, 646, 917, 617, 305, 404, 215, 202}},
    {"America/Chicago", 25, -6, {312, 773, 214, 713, 512, 612, 314}},
    {"America/Denver", 7, -7, {303, 720, 801, 505}},
    {"America/Phoenix", 5, -7, {602, 480, 520}},
    {"America/Los_Angeles", 18, -8, {213, 310, 415, 408, 206, 503, 702}}};
static const zone CA_Z[] = {{"America/Toronto", 55, -5, {416, 647, 613, 514, 438}},
                            {"America/Vancouver", 25, -8, {604, 778, 250}},
                            {"America/Edmonton", 15, -7, {403, 780, 587}},
                            {"America/Halifax", 5, -4, {902, 782}}};

#define C(code, cur, w, z, f, l) {code, cur, w, z, COUNT(z), f, l, COUNT(f), COUNT(l)}
static const country COUNTRIES[] = {
    C("FR", "EUR", 22, FR_Z, FR_FIRST, FR_LAST), C("DE", "EUR", 16, DE_Z, DE_FIRST, DE_LAST),
    C("GB", "GBP", 15, GB_Z, GB_FIRST, GB_LAST), C("US", "USD", 20, US_Z, US_FIRST, US_LAST),
    C("ES", "EUR", 9, ES_Z, ES_FIRST, ES_LAST),  C("IT", "EUR", 8, IT_Z, IT_FIRST, IT_LAST),
    C("NL", "EUR", 4, NL_Z, NL_FIRST, NL_LAST),  C("CA", "CAD", 4, CA_Z, CA_FIRST, CA_LAST),
    C("CH", "CHF", 2, CH_Z, CH_FIRST, CH_LAST)};
#undef C

/* Reserved example domains (RFC 2606): no message sent during a demo can
 * reach a real person. */
static const char *const DOMAINS[] = {"example.com",       "example.net",      "example.org",
                                      "mail.example.com",  "inbox.example.net", "post.example.org"};
static const int DOMAIN_WEIGHTS[] = {30, 20, 15, 15, 10, 10};
static const char *const PLACEHOLDER_EMAILS[] = {"unknown", "", "Unknown", "n/a", "none", "null"};
static const char *const PAGES[] = {
    "/", "/products", "/products/linen-shirt", "/products/wool-scarf", "/products/leather-boots",
    "/products/canvas-tote", "/products/rain-jacket", "/collections/new", "/collections/sale",
    "/cart", "/checkout", "/account", "/blog/care-guide", "/help/shipping", "/help/returns",
    "/search"};
static const char *const REFERRERS[] = {"https://www.example.com/search", "newsletter",
                                        "https://social.example.net/", "ads"};
static const char *const CAMPAIGNS[] = {"spring-sale", "new-arrivals", "loyalty", "winback",
                                        "weekly-digest", "black-friday", "abandoned-cart"};
static const char *const TICKET_TOPICS[] = {"delivery", "return", "payment", "sizing", "account",
                                            "damaged-item"};
static const char *const TICKET_CHANNELS[] = {"email", "chat", "phone"};
static const char *const ORDER_CHANNELS[] = {"web", "web", "web", "app", "app", "store"};
static const char *const REFUND_REASONS[] = {"damaged", "wrong-size", "not-as-described",
                                             "late-delivery", "changed-mind"};
/* Currencies seen on orders (minor units: all have two decimals). */
static const char *const CURRENCIES[] = {"EUR", "GBP", "USD", "CAD", "CHF"};


/* ---- customers ---------------------------------------------------------- */

typedef struct customer {
  int64_t signup;  /* epoch seconds */
  double activity; /* relative share of the events (0: none) */
  uint32_t email;  /* offset of the real email in the arena, or NO_EMAIL */
  uint8_t country, zone, first, last;
} customer;

#define NO_EMAIL UINT32_MAX

/* An open-addressing set of 64-bit keys (hashed emails, phone numbers), so
 * that no two people share an address or a number by chance. */
typedef struct set64 {
  uint64_t *slot;
  size_t mask;
} set64;

static int set_init(set64 *s, size_t n) {
  size_t cap = 1024;
  while (cap < 2 * n) cap <<= 1;
  s->slot = calloc(cap, sizeof *s->slot);
  s->mask = cap - 1;
  return s->slot ? 0 : -1;
}

/* Adds key (never 0); 0 when it was there already. */
static int set_add(set64 *s, uint64_t key) {
  for (size_t i = mix64(key) & s->mask;; i = (i + 1) & s->mask) {
    if (s->slot[i] == key) return 0;
    if (s->slot[i] == 0) {
      s->slot[i] = key;
      return 1;
    }
  }
}

/* FNV-1a, never 0. Two addresses with the same hash only cost the second
 * one a number suffix. */
static uint64_t hash_str(const char *s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
  return h | 1;
}

typedef struct gen {
  uint64_t seed;
  int64_t now; /* epoch seconds */
  long n_customers, n_events_wanted;
  int bad, progress;
  customer *cust;
  char *emails; /* NUL-terminated real addresses, back to back */
  size_t emails_len, emails_cap;
  set64 email_set, phone_set;
  int width; /* digits of the external ids */
  /* what was written */
  long dups, placeholders, messy, formatted_phones, no_phone, no_birth;
  long events, repeats, anonymous, by_email, orders, refunds;
  long per_currency[COUNT(CURRENCIES)];
  uint32_t order_seq, ticket_seq;
} gen;

static const char *real_email(const gen *g, long i) {
  return g->cust[i].email == NO_EMAIL ? NULL : g->emails + g->cust[i].email;
}

static int arena_add(gen *g, const char *s, uint32_t *off) {
  size_t n = strlen(s) + 1;
  if (g->emails_len + n > g->emails_cap) {
    size_t cap = g->emails_cap ? g->emails_cap * 2 : (size_t)1 << 20;
    char *p = realloc(g->emails, cap);
    if (!p) return -1;
    g->emails = p;
    g->emails_cap = cap;
  }
  if (g->emails_len + n >= NO_EMAIL) return -1;
  memcpy(g->emails + g->emails_len, s, n);
  *off = (uint32_t)g->emails_len;
  g->emails_len += n;
  return 0;
}

static void make_email(gen *g, rng *r, const name *first, const name *last, char *out,
                       size_t size) {
  const char *f = first->ascii, *l = last->ascii;
  const char *domain = DOMAINS[rng_weighted(r, DOMAIN_WEIGHTS, COUNT(DOMAINS))];
  char local[96];
  switch (rng_range(r, 0, 6)) {
  case 0: snprintf(local, sizeof local, "%s.%s", f, l); break;
  case 1: snprintf(local, sizeof local, "%c%s", f[0], l); break;
  case 2: snprintf(local, sizeof local, "%s_%s", f, l); break;
  case 3: snprintf(local, sizeof local, "%s.%s%d", f, l, (int)rng_range(r, 1, 100)); break;
  case 4: snprintf(local, sizeof local, "%s%d", f, (int)rng_range(r, 70, 1000)); break;
  default: snprintf(local, sizeof local, "%c.%s", f[0], l); break;
  }
  snprintf(out, size, "%s@%s", local, domain);
  while (!set_add(&g->email_set, hash_str(out)))
    snprintf(out, size, "%s%d@%s", local, (int)rng_range(r, 1, 1000000), domain);
}

/* The same address as a person might type it: capitals and blanks. */
static void messy_email(rng *r, const char *email, char *out, size_t size) {
  static const char *const pad[] = {"  ", " ", "", "\t"};
  char e[160];
  snprintf(e, sizeof e, "%s", email);
  int style = (int)rng_range(r, 0, 3);
  for (char *p = e; *p; p++) {
    int word_start = p == e || p[-1] == '.' || p[-1] == '@';
    if ((style == 0 || (style == 1 && word_start)) && *p >= 'a' && *p <= 'z') *p = (char)(*p - 32);
  }
  snprintf(out, size, "%s%s%s", PICK(r, pad), e, PICK(r, pad));
}

/* A mobile number of the country (and zone, for NANP area codes) as the
 * digits of its E.164 form; never one given to somebody else. */
static uint64_t make_phone(gen *g, rng *r, const country *c, const zone *z) {
  for (;;) {
    uint64_t p;
    const char *k = c->code;
    if (!strcmp(k, "FR")) p = 33600000000ULL + (uint64_t)rng_range(r, 0, 200000000);
    else if (!strcmp(k, "DE")) p = 4915000000000ULL + (uint64_t)rng_range(r, 100000000, 800000000);
    else if (!strcmp(k, "GB")) p = 447000000000ULL + (uint64_t)rng_range(r, 400000000, 1000000000);
    else if (!strcmp(k, "ES")) p = 34600000000ULL + (uint64_t)rng_range(r, 0, 100000000);
    else if (!strcmp(k, "IT")) p = 393000000000ULL + (uint64_t)rng_range(r, 200000000, 900000000);
    else if (!strcmp(k, "NL")) p = 31600000000ULL + (uint64_t)rng_range(r, 0, 100000000);
    else if (!strcmp(k, "CH")) p = 41750000000ULL + (uint64_t)rng_range(r, 0, 500000000);
    else { /* NANP: +1 NPA NXX XXXX, no N11 exchange, no 555 */
      int n_area = 0;
      while (n_area < 8 && z->area[n_area]) n_area++;
      int npa = z->area[rng_range(r, 0, n_area)], nxx = (int)rng_range(r, 200, 1000);
      if (nxx % 100 == 11 || nxx == 555) continue;
      p = 10000000000ULL + (uint64_t)npa * 10000000 + (uint64_t)nxx * 10000 +
          (uint64_t)rng_range(r, 0, 10000);
    }
    if (set_add(&g->phone_set, p)) return p;
  }
}

/* The number in E.164, or as people type it ("+33 6 12 34 56 78",
 * "+1 (212) 555-0199"): the import normalises both. */
static void phone_text(rng *r, uint64_t p, int formatted, char *out, size_t size) {
  char d[24];
  snprintf(d, sizeof d, "%" PRIu64, p);
  if (!formatted) {
    snprintf(out, size, "+%s", d);
  } else if (d[0] == '1') {
    snprintf(out, size, "+1 (%.3s) %.3s-%s", d + 1, d + 4, d + 7);
  } else {
    size_t o = (size_t)snprintf(out, size, "+%.2s %c", d, d[2]);
    for (size_t i = 3; d[i] && o + 4 < size; i += 2) {
      out[o++] = rng_chance(r, .5) ? ' ' : '.';
      out[o++] = d[i];
      if (d[i + 1]) out[o++] = d[i + 1];
      else break;
    }
    out[o] = '\0';
  }
}

/* One CSV field and its separator. Plain fields go as they are; libcsv
 * quotes whatever a parser could alter (separators, quotes, line breaks,
 * leading or trailing blanks). */
static int csv_put(FILE *f, const char *v, int last) {
  size_t n = strlen(v);
  int plain = strpbrk(v, ",\"\r\n") == NULL &&
              (n == 0 || (v[0] != ' ' && v[0] != '\t' && v[n - 1] != ' ' && v[n - 1] != '\t'));
  if (plain ? fputs(v, f) < 0 : csv_fwrite(f, v, n) != 0) return -1;
  return fputc(last ? '\n' : ',', f) == EOF ? -1 : 0;
}

static void iso_time(int64_t t, char *out, size_t size) {
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(out, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char HEADER[] =
    "external_id,email,phone,first_name,last_name,country,timezone,birth_date:timestamp,"
    "signup_at:timestamp,consent.email,consent.sms";

static void external_id(const gen *g, long i, char *out, size_t size) {
  snprintf(out, size, "CUS-%0*ld", g->width, i + 1);
}

static int write_customer(gen *g, long i, FILE *f) {
  static const char *const consent[] = {"yes", "no", ""};
  const int64_t three_years = 3LL * 365 * 86400;
  rng r;
  rng_seed(&r, g->seed, (uint64_t)i);
  customer *cu = &g->cust[i];
  /* Sign-ups grow over time: recent ones are likelier. */
  cu->signup = g->now - (int64_t)((double)three_years * (1 - pow(rng_unit(&r), 0.7))) -
               rng_range(&r, 0, 86400);
  /* Engagement is skewed (Zipf-like): a Pareto share, alpha 1.2, so that a
   * few customers make many of the events; one in eight makes none. */
  cu->activity = rng_chance(&r, 0.125) ? 0 : fmin(pow(1 - rng_unit(&r), -1 / 1.2), 500);
  cu->email = NO_EMAIL;
  char ext[32], email[200], phone[48] = "", birth[16] = "", signup[32];
  external_id(g, i, ext, sizeof ext);
  iso_time(cu->signup, signup, sizeof signup);
  /* Consent: email 70% yes, SMS 40% yes, 4% never asked (blank). */
  const char *c_email = consent[rng_chance(&r, .04) ? 2 : rng_chance(&r, .7) ? 0 : 1];
  const char *c_sms = consent[rng_chance(&r, .04) ? 2 : rng_chance(&r, .4) ? 0 : 1];
  const country *c;
  const zone *z;
  if (i > 0 && rng_chance(&r, 0.005)) {
    /* 0.5%: an earlier person again under another external id (a second
     * account, a store card): same names, same email, maybe typed again. */
    long src = (long)rng_range(&r, 0, i);
    while (src > 0 && !real_email(g, src)) src--;
    if (real_email(g, src)) {
      const customer *s = &g->cust[src];
      cu->country = s->country, cu->zone = s->zone, cu->first = s->first, cu->last = s->last;
      c = &COUNTRIES[cu->country];
      z = &c->zones[cu->zone];
      if (rng_chance(&r, .4)) messy_email(&r, real_email(g, src), email, sizeof email);
      else snprintf(email, sizeof email, "%s", real_email(g, src));
      phone_text(&r, make_phone(g, &r, c, z), 0, phone, sizeof phone);
      g->dups++;
      g->no_birth++;
      goto write;
    }
  }
  int weights[COUNT(COUNTRIES)];
  for (int k = 0; k < COUNT(COUNTRIES); k++) weights[k] = COUNTRIES[k].weight;
  cu->country = (uint8_t)rng_weighted(&r, weights, COUNT(COUNTRIES));
  c = &COUNTRIES[cu->country];
  for (int k = 0; k < c->n_zones; k++) weights[k] = c->zones[k].weight;
  cu->zone = (uint8_t)rng_weighted(&r, weights, c->n_zones);
  z = &c->zones[cu->zone];
  cu->first = (uint8_t)rng_range(&r, 0, c->n_first);
  cu->last = (uint8_t)rng_range(&r, 0, c->n_last);
  /* Ages 18 to 80, most of them 30 to 60; 3% never said. */
  if (rng_chance(&r, .03)) {
    g->no_birth++;
  } else {
    double a = (rng_unit(&r) + rng_unit(&r) + rng_unit(&r)) / 3;
    time_t bt = (time_t)(g->now - (18 * 365 + (int64_t)(a * 62 * 365)) * 86400);
    struct tm tm;
    gmtime_r(&bt, &tm);
    strftime(birth, sizeof birth, "%Y-%m-%d", &tm);
  }
  /* Phones: 2% none, 6% typed with blanks, dots or brackets. */
  if (rng_chance(&r, .02)) {
    g->no_phone++;
  } else {
    int formatted = rng_chance(&r, .06);
    g->formatted_phones += formatted;
    phone_text(&r, make_phone(g, &r, c, z), formatted, phone, sizeof phone);
  }
  /* Emails: 1% placeholders, 3% typed with capitals and blanks. */
  if (rng_chance(&r, .01)) {
    snprintf(email, sizeof email, "%s", PICK(&r, PLACEHOLDER_EMAILS));
    g->placeholders++;
  } else {
    char e[160];
    make_email(g, &r, &c->first[cu->first], &c->last[cu->last], e, sizeof e);
    if (arena_add(g, e, &cu->email)) return -1;
    if (rng_chance(&r, .03)) {
      messy_email(&r, e, email, sizeof email);
      g->messy++;
    } else {
      snprintf(email, sizeof email, "%s", e);
    }
  }
write:
  if (csv_put(f, ext, 0) || csv_put(f, email, 0) || csv_put(f, phone, 0) ||
      csv_put(f, c->first[cu->first].text, 0) || csv_put(f, c->last[cu->last].text, 0) ||
      csv_put(f, c->code, 0) || csv_put(f, z->tz, 0) || csv_put(f, birth, 0) ||
      csv_put(f, signup, 0) || csv_put(f, c_email, 0) || csv_put(f, c_sms, 1))
    return -1;
  return 0;
}

/* ---- events ------------------------------------------------------------- */

enum { EV_PAGE, EV_ORDER, EV_REFUND, EV_OPEN, EV_CLICK, EV_TICKET };
static const char *const EV_TYPES[] = {"page.viewed",  "order.placed",  "order.refunded",
                                       "email.opened", "email.clicked", "support.ticket_opened"};
static const char *const EV_SOURCES[] = {"web", "shop", "shop", "esp", "esp", "helpdesk"};

/* An event before its text: 32 bytes. The text is rebuilt from seed (and
 * for a refund or a click, from the seed of the order or open it follows,
 * which is what seed holds for them). */
typedef struct ev {
  int64_t t;     /* epoch milliseconds */
  uint64_t seed;
  uint32_t seq;  /* order of drawing: ties in t keep it */
  uint32_t cust; /* customer index, or ANONYMOUS */
  uint32_t aux;  /* order or ticket number; visitor number when anonymous */
  uint8_t type;
  uint8_t by_email; /* identified by the customer's email, not the external id */
} ev;

#define ANONYMOUS UINT32_MAX

typedef struct evs {
  ev *v;
  size_t n, cap;
} evs;

/* How likely people act at a moment, relative to the busiest: the season
 * (November's sales and December's gifts, a quieter summer), the day of
 * the week and the hour, in the customer's own time zone. */
static const double MONTH[12] = {0.9, 0.8, 0.9, 0.95, 1.0, 0.95, 0.85, 0.8, 1.0, 1.05, 1.3, 1.45};
static const double HOUR[24] = {0.15, 0.08, 0.05, 0.05, 0.05, 0.1,  0.25, 0.45, 0.65, 0.8, 0.9, 0.95,
                                1.0,  0.95, 0.85, 0.85, 0.9,  0.95, 1.1,  1.3,  1.4,  1.3, 0.9, 0.45};
static const double PEAK = 1.45 * 1.6 * 1.15 * 1.4;

static double liveliness(int64_t t, int utc_offset) {
  time_t local = (time_t)(t + utc_offset * 3600);
  struct tm tm;
  gmtime_r(&local, &tm);
  double w = MONTH[tm.tm_mon] * HOUR[tm.tm_hour];
  if (tm.tm_mon == 10 && tm.tm_mday >= 22) w *= 1.6; /* Black Friday to Cyber Monday */
  if (tm.tm_mon == 11 && tm.tm_mday >= 24 && tm.tm_mday <= 26) w *= 0.5;
  if (tm.tm_wday == 6) w *= 1.15;
  if (tm.tm_wday == 0) w *= 1.1;
  return w;
}

/* A moment in [lo, hi) seconds, drawn by liveliness. */
static int64_t draw_time(rng *r, int64_t lo, int64_t hi, int utc_offset) {
  int64_t t = lo;
  for (int tries = 0; tries < 64; tries++) {
    t = rng_range(r, lo, hi);
    if (rng_unit(r) * PEAK < liveliness(t, utc_offset)) break;
  }
  return t;
}

static int push(gen *g, evs *e, int64_t t_ms, uint32_t cust, int type, uint32_t aux, uint64_t seed,
                int by_email) {
  if (t_ms >= g->now * 1000) return 0; /* after "now": not yet happened */
  if (e->n == e->cap) {
    size_t cap = e->cap ? e->cap * 3 / 2 : 1 << 16;
    ev *v = realloc(e->v, cap * sizeof *v);
    if (!v) return -1;
    e->v = v;
    e->cap = cap;
  }
  if (e->n >= UINT32_MAX) return -1;
  e->v[e->n] = (ev){t_ms, seed, (uint32_t)e->n, cust, aux, (uint8_t)type, (uint8_t)by_email};
  e->n++;
  return 0;
}

/* An order's details, the same whenever drawn from its seed. */
typedef struct order {
  int items;
  int64_t amount; /* minor units */
  const char *currency, *channel;
} order;

static order order_of(uint64_t seed, const country *c) {
  rng r;
  rng_seed(&r, seed, 0x0de7);
  static const int item_weights[] = {45, 25, 15, 10, 5};
  order o = {rng_weighted(&r, item_weights, 5) + 1, 0, c->currency, PICK(&r, ORDER_CHANNELS)};
  for (int i = 0; i < o.items; i++) {
    /* Prices log-uniform from 4.99 to 249.99 in the currency. */
    int64_t major = (int64_t)exp(log(4.0) + rng_unit(&r) * (log(250.0) - log(4.0)));
    o.amount += major * 100 + (rng_chance(&r, .6) ? 99 : 0);
  }
  /* 3%: paid in another currency (a cross-border shop). */
  if (rng_chance(&r, .03)) o.currency = PICK(&r, CURRENCIES);
  return o;
}

static int customer_events(gen *g, evs *e, long i, long count) {
  const customer *cu = &g->cust[i];
  const country *c = &COUNTRIES[cu->country];
  int off = c->zones[cu->zone].utc_offset;
  rng r;
  rng_seed(&r, g->seed ^ 0xe7e7e7e7ULL, (uint64_t)i);
  uint32_t id = (uint32_t)i;
  int has_email = real_email(g, i) != NULL;
  long budget = count;
  while (budget > 0) {
    int64_t t = draw_time(&r, cu->signup, g->now, off) * 1000 + rng_range(&r, 0, 1000);
    double kind = rng_unit(&r);
    if (kind < 0.68) {
      /* A visit: pages, then maybe an order, maybe refunded later. */
      for (long pages = rng_range(&r, 1, 6); pages > 0 && budget > 0; pages--, budget--) {
        if (push(g, e, t, id, EV_PAGE, 0, rng_next(&r), 0)) return -1;
        t += rng_range(&r, 5000, 240000);
      }
      if (budget > 0 && rng_chance(&r, 0.3)) {
        uint64_t seed = rng_next(&r);
        uint32_t number = ++g->order_seq;
        if (push(g, e, t, id, EV_ORDER, number, seed, has_email && rng_chance(&r, .05))) return -1;
        budget--;
        if (budget > 0 && rng_chance(&r, 0.08)) {
          int64_t later = t + rng_range(&r, 1, 31) * 86400000LL + rng_range(&r, 0, 86400000);
          if (push(g, e, later, id, EV_REFUND, number, seed, 0)) return -1;
          budget--;
        }
      }
    } else if (kind < 0.96) {
      uint64_t seed = rng_next(&r);
      if (push(g, e, t, id, EV_OPEN, 0, seed, 0)) return -1;
      budget--;
      if (budget > 0 && rng_chance(&r, 0.35)) {
        if (push(g, e, t + rng_range(&r, 3000, 600000), id, EV_CLICK, 0, seed, 0)) return -1;
        budget--;
      }
    } else {
      if (push(g, e, t, id, EV_TICKET, ++g->ticket_seq, rng_next(&r), 0)) return -1;
      budget--;
    }
  }
  return 0;
}

static int draw_events(gen *g, evs *e) {
  double total = 0;
  for (long i = 0; i < g->n_customers; i++) total += g->cust[i].activity;
  /* 2% of the page views come from visitors never identified. */
  long anonymous = g->n_events_wanted / 50;
  double share = total > 0 ? (double)(g->n_events_wanted - anonymous) / total : 0;
  rng r;
  rng_seed(&r, g->seed ^ 0xc0c0c0c0ULL, 0);
  for (long i = 0; i < g->n_customers; i++) {
    /* Rounded at random, so that the total comes out right on average. */
    double want = g->cust[i].activity * share;
    long n = (long)want + (rng_unit(&r) < want - floor(want));
    if (n > 0 && customer_events(g, e, i, n)) return -1;
    if (g->progress && i % 50000 == 0)
      fprintf(stderr, "\rgen-data: drawing events of customer %ld/%ld", i, g->n_customers);
  }
  long visitors = anonymous / 3 + 1;
  for (long k = 0; k < anonymous; k++) {
    uint32_t v = (uint32_t)rng_range(&r, 0, visitors);
    int64_t t = draw_time(&r, g->now - 365 * 86400, g->now, 1) * 1000 + rng_range(&r, 0, 1000);
    if (push(g, e, t, ANONYMOUS, EV_PAGE, v, rng_next(&r), 0)) return -1;
  }
  if (g->progress) fprintf(stderr, "\rgen-data: sorting %zu events%30s", e->n, "");
  return 0;
}

static int by_time(const void *a, const void *b) {
  const ev *x = a, *y = b;
  if (x->t != y->t) return x->t < y->t ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The event as a JSON line, into buf. */
static int event_json(gen *g, const ev *v, char *buf, int size) {
  cJSON *o = cJSON_CreateObject(), *p = cJSON_CreateObject();
  if (!o || !p) goto oom;
  char text[200];
  snprintf(text, sizeof text, "evt-%016" PRIx64, mix64(g->seed * 0x9e3779b97f4a7c15ULL + v->seq));
  cJSON_AddStringToObject(o, "id", text);
  cJSON_AddStringToObject(o, "type", EV_TYPES[v->type]);
  if (v->cust == ANONYMOUS) {
    snprintf(text, sizeof text, "anon-%012" PRIx64, mix64(g->seed ^ (0xa0a0ULL << 32) ^ v->aux) >> 16);
    cJSON_AddStringToObject(o, "anonymous_id", text);
  } else if (v->by_email) {
    cJSON_AddStringToObject(o, "email", real_email(g, v->cust));
  } else {
    external_id(g, v->cust, text, sizeof text);
    cJSON_AddStringToObject(o, "external_id", text);
  }
  iso_time(v->t / 1000, text, sizeof text);
  cJSON_AddStringToObject(o, "occurred_at", text);
  cJSON_AddStringToObject(o, "source", EV_SOURCES[v->type]);
  cJSON_AddItemToObject(o, "properties", p);
  rng r;
  rng_seed(&r, v->seed, v->type);
  const country *c = v->cust == ANONYMOUS ? &COUNTRIES[0] : &COUNTRIES[g->cust[v->cust].country];
  switch (v->type) {
  case EV_PAGE:
    cJSON_AddStringToObject(p, "path", PICK(&r, PAGES));
    if (rng_chance(&r, .4)) cJSON_AddStringToObject(p, "referrer", PICK(&r, REFERRERS));
    break;
  case EV_ORDER:
  case EV_REFUND: {
    order od = order_of(v->seed, c);
    snprintf(text, sizeof text, "ORD-%08" PRIu32, v->aux);
    cJSON_AddStringToObject(p, "order_id", text);
    int64_t amount = od.amount;
    if (v->type == EV_REFUND && rng_chance(&r, .3)) /* partial: some of the items */
      amount = od.amount * rng_range(&r, 25, 90) / 100;
    cJSON_AddNumberToObject(p, "amount", (double)amount);
    cJSON_AddStringToObject(p, "currency", od.currency);
    if (v->type == EV_ORDER) {
      cJSON_AddNumberToObject(p, "items", od.items);
      cJSON_AddStringToObject(p, "channel", od.channel);
      g->orders++;
      for (int k = 0; k < COUNT(CURRENCIES); k++)
        if (!strcmp(CURRENCIES[k], od.currency)) g->per_currency[k]++;
    } else {
      cJSON_AddStringToObject(p, "reason", PICK(&r, REFUND_REASONS));
      g->refunds++;
    }
    break;
  }
  case EV_OPEN:
  case EV_CLICK: {
    rng m; /* the open's message, shared by its click */
    rng_seed(&m, v->seed, 0xe1);
    const char *campaign = PICK(&m, CAMPAIGNS);
    cJSON_AddStringToObject(p, "campaign", campaign);
    snprintf(text, sizeof text, "msg-%012" PRIx64, rng_next(&m) >> 16);
    cJSON_AddStringToObject(p, "message_id", text);
    if (v->type == EV_CLICK) {
      snprintf(text, sizeof text, "https://shop.example.com%s?utm_campaign=%s", PICK(&r, PAGES),
               campaign);
      cJSON_AddStringToObject(p, "url", text);
    }
    break;
  }
  default:
    snprintf(text, sizeof text, "TCK-%07" PRIu32, v->aux);
    cJSON_AddStringToObject(p, "ticket_id", text);
    cJSON_AddStringToObject(p, "channel", PICK(&r, TICKET_CHANNELS));
    cJSON_AddStringToObject(p, "topic", PICK(&r, TICKET_TOPICS));
  }
  int ok = cJSON_PrintPreallocated(o, buf, size, 0);
  cJSON_Delete(o);
  return ok ? 0 : -1;
oom:
  cJSON_Delete(o);
  cJSON_Delete(p);
  return -1;
}

static int write_events(gen *g, evs *e, FILE *f) {
  qsort(e->v, e->n, sizeof *e->v, by_time);
  rng r;
  rng_seed(&r, g->seed ^ 0x5e5e5e5eULL, 0);
  char buf[4096];
  for (size_t k = 0; k < e->n; k++) {
    const ev *v = &e->v[k];
    if (event_json(g, v, buf, sizeof buf)) return -1;
    if (fputs(buf, f) < 0 || fputc('\n', f) == EOF) return -1;
    g->events++;
    g->anonymous += v->cust == ANONYMOUS;
    g->by_email += v->by_email;
    /* 0.2%: delivered twice (a client's retry), right after the first. */
    if (rng_chance(&r, 0.002)) {
      if (fputs(buf, f) < 0 || fputc('\n', f) == EOF) return -1;
      g->events++;
      g->repeats++;
    }
    if (g->progress && k % 200000 == 0)
      fprintf(stderr, "\rgen-data: writing events %zu/%zu%20s", k, e->n, "");
  }
  return 0;
}

/* ---- malformed input, for tests (--bad) ---------------------------------- */

static const char *const BAD_CUSTOMER_ROWS[] = {
    "CUS-BAD001,not-an-email,+33612345678,Bad,Email,FR,Europe/Paris,1990-01-01,2024-01-01T00:00:00Z,yes,no\n",
    "CUS-BAD002,bad.phone@example.com,+33 12,Bad,Phone,FR,Europe/Paris,1990-01-01,2024-01-01T00:00:00Z,yes,no\n",
    "CUS-BAD003,bad.date@example.com,+33612345679,Bad,Date,FR,Europe/Paris,1990-02-30,2024-01-01T00:00:00Z,yes,no\n",
    "CUS-BAD004,bad.signup@example.com,+33612345680,Bad,Signup,FR,Europe/Paris,1990-01-01,yesterday,yes,no\n",
    "CUS-BAD005,bad.consent@example.com,+33612345681,Bad,Consent,FR,Europe/Paris,1990-01-01,2024-01-01T00:00:00Z,maybe,no\n",
    "CUS-BAD006,too.few@example.com,+33612345682,Too,Few\n",
    "CUS-BAD007,too.many@example.com,+33612345683,Too,Many,FR,Europe/Paris,1990-01-01,2024-01-01T00:00:00Z,yes,no,extra,columns\n",
    ",missing.id@example.com,+33612345684,Missing,Id,FR,Europe/Paris,1990-01-01,2024-01-01T00:00:00Z,yes,no\n",
    /* Last: an unterminated quote runs to the end of the file. */
    "CUS-BAD009,\"unterminated@example.com,+33612345685,Open,Quote,FR,Europe/Paris,1990-01-01,2024-01-01T00:00:00Z,yes,no\n",
};

static const char *const BAD_EVENT_LINES[] = {
    "{not json at all\n",
    "{\"id\": \"evt-bad-truncated\", \"type\": \"page.viewed\", \"external_id\": \"CUS-000001\", \"occ\n",
    "[\"an\", \"array\", \"not\", \"an\", \"object\"]\n",
    "{\"id\": \"evt-bad-notype\", \"external_id\": \"CUS-000001\", \"occurred_at\": \"2024-01-01T00:00:00Z\", \"source\": \"web\", \"properties\": {}}\n",
    "{\"id\": \"evt-bad-time\", \"type\": \"page.viewed\", \"external_id\": \"CUS-000001\", \"occurred_at\": \"last tuesday\", \"source\": \"web\", \"properties\": {}}\n",
    "{\"id\": \"evt-bad-props\", \"type\": \"page.viewed\", \"external_id\": \"CUS-000001\", \"occurred_at\": \"2024-01-01T00:00:00Z\", \"source\": \"web\", \"properties\": \"oops\"}\n",
    "{\"id\": \"evt-bad-field\", \"type\": \"page.viewed\", \"external_id\": \"CUS-000001\", \"occurred_at\": \"2024-01-01T00:00:00Z\", \"source\": \"web\", \"color\": \"blue\"}\n",
    "{\"id\": 42, \"type\": \"page.viewed\", \"external_id\": \"CUS-000001\", \"occurred_at\": \"2024-01-01T00:00:00Z\", \"source\": \"web\", \"properties\": {}}\n",
    "\n",
};

/* ---- the command ----------------------------------------------------------- */

static const char USAGE[] =
    "Usage: scripts/gen-data [--customers N] [--events N | --events-per-customer M]\n"
    "                        [--seed S] [--now TIME] [--out DIR] [--bad] [--json] [--help]\n"
    "\n"
    "Writes realistic, reproducible sample data: DIR/customers.csv and DIR/events.jsonl.\n"
    "The same arguments give byte-identical files (on the same C library: amounts\n"
    "and times go through its pow, exp and log).\n"
    "\n"
    "  --customers N            customer rows, duplicates included (default 1000000)\n"
    "  --events N               events, about (default 10 per customer)\n"
    "  --events-per-customer M  the same as --events N*M\n"
    "  --seed S                 random seed (default 42)\n"
    "  --now TIME               the reference 'now' (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ):\n"
    "                           no event after it (default 2026-11-01, fixed so that runs\n"
    "                           on different days agree)\n"
    "  --out DIR                output folder, created with its parents if needed\n"
    "                           (scripts/gen-data's default: build/demo-data)\n"
    "  --bad                    append malformed rows and lines, for tests\n"
    "  --json                   print what was written as one JSON object on stdout\n"
    "\n"
    "customers.csv: header\n"
    "  external_id,email,phone,first_name,last_name,country,timezone,\n"
    "  birth_date:timestamp,signup_at:timestamp,consent.email,consent.sms\n"
    "  External ids CUS-000001...; nine countries (FR, DE, GB, US, ES, IT, NL, CA, CH)\n"
    "  with their time zones, names and mobile numbers; sign-ups over the 3 years before\n"
    "  --now, more of them recent; ages 18-80 (3% blank); consent yes/no (email 70% yes,\n"
    "  SMS 40% yes, 4% blank). Dirty on purpose, for the import path: 3% of emails typed\n"
    "  with capitals and blanks, 1% placeholders ('unknown', 'n/a', empty...), 0.5%\n"
    "  duplicate people (a later row, another external id, the same email), 6% of\n"
    "  phones typed with blanks, dots or brackets, 2% without a phone.\n"
    "\n"
    "events.jsonl: one JSON object a line, sorted by occurred_at:\n"
    "  {\"id\":\"evt-...\",\"type\":...,\"external_id\":\"CUS-...\",\"occurred_at\":\"...Z\",\n"
    "   \"source\":...,\"properties\":{...}}\n"
    "  page.viewed (path, referrer), order.placed (order_id, amount in minor units,\n"
    "  currency EUR/GBP/USD/CAD/CHF by country, 3% another one, items, channel),\n"
    "  order.refunded (8% of orders, 30% of those partly, within a month),\n"
    "  email.opened and email.clicked (campaign, message_id, url), support.ticket_opened\n"
    "  (channel, topic). Activity is skewed (a Pareto share per customer: a few make\n"
    "  many of the events, one in eight none) and follows the calendar (busier in\n"
    "  November and December, on weekends and in the evening, in the customer's time\n"
    "  zone). 5% of orders name the customer by email; 2% of the events are page\n"
    "  views by anonymous visitors (anonymous_id); 0.2% of lines repeat the line before them\n"
    "  (the same event id delivered twice).\n"
    "\n"
    "--bad appends malformed rows to both files (bad email, phone, dates, consent,\n"
    "column counts, an unterminated quote; broken JSON, missing type, bad time, bad\n"
    "properties, an unknown field, a blank line).\n";

static int parse_long(const char *opt, const char *v, long *out) {
  char *end;
  errno = 0;
  long n = v ? strtol(v, &end, 10) : -1;
  if (!v || errno || *end || n < 0) {
    fprintf(stderr, "gen-data: %s needs a number >= 0, got '%s'\n", opt, v ? v : "");
    return -1;
  }
  *out = n;
  return 0;
}

static int parse_time(const char *v, int64_t *out) {
  struct tm tm = {0};
  const char *end = v ? strptime(v, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
  if (!end || *end) {
    memset(&tm, 0, sizeof tm);
    end = v ? strptime(v, "%Y-%m-%d", &tm) : NULL;
  }
  if (!end || *end) {
    fprintf(stderr, "gen-data: --now: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ, got '%s'\n",
            v ? v : "");
    return -1;
  }
  *out = (int64_t)timegm(&tm);
  return 0;
}

/* mkdir -p */
static int make_dirs(const char *path) {
  char p[4096];
  if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *s = p + 1; *s; s++) {
    if (*s != '/') continue;
    *s = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST) return -1;
    *s = '/';
  }
  return mkdir(p, 0777) != 0 && errno != EEXIST ? -1 : 0;
}

static FILE *open_out(const char *dir, const char *file, char *path, size_t size) {
  snprintf(path, size, "%s/%s", dir, file);
  FILE *f = fopen(path, "w");
  if (!f) fprintf(stderr, "gen-data: %s: %s\n", path, strerror(errno));
  else setvbuf(f, NULL, _IOFBF, 1 << 20);
  return f;
}

static int close_out(FILE *f, const char *path) {
  if (ferror(f) | fclose(f)) {
    fprintf(stderr, "gen-data: writing %s: %s\n", path, strerror(errno));
    return -1;
  }
  return 0;
}

int main(int argc, char **argv) {
  gen g = {0};
  g.seed = 42;
  g.n_customers = 1000000;
  long events = -1, per_customer = -1, seed = 42;
  const char *out = NULL;
  int json = 0;
  if (parse_time("2026-11-01", &g.now)) return 2;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    int rc = 0;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      fputs(USAGE, stdout);
      return 0;
    } else if (!strcmp(a, "--customers")) rc = parse_long(a, v, &g.n_customers), i++;
    else if (!strcmp(a, "--events")) rc = parse_long(a, v, &events), i++;
    else if (!strcmp(a, "--events-per-customer")) rc = parse_long(a, v, &per_customer), i++;
    else if (!strcmp(a, "--seed")) rc = parse_long(a, v, &seed), i++;
    else if (!strcmp(a, "--now")) rc = parse_time(v, &g.now), i++;
    else if (!strcmp(a, "--out")) {
      if (!v) rc = -1, fprintf(stderr, "gen-data: --out needs a folder\n");
      out = v, i++;
    } else if (!strcmp(a, "--bad")) g.bad = 1;
    else if (!strcmp(a, "--json")) json = 1;
    else {
      fprintf(stderr, "gen-data: unknown argument '%s' (see --help)\n", a);
      return 2;
    }
    if (rc) return 2;
  }
  if (events >= 0 && per_customer >= 0) {
    fprintf(stderr, "gen-data: give --events or --events-per-customer, not both\n");
    return 2;
  }
  if (!out) {
    fprintf(stderr, "gen-data: --out DIR is needed (see --help)\n");
    return 2;
  }
  /* Records are 32 bytes each and numbered in 32 bits. */
  if (g.n_customers > 100000000 || per_customer > 10000 || events > 2000000000 ||
      (per_customer >= 0 && g.n_customers * per_customer > 2000000000)) {
    fprintf(stderr, "gen-data: at most 100,000,000 customers and 2,000,000,000 events\n");
    return 2;
  }
  g.n_events_wanted = events >= 0 ? events : g.n_customers * (per_customer >= 0 ? per_customer : 10);
  g.seed = (uint64_t)seed;
  g.progress = isatty(2);
  g.width = 6;
  for (long n = g.n_customers; n >= 1000000; n /= 10) g.width++;
  if (make_dirs(out)) {
    fprintf(stderr, "gen-data: %s: %s\n", out, strerror(errno));
    return 1;
  }
  g.cust = calloc((size_t)g.n_customers + 1, sizeof *g.cust);
  if (!g.cust || set_init(&g.email_set, (size_t)g.n_customers) ||
      set_init(&g.phone_set, (size_t)g.n_customers)) {
    fprintf(stderr, "gen-data: out of memory\n");
    return 1;
  }
  char cpath[4096], epath[4096];
  FILE *f = open_out(out, "customers.csv", cpath, sizeof cpath);
  if (!f) return 1;
  int rc = fprintf(f, "%s\n", HEADER) < 0 ? -1 : 0;
  for (long i = 0; rc == 0 && i < g.n_customers; i++) {
    rc = write_customer(&g, i, f);
    if (g.progress && i % 100000 == 0)
      fprintf(stderr, "\rgen-data: customers %ld/%ld", i, g.n_customers);
  }
  for (int k = 0; rc == 0 && g.bad && k < COUNT(BAD_CUSTOMER_ROWS); k++)
    rc = fputs(BAD_CUSTOMER_ROWS[k], f) < 0 ? -1 : 0;
  if (rc) fprintf(stderr, "gen-data: writing %s: %s\n", cpath, strerror(errno));
  if (close_out(f, cpath) || rc) return 1;
  free(g.email_set.slot);
  free(g.phone_set.slot);

  evs e = {0};
  if (draw_events(&g, &e)) {
    fprintf(stderr, "gen-data: out of memory drawing %ld events\n", g.n_events_wanted);
    return 1;
  }
  if (!(f = open_out(out, "events.jsonl", epath, sizeof epath))) return 1;
  rc = write_events(&g, &e, f);
  for (int k = 0; rc == 0 && g.bad && k < COUNT(BAD_EVENT_LINES); k++)
    rc = fputs(BAD_EVENT_LINES[k], f) < 0 ? -1 : 0;
  if (rc) fprintf(stderr, "gen-data: writing %s: %s\n", epath, strerror(errno));
  if (close_out(f, epath) || rc) return 1;
  if (g.progress) fprintf(stderr, "\r%60s\r", "");

  char currencies[256] = "";
  size_t o = 0;
  for (int k = 0; k < COUNT(CURRENCIES); k++)
    o += (size_t)snprintf(currencies + o, sizeof currencies - o, "%s\"%s\": %ld", k ? ", " : "",
                          CURRENCIES[k], g.per_currency[k]);
  fprintf(stderr,
          "gen-data: wrote %ld customers (%ld duplicate people, %ld placeholder emails, %ld messy "
          "emails, %ld formatted phones) to %s and %ld events (%ld orders, %ld refunds, %ld "
          "anonymous, %ld repeated ids) to %s; seed %" PRIu64 "%s\n",
          g.n_customers, g.dups, g.placeholders, g.messy, g.formatted_phones, cpath, g.events,
          g.orders, g.refunds, g.anonymous, g.repeats, epath, g.seed,
          g.bad ? ", plus malformed rows and lines" : "");
  if (json)
    printf("{\"customers\": %ld, \"duplicates\": %ld, \"placeholder_emails\": %ld, "
           "\"messy_emails\": %ld, \"formatted_phones\": %ld, \"no_phone\": %ld, "
           "\"no_birth_date\": %ld, \"events\": %ld, \"orders\": %ld, \"refunds\": %ld, "
           "\"orders_by_currency\": {%s}, \"anonymous_events\": %ld, \"events_by_email\": %ld, "
           "\"repeated_ids\": %ld, \"bad\": %s, \"seed\": %" PRIu64 "}\n",
           g.n_customers, g.dups, g.placeholders, g.messy, g.formatted_phones, g.no_phone,
           g.no_birth, g.events, g.orders, g.refunds, currencies, g.anonymous, g.by_email,
           g.repeats, g.bad ? "true" : "false", g.seed);
  free(e.v);
  free(g.cust);
  free(g.emails);
  return 0;
}
