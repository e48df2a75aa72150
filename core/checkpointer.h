/* checkpointer: the WAL checkpoints of a serving store, run on a libuv
 * worker thread with a connection of its own.
 *
 * SQLite checkpoints inside the commit that takes the WAL past 1000 pages:
 * the copy into the database file and its two fsyncs stalled the loop, and
 * with it every request in flight, for milliseconds at a time (most of a
 * read's p99). Here a WAL hook notes the size after each commit and, past
 * the threshold, hands a PASSIVE checkpoint to a worker; the loop goes on.
 * The checkpointing connection syncs the WAL before it copies anything
 * (synchronous=FULL), so frames committed without a sync of their own are
 * on disk before the database file changes. One checkpoint at a time. */
#ifndef RP_CHECKPOINTER_H
#define RP_CHECKPOINTER_H

#include <uv.h>

#include "err.h"
#include "store.h"

typedef struct rp_checkpointer rp_checkpointer;

/* Takes over the checkpoints of s (its WAL hook) on loop; frames: the WAL
 * size that starts one. *out is NULL and nothing changes for a store
 * without a file (":memory:"). */
int rp_checkpointer_start(uv_loop_t *loop, rp_store *s, int frames, rp_checkpointer **out,
                          rp_err *err);

/* Gives the checkpoints back to SQLite (its default auto-checkpoint). A
 * checkpoint under way finishes on its worker; run the loop until it has
 * (the checkpointer then frees itself). Call before s is closed. */
void rp_checkpointer_stop(rp_checkpointer *cp);

#endif
