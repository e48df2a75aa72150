/* fault: named crash points for recovery tests.
 *
 * When the environment variable RAPPORT_FAULT names a point, reaching it
 * ends the process at once with status 70 (no exit handlers, no flush, no
 * rollback): what a power cut at that instant would leave behind. The test
 * suite uses it to prove that a restart loses nothing and applies nothing
 * twice. Points: bus.before_commit, sched.before_commit, http.before_commit
 * (answers are held until the group commit: none may have gone out). */
#ifndef RP_FAULT_H
#define RP_FAULT_H

/* Exits with status 70 when RAPPORT_FAULT equals name; otherwise returns. */
void rp_fault_point(const char *name);

#endif
