/* checkpointer: see checkpointer.h. */
#include "checkpointer.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct rp_checkpointer {
  uv_loop_t *loop;
  rp_store *store;
  char *path;
  int frames;
  sqlite3 *db;      /* the worker's connection, opened on first use */
  uv_work_t work;
  int running;      /* work is queued or under way */
  int stopped;      /* rp_checkpointer_stop was called: free after the work */
  int rc;           /* the last checkpoint's SQLite result */
  int log_frames, copied;
};

static void cp_free(rp_checkpointer *cp) {
  if (cp->db) sqlite3_close(cp->db);
  free(cp->path);
  free(cp);
}

/* On the worker thread: only cp->db and the result fields are touched. */
static void run_checkpoint(uv_work_t *w) {
  rp_checkpointer *cp = w->data;
  if (!cp->db) {
    cp->rc = sqlite3_open_v2(cp->path, &cp->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (cp->rc == SQLITE_OK)
      cp->rc = sqlite3_exec(cp->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    if (cp->rc != SQLITE_OK) return;
  }
  cp->rc = sqlite3_wal_checkpoint_v2(cp->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &cp->log_frames,
                                     &cp->copied);
}

static void checkpoint_done(uv_work_t *w, int status) {
  rp_checkpointer *cp = w->data;
  cp->running = 0;
  if (cp->stopped) {
    cp_free(cp);
    return;
  }
  if (status == 0 && cp->rc != SQLITE_OK && cp->rc != SQLITE_BUSY)
    rp_log(RP_LOG_WARN, "store", "WAL checkpoint: %s",
           cp->db ? sqlite3_errmsg(cp->db) : sqlite3_errstr(cp->rc));
}

static int on_wal(void *ctx, sqlite3 *db, const char *name, int frames) {
  (void)db, (void)name;
  rp_checkpointer *cp = ctx;
  if (frames < cp->frames || cp->running) return SQLITE_OK;
  cp->work.data = cp;
  if (uv_queue_work(cp->loop, &cp->work, run_checkpoint, checkpoint_done) == 0) cp->running = 1;
  return SQLITE_OK;
}

int rp_checkpointer_start(uv_loop_t *loop, rp_store *s, int frames, rp_checkpointer **out,
                          rp_err *err) {
  *out = NULL;
  const char *path = rp_store_path(s);
  if (!path || !path[0] || strcmp(path, ":memory:") == 0) return RP_OK;
  rp_checkpointer *cp = calloc(1, sizeof *cp);
  if (cp) cp->path = strdup(path);
  if (!cp || !cp->path) {
    free(cp);
    return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  }
  cp->loop = loop;
  cp->store = s;
  cp->frames = frames > 0 ? frames : 1000;
  sqlite3_wal_hook(rp_store_db(s), on_wal, cp);
  *out = cp;
  return RP_OK;
}

void rp_checkpointer_stop(rp_checkpointer *cp) {
  if (!cp) return;
  sqlite3_wal_autocheckpoint(rp_store_db(cp->store), 1000);
  cp->stopped = 1;
  if (!cp->running) cp_free(cp);
}
