/* test.h: the tiny unit test harness of Rapport (in the spirit of libuv's).
 *
 * A test file defines `static void test_x(void)` functions and lists them in
 * RP_TEST_LIST at its end; each file is one executable and one ctest entry.
 * ASSERT* print the file, line and values, then abort the whole file: a
 * failed assertion is never swallowed. `./test_x name` runs one test. */
#ifndef RP_TEST_H
#define RP_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSERT(expr)                                                          \
  do {                                                                        \
    if (!(expr)) {                                                            \
      fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #expr); \
      abort();                                                                \
    }                                                                         \
  } while (0)

#define ASSERT_EQ(a, b)                                                       \
  do {                                                                        \
    long long a_ = (long long)(a), b_ = (long long)(b);                       \
    if (a_ != b_) {                                                           \
      fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__,     \
              __LINE__, #a, #b, a_, b_);                                      \
      abort();                                                                \
    }                                                                         \
  } while (0)

#define ASSERT_STR_EQ(a, b)                                                   \
  do {                                                                        \
    const char *a_ = (a), *b_ = (b);                                          \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                  \
      fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, \
              __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");      \
      abort();                                                                \
    }                                                                         \
  } while (0)

/* Asserts that haystack contains needle. */
#define ASSERT_CONTAINS(haystack, needle)                                     \
  do {                                                                        \
    const char *h_ = (haystack), *n_ = (needle);                              \
    if (!h_ || !strstr(h_, n_)) {                                             \
      fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__,    \
              __LINE__, h_ ? h_ : "(null)", n_);                              \
      abort();                                                                \
    }                                                                         \
  } while (0)

typedef struct rp_test {
  const char *name;
  void (*fn)(void);
} rp_test;

/* Usage at the end of a test file:
 *   RP_TEST_LIST { RP_TEST(parse_basic), RP_TEST(parse_errors), RP_TEST_END };
 */
#define RP_TEST(fn) {#fn, test_##fn}
#define RP_TEST_END {NULL, NULL}
#define RP_TEST_LIST                                                          \
  static const rp_test rp_tests[];                                            \
  int main(int argc, char **argv) {                                           \
    int ran = 0;                                                              \
    for (const rp_test *t = rp_tests; t->name; t++) {                         \
      if (argc > 1 && strcmp(argv[1], t->name) != 0) continue;                \
      fprintf(stderr, "-- %s\n", t->name);                                    \
      t->fn();                                                                \
      ran++;                                                                  \
    }                                                                         \
    if (ran == 0) {                                                           \
      fprintf(stderr, "no test named %s\n", argc > 1 ? argv[1] : "");         \
      return 1;                                                               \
    }                                                                         \
    printf("%d passed, 0 failed\n", ran);                                     \
    return 0;                                                                 \
  }                                                                           \
  static const rp_test rp_tests[] =

#endif
