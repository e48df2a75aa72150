/* The clock: ISO 8601 and durations in, ISO 8601 out, the fake clock. */
#include "clock.h"
#include "test.h"

static void test_parse_times(void) {
  static const struct {
    const char *text;
    int64_t ms;
  } ok[] = {
      {"2026-01-01T00:00:00Z", 1767225600000LL},
      {"2026-01-01T00:00:00.250Z", 1767225600250LL},
      {"2026-01-01T02:00:00+02:00", 1767225600000LL},
      {"2025-12-31T19:00:00-05:00", 1767225600000LL},
      {"2026-01-01T00:00:00", 1767225600000LL}, /* no offset: UTC */
      {"2026-01-01", 1767225600000LL},
      {"2024-02-29T12:00:00Z", 1709208000000LL},
      {"1767225600000", 1767225600000LL},
      {"1969-12-31T23:59:59Z", -1000},
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int64_t ms = 0;
    if (rp_clock_parse(ok[i].text, &ms) != 0) fprintf(stderr, "refused %s\n", ok[i].text);
    ASSERT_EQ(rp_clock_parse(ok[i].text, &ms), 0);
    ASSERT_EQ(ms, ok[i].ms);
  }
  static const char *const bad[] = {"",           "yesterday",          "2026-13-01",
                                    "2026-02-30", "2025-02-29",         "2026-01-01T25:00:00Z",
                                    "2026-01-01T10:61:00Z", "2026-01-01T10:00:00+2", "12ab",
                                    "2026-01-01T10:00:00Zjunk"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t ms;
    if (rp_clock_parse(bad[i], &ms) == 0) fprintf(stderr, "accepted %s\n", bad[i]);
    ASSERT_EQ(rp_clock_parse(bad[i], &ms), -1);
  }
}

static void test_format_round_trip(void) {
  char buf[32];
  rp_clock_format_iso(1767225600250LL, buf, sizeof buf);
  ASSERT_STR_EQ(buf, "2026-01-01T00:00:00.250Z");
  int64_t samples[] = {0, 1, 951782400123LL, 1709208000000LL, 4102444799999LL};
  for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
    int64_t back = -1;
    rp_clock_format_iso(samples[i], buf, sizeof buf);
    ASSERT_EQ(rp_clock_parse(buf, &back), 0);
    ASSERT_EQ(back, samples[i]);
  }
}

static void test_durations(void) {
  static const struct {
    const char *text;
    int64_t ms;
  } ok[] = {{"500ms", 500},       {"30s", 30000},        {"15m", 900000}, {"2h", 7200000},
            {"3d", 259200000LL},  {"1w", 604800000LL},   {"1234", 1234}};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    int64_t ms = 0;
    ASSERT_EQ(rp_clock_parse_duration(ok[i].text, &ms), 0);
    ASSERT_EQ(ms, ok[i].ms);
  }
  static const char *const bad[] = {"", "0", "0s", "-5m", "5x", "m", "1.5h",
                                    "99999999999999999999d"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t ms;
    if (rp_clock_parse_duration(bad[i], &ms) == 0) fprintf(stderr, "accepted %s\n", bad[i]);
    ASSERT_EQ(rp_clock_parse_duration(bad[i], &ms), -1);
  }
}

static void test_fake_clock(void) {
  rp_clock_clear_fake();
  ASSERT(!rp_clock_is_fake());
  int64_t wall = rp_clock_wall_ms();
  ASSERT(rp_clock_now_ms() >= wall);
  rp_clock_set_fake(1000);
  ASSERT(rp_clock_is_fake());
  ASSERT_EQ(rp_clock_now_ms(), 1000);
  rp_clock_advance(250);
  ASSERT_EQ(rp_clock_now_ms(), 1250);
  rp_clock_clear_fake();
  ASSERT(rp_clock_now_ms() >= wall);
  uint64_t a = rp_clock_mono_ns(), b = rp_clock_mono_ns();
  ASSERT(b >= a);
}

RP_TEST_LIST{
    RP_TEST(parse_times),
    RP_TEST(format_round_trip),
    RP_TEST(durations),
    RP_TEST(fake_clock),
    RP_TEST_END,
};
