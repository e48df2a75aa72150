/* operator: running operator Lua (scripts and the REPL) with the operator
 * principal: every crm permission, reads on every table, writes to its own
 * `operator_` tables. Shared by `rapport run`, `rapport repl` and the plugin
 * spec runner. */
#ifndef RP_OPERATOR_H
#define RP_OPERATOR_H

#include <stdio.h>

#include "err.h"
#include "host.h"

/* Prints the values on top of L (n of them) for a person: tables as
 * indented JSON, the rest with tostring. */
void rp_operator_print(lua_State *L, int n, FILE *out);

/* Runs the script at path in p with args as `...` and the global `arg`
 * ({[0] = path, args...}), printing what it returns to out when print_result.
 * RP_OK or the error (traceback in rp_sandbox_traceback). */
int rp_operator_run_file(rp_plugin *p, const char *path, int argc, char **argv, int print_result,
                         FILE *out, rp_err *err);

#endif
