/* Normalisation of identity values, attribute names, booleans and money. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "normalize.h"
#include "test.h"

static void expect_email(const char *in, const char *want) {
  char out[RP_NORM_BUF];
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_norm_email(in, out, sizeof out, &err);
  if (rc != RP_OK) fprintf(stderr, "email \"%s\": %s\n", in, err.msg);
  ASSERT_EQ(rc, RP_OK);
  ASSERT_STR_EQ(out, want);
}

static void refuse_email(const char *in, const char *says) {
  char out[RP_NORM_BUF];
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_norm_email(in, out, sizeof out, &err);
  if (rc != RP_EINVAL) fprintf(stderr, "accepted email \"%s\" as \"%s\"\n", in, out);
  ASSERT_EQ(rc, RP_EINVAL);
  ASSERT(err.msg[0]);
  if (says) ASSERT_CONTAINS(err.msg, says);
}

static void test_emails(void) {
  expect_email("  Ana.Lopez@Example.COM \t", "ana.lopez@example.com");
  expect_email("a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk");
  expect_email("x@a-b.io", "x@a-b.io");
  refuse_email("ana.example.com", "@");
  refuse_email("ana@@example.com", NULL);
  refuse_email("@example.com", NULL);
  refuse_email("ana@", NULL);
  refuse_email("ana@localhost", NULL);
  refuse_email("an a@example.com", NULL);
  refuse_email("ana@-example.com", NULL);
  refuse_email("ana@example-.com", NULL);
  refuse_email("", NULL);
  char longer[300];
  memset(longer, 'a', 250);
  strcpy(longer + 250, "@example.com");
  refuse_email(longer, NULL);
}

static void expect_phone(const char *in, const char *country, const char *want) {
  char out[RP_NORM_BUF];
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_norm_phone(in, country, out, sizeof out, &err);
  if (rc != RP_OK) fprintf(stderr, "phone \"%s\" (%s): %s\n", in, country ? country : "-", err.msg);
  ASSERT_EQ(rc, RP_OK);
  ASSERT_STR_EQ(out, want);
}

static void refuse_phone(const char *in, const char *country) {
  char out[RP_NORM_BUF];
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_norm_phone(in, country, out, sizeof out, &err);
  if (rc != RP_EINVAL) fprintf(stderr, "accepted phone \"%s\" as \"%s\"\n", in, out);
  ASSERT_EQ(rc, RP_EINVAL);
  ASSERT(err.msg[0]);
}

static void test_phones(void) {
  expect_phone("06 12 34 56 78", "FR", "+33612345678");
  expect_phone("06.12.34.56.78", "fr", "+33612345678");
  expect_phone("+33 6 12 34 56 78", NULL, "+33612345678");
  expect_phone("0033 6 12 34 56 78", NULL, "+33612345678");
  expect_phone("+1 (415) 555-2671", NULL, "+14155552671");
  expect_phone("(415) 555-2671", "US", "+14155552671");
  expect_phone("07400 123456", "GB", "+447400123456");
  /* A national number needs a default country. */
  refuse_phone("06 12 34 56 78", NULL);
  refuse_phone("+33 6 12 ab 56 78", NULL);
  refuse_phone("+1234", NULL);               /* too short */
  refuse_phone("+1234567890123456", NULL);   /* more than 15 digits */
  refuse_phone("", "FR");
  int code = 0;
  ASSERT_EQ(rp_norm_calling_code("fr", &code), RP_OK);
  ASSERT_EQ(code, 33);
  ASSERT_EQ(rp_norm_calling_code("US", &code), RP_OK);
  ASSERT_EQ(code, 1);
  ASSERT_EQ(rp_norm_calling_code("XX", &code), RP_ENOTFOUND);
}

static void test_placeholders(void) {
  static const char *const built_in[] = {"", "null", "NULL", "None", "unknown", "n/a",
                                         "0", "-1", "test@test.com", "TEST@TEST.COM"};
  for (size_t i = 0; i < sizeof built_in / sizeof built_in[0]; i++)
    ASSERT(rp_norm_is_placeholder(NULL, built_in[i]));
  ASSERT(!rp_norm_is_placeholder(NULL, "ana@example.com"));
  ASSERT(!rp_norm_is_placeholder(NULL, "00"));
  ASSERT(!rp_norm_is_placeholder(NULL, "nullable"));

  /* Configured ones, from a settings file (compared case-insensitively). */
  char path[] = "/tmp/rapport-norm-XXXXXX";
  int fd = mkstemp(path);
  ASSERT(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fputs("{\"placeholders\": [\"NoReply@Example.com\", \"CUSTOMER\"]}", f);
  fclose(f);
  rp_config *cfg;
  rp_err err;
  ASSERT_EQ(rp_config_load(path, &cfg, &err), RP_OK);
  unlink(path);
  ASSERT(rp_norm_is_placeholder(cfg, "noreply@example.com"));
  ASSERT(rp_norm_is_placeholder(cfg, "customer"));
  ASSERT(!rp_norm_is_placeholder(NULL, "noreply@example.com"));

  /* Through rp_norm_identity: a placeholder is flagged, not refused, even when
   * it would be invalid for its kind. */
  char out[RP_NORM_BUF];
  int ph = 0;
  ASSERT_EQ(rp_norm_identity(cfg, "email", " NoReply@Example.com ", out, sizeof out, &ph, &err),
            RP_OK);
  ASSERT(ph);
  ASSERT_STR_EQ(out, "NoReply@Example.com"); /* recognised before normalising: trimmed */
  ph = 0;
  ASSERT_EQ(rp_norm_identity(cfg, "email", "noreply@EXAMPLE.com", out, sizeof out, &ph, &err),
            RP_OK);
  ASSERT(ph);
  ph = 0;
  ASSERT_EQ(rp_norm_identity(cfg, "email", "n/a", out, sizeof out, &ph, &err), RP_OK);
  ASSERT(ph);
  ph = 1;
  ASSERT_EQ(rp_norm_identity(cfg, "external_id", "  CRM-7 ", out, sizeof out, &ph, &err), RP_OK);
  ASSERT(!ph);
  ASSERT_STR_EQ(out, "CRM-7"); /* external ids keep their case */
  rp_config_free(cfg);
}

static void test_identity_kinds(void) {
  rp_err err;
  ASSERT_EQ(rp_norm_kind("email", &err), RP_OK);
  ASSERT_EQ(rp_norm_kind("loyalty_card", &err), RP_OK);
  ASSERT_EQ(rp_norm_kind("Loyalty", &err), RP_EINVAL);
  ASSERT_EQ(rp_norm_kind("", &err), RP_EINVAL);
  ASSERT_EQ(rp_norm_kind("a-b", &err), RP_EINVAL);
  ASSERT_EQ(rp_norm_kind("k23456789012345678901234567890123", &err), RP_EINVAL);

  char out[RP_NORM_BUF];
  int ph;
  ASSERT_EQ(rp_norm_identity(NULL, "phone", "06 12 34 56 78", out, sizeof out, &ph, &err),
            RP_EINVAL); /* no default country */
  ASSERT_STR_EQ(err.field, "phone");
  ASSERT_EQ(rp_norm_identity(NULL, "email", "not-an-email", out, sizeof out, &ph, &err),
            RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "not-an-email");
}

static void test_attribute_names_and_booleans(void) {
  rp_err err;
  ASSERT_EQ(rp_norm_attr_name("first_name", &err), RP_OK);
  ASSERT_EQ(rp_norm_attr_name("a1", &err), RP_OK);
  ASSERT_EQ(rp_norm_attr_name("1a", &err), RP_EINVAL);
  ASSERT_EQ(rp_norm_attr_name("First", &err), RP_EINVAL);
  ASSERT_EQ(rp_norm_attr_name("", &err), RP_EINVAL);

  static const struct {
    const char *text;
    int value;
  } ok[] = {{"yes", 1}, {" TRUE ", 1}, {"1", 1}, {"y", 1}, {"No", 0}, {"false", 0}, {"0", 0},
            {"n", 0}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int v = -1;
    ASSERT_EQ(rp_norm_bool(ok[i].text, "vip", &v, &err), RP_OK);
    ASSERT_EQ(v, ok[i].value);
  }
  int v;
  ASSERT_EQ(rp_norm_bool("maybe", "vip", &v, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "vip");
}

static void test_money(void) {
  rp_err err;
  int64_t minor;
  char cur[4];
  ASSERT_EQ(rp_norm_money("123.45 EUR", NULL, "ltv", &minor, cur, &err), RP_OK);
  ASSERT_EQ(minor, 12345);
  ASSERT_STR_EQ(cur, "EUR");
  ASSERT_EQ(rp_norm_money("EUR 7", NULL, "ltv", &minor, cur, &err), RP_OK);
  ASSERT_EQ(minor, 700);
  ASSERT_EQ(rp_norm_money("-5", "usd", "ltv", &minor, cur, &err), RP_OK);
  ASSERT_EQ(minor, -500);
  ASSERT_STR_EQ(cur, "USD");
  ASSERT_EQ(rp_norm_money("1234.5", "EUR", "ltv", &minor, cur, &err), RP_OK);
  ASSERT_EQ(minor, 123450);
  ASSERT_EQ(rp_norm_money("1500 JPY", NULL, "ltv", &minor, cur, &err), RP_OK);
  ASSERT_EQ(minor, 1500);
  ASSERT_EQ(rp_norm_money("1.234 KWD", NULL, "ltv", &minor, cur, &err), RP_OK);
  ASSERT_EQ(minor, 1234);
  /* Never rounded: too many decimals is refused. */
  ASSERT_EQ(rp_norm_money("12.345 EUR", NULL, "ltv", &minor, cur, &err), RP_EINVAL);
  ASSERT_CONTAINS(err.msg, "ltv");
  ASSERT_EQ(rp_norm_money("12.5 JPY", NULL, "ltv", &minor, cur, &err), RP_EINVAL);
  ASSERT_EQ(rp_norm_money("12 EUR", "USD", "ltv", &minor, cur, &err), RP_EINVAL);
  ASSERT_EQ(rp_norm_money("12", NULL, "ltv", &minor, cur, &err), RP_EINVAL); /* no currency */
  ASSERT_EQ(rp_norm_money("abc EUR", NULL, "ltv", &minor, cur, &err), RP_EINVAL);
  ASSERT_EQ(rp_norm_money("99999999999999999999 EUR", NULL, "ltv", &minor, cur, &err),
            RP_EINVAL);
  int e;
  ASSERT_EQ(rp_norm_currency_exponent("JPY", &e, &err), RP_OK);
  ASSERT_EQ(e, 0);
  ASSERT_EQ(rp_norm_currency_exponent("BHD", &e, &err), RP_OK);
  ASSERT_EQ(e, 3);
  ASSERT_EQ(rp_norm_currency_exponent("EUR", &e, &err), RP_OK);
  ASSERT_EQ(e, 2);
  ASSERT_EQ(rp_norm_currency_exponent("eu", &e, &err), RP_EINVAL);
}

RP_TEST_LIST{
    RP_TEST(emails),
    RP_TEST(phones),
    RP_TEST(placeholders),
    RP_TEST(identity_kinds),
    RP_TEST(attribute_names_and_booleans),
    RP_TEST(money),
    RP_TEST_END,
};
