/* spec: `rapport plugin test`, the runner of a plugin's spec/ files.
 *
 * Specs are Lua files (spec/NAME_spec.lua) written busted-style (describe, it,
 * before_each, assert.*; core/assets/spec.lua). They run in an operator
 * sandbox with the crm API and a `test` table: test.reset gives each `it` a
 * fresh in-memory database with the plugin enabled and a frozen clock;
 * test.emit/dispatch/advance/run_job/dead_letters drive the bus and the
 * scheduler synchronously. */
#ifndef RP_SPEC_H
#define RP_SPEC_H

#include <stdio.h>

#include "config.h"
#include "err.h"

/* Runs every spec file of the plugin in dir, printing one line per test to
 * out. *passed and *failed receive the counts. RP_OK unless the runner
 * itself could not start (a failing test is not an error here). */
int rp_spec_run(const rp_config *cfg, const char *dir, FILE *out, int *passed, int *failed,
                rp_err *err);

#endif
