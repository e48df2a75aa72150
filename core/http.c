/* http: see http.h. One rp_http_conn per TCP connection; the request line
 * and headers are copied into a fixed arena of the connection (so that a
 * request larger than the limit is refused without growing anything), the
 * body into a buffer capped by max_body. */
#include "http.h"

#include <ctype.h>
#include <http_parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "clock.h"
#include "log.h"

#define ARENA_SIZE (RP_HTTP_MAX_HEADER_BYTES + 64)

typedef struct rp_http_conn rp_http_conn;

/* An answer queued while the server holds answers. */
typedef struct held_answer {
  struct held_answer *next;
  rp_http_conn *c;
  rp_http_response res;
  int keep_alive;
  uint64_t gen; /* written once rp_http_release reaches it */
} held_answer;

struct rp_http_server {
  uv_loop_t *loop;
  uv_tcp_t tcp;
  rp_http_limits limits;
  rp_http_handler handler;
  rp_http_answered answered;
  void *ctx;
  rp_http_conn *conns; /* open connections, a doubly linked list */
  int n_conns;
  int listening;       /* the listening handle is open */
  int stopping;
  int port;
  int holding;                     /* rp_http_hold: answers are queued under hold_gen */
  uint64_t hold_gen;
  uint64_t tail_gen;               /* the gen of the newest answer queued */
  held_answer *held, **held_tail;  /* the queue, oldest first; gens never decrease */
  char read_buf[65536];            /* see on_alloc */
};

struct rp_http_conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  int handles_open;
  rp_http_server *srv;
  rp_http_conn *prev, *next;
  http_parser parser;
  char peer[64];
  /* The request being read. */
  char arena[ARENA_SIZE];
  size_t arena_len;
  size_t url_off, url_len;
  int url_done;
  size_t name_off[RP_HTTP_MAX_HEADERS], value_off[RP_HTTP_MAX_HEADERS];
  int n_headers;
  int in_value;        /* the last header callback was a value */
  char *body;
  size_t body_len, body_cap;
  int refuse;          /* 413 or 431 decided while parsing */
  /* Writing. */
  int writes_pending;
  int held;            /* answers of this connection in the server's queue */
  int close_after;     /* close once the pending writes are done */
  int closing;
  int offline;         /* rp_http_parse_stream: no socket, answers counted */
  int answered;
};

typedef struct write_req {
  uv_write_t req;
  rp_http_conn *c;
  char *data;
} write_req;

const char *rp_http_reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 201: return "Created";
  case 202: return "Accepted";
  case 204: return "No Content";
  case 400: return "Bad Request";
  case 401: return "Unauthorized";
  case 403: return "Forbidden";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 409: return "Conflict";
  case 413: return "Content Too Large";
  case 415: return "Unsupported Media Type";
  case 422: return "Unprocessable Content";
  case 429: return "Too Many Requests";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Unknown";
  }
}

/* ---- closing -------------------------------------------------------------------- */

static void server_maybe_free(rp_http_server *s) {
  if (s->stopping && !s->listening && s->n_conns == 0) free(s);
}

/* Frees a connection once its handles are closed and no queued answer
 * points to it any more. */
static void conn_maybe_free(rp_http_conn *c) {
  if (c->handles_open > 0 || c->held > 0) return;
  rp_http_server *s = c->srv;
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->n_conns--;
  free(c->body);
  free(c);
  server_maybe_free(s);
}

static void on_conn_closed(uv_handle_t *h) {
  rp_http_conn *c = h->data;
  c->handles_open--;
  conn_maybe_free(c);
}

static void conn_close(rp_http_conn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ---- writing -------------------------------------------------------------------- */

static void on_written(uv_write_t *req, int status) {
  write_req *w = (write_req *)req;
  rp_http_conn *c = w->c;
  free(w->data);
  free(w);
  c->writes_pending--;
  if (status < 0 || (c->close_after && c->writes_pending == 0 && c->held == 0)) conn_close(c);
}

/* The answer is written (or dropped): tells the answered callback, frees
 * the handler's note and the body. */
static void answer_done(rp_http_server *s, rp_http_response *res, int written) {
  if (s->answered && res->note) s->answered(s->ctx, res, written);
  free(res->note);
  res->note = NULL;
  free(res->body);
  res->body = NULL;
}

/* Queues an answer while the server holds them (rp_http_hold). */
static void hold_response(rp_http_conn *c, rp_http_response *res, int keep_alive) {
  rp_http_server *s = c->srv;
  held_answer *h = malloc(sizeof *h);
  if (!h) {
    answer_done(s, res, 0);
    conn_close(c);
    return;
  }
  h->next = NULL;
  h->c = c;
  h->res = *res;
  h->keep_alive = keep_alive;
  res->note = NULL; /* the queued copy owns it now */
  /* Behind answers still queued, an answer made outside a hold waits for
   * the last of them: a connection's answers keep their order. */
  if (s->holding) s->tail_gen = s->hold_gen;
  h->gen = s->tail_gen;
  res->body = NULL;
  *s->held_tail = h;
  s->held_tail = &h->next;
  c->held++;
  /* Nothing more is read after a last request. */
  if (!keep_alive) c->close_after = 1;
}

static void write_response(rp_http_conn *c, rp_http_response *res, int keep_alive);

/* Answers now, or queues the answer while the server holds answers or
 * still has some queued. */
static void send_response(rp_http_conn *c, rp_http_response *res, int keep_alive) {
  if ((c->srv->holding || c->srv->held) && !c->offline) {
    hold_response(c, res, keep_alive);
    return;
  }
  write_response(c, res, keep_alive);
}

static void write_response(rp_http_conn *c, rp_http_response *res, int keep_alive) {
  if (c->offline) {
    answer_done(c->srv, res, 1);
    c->answered++;
    if (!keep_alive) c->close_after = 1;
    return;
  }
  int status = res->status ? res->status : 500;
  const char *type = res->content_type ? res->content_type : "application/json";
  size_t body_len = res->body ? res->body_len : 0;
  char head[512];
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s\r\n",
                   status, rp_http_reason(status), type, body_len,
                   keep_alive ? "" : "Connection: close\r\n",
                   res->extra_headers ? res->extra_headers : "");
  if (n < 0 || (size_t)n >= sizeof head) n = 0;
  write_req *w = malloc(sizeof *w);
  char *data = malloc((size_t)n + body_len);
  if (!w || !data) {
    free(w);
    free(data);
    answer_done(c->srv, res, 0);
    conn_close(c);
    return;
  }
  memcpy(data, head, (size_t)n);
  if (body_len) memcpy(data + n, res->body, body_len);
  w->c = c;
  w->data = data;
  uv_buf_t buf = uv_buf_init(data, (unsigned)((size_t)n + body_len));
  if (!keep_alive) c->close_after = 1;
  c->writes_pending++;
  int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
  answer_done(c->srv, res, r == 0);
  if (r != 0) {
    c->writes_pending--;
    free(data);
    free(w);
    conn_close(c);
  }
}

/* An error decided by the server itself (limits, malformed requests). */
static void send_error(rp_http_conn *c, int status, const char *code, const char *message) {
  rp_http_response res = {0};
  res.status = status;
  char *body = malloc(512);
  if (body) {
    int n = snprintf(body, 512, "{\"error\": {\"code\": \"%s\", \"message\": \"%s\"}}", code,
                     message);
    res.body = body;
    res.body_len = n > 0 ? (size_t)n : 0;
  }
  send_response(c, &res, 0);
}

/* ---- parsing -------------------------------------------------------------------- */

/* Appends to the arena; -1 (and a 431) when the request head is too big. */
static int arena_add(rp_http_conn *c, const char *at, size_t len, int lower) {
  if (c->arena_len + len + 1 > ARENA_SIZE) {
    c->refuse = 431;
    return -1;
  }
  for (size_t i = 0; i < len; i++)
    c->arena[c->arena_len++] = lower ? (char)tolower((unsigned char)at[i]) : at[i];
  return 0;
}

/* Ends the string being built (after a url, a name or a value). */
static int arena_end(rp_http_conn *c) {
  if (c->arena_len + 1 > ARENA_SIZE) {
    c->refuse = 431;
    return -1;
  }
  c->arena[c->arena_len++] = '\0';
  return 0;
}

static int on_message_begin(http_parser *p) {
  rp_http_conn *c = p->data;
  c->arena_len = 0;
  c->url_off = c->url_len = 0;
  c->url_done = 0;
  c->n_headers = 0;
  c->in_value = 0;
  c->body_len = 0;
  c->refuse = 0;
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  rp_http_conn *c = p->data;
  if (c->url_len == 0) c->url_off = c->arena_len;
  c->url_len += len;
  return arena_add(c, at, len, 0);
}

/* Ends the url once, before the first header or the end of the head. */
static int url_end(rp_http_conn *c) {
  if (c->url_done) return 0;
  c->url_done = 1;
  if (c->url_len == 0) c->url_off = c->arena_len;
  return arena_end(c);
}

static int on_header_field(http_parser *p, const char *at, size_t len) {
  rp_http_conn *c = p->data;
  if (url_end(c)) return -1;
  if (c->in_value || c->n_headers == 0) {
    if (c->in_value && arena_end(c)) return -1; /* ends the previous value */
    if (c->n_headers == RP_HTTP_MAX_HEADERS) {
      c->refuse = 431;
      return -1;
    }
    c->name_off[c->n_headers++] = c->arena_len;
    c->in_value = 0;
  }
  return arena_add(c, at, len, 1);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  rp_http_conn *c = p->data;
  if (!c->in_value) {
    if (arena_end(c)) return -1; /* ends the name */
    c->value_off[c->n_headers - 1] = c->arena_len;
    c->in_value = 1;
  }
  return arena_add(c, at, len, 0);
}

static int on_headers_complete(http_parser *p) {
  rp_http_conn *c = p->data;
  if (url_end(c)) return -1;
  if (c->in_value) {
    if (arena_end(c)) return -1;
  } else if (c->n_headers > 0) {
    /* a name without a value: the value is "" */
    if (arena_end(c)) return -1;
    c->value_off[c->n_headers - 1] = c->arena_len;
    if (arena_end(c)) return -1;
  }
  if ((p->flags & F_CONTENTLENGTH) && p->content_length > c->srv->limits.max_body) {
    c->refuse = 413;
    return -1;
  }
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  rp_http_conn *c = p->data;
  if (c->body_len + len > c->srv->limits.max_body) {
    c->refuse = 413;
    return -1;
  }
  if (c->body_len + len + 1 > c->body_cap) {
    size_t cap = c->body_cap ? c->body_cap : 4096;
    while (cap < c->body_len + len + 1) cap *= 2;
    char *b = realloc(c->body, cap);
    if (!b) return -1;
    c->body = b;
    c->body_cap = cap;
  }
  memcpy(c->body + c->body_len, at, len);
  c->body_len += len;
  return 0;
}

static int on_message_complete(http_parser *p) {
  rp_http_conn *c = p->data;
  rp_http_server *s = c->srv;
  char *url = c->arena + c->url_off;
  char *query = strchr(url, '?');
  if (query) *query++ = '\0';
  char *hash = query ? strchr(query, '#') : strchr(url, '#');
  if (hash) *hash = '\0';
  rp_http_header headers[RP_HTTP_MAX_HEADERS];
  for (int i = 0; i < c->n_headers; i++) {
    headers[i].name = c->arena + c->name_off[i];
    headers[i].value = c->arena + c->value_off[i];
  }
  if (c->body) c->body[c->body_len] = '\0';
  rp_http_request req = {.method = http_method_str((enum http_method)p->method),
                         .path = url,
                         .query = query ? query : "",
                         .headers = headers,
                         .n_headers = c->n_headers,
                         .body = c->body ? c->body : "",
                         .body_len = c->body_len,
                         .peer = c->peer,
                         .started_ns = rp_clock_mono_ns()};
  rp_http_response res = {.started_ns = req.started_ns};
  s->handler(s->ctx, &req, &res);
  send_response(c, &res, http_should_keep_alive(p) && !s->stopping);
  /* Nothing after a last request: pipelined bytes past it are ignored. */
  if (c->close_after) http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- reading -------------------------------------------------------------------- */

/* Every read lands in the server's one buffer: on_read parses all of it
 * before it returns (the parser copies what it keeps), and the loop calls
 * one read callback at a time. A buffer per read cost a 64 KiB malloc and
 * free each time, and the allocator's consolidation with them. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  rp_http_conn *c = h->data;
  buf->base = c->srv->read_buf;
  buf->len = sizeof c->srv->read_buf;
}

static void on_timeout(uv_timer_t *t) {
  rp_http_conn *c = t->data;
  /* Idle, or a client too slow to finish its request. */
  conn_close(c);
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  rp_http_conn *c = stream->data;
  if (nread < 0) {
    conn_close(c);
    return;
  }
  if (nread == 0 || c->closing || c->close_after) return;
  uv_timer_again(&c->timer);
  size_t done = http_parser_execute(&c->parser, &parser_settings, buf->base, (size_t)nread);
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (e == HPE_PAUSED) return;
  if (e != HPE_OK || (c->parser.upgrade && done < (size_t)nread)) {
    uv_read_stop(stream);
    if (c->refuse == 413)
      send_error(c, 413, "too_large", "the request body is larger than the server accepts");
    else if (c->refuse == 431)
      send_error(c, 431, "headers_too_large", "the request line and headers are too large");
    else
      send_error(c, 400, "bad_request", "malformed HTTP request");
  }
}

static void on_connection(uv_stream_t *server, int status) {
  rp_http_server *s = server->data;
  if (status < 0) return;
  rp_http_conn *c = calloc(1, sizeof *c);
  if (!c) return;
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->handles_open = 2;
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->n_conns++;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  struct sockaddr_storage ss;
  int len = sizeof ss;
  snprintf(c->peer, sizeof c->peer, "?");
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
    char ip[48] = "";
    int port = 0;
    if (ss.ss_family == AF_INET) {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else if (ss.ss_family == AF_INET6) {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
      port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    snprintf(c->peer, sizeof c->peer, "%s:%d", ip, port);
  }
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  uv_timer_start(&c->timer, on_timeout, s->limits.idle_timeout_ms, s->limits.idle_timeout_ms);
  if (s->n_conns > s->limits.max_connections || s->stopping) {
    send_error(c, 503, "unavailable", "too many connections; try again");
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* Each connection is a file descriptor: raises the process's soft limit on
 * open files to fit the connection cap (up to the hard limit), or lowers the
 * cap to what the limit allows, saying so. */
static void fit_open_files(rp_http_server *s) {
  enum { SPARE = 64 }; /* the database, its WAL, logs, plugins' files */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  rlim_t want = (rlim_t)s->limits.max_connections + SPARE;
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  }
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
    int fit = rl.rlim_cur > 2 * SPARE ? (int)(rl.rlim_cur - SPARE) : SPARE;
    rp_log(RP_LOG_WARN, "http",
           "the open files limit is %llu: serving at most %d connections, not %d",
           (unsigned long long)rl.rlim_cur, fit, s->limits.max_connections);
    s->limits.max_connections = fit;
  }
}

/* ---- held answers -------------------------------------------------------------- */

void rp_http_hold(rp_http_server *s, uint64_t gen) {
  if (!s) return;
  s->holding = 1;
  s->hold_gen = gen;
}

void rp_http_hold_end(rp_http_server *s) {
  if (s) s->holding = 0;
}

void rp_http_fail(rp_http_server *s, uint64_t gen, const char *failure_body) {
  if (!s) return;
  for (held_answer *h = s->held; h; h = h->next) {
    if (h->gen != gen || !h->res.needs_commit) continue;
    free(h->res.body);
    h->res = (rp_http_response){.status = 500, .body = strdup(failure_body),
                                .note = h->res.note, .started_ns = h->res.started_ns};
    h->res.body_len = h->res.body ? strlen(h->res.body) : 0;
  }
}

void rp_http_release(rp_http_server *s, uint64_t through) {
  if (!s) return;
  while (s->held && s->held->gen <= through) {
    held_answer *h = s->held;
    s->held = h->next;
    if (!s->held) s->held_tail = &s->held;
    rp_http_conn *c = h->c;
    c->held--;
    if (c->closing) {
      answer_done(s, &h->res, 0);
      conn_maybe_free(c);
    } else {
      write_response(c, &h->res, h->keep_alive);
      /* A last answer already written (or a stop meanwhile): close now. */
      if (!c->closing && c->close_after && c->writes_pending == 0 && c->held == 0) conn_close(c);
    }
    free(h);
  }
}

/* ---- without sockets (tests, fuzzing) ------------------------------------------------- */

int rp_http_parse_stream(const char *data, size_t len, size_t chunk, const rp_http_limits *limits,
                         rp_http_handler handler, void *ctx, int *refused) {
  rp_http_server srv;
  memset(&srv, 0, sizeof srv);
  srv.handler = handler;
  srv.ctx = ctx;
  srv.limits.max_body = limits && limits->max_body ? limits->max_body : (size_t)1 << 20;
  rp_http_conn *c = calloc(1, sizeof *c);
  if (!c) return -1;
  c->srv = &srv;
  c->offline = 1;
  snprintf(c->peer, sizeof c->peer, "fuzz:0");
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  *refused = 0;
  if (chunk == 0) chunk = len ? len : 1;
  for (size_t off = 0; off < len && !c->close_after;) {
    size_t n = len - off < chunk ? len - off : chunk;
    size_t done = http_parser_execute(&c->parser, &parser_settings, data + off, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
    if (e == HPE_PAUSED) break;
    if (e != HPE_OK || (c->parser.upgrade && done < n)) {
      *refused = c->refuse ? c->refuse : 400;
      break;
    }
    off += n;
  }
  int answered = c->answered;
  free(c->body);
  free(c);
  return answered;
}

/* ---- life cycle ------------------------------------------------------------------ */

static int parse_addr(const char *addr, struct sockaddr_storage *ss, rp_err *err) {
  char host[128];
  const char *colon = strrchr(addr ? addr : "", ':');
  if (!addr || !colon || colon == addr || (size_t)(colon - addr) >= sizeof host)
    return rp_err_set(err, RP_EINVAL, "listen", "\"%s\" is not ADDRESS:PORT", addr ? addr : "");
  memcpy(host, addr, (size_t)(colon - addr));
  host[colon - addr] = '\0';
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || colon[1] == '\0' || port < 0 || port > 65535)
    return rp_err_set(err, RP_EINVAL, "listen", "\"%s\": the port must be 0 to 65535", addr);
  size_t hl = strlen(host);
  if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
    host[hl - 1] = '\0';
    if (uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)ss) == 0) return RP_OK;
  } else if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) {
    return RP_OK;
  }
  return rp_err_set(err, RP_EINVAL, "listen", "\"%s\": not an IP address", addr);
}

static void on_listener_closed(uv_handle_t *h) {
  rp_http_server *s = h->data;
  s->listening = 0;
  server_maybe_free(s);
}

int rp_http_start(uv_loop_t *loop, const char *addr, const rp_http_limits *limits,
                  rp_http_handler handler, void *ctx, rp_http_server **out, rp_err *err) {
  *out = NULL;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  int rc = parse_addr(addr, &ss, err);
  if (rc) return rc;
  rp_http_server *s = calloc(1, sizeof *s);
  if (!s) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  s->held_tail = &s->held;
  s->loop = loop;
  s->handler = handler;
  s->ctx = ctx;
  s->limits.max_body = limits && limits->max_body ? limits->max_body : (size_t)1 << 20;
  s->limits.max_connections =
      limits && limits->max_connections ? limits->max_connections : 4096;
  fit_open_files(s);
  s->limits.idle_timeout_ms =
      limits && limits->idle_timeout_ms ? limits->idle_timeout_ms : 30000;
  uv_tcp_init(loop, &s->tcp);
  s->tcp.data = s;
  s->listening = 1;
  int r = uv_tcp_bind(&s->tcp, (struct sockaddr *)&ss, 0);
  /* The kernel caps the backlog at net.core.somaxconn; a burst of thousands
   * of connections should wait in it rather than be refused. */
  if (r == 0) r = uv_listen((uv_stream_t *)&s->tcp, 4096, on_connection);
  if (r != 0) {
    rp_err_set(err, RP_EIO, "listen", "cannot listen on %s: %s", addr, uv_strerror(r));
    s->stopping = 1;
    uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
    return RP_EIO;
  }
  struct sockaddr_storage bound;
  int len = sizeof bound;
  if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&bound, &len) == 0)
    s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
  *out = s;
  return RP_OK;
}

int rp_http_port(const rp_http_server *s) { return s ? s->port : 0; }

void rp_http_on_answered(rp_http_server *s, rp_http_answered fn) {
  if (s) s->answered = fn;
}

void rp_http_stop(rp_http_server *s) {
  if (!s || s->stopping) return;
  s->stopping = 1;
  uv_close((uv_handle_t *)&s->tcp, on_listener_closed);
  for (rp_http_conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (c->writes_pending == 0 && c->held == 0) conn_close(c);
    else c->close_after = 1;
  }
}
