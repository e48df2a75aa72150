/* api_http: the HTTP JSON API of a running instance (/v1, /healthz).
 *
 * It owns the routes: each names the permission it needs, checked in one
 * place (route_allowed) against the role of the API key presented as a
 * bearer token; failed authentications are rate-limited per client address.
 * Every answer is JSON, errors as {"error": {"code", "message", "field"}};
 * every request gets one access-log line (method, path, status, duration,
 * key id: never the key, never personal data). Writes are committed before
 * the answer is sent. */
#ifndef RP_API_HTTP_H
#define RP_API_HTTP_H

#include "err.h"
#include "runtime.h"

typedef struct rp_api_http rp_api_http;

/* Starts serving on listen ("127.0.0.1:8080"; port 0 for a free one) on the
 * runtime's loop, and registers the graceful stop with the runtime. The
 * server lives until the runtime stops; free it after the loop returned. */
int rp_api_http_start(rp_runtime *rt, rp_store *store, const rp_config *cfg, const char *listen,
                      rp_api_http **out, rp_err *err);
int rp_api_http_port(const rp_api_http *api);
void rp_api_http_free(rp_api_http *api);

#endif
