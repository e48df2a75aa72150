/* fuzz_http: libFuzzer target for the HTTP request path (http-parser and the
 * server's callbacks, arena and limits), without sockets. The first input
 * byte picks how the stream is cut into packets, so that split callbacks
 * are explored too. Built with clang in the sanitizer pass; the suite runs
 * it briefly over the seed corpus (tests/fuzz/corpus/http). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void answer(void *ctx, const rp_http_request *req, rp_http_response *res) {
  (void)ctx;
  /* Touch everything the server hands to a handler. */
  size_t sum = strlen(req->method) + strlen(req->path) + strlen(req->query) + req->body_len;
  for (int i = 0; i < req->n_headers; i++)
    sum += strlen(req->headers[i].name) + strlen(req->headers[i].value);
  res->status = sum % 2 ? 200 : 404;
  res->body = malloc(1);
  res->body_len = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = data[0] % 17; /* 0: all at once */
  rp_http_limits limits = {.max_body = 4096};
  int refused;
  rp_http_parse_stream((const char *)data + 1, size - 1, chunk, &limits, answer, NULL, &refused);
  return 0;
}
