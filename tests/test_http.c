/* The HTTP request path without sockets (rp_http_parse_stream): requests
 * parsed whole whatever the packet boundaries, pipelining, chunked bodies,
 * limits and malformed input. */
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "test.h"

typedef struct seen {
  int n;
  char method[8][16], path[8][256], query[8][256], body[8][256];
  char host[8][64], empty[8][8];
  int n_headers[8];
} seen;

static void record(void *ctx, const rp_http_request *req, rp_http_response *res) {
  seen *s = ctx;
  if (s->n < 8) {
    int i = s->n;
    snprintf(s->method[i], sizeof s->method[i], "%s", req->method);
    snprintf(s->path[i], sizeof s->path[i], "%s", req->path);
    snprintf(s->query[i], sizeof s->query[i], "%s", req->query);
    snprintf(s->body[i], sizeof s->body[i], "%.*s", (int)req->body_len, req->body);
    s->n_headers[i] = req->n_headers;
    for (int h = 0; h < req->n_headers; h++) {
      if (strcmp(req->headers[h].name, "host") == 0)
        snprintf(s->host[i], sizeof s->host[i], "%s", req->headers[h].value);
      if (strcmp(req->headers[h].name, "x-empty") == 0)
        snprintf(s->empty[i], sizeof s->empty[i], "[%s]", req->headers[h].value);
    }
  }
  s->n++;
  res->status = 200;
  res->body = strdup("{}");
  res->body_len = 2;
}

static const char two_requests[] =
    "POST /v1/events?x=1&y=2 HTTP/1.1\r\n"
    "Host: example.test\r\n"
    "Content-Type: application/json\r\n"
    "X-Empty:\r\n"
    "Content-Length: 11\r\n"
    "\r\n"
    "{\"a\": true}"
    "GET /healthz HTTP/1.1\r\n"
    "HOST: second\r\n"
    "Transfer-Encoding: chunked\r\n"
    "\r\n"
    "4\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n";

static void test_requests_are_whole_whatever_the_chunks(void) {
  /* All at once, then byte by byte and in odd sizes: the parser's callbacks
   * split names, values and the url anywhere. */
  size_t chunks[] = {0, 1, 2, 3, 7, 13, 64};
  for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
    seen s;
    memset(&s, 0, sizeof s);
    int refused = -1;
    int n = rp_http_parse_stream(two_requests, sizeof two_requests - 1, chunks[k], NULL, record,
                                 &s, &refused);
    ASSERT_EQ(refused, 0);
    ASSERT_EQ(n, 2);
    ASSERT_EQ(s.n, 2);
    ASSERT_STR_EQ(s.method[0], "POST");
    ASSERT_STR_EQ(s.path[0], "/v1/events");
    ASSERT_STR_EQ(s.query[0], "x=1&y=2");
    ASSERT_STR_EQ(s.host[0], "example.test");
    ASSERT_STR_EQ(s.empty[0], "[]"); /* a header without a value */
    ASSERT_EQ(s.n_headers[0], 4);
    ASSERT_STR_EQ(s.body[0], "{\"a\": true}");
    ASSERT_STR_EQ(s.method[1], "GET");
    ASSERT_STR_EQ(s.path[1], "/healthz");
    ASSERT_STR_EQ(s.query[1], "");
    ASSERT_STR_EQ(s.host[1], "second"); /* names are lower-cased */
    ASSERT_STR_EQ(s.body[1], "abcdefg"); /* chunked */
  }
}

static void test_limits_and_malformed_input(void) {
  seen s;
  int refused;
  rp_http_limits small = {.max_body = 10};
  const char big_declared[] = "POST / HTTP/1.1\r\nContent-Length: 11\r\n\r\n01234567890";
  memset(&s, 0, sizeof s);
  ASSERT_EQ(rp_http_parse_stream(big_declared, sizeof big_declared - 1, 0, &small, record, &s,
                                 &refused), 0);
  ASSERT_EQ(refused, 413);
  const char big_chunked[] =
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n8\r\n01234567\r\n0\r\n\r\n";
  memset(&s, 0, sizeof s);
  ASSERT_EQ(rp_http_parse_stream(big_chunked, sizeof big_chunked - 1, 5, &small, record, &s,
                                 &refused), 0);
  ASSERT_EQ(refused, 413);

  size_t big = RP_HTTP_MAX_HEADER_BYTES + 200;
  char *huge = malloc(big + 100);
  ASSERT(huge != NULL);
  int len = snprintf(huge, 64, "GET / HTTP/1.1\r\nX-Big: ");
  memset(huge + len, 'a', big);
  memcpy(huge + len + big, "\r\n\r\n", 4);
  memset(&s, 0, sizeof s);
  ASSERT_EQ(rp_http_parse_stream(huge, (size_t)len + big + 4, 100, NULL, record, &s, &refused),
            0);
  ASSERT_EQ(refused, 431);
  free(huge);

  /* Too many header lines. */
  char many[8192] = "GET / HTTP/1.1\r\n";
  for (int i = 0; i < RP_HTTP_MAX_HEADERS + 1; i++) {
    size_t l = strlen(many);
    snprintf(many + l, sizeof many - l, "X-%d: v\r\n", i);
  }
  strcat(many, "\r\n");
  memset(&s, 0, sizeof s);
  ASSERT_EQ(rp_http_parse_stream(many, strlen(many), 0, NULL, record, &s, &refused), 0);
  ASSERT_EQ(refused, 431);

  static const char *const garbage[] = {"HELLO\r\n\r\n",
                                        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                                        "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
                                        "GET / HTTP/1.1\r\nBad Header\r\n\r\n"};
  for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++) {
    memset(&s, 0, sizeof s);
    ASSERT_EQ(rp_http_parse_stream(garbage[i], strlen(garbage[i]), 0, NULL, record, &s, &refused),
              0);
    ASSERT_EQ(refused, 400);
  }
  /* Connection: close ends the stream after its answer. */
  const char closing[] = "GET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
  memset(&s, 0, sizeof s);
  ASSERT_EQ(rp_http_parse_stream(closing, sizeof closing - 1, 0, NULL, record, &s, &refused), 1);
  ASSERT_STR_EQ(s.path[0], "/a");
}

RP_TEST_LIST{
    RP_TEST(requests_are_whole_whatever_the_chunks),
    RP_TEST(limits_and_malformed_input),
    RP_TEST_END,
};
