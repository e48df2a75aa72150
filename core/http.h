/* http: an HTTP/1.1 server on the libuv loop, parsing with Debian's
 * http-parser (nodejs/http-parser), answering with JSON.
 *
 * It owns connections and their limits: keep-alive and pipelining (answers
 * go out in request order), chunked request bodies, a cap on header and body
 * sizes (431 and 413), an idle timeout that also ends slow clients, a cap on
 * open connections, and a graceful stop (no new connections; open ones close
 * once their answers are written). It knows nothing of routes or JSON
 * content: every complete request goes to the handler, synchronously, on the
 * loop thread, and the handler fills the response.
 *
 * Held answers (for group commit): between rp_http_hold and
 * rp_http_hold_end answers are queued instead of written, each under the
 * generation (a group's number) given to rp_http_hold, so that the writes
 * of many requests can share one transaction and no answer reports a write
 * before it is durable. rp_http_release writes them, oldest first, up to a
 * generation: a group's answers can wait for their sync while the next
 * group runs. An answer made while others are still queued queues behind
 * them, so each connection's answers keep their order; a connection closed
 * meanwhile simply loses them.
 *
 * Ownership: the request is borrowed for the handler call; the handler puts
 * a malloc'ed body in res->body, which the server frees. */
#ifndef RP_HTTP_H
#define RP_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "err.h"

enum {
  RP_HTTP_MAX_HEADERS = 64,         /* header lines kept per request */
  RP_HTTP_MAX_HEADER_BYTES = 16384, /* request line and headers together */
};

typedef struct rp_http_header {
  const char *name; /* lower-cased */
  const char *value;
} rp_http_header;

typedef struct rp_http_request {
  const char *method;   /* "GET", "POST", ... */
  const char *path;     /* the URL's path, percent-decoding not applied */
  const char *query;    /* after '?', or "" */
  const rp_http_header *headers;
  int n_headers;
  const char *body;     /* NUL-terminated; "" when none */
  size_t body_len;
  const char *peer;     /* client address, "ip:port" */
  uint64_t started_ns;  /* monotonic time the request was complete */
} rp_http_request;

typedef struct rp_http_response {
  int status;
  char *body;                 /* malloc'ed, freed by the server; NULL for none */
  size_t body_len;
  const char *content_type;   /* static; default "application/json" */
  const char *extra_headers;  /* static "Name: value\r\n..." or NULL */
  int needs_commit;           /* held: replaced by the failure answer if the commit fails */
  void *note;                 /* the handler's, given to the answered callback, then
                                 freed by the server (free) */
  uint64_t started_ns;        /* set by the server: the request's started_ns */
} rp_http_response;

/* Called once per answer the handler made, when it is written (written 1)
 * or dropped because its connection went away first (written 0): after a
 * group's commit and sync, not when the handler returned. res->status is
 * the one sent (a failed commit turns answers into 500s). */
typedef void (*rp_http_answered)(void *ctx, const rp_http_response *res, int written);

/* The handler: fills res (status 0 means 500). */
typedef void (*rp_http_handler)(void *ctx, const rp_http_request *req, rp_http_response *res);

typedef struct rp_http_limits {
  size_t max_body;          /* bytes; default 1 MiB */
  int max_connections;      /* default 4096; the open files limit is raised to fit */
  uint64_t idle_timeout_ms; /* default 30000: also the time a slow request may take */
} rp_http_limits;

typedef struct rp_http_server rp_http_server;

/* Listens on addr ("127.0.0.1:8080", "[::1]:8080", port 0 for any free
 * one). limits may be NULL (defaults). RP_EINVAL for a bad address, RP_EIO
 * when it cannot bind (the message names the address and the reason). */
int rp_http_start(uv_loop_t *loop, const char *addr, const rp_http_limits *limits,
                  rp_http_handler handler, void *ctx, rp_http_server **out, rp_err *err);

/* The port actually bound (useful with port 0). */
int rp_http_port(const rp_http_server *s);

/* Sets the answered callback (NULL: none); it gets the handler's ctx. */
void rp_http_on_answered(rp_http_server *s, rp_http_answered fn);

/* Stops accepting; open connections close after their pending answers;
 * the server frees itself when the last handle is closed (run the loop). */
void rp_http_stop(rp_http_server *s);

/* Queues every answer from now on under gen (never less than any earlier
 * gen), until rp_http_hold_end. */
void rp_http_hold(rp_http_server *s, uint64_t gen);
void rp_http_hold_end(rp_http_server *s);

/* The transaction of generation gen did not commit: each of its answers
 * marked needs_commit becomes a 500 with failure_body (JSON, copied); the
 * others will go as they are. */
void rp_http_fail(rp_http_server *s, uint64_t gen, const char *failure_body);

/* Writes the queued answers of every generation up to through, in order. */
void rp_http_release(rp_http_server *s, uint64_t through);

/* For tests and fuzzing: parses data as one client's byte stream, fed to
 * the parser chunk bytes at a time (0: all at once), calling handler for
 * each complete request exactly as a connection would, without a socket.
 * Returns the number of requests answered; *refused receives the status the
 * server would have refused the stream with (400, 413, 431) or 0. */
int rp_http_parse_stream(const char *data, size_t len, size_t chunk, const rp_http_limits *limits,
                         rp_http_handler handler, void *ctx, int *refused);

/* The reason phrase of a status ("Not Found"). */
const char *rp_http_reason(int status);

#endif
