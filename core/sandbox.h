/* sandbox: one Lua 5.4 state with limits, for one plugin or one operator
 * session.
 *
 * The sandbox owns its lua_State: a capped allocator (out of memory ends the
 * call, never the process), an instruction budget per call enforced by a
 * count hook (once exceeded, the hook raises at every line so that the
 * code's own pcall cannot swallow the abort), the safe standard libraries
 * only (no io, no debug, os reduced to time/clock/date/difftime, load of text
 * only, require confined to the plugin's folder), and strict globals after
 * load. It knows nothing of the CRM: the `crm` API is installed by api.c.
 * Long jobs run as tasks: coroutines that the count hook yields when their
 * time slice is used up. */
#ifndef RP_SANDBOX_H
#define RP_SANDBOX_H

#include <lua.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct rp_sandbox rp_sandbox;
typedef struct rp_task rp_task;

/* Creates a state for name (used in messages and print) whose require()
 * reads modules from root (may be NULL: require disabled), with a memory cap
 * in bytes. *out is owned by the caller: rp_sandbox_free. */
int rp_sandbox_new(const char *name, const char *root, int64_t memory_cap, rp_sandbox **out,
                   rp_err *err);
/* Closes the state; tasks still alive are freed with it. */
void rp_sandbox_free(rp_sandbox *sb);

lua_State *rp_sandbox_lua(rp_sandbox *sb);
const char *rp_sandbox_name(const rp_sandbox *sb);
/* The sandbox that owns L (any thread of it). */
rp_sandbox *rp_sandbox_from_lua(lua_State *L);

/* An opaque pointer for the embedder (the plugin host), borrowed. */
void rp_sandbox_set_owner(rp_sandbox *sb, void *owner);
void *rp_sandbox_owner(const rp_sandbox *sb);

/* Bytes the state currently holds. */
int64_t rp_sandbox_memory(const rp_sandbox *sb);
void rp_sandbox_set_memory_cap(rp_sandbox *sb, int64_t cap);

/* Loads text (never bytecode) as a chunk called chunkname ("@path" form for
 * files), with the state's globals as its environment, and pushes the
 * function. Returns RP_EINVAL with the syntax error. */
int rp_sandbox_load(rp_sandbox *sb, const char *text, size_t len, const char *chunkname,
                    rp_err *err);
/* Reads path and loads it as rp_sandbox_load does. */
int rp_sandbox_load_file(rp_sandbox *sb, const char *path, const char *chunkname, rp_err *err);

/* From now on, assigning or reading an undeclared global raises an error. */
void rp_sandbox_lock_globals(rp_sandbox *sb);

/* Calls the function below nargs arguments on the main thread, protected,
 * with an instruction budget (0: unlimited). what names the call in errors
 * ("handler on_order"). Returns RP_OK with nresults pushed, or pops
 * everything and returns RP_EPLUGIN (a Lua error) or RP_ELIMIT (memory or
 * instructions), err holding "plugin 'x' what: message"; the traceback is
 * then available from rp_sandbox_traceback until the next call. */
int rp_sandbox_call(rp_sandbox *sb, int nargs, int nresults, int64_t budget, const char *what,
                    rp_err *err);
/* The traceback of the last failed call or task step ("" when none);
 * borrowed, valid until the next call. */
const char *rp_sandbox_traceback(const rp_sandbox *sb);

/* Tasks: the function below nargs arguments becomes a coroutine (popped).
 * *out is owned by the caller: rp_task_free. */
int rp_task_new(rp_sandbox *sb, int nargs, int64_t budget, const char *what, rp_task **out,
                rp_err *err);
/* Runs the task for at most slice_ms of wall time, yielding at the first
 * instruction hook past the slice (or the first rp_sandbox_return, below)
 * when no SQL transaction is open and the code is not inside a
 * non-yieldable C call. Returns RP_OK when it finished,
 * 1 (RP_TASK_YIELDED) when it must be resumed, or an error as
 * rp_sandbox_call does. can_yield (may be NULL) is asked before yielding. */
enum { RP_TASK_YIELDED = 1 };
typedef int (*rp_task_can_yield_fn)(void *ctx);
int rp_task_resume(rp_task *t, int64_t slice_ms, rp_task_can_yield_fn can_yield, void *ctx,
                   rp_err *err);
/* The last act of an API function that may run long in C (SQL): returns
 * its nres results, first yielding the running task when its slice is
 * spent and it may yield (as the instruction hook would). Code that spends
 * its time in SQL runs few Lua instructions, so the hook alone would let
 * such a task hold the loop far past its slice. Outside a task: nres. */
int rp_sandbox_return(lua_State *L, int nres);
/* Number of slices the task has run (for tests and diagnostics). */
int rp_task_slices(const rp_task *t);
void rp_task_free(rp_task *t);

#endif
