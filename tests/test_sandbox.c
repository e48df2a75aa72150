/* Unit tests of the sandbox: limits, stripped libraries, tasks. */
#include <lauxlib.h>
#include <string.h>

#include "sandbox.h"
#include "test.h"

static rp_sandbox *make(int64_t cap) {
  rp_sandbox *sb;
  rp_err err;
  rp_err_clear(&err);
  ASSERT_EQ(rp_sandbox_new("t", NULL, cap, &sb, &err), RP_OK);
  return sb;
}

/* Runs code; returns the status and leaves err filled. */
static int run(rp_sandbox *sb, const char *code, int64_t budget, rp_err *err) {
  rp_err_clear(err);
  int rc = rp_sandbox_load(sb, code, strlen(code), "=test", err);
  if (rc) return rc;
  return rp_sandbox_call(sb, 0, 0, budget, "test", err);
}

static void test_infinite_loop_stopped(void) {
  rp_sandbox *sb = make(64 << 20);
  rp_err err;
  ASSERT_EQ(run(sb, "while true do end", 1000000, &err), RP_ELIMIT);
  ASSERT_CONTAINS(err.msg, "instruction budget of 1000000 exceeded");
  /* The state stays usable afterwards. */
  ASSERT_EQ(run(sb, "local x = 1 + 1", 1000000, &err), RP_OK);
  rp_sandbox_free(sb);
}

static void test_pcall_cannot_swallow_the_budget(void) {
  rp_sandbox *sb = make(64 << 20);
  rp_err err;
  ASSERT_EQ(run(sb, "for i = 1, 100 do pcall(function() while true do end end) end", 2000000,
                &err), RP_ELIMIT);
  ASSERT_CONTAINS(err.msg, "instruction budget");
  rp_sandbox_free(sb);
}

static void test_unbounded_allocation_stopped(void) {
  rp_sandbox *sb = make(8 << 20);
  rp_err err;
  ASSERT_EQ(run(sb, "local t = {} for i = 1, 1e9 do t[i] = ('x'):rep(100) .. i end", 0, &err),
            RP_ELIMIT);
  ASSERT_CONTAINS(err.msg, "memory limit of 8 MiB exceeded");
  /* The garbage is collectable: the state recovers. */
  ASSERT_EQ(run(sb, "collectgarbage() local s = ('y'):rep(1000)", 0, &err), RP_OK);
  ASSERT(rp_sandbox_memory(sb) < (8 << 20));
  rp_sandbox_free(sb);
}

static void test_pcall_cannot_swallow_memory_errors(void) {
  rp_sandbox *sb = make(8 << 20);
  rp_err err;
  ASSERT_EQ(run(sb,
                "local keep = {}\n"
                "for i = 1, 50 do pcall(function() local t = {} for j = 1, 1e9 do t[j] = j end "
                "end) end\n",
                0, &err),
            RP_ELIMIT);
  ASSERT_CONTAINS(err.msg, "memory limit");
  rp_sandbox_free(sb);
}

static void test_dangerous_libraries_absent(void) {
  rp_sandbox *sb = make(64 << 20);
  rp_err err;
  ASSERT_EQ(run(sb, "os.execute('touch /tmp/rapport_pwned')", 0, &err), RP_EPLUGIN);
  ASSERT_CONTAINS(err.msg, "execute");
  static const char *const absent[] = {
      "assert(io == nil)",          "assert(debug == nil)",        "assert(package == nil)",
      "assert(dofile == nil)",      "assert(loadfile == nil)",     "assert(os.execute == nil)",
      "assert(os.getenv == nil)",   "assert(os.remove == nil)",    "assert(os.exit == nil)",
      "assert(string.dump == nil)", "assert(os.time() > 0)",       "assert(os.clock() >= 0)",
      "assert(os.date('!%Y', 0) == '1970')", NULL};
  for (int i = 0; absent[i]; i++) {
    if (run(sb, absent[i], 0, &err) != RP_OK) {
      fprintf(stderr, "%s: %s\n", absent[i], err.msg);
      ASSERT(0);
    }
  }
  rp_sandbox_free(sb);
}

static void test_bytecode_refused(void) {
  rp_sandbox *sb = make(64 << 20);
  rp_err err;
  /* A binary chunk starts with "\27Lua": load must refuse it whatever the mode. */
  ASSERT_EQ(run(sb,
                "local f, e = load('\\27Lua\\84\\0', 'x', 'b')\n"
                "assert(f == nil and e:find('binary'), e)\n"
                "local g, e2 = load('\\27Lua\\84\\0')\n"
                "assert(g == nil and e2:find('binary'), e2)\n"
                "local h = load('return 7') assert(h() == 7)",
                0, &err),
            RP_OK);
  /* The host's own loader refuses bytecode too. */
  const char bin[] = "\x1bLua\x54\x00";
  ASSERT(rp_sandbox_load(sb, bin, sizeof bin - 1, "=bin", &err) != RP_OK);
  rp_sandbox_free(sb);
}

static void test_require_confined(void) {
  rp_sandbox *sb;
  rp_err err;
  rp_err_clear(&err);
  ASSERT_EQ(rp_sandbox_new("t", "/nonexistent-root", 64 << 20, &sb, &err), RP_OK);
  ASSERT_EQ(run(sb, "require('../../etc/passwd')", 0, &err), RP_EPLUGIN);
  ASSERT_CONTAINS(err.msg, "bad module name");
  ASSERT_EQ(run(sb, "require('os')", 0, &err), RP_EPLUGIN);
  ASSERT_CONTAINS(err.msg, "require 'os'");
  rp_sandbox_free(sb);
}

static void test_locked_globals(void) {
  rp_sandbox *sb = make(64 << 20);
  rp_err err;
  ASSERT_EQ(run(sb, "helper = 1", 0, &err), RP_OK);
  rp_sandbox_lock_globals(sb);
  ASSERT_EQ(run(sb, "oops = 2", 0, &err), RP_EPLUGIN);
  ASSERT_CONTAINS(err.msg, "assignment to undeclared global 'oops'");
  ASSERT_EQ(run(sb, "local x = undefined_thing", 0, &err), RP_EPLUGIN);
  ASSERT_CONTAINS(err.msg, "undeclared global 'undefined_thing'");
  ASSERT_EQ(run(sb, "helper = 3", 0, &err), RP_OK);
  ASSERT_EQ(run(sb, "setmetatable(_G, nil)", 0, &err), RP_EPLUGIN);
  rp_sandbox_free(sb);
}

static void test_traceback_kept(void) {
  rp_sandbox *sb = make(64 << 20);
  rp_err err;
  ASSERT_EQ(run(sb, "local function inner() error('boom') end\nlocal function outer() inner() "
                    "end\nouter()", 0, &err), RP_EPLUGIN);
  ASSERT_CONTAINS(err.msg, "plugin 't' test: test:1: boom");
  ASSERT_CONTAINS(rp_sandbox_traceback(sb), "inner");
  ASSERT_CONTAINS(rp_sandbox_traceback(sb), "outer");
  rp_sandbox_free(sb);
}

static void test_task_is_time_sliced(void) {
  rp_sandbox *sb = make(64 << 20);
  rp_err err;
  rp_err_clear(&err);
  const char *code = "local n = 0 for i = 1, 3e7 do n = n + i end done_sum = n";
  ASSERT_EQ(rp_sandbox_load(sb, code, strlen(code), "=task", &err), RP_OK);
  rp_task *t;
  ASSERT_EQ(rp_task_new(sb, 0, 0, "task", &t, &err), RP_OK);
  int rc, steps = 0;
  while ((rc = rp_task_resume(t, 1, NULL, NULL, &err)) == RP_TASK_YIELDED) steps++;
  ASSERT_EQ(rc, RP_OK);
  /* 3e7 iterations take far more than one 1 ms slice on any machine. */
  ASSERT(steps >= 2);
  ASSERT_EQ(rp_task_slices(t), steps + 1);
  rp_task_free(t);
  lua_State *L = rp_sandbox_lua(sb);
  lua_getglobal(L, "done_sum");
  ASSERT_EQ(lua_tointeger(L, -1), 450000015000000LL);
  lua_pop(L, 1);
  rp_sandbox_free(sb);
}

static int never(void *ctx) {
  (void)ctx;
  return 0;
}

static void test_task_not_yielded_when_refused(void) {
  rp_sandbox *sb = make(64 << 20);
  rp_err err;
  rp_err_clear(&err);
  const char *code = "local n = 0 for i = 1, 5e6 do n = n + i end";
  ASSERT_EQ(rp_sandbox_load(sb, code, strlen(code), "=task", &err), RP_OK);
  rp_task *t;
  ASSERT_EQ(rp_task_new(sb, 0, 0, "task", &t, &err), RP_OK);
  ASSERT_EQ(rp_task_resume(t, 1, never, NULL, &err), RP_OK);
  ASSERT_EQ(rp_task_slices(t), 1);
  rp_task_free(t);
  rp_sandbox_free(sb);
}

static void test_task_budget_spans_slices(void) {
  rp_sandbox *sb = make(64 << 20);
  rp_err err;
  rp_err_clear(&err);
  const char *code = "while true do end";
  ASSERT_EQ(rp_sandbox_load(sb, code, strlen(code), "=task", &err), RP_OK);
  rp_task *t;
  ASSERT_EQ(rp_task_new(sb, 0, 20000000, "job", &t, &err), RP_OK);
  int rc;
  while ((rc = rp_task_resume(t, 1, NULL, NULL, &err)) == RP_TASK_YIELDED) {
  }
  ASSERT_EQ(rc, RP_ELIMIT);
  ASSERT_CONTAINS(err.msg, "instruction budget of 20000000 exceeded");
  rp_task_free(t);
  rp_sandbox_free(sb);
}

static void test_tiny_memory_cap_fails_cleanly(void) {
  rp_sandbox *sb = NULL;
  rp_err err;
  rp_err_clear(&err);
  ASSERT(rp_sandbox_new("tiny", NULL, 4096, &sb, &err) != RP_OK);
  ASSERT(sb == NULL);
  ASSERT_CONTAINS(err.msg, "tiny");
}

RP_TEST_LIST{
    RP_TEST(infinite_loop_stopped),
    RP_TEST(pcall_cannot_swallow_the_budget),
    RP_TEST(unbounded_allocation_stopped),
    RP_TEST(pcall_cannot_swallow_memory_errors),
    RP_TEST(dangerous_libraries_absent),
    RP_TEST(bytecode_refused),
    RP_TEST(require_confined),
    RP_TEST(locked_globals),
    RP_TEST(traceback_kept),
    RP_TEST(task_is_time_sliced),
    RP_TEST(task_not_yielded_when_refused),
    RP_TEST(task_budget_spans_slices),
    RP_TEST(tiny_memory_cap_fails_cleanly),
    RP_TEST_END,
};
