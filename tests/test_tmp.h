/* test_tmp.h: one temporary folder per test executable, removed with all it
 * holds when the executable exits (header-only, like test.h). A test file
 * that includes it defines _XOPEN_SOURCE 700 first (for nftw). */
#ifndef RP_TEST_TMP_H
#define RP_TEST_TMP_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "test.h"

static char test_tmp_path[256];

static inline int test_tmp_remove(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(p);
}

static inline void test_tmp_cleanup(void) {
  if (test_tmp_path[0]) nftw(test_tmp_path, test_tmp_remove, 16, FTW_DEPTH | FTW_PHYS);
}

/* The folder, made on first use. */
static inline const char *test_tmp_dir(void) {
  if (!test_tmp_path[0]) {
    snprintf(test_tmp_path, sizeof test_tmp_path, "/tmp/rp_test_XXXXXX");
    ASSERT(mkdtemp(test_tmp_path) != NULL);
    atexit(test_tmp_cleanup);
  }
  return test_tmp_path;
}

#endif
