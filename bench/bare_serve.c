/* bare_serve: the footprint workload's baseline in scripts/bench. The same
 * libraries as `rapport serve` doing the least a CRM server does: open the
 * SQLite database (WAL, 64 MiB page cache) and read its schema, listen with
 * libuv, parse requests with http_parser and answer each with a small JSON
 * object printed by cJSON, as Rapport answers GET /healthz (without
 * touching the database). No plugins, no Lua, no keys, no audit: its idle
 * memory and its time to the first answer are the floor.
 *
 * usage: bare_serve DB PORT */
#include <cjson/cJSON.h>
#include <http_parser.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct conn {
  uv_tcp_t tcp;
  http_parser parser;
} conn;

static sqlite3 *db;
static http_parser_settings settings;

static void on_closed(uv_handle_t *h) { free(h->data); }

static void on_written(uv_write_t *w, int status) {
  (void)status;
  free(w->data);
  free(w);
}

static long long tables = -1; /* read once, at start */

static int on_message(http_parser *p) {
  conn *c = p->data;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "status", "ok");
  cJSON_AddNumberToObject(o, "tables", (double)tables);
  char *body = cJSON_PrintUnformatted(o);
  cJSON_Delete(o);
  if (!body) return -1;
  size_t cap = strlen(body) + 128;
  char *out = malloc(cap);
  uv_write_t *w = malloc(sizeof *w);
  if (!out || !w) {
    free(out);
    free(w);
    cJSON_free(body);
    return -1;
  }
  int n = snprintf(out, cap,
                   "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                   strlen(body), body);
  cJSON_free(body);
  w->data = out;
  uv_buf_t b = uv_buf_init(out, (unsigned)n);
  if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    free(out);
    free(w);
    return -1;
  }
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h;
  buf->base = malloc(size);
  buf->len = buf->base ? size : 0;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  conn *c = s->data;
  if (n > 0 && http_parser_execute(&c->parser, &settings, buf->base, (size_t)n) != (size_t)n)
    n = UV_EOF;
  if (n < 0) uv_close((uv_handle_t *)s, on_closed);
  free(buf->base);
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) return;
  conn *c = calloc(1, sizeof *c);
  if (!c) return;
  uv_tcp_init(server->loop, &c->tcp);
  c->tcp.data = c;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void on_signal(uv_signal_t *h, int sig) {
  (void)sig;
  uv_stop(h->loop);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: bare_serve DB PORT\n");
    return 1;
  }
  if (sqlite3_open(argv[1], &db) != SQLITE_OK ||
      sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA cache_size=-65536;", NULL, NULL, NULL) !=
          SQLITE_OK) {
    fprintf(stderr, "bare_serve: cannot open %s\n", argv[1]);
    return 2;
  }
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) tables = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  http_parser_settings_init(&settings);
  settings.on_message_complete = on_message;
  uv_loop_t *loop = uv_default_loop();
  uv_tcp_t server;
  struct sockaddr_in addr;
  uv_signal_t term;
  if (uv_tcp_init(loop, &server) || uv_ip4_addr("127.0.0.1", atoi(argv[2]), &addr) ||
      uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) ||
      uv_listen((uv_stream_t *)&server, 128, on_connection) || uv_signal_init(loop, &term) ||
      uv_signal_start(&term, on_signal, SIGTERM)) {
    fprintf(stderr, "bare_serve: cannot listen on 127.0.0.1:%s\n", argv[2]);
    return 2;
  }
  uv_run(loop, UV_RUN_DEFAULT);
  sqlite3_close(db);
  return 0;
}
