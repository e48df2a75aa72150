/* runtime: the loop that ties store, host, scheduler and bus together. */
#include "runtime.h"

#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "clock.h"
#include "log.h"

/* How often the runtime looks for events appended by other processes. */
#define POLL_MS 100
/* The pause between two bus batches while a backlog drains. */
#define PUMP_GAP_MS 1

struct rp_runtime {
  uv_loop_t loop;
  void (*stop_hook)(void *ctx);
  void *stop_ctx;
  rp_store *store;
  const rp_config *cfg;
  rp_host *host;
  rp_sched *sched;
  rp_job_runner runner; /* the host's runner, wrapped to wake the bus */
  uv_timer_t poll;
  uv_timer_t pump; /* one bus batch per plugin per tick, while there is work */
  uv_signal_t sigint, sigterm;
  int pumping;
  int stopping;
  int handles_open;
  int64_t seen_hi;
  int64_t dispatched;
};

/* ---- the runner wrapper: every job may emit events ------------------------- */

static int rt_job_start(void *ctx, const rp_job *job, void **handle, rp_err *err) {
  rp_runtime *rt = ctx;
  const rp_job_runner *r = rp_host_job_runner(rt->host);
  int rc = r->start(r->ctx, job, handle, err);
  rp_runtime_kick(rt);
  return rc;
}

static int rt_job_resume(void *ctx, void *handle, rp_err *err) {
  rp_runtime *rt = ctx;
  const rp_job_runner *r = rp_host_job_runner(rt->host);
  int rc = r->resume(r->ctx, handle, err);
  rp_runtime_kick(rt);
  return rc;
}

static void rt_job_abandon(void *ctx, void *handle) {
  rp_runtime *rt = ctx;
  const rp_job_runner *r = rp_host_job_runner(rt->host);
  r->abandon(r->ctx, handle);
}

/* ---- bus pumping -------------------------------------------------------------- */

static int64_t max_event_id(rp_runtime *rt) {
  sqlite3_stmt *st;
  if (rp_store_prepare(rt->store, "SELECT coalesce(max(id), 0) FROM events", &st, NULL)) return 0;
  int64_t hi = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  rp_store_done(st);
  return hi;
}

static void on_pump(uv_timer_t *h) {
  rp_runtime *rt = h->data;
  int64_t n = 0;
  rp_err err;
  rp_err_clear(&err);
  if (rp_bus_pump(rt->host, &n, &err) != RP_OK) {
    /* A store error (disk full, lock timeout): log it and let the poll
     * timer try again rather than spin. */
    rp_log(RP_LOG_ERROR, "bus", "%s", err.msg);
    n = 0;
  }
  rt->dispatched += n;
  if (n == 0) {
    uv_timer_stop(&rt->pump);
    rt->pumping = 0;
    rt->seen_hi = max_event_id(rt);
  }
}

void rp_runtime_kick(rp_runtime *rt) {
  if (rt->pumping || rt->stopping) return;
  rt->pumping = 1;
  /* Now, then every PUMP_GAP_MS while a backlog lasts: the gap lets another
   * process that waits to write (an import beside `serve`) find the database
   * free between two batches. */
  uv_timer_start(&rt->pump, on_pump, 0, PUMP_GAP_MS);
}

static void on_poll(uv_timer_t *t) {
  rp_runtime *rt = t->data;
  if (rt->pumping) return;
  if (max_event_id(rt) != rt->seen_hi) rp_runtime_kick(rt);
}

/* ---- signals and shutdown ------------------------------------------------------ */

static void on_closed(uv_handle_t *h) {
  rp_runtime *rt = h->data;
  rt->handles_open--;
}

void rp_runtime_stop(rp_runtime *rt) {
  if (rt->stopping) return;
  rt->stopping = 1;
  rp_sched_stop(rt->sched);
  uv_timer_stop(&rt->poll);
  uv_timer_stop(&rt->pump);
  uv_signal_stop(&rt->sigint);
  uv_signal_stop(&rt->sigterm);
  /* Every handle of the runtime is now inactive: uv_run returns once the
   * hook's work is done, or at once without a hook. */
  if (rt->stop_hook) rt->stop_hook(rt->stop_ctx);
  else uv_stop(&rt->loop);
}

void rp_runtime_set_stop_hook(rp_runtime *rt, void (*fn)(void *ctx), void *ctx) {
  rt->stop_hook = fn;
  rt->stop_ctx = ctx;
}

static void on_signal(uv_signal_t *s, int signum) {
  rp_runtime *rt = s->data;
  rp_log(RP_LOG_INFO, "core", "%s received: stopping", signum == SIGINT ? "SIGINT" : "SIGTERM");
  rp_runtime_stop(rt);
}

/* ---- lifecycle ------------------------------------------------------------------ */

int rp_runtime_new(rp_store *store, const rp_config *cfg, rp_runtime **out, rp_err *err) {
  *out = NULL;
  rp_runtime *rt = calloc(1, sizeof *rt);
  if (!rt) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  rt->store = store;
  rt->cfg = cfg;
  int rc = uv_loop_init(&rt->loop);
  if (rc) {
    free(rt);
    return rp_err_set(err, RP_EIO, NULL, "libuv: %s", uv_strerror(rc));
  }
  uv_timer_init(&rt->loop, &rt->poll);
  uv_timer_init(&rt->loop, &rt->pump);
  uv_signal_init(&rt->loop, &rt->sigint);
  uv_signal_init(&rt->loop, &rt->sigterm);
  rt->poll.data = rt->pump.data = rt->sigint.data = rt->sigterm.data = rt;
  rt->handles_open = 4;
  if ((rc = rp_host_new(store, cfg, &rt->host, err)) ||
      (rc = rp_sched_new(&rt->loop, store, cfg, &rt->sched, err))) {
    rp_runtime_free(rt);
    return rc;
  }
  rp_host_set_sched(rt->host, rt->sched);
  rt->runner.ctx = rt;
  rt->runner.start = rt_job_start;
  rt->runner.resume = rt_job_resume;
  rt->runner.abandon = rt_job_abandon;
  rp_sched_set_runner(rt->sched, &rt->runner);
  if ((rc = rp_host_load_enabled(rt->host, err))) {
    rp_runtime_free(rt);
    return rc;
  }
  *out = rt;
  return RP_OK;
}

void rp_runtime_free(rp_runtime *rt) {
  if (!rt) return;
  if (rt->sched) rp_sched_free(rt->sched);
  rp_host_free(rt->host);
  uv_close((uv_handle_t *)&rt->poll, on_closed);
  uv_close((uv_handle_t *)&rt->pump, on_closed);
  uv_close((uv_handle_t *)&rt->sigint, on_closed);
  uv_close((uv_handle_t *)&rt->sigterm, on_closed);
  while (uv_loop_close(&rt->loop) == UV_EBUSY) uv_run(&rt->loop, UV_RUN_NOWAIT);
  free(rt);
}

rp_host *rp_runtime_host(rp_runtime *rt) { return rt->host; }
rp_sched *rp_runtime_sched(rp_runtime *rt) { return rt->sched; }
uv_loop_t *rp_runtime_loop(rp_runtime *rt) { return &rt->loop; }

int rp_runtime_run(rp_runtime *rt, int once, rp_err *err) {
  int rc = rp_sched_start(rt->sched, err);
  if (rc) return rc;
  if (once) {
    rc = rp_sched_run_due(rt->sched, rp_clock_now_ms(), NULL, err);
    while (rc == RP_OK && rp_sched_pending(rt->sched) > 0) rp_sched_step(rt->sched);
    int64_t n = 0;
    if (rc == RP_OK) rc = rp_bus_drain(rt->host, 100, &n, err);
    rt->dispatched += n;
    rp_sched_stop(rt->sched);
    return rc;
  }
  rt->seen_hi = -1; /* dispatch whatever is pending at start */
  uv_timer_start(&rt->poll, on_poll, 0, POLL_MS);
  uv_signal_start(&rt->sigint, on_signal, SIGINT);
  uv_signal_start(&rt->sigterm, on_signal, SIGTERM);
  uv_run(&rt->loop, UV_RUN_DEFAULT);
  return RP_OK;
}
