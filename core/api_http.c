/* api_http: routes of the HTTP API; see api_http.h. */
#include "api_http.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "bus.h"
#include "clock.h"
#include "manifest.h"
#include "tokens.h"
#include "gdpr.h"
#include "event.h"
#include "fault.h"
#include "host.h"
#include "http.h"
#include "jsonout.h"
#include "keys.h"
#include "log.h"
#include "profile.h"
#include "viewcache.h"

enum {
  BATCH_MAX_EVENTS = 1000,     /* events in one POST /v1/batch */
  AUTH_FAILURES_PER_MIN = 20,  /* per client address, then 429 */
  AUTH_TABLE = 256             /* client addresses remembered */
};

typedef struct auth_failures {
  char ip[48];
  int64_t window_start; /* ms */
  int count;
} auth_failures;

/* Requests counted per route and status, for /metrics. */
typedef struct request_count {
  const char *route; /* a route pattern (static), or "other" */
  int status;
  uint64_t n;
} request_count;

enum { COUNTS_MAX = 128 };
static const double latency_buckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5};
#define N_BUCKETS (sizeof latency_buckets / sizeof latency_buckets[0])

struct rp_api_http {
  rp_runtime *rt;
  rp_store *store;
  const rp_config *cfg;
  rp_http_server *server;
  auth_failures failures[AUTH_TABLE];
  int64_t last_failure; /* ms; none in the last minute: no table to search */
  rp_keys_seen keys_seen;
  request_count counts[COUNTS_MAX];
  int n_counts;
  uint64_t latency[N_BUCKETS + 1]; /* cumulative at render time; per bucket here */
  double latency_sum;
  uint64_t latency_n;
  uint64_t events_ingested;
  /* Group commit: the requests handled in one turn of the loop share one
   * transaction, committed by commit_check (a check handle runs right after
   * the loop's I/O callbacks) before their held answers are written. */
  uv_check_t commit_check;
  uv_prepare_t log_flush; /* the access log of a turn, written before the loop waits */
  int group_open;
  int stopped;       /* commit_check is closed: requests commit alone */
  int group_async;   /* the open group commits with synchronous=NORMAL */
  uint64_t group_commits, group_requests, group_failures;
  /* Groups are numbered; answers go out once their group is durable. */
  uint64_t gen_open;    /* the group open now, or the last one */
  uint64_t gen_done;    /* groups up to this one have committed or failed */
  uint64_t gen_synced;  /* ... and their answers are out */
  char wal_path[4096];  /* the database's WAL file; "" when it has none */
  int wal_fd;           /* open on wal_path, or -1 */
  uv_fs_t sync_req;
  int syncing;          /* sync_req is under way ... */
  uint64_t sync_covers; /* ... for the groups up to this one */
  uint64_t sync_failures;
  rp_viewcache *views; /* rendered customer views; NULL when view_cache_mib is 0 */
};

/* The request being handled. */
typedef struct call {
  rp_api_http *api;
  const char *route; /* the matched pattern, for metrics */
  const rp_http_request *req;
  rp_http_response *res;
  int64_t key_id;    /* 0: no key */
  uint32_t perms;
  char role[16];
  uint64_t events;   /* events accepted: counted once the answer is out */
  int in_group;      /* it runs in the turn's group transaction */
  int in_savepoint;  /* and in a savepoint of its own (a WRITE route) */
} call;

/* ---- answers ----------------------------------------------------------------------- */

static void reply_json(call *c, int status, cJSON *body) {
  c->res->status = status;
  char *text = rp_json_print(body);
  cJSON_Delete(body);
  if (!text) {
    c->res->status = 500;
    return;
  }
  c->res->body = text;
  c->res->body_len = strlen(text);
}

static void reply_error(call *c, int status, const char *code, const char *field,
                        const char *message) {
  cJSON *root = cJSON_CreateObject();
  cJSON *e = cJSON_AddObjectToObject(root, "error");
  cJSON_AddStringToObject(e, "code", code);
  cJSON_AddStringToObject(e, "message", message);
  if (field && field[0]) cJSON_AddStringToObject(e, "field", field);
  reply_json(c, status, root);
}

/* Maps a core error to an HTTP status. */
static void reply_err(call *c, const rp_err *err) {
  int status;
  switch (err->code) {
  case RP_EINVAL: status = 422; break;
  case RP_ENOTFOUND: status = 404; break;
  case RP_ECONFLICT: status = 409; break;
  case RP_EDENIED: status = 403; break;
  case RP_ELIMIT: status = 413; break;
  default: status = 500;
  }
  if (status == 500) rp_log(RP_LOG_ERROR, "http", "%s %s: %s", c->req->method, c->req->path,
                            err->msg);
  reply_error(c, status, rp_err_name(err->code), err->field,
              status == 500 ? "internal error (see the server log)" : err->msg);
}

static const char *header(const rp_http_request *req, const char *name) {
  for (int i = 0; i < req->n_headers; i++)
    if (strcmp(req->headers[i].name, name) == 0) return req->headers[i].value;
  return NULL;
}

/* The JSON body, or NULL after answering 415 or 400. */
static cJSON *json_body(call *c) {
  const char *type = header(c->req, "content-type");
  if (!type || strncmp(type, "application/json", 16) != 0) {
    reply_error(c, 415, "unsupported_media_type", "content-type",
                "send the body as application/json");
    return NULL;
  }
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(c->req->body, c->req->body_len, &end, 0);
  if (j && end) {
    while (end < c->req->body + c->req->body_len &&
           (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
      end++;
    if (end != c->req->body + c->req->body_len) {
      cJSON_Delete(j);
      j = NULL;
    }
  }
  if (!j) {
    char msg[96];
    size_t at = end && end >= c->req->body ? (size_t)(end - c->req->body) : 0;
    snprintf(msg, sizeof msg, "the body is not valid JSON (at byte %zu)", at + 1);
    reply_error(c, 400, "invalid_json", "body", msg);
  }
  return j;
}

/* ---- authentication and permissions --------------------------------------------------- */

static auth_failures *failures_of(rp_api_http *api, const char *peer, int create) {
  char ip[48];
  snprintf(ip, sizeof ip, "%s", peer);
  char *colon = strrchr(ip, ':');
  if (colon) *colon = '\0';
  auth_failures *oldest = &api->failures[0];
  for (int i = 0; i < AUTH_TABLE; i++) {
    if (strcmp(api->failures[i].ip, ip) == 0) return &api->failures[i];
    if (api->failures[i].window_start < oldest->window_start) oldest = &api->failures[i];
  }
  if (!create) return NULL;
  memset(oldest, 0, sizeof *oldest);
  snprintf(oldest->ip, sizeof oldest->ip, "%s", ip);
  return oldest;
}

/* Authenticates the bearer key; answers 401 or 429 and returns -1 when it
 * fails. */
static int authenticate(call *c) {
  int64_t now = rp_clock_now_ms();
  auth_failures *f =
      now - c->api->last_failure < 60000 ? failures_of(c->api, c->req->peer, 0) : NULL;
  if (f && now - f->window_start < 60000 && f->count >= AUTH_FAILURES_PER_MIN) {
    reply_error(c, 429, "too_many_requests", NULL,
                "too many failed authentications from this address; wait a minute");
    c->res->extra_headers = "Retry-After: 60\r\n";
    return -1;
  }
  const char *auth = header(c->req, "authorization");
  rp_err err;
  rp_err_clear(&err);
  if (auth && strncmp(auth, "Bearer ", 7) == 0 &&
      rp_keys_verify(c->api->store, &c->api->keys_seen, auth + 7, &c->key_id, c->role, sizeof c->role, &err) ==
          RP_OK) {
    c->perms = rp_role_permissions(c->role);
    return 0;
  }
  c->api->last_failure = now;
  f = failures_of(c->api, c->req->peer, 1);
  if (now - f->window_start >= 60000) {
    f->window_start = now;
    f->count = 0;
  }
  f->count++;
  reply_error(c, 401, "unauthorized", "authorization",
              auth ? "invalid or revoked API key" : "send an API key: Authorization: Bearer rpk_...");
  c->res->extra_headers = "WWW-Authenticate: Bearer\r\n";
  return -1;
}

/* The one place where a route's permission is checked. */
static int route_allowed(call *c, uint32_t need) {
  if ((c->perms & need) == need) return 1;
  char msg[160];
  snprintf(msg, sizeof msg, "the role '%s' lacks the permission '%s'", c->role,
           rp_api_permission_name(need));
  reply_error(c, 403, "denied", NULL, msg);
  return 0;
}

/* ---- audit ---------------------------------------------------------------------------- */

/* Records an access to customer_id by the key of the request, in the
 * request's transaction. fields (may be NULL): the JSON text of an array of
 * field names, borrowed. On failure the
 * caller answers with the error: no data goes out without its record, and
 * the request's changes roll back with it. */
/* The client's address without its port: the origin audit records name. */
static void peer_host(const call *c, char *buf, size_t size) {
  snprintf(buf, size, "%s", c->req->peer);
  char *colon = strrchr(buf, ':');
  if (colon) *colon = '\0';
}

static int audit_text(call *c, const char *action, int64_t customer_id, const char *fields,
                      rp_err *err) {
  char actor[32];
  snprintf(actor, sizeof actor, "key:%" PRId64, c->key_id);
  char origin[48];
  peer_host(c, origin, sizeof origin);
  return rp_audit_append(c->api->store, actor, action, customer_id, fields, origin, err);
}

/* As audit_text, with the fields as a JSON array (may be NULL), taken. */
static int audit(call *c, const char *action, int64_t customer_id, cJSON *fields, rp_err *err) {
  char *text = fields ? cJSON_PrintUnformatted(fields) : NULL;
  cJSON_Delete(fields);
  if (fields && !text) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  int rc = audit_text(c, action, customer_id, text, err);
  cJSON_free(text);
  return rc;
}

/* ["a", "b"] from the keys of an object. */
static cJSON *keys_of(const cJSON *obj) {
  cJSON *arr = cJSON_CreateArray();
  const cJSON *k;
  cJSON_ArrayForEach(k, obj) cJSON_AddItemToArray(arr, cJSON_CreateString(k->string));
  return arr;
}

/* ---- events ------------------------------------------------------------------------- */

/* Rewrites Segment-style fields into Rapport's names, in place: event ->
 * type, userId -> external_id, anonymousId -> anonymous_id, messageId -> id,
 * timestamp -> occurred_at; traits.email and traits.phone name the customer;
 * Segment's envelope fields (a call type in "type", context, integrations,
 * sentAt, ...) are dropped. Rapport's own name wins over Segment's when an
 * event has both. One pass over the members: a batch runs this a thousand
 * times, and a lookup per name was a tenth of its time. */
static void from_segment(cJSON *o) {
  static const char *const segment[] = {"userId", "anonymousId", "messageId", "timestamp", NULL};
  static const char *const rapport[] = {"external_id", "anonymous_id", "id", "occurred_at"};
  static const char *const dropped[] = {"context", "integrations", "sentAt", "receivedAt",
                                        "originalTimestamp", "version", "channel", "writeKey",
                                        NULL};
  cJSON *event = NULL, *type = NULL, *traits = NULL;
  cJSON *from[4] = {NULL}, *to[4] = {NULL};
  int segment_shaped = 0;
  for (cJSON *m = o->child, *next; m; m = next) {
    next = m->next;
    const char *k = m->string;
    if (!k) continue;
    if (strcmp(k, "event") == 0) {
      event = m;
      continue;
    }
    if (strcmp(k, "type") == 0) {
      type = m;
      continue;
    }
    if (strcmp(k, "traits") == 0) {
      traits = m;
      continue;
    }
    int hit = 0;
    for (int i = 0; !hit && segment[i]; i++) {
      if (strcmp(k, segment[i]) == 0) from[i] = m, hit = segment_shaped = 1;
      else if (strcmp(k, rapport[i]) == 0) to[i] = m, hit = 1;
    }
    for (int i = 0; !hit && dropped[i]; i++)
      if (strcmp(k, dropped[i]) == 0) cJSON_Delete(cJSON_DetachItemViaPointer(o, m)), hit = 1;
  }
  if (event) {
    if (type) cJSON_Delete(cJSON_DetachItemViaPointer(o, type)); /* "track", in Segment */
    cJSON_AddItemToObject(o, "type", cJSON_DetachItemViaPointer(o, event));
  }
  for (int i = 0; segment_shaped && segment[i]; i++) {
    if (!from[i] || to[i]) continue;
    cJSON *v = cJSON_DetachItemViaPointer(o, from[i]);
    if (cJSON_IsNull(v)) cJSON_Delete(v);
    else cJSON_AddItemToObject(o, rapport[i], v);
  }
  if (!traits) return;
  cJSON_DetachItemViaPointer(o, traits);
  if (cJSON_IsObject(traits)) {
    static const char *const ids[] = {"email", "phone", NULL};
    for (int i = 0; ids[i]; i++) {
      cJSON *v = cJSON_GetObjectItemCaseSensitive(traits, ids[i]);
      if (cJSON_IsString(v) && !cJSON_GetObjectItemCaseSensitive(o, ids[i]))
        cJSON_AddStringToObject(o, ids[i], v->valuestring);
    }
  }
  cJSON_Delete(traits);
}

/* Appends one event object; fills *id and *dup, or err. */
static int append_one(call *c, cJSON *obj, int64_t *id, int *dup, rp_err *err) {
  if (!cJSON_IsObject(obj))
    return rp_err_set(err, RP_EINVAL, NULL, "an event must be a JSON object");
  from_segment(obj);
  rp_event_in ev;
  int rc = rp_event_from_json(obj, &ev, err);
  if (rc) return rc;
  if (!ev.source) ev.source = "http";
  return rp_event_append(c->api->store, c->api->cfg, &ev, id, dup, err);
}

static void post_event(call *c) {
  cJSON *obj = json_body(c);
  if (!obj) return;
  int64_t id = 0;
  int dup = 0;
  rp_err err;
  rp_err_clear(&err);
  int rc = append_one(c, obj, &id, &dup, &err);
  cJSON_Delete(obj);
  if (rc) {
    reply_err(c, &err);
    return;
  }
  rp_runtime_kick(c->api->rt);
  if (!dup) c->events++;
  cJSON *out = cJSON_CreateObject();
  cJSON_AddNumberToObject(out, "id", (double)id);
  cJSON_AddBoolToObject(out, "duplicate", dup);
  reply_json(c, dup ? 200 : 201, out);
}

static void post_batch(call *c) {
  cJSON *body = json_body(c);
  if (!body) return;
  cJSON *list = cJSON_IsArray(body) ? body : cJSON_GetObjectItemCaseSensitive(body, "batch");
  if (!cJSON_IsArray(list)) {
    cJSON_Delete(body);
    reply_error(c, 422, "invalid", "batch", "send {\"batch\": [event, ...]} or an array");
    return;
  }
  int n = cJSON_GetArraySize(list);
  if (n > BATCH_MAX_EVENTS) {
    cJSON_Delete(body);
    char msg[96];
    snprintf(msg, sizeof msg, "%d events; a batch holds at most %d", n, BATCH_MAX_EVENTS);
    reply_error(c, 413, "too_large", "batch", msg);
    return;
  }
  rp_err err;
  rp_err_clear(&err);
  /* The request's savepoint holds the batch (request_begin): a failure of
   * the database answers 500 and undoes it whole; a refused event wrote
   * nothing (rp_event_append). */
  cJSON *results = cJSON_CreateArray();
  int accepted = 0, duplicates = 0, rejected = 0, index = 0;
  cJSON *item;
  cJSON_ArrayForEach(item, list) {
    int64_t id = 0;
    int dup = 0;
    rp_err e;
    rp_err_clear(&e);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "index", index++);
    int rc = append_one(c, item, &id, &dup, &e);
    if (rc == RP_OK) {
      cJSON_AddStringToObject(r, "status", dup ? "duplicate" : "accepted");
      cJSON_AddNumberToObject(r, "id", (double)id);
      if (dup) duplicates++;
      else accepted++;
    } else if (rc == RP_EDB || rc == RP_ENOMEM || rc == RP_EIO) {
      cJSON_Delete(r);
      cJSON_Delete(results);
      cJSON_Delete(body);
      reply_err(c, &e);
      return;
    } else {
      cJSON_AddStringToObject(r, "status", "rejected");
      cJSON *eo = cJSON_AddObjectToObject(r, "error");
      cJSON_AddStringToObject(eo, "code", rp_err_name(e.code));
      cJSON_AddStringToObject(eo, "message", e.msg);
      if (e.field[0]) cJSON_AddStringToObject(eo, "field", e.field);
      rejected++;
    }
    cJSON_AddItemToArray(results, r);
  }
  cJSON_Delete(body);
  if (accepted) rp_runtime_kick(c->api->rt);
  c->events += (uint64_t)accepted;
  cJSON *out = cJSON_CreateObject();
  cJSON_AddNumberToObject(out, "accepted", accepted);
  cJSON_AddNumberToObject(out, "duplicate", duplicates);
  cJSON_AddNumberToObject(out, "rejected", rejected);
  cJSON_AddItemToObject(out, "results", results);
  reply_json(c, 200, out);
}

/* ---- customers ------------------------------------------------------------------------ */

static unsigned view_flags(const call *c) {
  unsigned f = RP_VIEW_EVENTS;
  if (c->perms & RP_API_PII_READ) f |= RP_VIEW_PII | RP_VIEW_CONSENT;
  return f;
}

/* The fields a view shows, for its audit record: with PII, or without. */
static const char view_fields_pii[] =
    "[\"attributes\",\"identities\",\"consent\",\"recent_events\"]";
static const char view_fields_plain[] = "[\"attributes\",\"recent_events\"]";

/* The answer is the view as rendered last time, while nothing it shows has
 * changed (viewcache.h says how that is known), else rendered now and kept
 * when id is the customer's own (not a merged-away) id. Either way the read
 * is audited before anything goes out. */
static void show_customer(call *c, int64_t id) {
  rp_api_http *api = c->api;
  unsigned flags = view_flags(c);
  const char *fields = (flags & RP_VIEW_PII) ? view_fields_pii : view_fields_plain;
  rp_err err;
  rp_err_clear(&err);
  size_t len;
  const char *cached = rp_viewcache_get(api->views, id, flags, &len);
  if (cached) {
    char *body = malloc(len);
    if (!body) {
      rp_err_set(&err, RP_ENOMEM, NULL, "out of memory");
      reply_err(c, &err);
      return;
    }
    memcpy(body, cached, len);
    if (audit_text(c, "customer.read", id, fields, &err)) {
      free(body);
      reply_err(c, &err);
      return;
    }
    c->res->status = 200;
    c->res->body = body;
    c->res->body_len = len;
    return;
  }
  cJSON *v = NULL;
  if (rp_profile_view(api->store, id, flags, 10, &v, &err)) {
    reply_err(c, &err);
    return;
  }
  int64_t cid = (int64_t)cJSON_GetObjectItem(v, "id")->valuedouble;
  if (audit_text(c, "customer.read", cid, fields, &err)) {
    cJSON_Delete(v);
    reply_err(c, &err);
    return;
  }
  reply_json(c, 200, v);
  if (c->res->status == 200 && cid == id)
    rp_viewcache_put(api->views, id, flags, c->res->body, c->res->body_len);
}

/* The value of a query parameter (no percent-decoding beyond %40 for '@' and
 * %2B for '+', the two an email or a phone needs). */
static int query_param(const char *query, const char *name, char *out, size_t size) {
  size_t nl = strlen(name);
  for (const char *p = query; p && *p;) {
    const char *amp = strchr(p, '&');
    size_t len = amp ? (size_t)(amp - p) : strlen(p);
    if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
      size_t o = 0;
      for (size_t i = nl + 1; i < len && o + 1 < size; i++) {
        if (p[i] == '%' && i + 2 < len + 0 && (p[i + 1] == '4' && p[i + 2] == '0')) {
          out[o++] = '@';
          i += 2;
        } else if (p[i] == '%' && i + 2 < len && p[i + 1] == '2' &&
                   (p[i + 2] == 'B' || p[i + 2] == 'b')) {
          out[o++] = '+';
          i += 2;
        } else {
          out[o++] = p[i];
        }
      }
      out[o] = '\0';
      return 1;
    }
    p = amp ? amp + 1 : NULL;
  }
  return 0;
}

static void find_customer(call *c) {
  static const char *const kinds[] = {"email", "phone", "external_id", "anonymous_id", NULL};
  char value[512];
  for (int i = 0; kinds[i]; i++) {
    if (!query_param(c->req->query, kinds[i], value, sizeof value)) continue;
    if (i < 2 && !route_allowed(c, RP_API_PII_READ)) return;
    int64_t id = 0;
    rp_err err;
    rp_err_clear(&err);
    if (rp_profile_resolve(c->api->store, c->api->cfg, kinds[i], value, &id, &err)) {
      reply_err(c, &err);
      return;
    }
    show_customer(c, id);
    return;
  }
  reply_error(c, 422, "invalid", "query",
              "look a customer up with ?email=, ?phone=, ?external_id= or ?anonymous_id=");
}

/* The customer id of a path's {id}, followed to its survivor; answers 404
 * and returns 0 when there is none. */
static int64_t customer_of(call *c, int64_t id) {
  int64_t survivor = 0;
  rp_err err;
  rp_err_clear(&err);
  if (rp_profile_canonical(c->api->store, id, &survivor, &err)) {
    reply_err(c, &err);
    return 0;
  }
  return survivor;
}

/* POST /v1/identify: identities, traits (as attributes) and consent of one
 * customer, Segment's identify or Rapport's upsert object. */
static void post_identify(call *c, int64_t unused) {
  (void)unused;
  cJSON *obj = json_body(c);
  if (!obj) return;
  if (!cJSON_IsObject(obj)) {
    cJSON_Delete(obj);
    reply_error(c, 422, "invalid", NULL, "send a JSON object");
    return;
  }
  /* Segment: userId, anonymousId, traits {email, phone, ...}. */
  cJSON *v;
  if ((v = cJSON_DetachItemFromObjectCaseSensitive(obj, "userId")))
    cJSON_AddItemToObject(obj, "external_id", v);
  if ((v = cJSON_DetachItemFromObjectCaseSensitive(obj, "anonymousId")))
    cJSON_AddItemToObject(obj, "anonymous_id", v);
  static const char *const envelope[] = {"type", "messageId", "timestamp", "context",
                                         "integrations", "sentAt", "receivedAt",
                                         "originalTimestamp", "version", "channel", NULL};
  for (int i = 0; envelope[i]; i++) cJSON_DeleteItemFromObjectCaseSensitive(obj, envelope[i]);
  cJSON *traits = cJSON_DetachItemFromObjectCaseSensitive(obj, "traits");
  if (cJSON_IsObject(traits)) {
    static const char *const ids[] = {"email", "phone", NULL};
    for (int i = 0; ids[i]; i++)
      if ((v = cJSON_DetachItemFromObjectCaseSensitive(traits, ids[i])) &&
          !cJSON_GetObjectItemCaseSensitive(obj, ids[i]))
        cJSON_AddItemToObject(obj, ids[i], v);
      else
        cJSON_Delete(v);
    cJSON *attrs = cJSON_GetObjectItemCaseSensitive(obj, "attributes");
    if (!attrs) attrs = cJSON_AddObjectToObject(obj, "attributes");
    cJSON *t;
    while ((t = traits->child)) {
      t = cJSON_DetachItemViaPointer(traits, t);
      if (cJSON_GetObjectItemCaseSensitive(attrs, t->string)) cJSON_Delete(t);
      else cJSON_AddItemToObject(attrs, t->string, t);
    }
  }
  cJSON_Delete(traits);
  rp_upsert res;
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_profile_upsert(c->api->store, c->api->cfg, obj, "http", &res, &err);
  if (rc) {
    cJSON_Delete(obj);
    reply_err(c, &err);
    return;
  }
  rc = audit(c, res.created ? "customer.create" : "customer.update", res.customer_id,
             keys_of(obj), &err);
  cJSON_Delete(obj);
  if (rc) {
    reply_err(c, &err);
    return;
  }
  cJSON *out = cJSON_CreateObject();
  cJSON_AddNumberToObject(out, "id", (double)res.customer_id);
  cJSON_AddBoolToObject(out, "created", res.created);
  cJSON_AddBoolToObject(out, "updated", res.updated);
  cJSON_AddNumberToObject(out, "merged", res.merged);
  reply_json(c, res.created ? 201 : 200, out);
}

static void get_customer(call *c, int64_t id) { show_customer(c, id); }

static void get_customer_list(call *c, int64_t unused) {
  (void)unused;
  find_customer(c);
}

/* PATCH /v1/customers/{id}: {"attributes": {...}} (null deletes), all or
 * nothing. */
static void patch_customer(call *c, int64_t id) {
  if (!(id = customer_of(c, id))) return;
  cJSON *obj = json_body(c);
  if (!obj) return;
  cJSON *attrs = cJSON_GetObjectItemCaseSensitive(obj, "attributes");
  const cJSON *k;
  int only_attrs = cJSON_IsObject(obj);
  cJSON_ArrayForEach(k, obj) if (strcmp(k->string, "attributes") != 0) only_attrs = 0;
  if (!only_attrs || !cJSON_IsObject(attrs)) {
    cJSON_Delete(obj);
    reply_error(c, 422, "invalid", "attributes",
                "send {\"attributes\": {...}}; identities change through /v1/identify");
    return;
  }
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_profile_set_attributes(c->api->store, id, attrs, &err);
  if (rc) {
    cJSON_Delete(obj);
    reply_err(c, &err);
    return;
  }
  rc = audit(c, "customer.update", id, keys_of(attrs), &err);
  cJSON_Delete(obj);
  if (rc) {
    reply_err(c, &err);
    return;
  }
  show_customer(c, id);
}

/* PUT /v1/customers/{id}/consent: {"email": true | {"granted", "source",
 * "at"}, ...}, recorded with its history. */
static void put_consent(call *c, int64_t id) {
  if (!(id = customer_of(c, id))) return;
  cJSON *obj = json_body(c);
  if (!obj) return;
  if (!cJSON_IsObject(obj) || !obj->child) {
    cJSON_Delete(obj);
    reply_error(c, 422, "invalid", "consent", "send {\"email\": true, ...}");
    return;
  }
  cJSON *in = cJSON_CreateObject();
  cJSON_AddNumberToObject(in, "id", (double)id);
  cJSON_AddItemToObject(in, "consent", obj);
  rp_upsert res;
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_profile_upsert(c->api->store, c->api->cfg, in, "http", &res, &err);
  if (rc) {
    cJSON_Delete(in);
    reply_err(c, &err);
    return;
  }
  rc = audit(c, "consent.update", id, keys_of(obj), &err);
  cJSON_Delete(in);
  if (rc) {
    reply_err(c, &err);
    return;
  }
  show_customer(c, id);
}

/* GET /v1/customers/{id}/events?limit=N&before=EVENT_ID: newest first; the
 * answer's next_before continues the listing. */
static void get_timeline(call *c, int64_t id) {
  if (!(id = customer_of(c, id))) return;
  char v[32];
  long limit = 50;
  long long before = 0;
  if (query_param(c->req->query, "limit", v, sizeof v)) {
    char *end;
    limit = strtol(v, &end, 10);
    if (*end || limit < 1 || limit > 1000) {
      reply_error(c, 422, "invalid", "limit", "limit is 1 to 1000");
      return;
    }
  }
  if (query_param(c->req->query, "before", v, sizeof v)) {
    char *end;
    before = strtoll(v, &end, 10);
    if (*end || before < 1) {
      reply_error(c, 422, "invalid", "before", "before is an event id from next_before");
      return;
    }
  }
  cJSON *events = NULL;
  rp_err err;
  rp_err_clear(&err);
  if (rp_event_timeline(c->api->store, id, before, (int)limit, &events, &err)) {
    reply_err(c, &err);
    return;
  }
  if (audit(c, "customer.events.read", id, NULL, &err)) {
    cJSON_Delete(events);
    reply_err(c, &err);
    return;
  }
  cJSON *out = cJSON_CreateObject();
  int n = cJSON_GetArraySize(events);
  if (n == limit) {
    cJSON *last = cJSON_GetArrayItem(events, n - 1);
    cJSON_AddNumberToObject(out, "next_before", cJSON_GetObjectItem(last, "id")->valuedouble);
  } else {
    cJSON_AddNullToObject(out, "next_before");
  }
  cJSON_AddItemToObject(out, "events", events);
  reply_json(c, 200, out);
}

static void get_plugins(call *c, int64_t unused) {
  (void)unused;
  cJSON *list = NULL;
  rp_err err;
  rp_err_clear(&err);
  if (rp_host_list(rp_runtime_host(c->api->rt), &list, &err)) {
    reply_err(c, &err);
    return;
  }
  reply_json(c, 200, list);
}

static void get_jobs(call *c, int64_t unused) {
  (void)unused;
  sqlite3_stmt *st;
  rp_err err;
  rp_err_clear(&err);
  if (rp_store_prepare(c->api->store,
                       "SELECT id, owner, name, kind, spec, target, next_run_at, last_run_at, "
                       "enabled, missed FROM jobs WHERE kind <> 'at' ORDER BY owner, name",
                       &st, &err)) {
    reply_err(c, &err);
    return;
  }
  cJSON *arr = cJSON_CreateArray();
  while (sqlite3_step(st) == SQLITE_ROW) {
    cJSON *o = cJSON_CreateObject();
    static const char *const cols[] = {"id", "owner", "name", "kind", "spec", "target",
                                       "next_run_at", "last_run_at", "enabled", "missed"};
    for (int i = 0; i < 10; i++) {
      int t = sqlite3_column_type(st, i);
      if (t == SQLITE_NULL) cJSON_AddNullToObject(o, cols[i]);
      else if (t == SQLITE_INTEGER)
        cJSON_AddNumberToObject(o, cols[i], (double)sqlite3_column_int64(st, i));
      else cJSON_AddStringToObject(o, cols[i], (const char *)sqlite3_column_text(st, i));
    }
    cJSON_AddItemToArray(arr, o);
  }
  rp_store_done(st);
  cJSON *out = cJSON_CreateObject();
  cJSON_AddItemToObject(out, "jobs", arr);
  if (rp_store_prepare(c->api->store, "SELECT count(*) FROM jobs WHERE kind = 'at'", &st, &err) ==
      RP_OK) {
    if (sqlite3_step(st) == SQLITE_ROW)
      cJSON_AddNumberToObject(out, "pending_one_shots", (double)sqlite3_column_int64(st, 0));
    rp_store_done(st);
  }
  reply_json(c, 200, out);
}

static void get_dlq(call *c, int64_t unused) {
  (void)unused;
  char plugin[64] = "";
  query_param(c->req->query, "plugin", plugin, sizeof plugin);
  cJSON *list = NULL;
  rp_err err;
  rp_err_clear(&err);
  if (rp_dlq_list(c->api->store, plugin[0] ? plugin : NULL, 0, 1000, &list, &err)) {
    reply_err(c, &err);
    return;
  }
  reply_json(c, 200, list);
}

static void post_dlq_retry(call *c, int64_t id) {
  rp_err err;
  rp_err_clear(&err);
  int rc = rp_dlq_retry(rp_runtime_host(c->api->rt), id, &err);
  if (rc == RP_ENOTFOUND) {
    reply_err(c, &err);
    return;
  }
  cJSON *out = cJSON_CreateObject();
  cJSON_AddNumberToObject(out, "id", (double)id);
  cJSON_AddStringToObject(out, "status", rc == RP_OK ? "retried" : "failed");
  if (rc) cJSON_AddStringToObject(out, "error", err.msg);
  reply_json(c, rc == RP_OK ? 200 : 409, out);
}

/* GET /v1/customers/{id}/export: everything held on the customer. */
static void get_export(call *c, int64_t id) {
  cJSON *doc = NULL;
  rp_err err;
  rp_err_clear(&err);
  if (rp_gdpr_export(rp_runtime_host(c->api->rt), id, &doc, &err)) {
    reply_err(c, &err);
    return;
  }
  cJSON *everything = cJSON_CreateArray();
  cJSON_AddItemToArray(everything, cJSON_CreateString("everything"));
  if (audit(c, "customer.export",
            (int64_t)cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "customer"), "id")->valuedouble,
            everything, &err)) {
    cJSON_Delete(doc);
    reply_err(c, &err);
    return;
  }
  reply_json(c, 200, doc);
}

/* DELETE /v1/customers/{id}: erasure. */
static void delete_customer(call *c, int64_t id) {
  char actor[32], origin[48];
  snprintf(actor, sizeof actor, "key:%" PRId64, c->key_id);
  peer_host(c, origin, sizeof origin);
  int64_t erased = 0;
  rp_err err;
  rp_err_clear(&err);
  if (rp_gdpr_erase(rp_runtime_host(c->api->rt), id, actor, origin, &erased, &err)) {
    reply_err(c, &err);
    return;
  }
  cJSON *out = cJSON_CreateObject();
  cJSON_AddNumberToObject(out, "erased", (double)erased);
  reply_json(c, 200, out);
}

static void post_event_route(call *c, int64_t unused) {
  (void)unused;
  post_event(c);
}

static void post_batch_route(call *c, int64_t unused) {
  (void)unused;
  post_batch(c);
}

/* ---- metrics ---------------------------------------------------------------------------- */

typedef struct text_buf {
  char *data;
  size_t len, cap;
} text_buf;

static void tb_printf(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(text_buf *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = b->data ? vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap) : -1;
    va_end(ap);
    if (n >= 0 && b->len + (size_t)n < b->cap) {
      b->len += (size_t)n;
      return;
    }
    size_t cap = b->cap ? b->cap * 2 : 8192;
    char *d = realloc(b->data, cap);
    if (!d) return;
    b->data = d;
    b->cap = cap;
  }
}

static int64_t sql_count(rp_store *s, const char *sql) {
  sqlite3_stmt *st;
  int64_t v = 0;
  if (rp_store_prepare(s, sql, &st, NULL) == RP_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    rp_store_done(st);
  }
  return v;
}

/* GET /metrics: Prometheus text format. */
static void get_metrics(call *c, int64_t unused) {
  (void)unused;
  rp_api_http *api = c->api;
  text_buf b = {0};
  tb_printf(&b, "# HELP rapport_http_requests_total HTTP requests answered, by route and status.\n"
                "# TYPE rapport_http_requests_total counter\n");
  for (int i = 0; i < api->n_counts; i++)
    tb_printf(&b, "rapport_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
              api->counts[i].route, api->counts[i].status, (unsigned long long)api->counts[i].n);
  tb_printf(&b, "# HELP rapport_http_request_duration_seconds Time to answer a request.\n"
                "# TYPE rapport_http_request_duration_seconds histogram\n");
  uint64_t cum = 0;
  for (size_t i = 0; i < N_BUCKETS; i++) {
    cum += api->latency[i];
    tb_printf(&b, "rapport_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
              latency_buckets[i], (unsigned long long)cum);
  }
  cum += api->latency[N_BUCKETS];
  tb_printf(&b, "rapport_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                "rapport_http_request_duration_seconds_sum %.6f\n"
                "rapport_http_request_duration_seconds_count %llu\n",
            (unsigned long long)cum, api->latency_sum, (unsigned long long)api->latency_n);
  tb_printf(&b, "# HELP rapport_http_group_commits_total Transactions shared by the requests "
                "of one turn of the loop, by outcome.\n"
                "# TYPE rapport_http_group_commits_total counter\n"
                "rapport_http_group_commits_total{outcome=\"committed\"} %llu\n"
                "rapport_http_group_commits_total{outcome=\"failed\"} %llu\n"
                "rapport_http_group_commits_total{outcome=\"sync_failed\"} %llu\n"
                "# HELP rapport_http_grouped_requests_total Requests run in a group transaction.\n"
                "# TYPE rapport_http_grouped_requests_total counter\n"
                "rapport_http_grouped_requests_total %llu\n",
            (unsigned long long)api->group_commits, (unsigned long long)api->group_failures,
            (unsigned long long)api->sync_failures, (unsigned long long)api->group_requests);
  rp_viewcache_stats vs;
  rp_viewcache_stats_of(api->views, &vs);
  tb_printf(&b, "# HELP rapport_view_cache_lookups_total Customer views asked of the view cache, "
                "by result.\n"
                "# TYPE rapport_view_cache_lookups_total counter\n"
                "rapport_view_cache_lookups_total{result=\"hit\"} %llu\n"
                "rapport_view_cache_lookups_total{result=\"miss\"} %llu\n"
                "# HELP rapport_view_cache_dropped_total Views dropped: changed, rolled back or "
                "evicted.\n"
                "# TYPE rapport_view_cache_dropped_total counter\n"
                "rapport_view_cache_dropped_total %llu\n"
                "# HELP rapport_view_cache_bytes Memory held by cached views.\n"
                "# TYPE rapport_view_cache_bytes gauge\n"
                "rapport_view_cache_bytes %zu\n",
            (unsigned long long)vs.hits, (unsigned long long)vs.misses,
            (unsigned long long)vs.dropped, vs.bytes);
  tb_printf(&b, "# HELP rapport_events_ingested_total Events accepted over HTTP.\n"
                "# TYPE rapport_events_ingested_total counter\n"
                "rapport_events_ingested_total %llu\n",
            (unsigned long long)api->events_ingested);
  tb_printf(&b, "# HELP rapport_events_total Events in the log.\n"
                "# TYPE rapport_events_total gauge\n"
                "rapport_events_total %lld\n",
            (long long)sql_count(api->store, "SELECT coalesce(max(id), 0) FROM events"));
  rp_host *h = rp_runtime_host(api->rt);
  tb_printf(&b, "# HELP rapport_bus_lag_events Events of the log past a plugin's cursor.\n"
                "# TYPE rapport_bus_lag_events gauge\n");
  for (size_t i = 0; i < rp_host_count(h); i++) {
    const char *name = rp_plugin_name(rp_host_plugin_at(h, i));
    int64_t lag = 0;
    if (rp_bus_lag(h, name, &lag, NULL) == RP_OK)
      tb_printf(&b, "rapport_bus_lag_events{plugin=\"%s\"} %lld\n", name, (long long)lag);
  }
  tb_printf(&b, "# HELP rapport_plugin_errors_total Handler and job failures, per plugin.\n"
                "# TYPE rapport_plugin_errors_total counter\n");
  sqlite3_stmt *st;
  if (rp_store_prepare(api->store, "SELECT name, errors_total, status = 'suspended' FROM plugins "
                                   "ORDER BY name", &st, NULL) == RP_OK) {
    int64_t suspended = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
      tb_printf(&b, "rapport_plugin_errors_total{plugin=\"%s\"} %lld\n",
                (const char *)sqlite3_column_text(st, 0), (long long)sqlite3_column_int64(st, 1));
      suspended += sqlite3_column_int(st, 2);
    }
    rp_store_done(st);
    tb_printf(&b, "# HELP rapport_plugins_suspended Plugins suspended after repeated failures.\n"
                  "# TYPE rapport_plugins_suspended gauge\n"
                  "rapport_plugins_suspended %lld\n", (long long)suspended);
  }
  tb_printf(&b, "# HELP rapport_job_runs_total Recorded job runs, by outcome.\n"
                "# TYPE rapport_job_runs_total counter\n");
  if (rp_store_prepare(api->store, "SELECT outcome, count(*) FROM job_runs GROUP BY outcome "
                                   "ORDER BY outcome", &st, NULL) == RP_OK) {
    while (sqlite3_step(st) == SQLITE_ROW)
      tb_printf(&b, "rapport_job_runs_total{outcome=\"%s\"} %lld\n",
                (const char *)sqlite3_column_text(st, 0), (long long)sqlite3_column_int64(st, 1));
    rp_store_done(st);
  }
  tb_printf(&b, "# HELP rapport_dead_letters Pending dead letters.\n"
                "# TYPE rapport_dead_letters gauge\n"
                "rapport_dead_letters %lld\n",
            (long long)sql_count(api->store,
                                 "SELECT count(*) FROM dead_letters WHERE status = 'pending'"));
  c->res->status = 200;
  c->res->content_type = "text/plain; version=0.0.4";
  c->res->body = b.data;
  c->res->body_len = b.len;
}

/* Counts an answer for /metrics. */
static void count_request(rp_api_http *api, const char *route, int status, double seconds) {
  if (!route) route = "other";
  int i = 0;
  for (; i < api->n_counts; i++)
    if (api->counts[i].route == route && api->counts[i].status == status) break;
  if (i == api->n_counts) {
    if (api->n_counts == COUNTS_MAX) return;
    api->counts[api->n_counts++] = (request_count){route, status, 0};
  }
  api->counts[i].n++;
  size_t b = 0;
  while (b < N_BUCKETS && seconds > latency_buckets[b]) b++;
  api->latency[b]++;
  api->latency_sum += seconds;
  api->latency_n++;
}

/* ---- plugin routes ------------------------------------------------------------------------ */

/* The query string as an object of strings (the last value of a repeated
 * name wins; '+' and %XX decoded). */
static cJSON *query_object(const char *q) {
  cJSON *o = cJSON_CreateObject();
  while (q && *q) {
    const char *amp = strchr(q, '&');
    size_t len = amp ? (size_t)(amp - q) : strlen(q);
    const char *eq = memchr(q, '=', len);
    if (eq && eq > q && len < 1024) {
      char name[256], value[1024];
      size_t nl = (size_t)(eq - q) < sizeof name - 1 ? (size_t)(eq - q) : sizeof name - 1;
      memcpy(name, q, nl);
      name[nl] = '\0';
      size_t o2 = 0;
      for (const char *v = eq + 1; v < q + len && o2 + 1 < sizeof value; v++) {
        if (*v == '+') value[o2++] = ' ';
        else if (*v == '%' && v + 2 < q + len + 0 && isxdigit((unsigned char)v[1]) &&
                 isxdigit((unsigned char)v[2])) {
          char hex[3] = {v[1], v[2], 0};
          value[o2++] = (char)strtol(hex, NULL, 16);
          v += 2;
        } else value[o2++] = *v;
      }
      value[o2] = '\0';
      cJSON_DeleteItemFromObjectCaseSensitive(o, name);
      cJSON_AddStringToObject(o, name, value);
    }
    q = amp ? amp + 1 : NULL;
  }
  return o;
}

/* /v1/p/<plugin><path>: a route the plugin declared in its manifest, run in
 * its sandbox with its permissions, in a transaction committed before the
 * answer. Private routes take an admin or operator key, or a partner key of
 * this plugin; public ones a token the plugin issued (crm.tokens.issue), as
 * ?token= or an X-Rapport-Token header. */
static void plugin_route(call *c) {
  const char *rest = c->req->path + strlen("/v1/p/");
  const char *slash = strchr(rest, '/');
  char name[64];
  if (!slash || (size_t)(slash - rest) >= sizeof name) {
    reply_error(c, 404, "not_found", NULL, "no such route");
    return;
  }
  memcpy(name, rest, (size_t)(slash - rest));
  name[slash - rest] = '\0';
  rp_plugin *p = rp_host_plugin(rp_runtime_host(c->api->rt), name);
  const rp_manifest *m = p ? rp_plugin_manifest(p) : NULL;
  const rp_manifest_route *route = NULL;
  int path_known = 0;
  for (size_t i = 0; m && i < m->n_routes && !route; i++) {
    if (strcmp(m->routes[i].path, slash) != 0) continue;
    path_known = 1;
    if (strcmp(m->routes[i].method, c->req->method) == 0) route = &m->routes[i];
  }
  c->route = "/v1/p/{plugin}";
  if (!route) {
    if (path_known) reply_error(c, 405, "method_not_allowed", NULL, "no such method on this route");
    else reply_error(c, 404, "not_found", NULL, "no such route");
    return;
  }
  if (!rp_plugin_active(p)) {
    reply_error(c, 503, "unavailable", NULL, "the plugin is suspended or disabled");
    return;
  }
  cJSON *query = query_object(c->req->query);
  cJSON *token_payload = NULL;
  if (route->public_) {
    const cJSON *qt = cJSON_GetObjectItemCaseSensitive(query, "token");
    const char *token = header(c->req, "x-rapport-token");
    if (!token && cJSON_IsString(qt)) token = qt->valuestring;
    rp_err err;
    rp_err_clear(&err);
    if (!token ||
        rp_token_verify(c->api->store, name, token, &token_payload, &err) != RP_OK) {
      cJSON_Delete(query);
      reply_error(c, 401, "unauthorized", "token",
                  token ? "invalid or expired token" : "this link needs its token");
      return;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(query, "token");
  } else {
    if (authenticate(c)) {
      cJSON_Delete(query);
      return;
    }
    int allowed = strcmp(c->role, "admin") == 0 || strcmp(c->role, "operator") == 0;
    if (strcmp(c->role, "partner") == 0) {
      sqlite3_stmt *st;
      if (rp_store_prepare(c->api->store, "SELECT plugin = ?2 FROM api_keys WHERE id = ?1", &st,
                           NULL) == RP_OK) {
        sqlite3_bind_int64(st, 1, c->key_id);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        allowed = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
        rp_store_done(st);
      }
    }
    if (!allowed) {
      cJSON_Delete(query);
      char msg[128];
      snprintf(msg, sizeof msg, "the role '%s' may not use the routes of plugin '%s'", c->role,
               name);
      reply_error(c, 403, "denied", NULL, msg);
      return;
    }
  }
  cJSON *request = cJSON_CreateObject();
  cJSON_AddStringToObject(request, "method", c->req->method);
  cJSON_AddStringToObject(request, "path", slash);
  cJSON_AddItemToObject(request, "query", query);
  if (c->req->body_len) {
    const char *type = header(c->req, "content-type");
    if (type && strncmp(type, "application/json", 16) == 0) {
      cJSON *body = json_body(c);
      if (!body) {
        cJSON_Delete(request);
        cJSON_Delete(token_payload);
        return;
      }
      cJSON_AddItemToObject(request, "body", body);
    } else {
      cJSON_AddStringToObject(request, "body", c->req->body);
    }
  }
  if (token_payload) cJSON_AddItemToObject(request, "token", token_payload);
  if (c->key_id) {
    cJSON_AddNumberToObject(request, "key_id", (double)c->key_id);
    cJSON_AddStringToObject(request, "role", c->role);
  }
  rp_err err;
  rp_err_clear(&err);
  int status = 0;
  cJSON *out = NULL;
  const char *text_type = NULL;
  /* Audit records made by the route name who called it and from where. */
  char caller[32], origin[48];
  if (c->key_id) snprintf(caller, sizeof caller, "key:%" PRId64, c->key_id);
  else snprintf(caller, sizeof caller, "token");
  peer_host(c, origin, sizeof origin);
  rp_plugin_set_caller(p, caller, origin);
  int rc = rp_store_tx_begin(c->api->store, &err);
  if (rc == RP_OK) {
    rc = rp_plugin_route(p, route->handler, request, &status, &out, &text_type, &err);
    if (rc == RP_OK) rc = rp_store_tx_commit(c->api->store, &err);
    if (rc) rp_store_tx_rollback(c->api->store);
  }
  rp_plugin_set_caller(p, NULL, NULL);
  cJSON_Delete(request);
  if (rc) {
    cJSON_Delete(out);
    rp_log(RP_LOG_ERROR, name, "route %s %s: %s", route->method, route->path, err.msg);
    reply_error(c, 500, "plugin_error", NULL, "the plugin's route failed (see the server log)");
    return;
  }
  rp_runtime_kick(c->api->rt); /* it may have emitted events */
  if (text_type) { /* text as the plugin wrote it (a CSV export, ...) */
    char *text = out->valuestring;
    out->valuestring = NULL; /* taken: cJSON_Delete skips a NULL string */
    cJSON_Delete(out);
    c->res->status = status;
    c->res->content_type = text_type;
    c->res->extra_headers = "X-Content-Type-Options: nosniff\r\n"; /* text, never sniffed as HTML */
    c->res->body = text;
    c->res->body_len = strlen(text);
    return;
  }
  if (!out) out = cJSON_CreateObject();
  reply_json(c, status, out);
}

/* ---- group commit ------------------------------------------------------------------- */

static const char commit_failed_body[] =
    "{\"error\": {\"code\": \"io\", \"message\": \"the changes of this request could not "
    "be committed (see the server log); nothing of it was applied\"}}";

/* ---- durability off the loop ----------------------------------------------------------
 *
 * A group commits with synchronous=NORMAL: its WAL frames are written, not
 * yet synced. Its answers wait while a libuv worker fdatasyncs the WAL file
 * (the same inode SQLite writes), and the loop runs the next group
 * meanwhile; when the sync returns, the answers of every group it covered go
 * out. An answer still never reports a change before it is on disk, and a
 * sync costs the loop nothing. Any other commit on the connection (the bus,
 * jobs) stays synchronous=FULL, which syncs the earlier frames as well. When
 * the WAL file cannot be opened, groups commit with FULL and answer at once. */

static void sync_start(rp_api_http *api);

/* The WAL file, opened (again when SQLite replaced it) for syncing; -1 when
 * it cannot be. */
static int wal_fd(rp_api_http *api) {
  struct stat now, open_st;
  if (api->wal_fd >= 0 && stat(api->wal_path, &now) == 0 &&
      fstat(api->wal_fd, &open_st) == 0 && now.st_ino == open_st.st_ino &&
      now.st_dev == open_st.st_dev)
    return api->wal_fd;
  if (api->wal_fd >= 0) close(api->wal_fd);
  api->wal_fd = open(api->wal_path, O_RDONLY | O_CLOEXEC);
  return api->wal_fd;
}

static void on_synced(uv_fs_t *req) {
  rp_api_http *api = req->data;
  ssize_t result = req->result;
  uv_fs_req_cleanup(req);
  api->syncing = 0;
  if (api->stopped) return; /* the stop synced and answered on its own */
  if (result < 0) {
    /* The commits happened, but whether they reached the disk is unknown:
     * no answer may claim they did. */
    rp_log(RP_LOG_ERROR, "http", "syncing the WAL: %s", uv_strerror((int)result));
    for (uint64_t g = api->gen_synced + 1; g <= api->sync_covers; g++)
      rp_http_fail(api->server, g, commit_failed_body);
    api->sync_failures++;
  }
  api->gen_synced = api->sync_covers;
  rp_http_release(api->server, api->gen_synced);
  if (api->gen_done > api->gen_synced) sync_start(api);
}

/* Syncs the WAL for every group done so far, unless a sync is under way
 * (its completion starts the next). */
static void sync_start(rp_api_http *api) {
  if (api->syncing) return;
  api->sync_covers = api->gen_done;
  int fd = wal_fd(api);
  api->sync_req.data = api;
  if (fd >= 0 &&
      uv_fs_fdatasync(rp_runtime_loop(api->rt), &api->sync_req, fd, on_synced) == 0) {
    api->syncing = 1;
    return;
  }
  /* No worker: sync here. */
  api->sync_req.result = fd >= 0 && fdatasync(fd) == 0 ? 0 : UV_EIO;
  api->syncing = 1;
  on_synced(&api->sync_req);
}

/* Commits the group's transaction; its answers go out once the commit is
 * durable (at once when it synced itself). When the commit fails,
 * everything in it rolls back and each of those answers becomes a 500. */
static void group_flush(rp_api_http *api) {
  if (!api->group_open) return;
  api->group_open = 0;
  uv_check_stop(&api->commit_check);
  rp_http_hold_end(api->server);
  rp_err err;
  rp_err_clear(&err);
  rp_fault_point("http.before_commit");
  int rc = rp_store_tx_commit(api->store, &err);
  if (rc) {
    rp_log(RP_LOG_ERROR, "http", "group commit: %s", err.msg);
    rp_store_tx_rollback(api->store);
    api->group_failures++;
    rp_http_fail(api->server, api->gen_open, commit_failed_body);
  } else {
    api->group_commits++;
  }
  api->gen_done = api->gen_open;
  if (api->group_async) {
    rp_store_exec(api->store, "PRAGMA synchronous=FULL", NULL);
    api->group_async = 0;
    if (rc == RP_OK) {
      sync_start(api);
      return;
    }
  }
  /* Nothing to sync for this group: its answers follow those of earlier
   * groups (a sync under way releases them all). */
  if (!api->syncing) {
    api->gen_synced = api->gen_done;
    rp_http_release(api->server, api->gen_done);
  }
}

static void on_commit_check(uv_check_t *h) { group_flush(h->data); }

static void on_log_flush(uv_prepare_t *h) {
  (void)h;
  rp_log_flush();
}

/* Joins the turn's group transaction, opening it (and holding answers) when
 * this is the turn's first request. A group whose transaction the database
 * already rolled back (a full disk, an I/O error) is ended first, so that
 * no request writes outside a transaction it believes it is in. After the
 * stop (the check handle is closed) a request that still arrives on an open
 * connection runs in transactions of its own, committed before its answer. */
static int group_join(rp_api_http *api, rp_err *err) {
  if (api->group_open && sqlite3_get_autocommit(rp_store_db(api->store))) group_flush(api);
  if (api->group_open || api->stopped) return RP_OK;
  if (rp_store_tx_depth(api->store) != 0)
    return rp_err_set(err, RP_ECONFLICT, NULL, "a transaction is already open");
  /* The safety level cannot change inside a transaction: set it first. */
  api->group_async = api->wal_path[0] && wal_fd(api) >= 0 &&
                     rp_store_exec(api->store, "PRAGMA synchronous=NORMAL", NULL) == RP_OK;
  int rc = rp_store_tx_begin(api->store, err);
  if (rc) {
    if (api->group_async) rp_store_exec(api->store, "PRAGMA synchronous=FULL", NULL);
    api->group_async = 0;
    return rc;
  }
  api->group_open = 1;
  rp_http_hold(api->server, ++api->gen_open);
  uv_check_start(&api->commit_check, on_commit_check);
  return RP_OK;
}

/* How a route uses the database. READ and WRITE routes run in the turn's
 * group transaction; a WRITE route also in a savepoint of its own, so that
 * a change and its audit record stay or go together (a READ route's only
 * write is its audit record: one statement). A SOLO route runs outside the
 * group: erasure checkpoints the WAL after its commit, so that the erased
 * pages leave the file at once. */
enum { READ, WRITE, SOLO };

/* Opens the transaction a request runs in (db: READ, WRITE or SOLO, see
 * the routes). Answers 500 and returns -1 when the database cannot start
 * one. */
static int request_begin(call *c, int db) {
  rp_api_http *api = c->api;
  if (db == SOLO) {
    group_flush(api);
    return 0;
  }
  rp_err err;
  rp_err_clear(&err);
  int rc = group_join(api, &err);
  if (rc == RP_OK && db == WRITE && (rc = rp_store_tx_begin(api->store, &err)) == RP_OK)
    c->in_savepoint = 1;
  if (rc) {
    reply_err(c, &err);
    return -1;
  }
  c->in_group = 1;
  api->group_requests++;
  return 0;
}

/* Ends the request's savepoint: kept when the answer is not a server error
 * (an audit record that could not be written makes one), rolled back
 * otherwise; a kept answer waits for the group's commit. */
static void request_end(call *c) {
  int status = c->res->status;
  if (!c->in_savepoint) {
    if (c->in_group && status != 0 && status < 500) c->res->needs_commit = 1;
    return;
  }
  c->in_savepoint = 0;
  rp_store *s = c->api->store;
  if (status == 0 || status >= 500) {
    rp_store_tx_rollback(s);
    return;
  }
  rp_err err;
  rp_err_clear(&err);
  if (rp_store_tx_commit(s, &err)) {
    rp_store_tx_rollback(s);
    free(c->res->body);
    c->res->body = NULL;
    c->res->extra_headers = NULL;
    reply_err(c, &err);
    return;
  }
  c->res->needs_commit = 1;
}

/* ---- routing -------------------------------------------------------------------------- */

/* Every route, the permission it needs, and its handler. A pattern is a
 * literal path, where "{id}" stands for a positive integer. */
static const struct route {
  const char *method, *pattern;
  uint32_t perm;
  void (*fn)(call *c, int64_t id);
  int db; /* READ, WRITE or SOLO */
} routes[] = {
    {"POST", "/v1/events", RP_API_EVENTS_WRITE, post_event_route, WRITE},
    {"POST", "/v1/batch", RP_API_EVENTS_WRITE, post_batch_route, WRITE},
    {"POST", "/v1/identify", RP_API_CUSTOMERS_WRITE, post_identify, WRITE},
    {"GET", "/v1/customers", RP_API_CUSTOMERS_READ, get_customer_list, READ},
    {"GET", "/v1/customers/{id}", RP_API_CUSTOMERS_READ, get_customer, READ},
    {"PATCH", "/v1/customers/{id}", RP_API_CUSTOMERS_WRITE, patch_customer, WRITE},
    {"GET", "/v1/customers/{id}/events", RP_API_CUSTOMERS_READ, get_timeline, READ},
    {"PUT", "/v1/customers/{id}/consent", RP_API_CUSTOMERS_WRITE, put_consent, WRITE},
    {"GET", "/v1/customers/{id}/export", RP_API_ADMIN, get_export, WRITE}, /* plugins run */
    {"DELETE", "/v1/customers/{id}", RP_API_ADMIN, delete_customer, SOLO},
    {"GET", "/v1/plugins", RP_API_ADMIN, get_plugins, READ},
    {"GET", "/v1/jobs", RP_API_ADMIN, get_jobs, READ},
    {"GET", "/v1/dlq", RP_API_ADMIN, get_dlq, READ},
    {"POST", "/v1/dlq/{id}/retry", RP_API_ADMIN, post_dlq_retry, WRITE},
    {"GET", "/metrics", RP_API_ADMIN, get_metrics, READ},
};

/* Matches path against pattern; *id receives the {id}. */
static int match(const char *pattern, const char *path, int64_t *id) {
  *id = 0;
  while (*pattern) {
    if (strncmp(pattern, "{id}", 4) == 0) {
      if (*path < '1' || *path > '9') return 0;
      char *end;
      long long v = strtoll(path, &end, 10);
      if (v <= 0) return 0;
      *id = v;
      path = end;
      pattern += 4;
    } else if (*pattern++ != *path++) {
      return 0;
    }
  }
  return *path == '\0';
}

static void route(call *c) {
  const char *m = c->req->method, *p = c->req->path;
  if (strcmp(p, "/healthz") == 0) {
    c->route = "/healthz";
    if (strcmp(m, "GET") != 0) {
      reply_error(c, 405, "method_not_allowed", NULL, "GET /healthz");
      return;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    reply_json(c, 200, o);
    return;
  }
  if (strncmp(p, "/v1/p/", 6) == 0) {
    if (request_begin(c, WRITE) == 0) plugin_route(c);
    request_end(c);
    return;
  }
  const struct route *found = NULL;
  int path_known = 0;
  int64_t id = 0;
  for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !found; i++) {
    int64_t rid;
    if (!match(routes[i].pattern, p, &rid)) continue;
    path_known = 1;
    if (strcmp(routes[i].method, m) == 0) {
      found = &routes[i];
      id = rid;
    }
  }
  if (found) c->route = found->pattern;
  if (!found) {
    if (path_known) reply_error(c, 405, "method_not_allowed", NULL, "no such method on this route");
    else reply_error(c, 404, "not_found", NULL, "no such route");
    return;
  }
  if (request_begin(c, found->db) == 0 && authenticate(c) == 0 &&
      route_allowed(c, found->perm))
    found->fn(c, id);
  request_end(c);
}

/* What the access log and /metrics need of a request once its answer is
 * out (the request itself is gone by then). */
typedef struct answer_note {
  const char *route;
  int64_t key_id;
  uint64_t events;
  char what[200]; /* "METHOD PATH", cut short */
} answer_note;

/* The answer went out (or its client went away): the access log line, the
 * counts and the latency, from the request to now, the group's commit and
 * sync included. The events it accepted count only when it reports them. */
static void on_answered(void *ctx, const rp_http_response *res, int written) {
  rp_api_http *api = ctx;
  const answer_note *n = res->note;
  int status = res->status ? res->status : 500;
  double ms = (double)(rp_clock_mono_ns() - res->started_ns) / 1e6;
  count_request(api, n->route, status, ms / 1000);
  if (status < 300) api->events_ingested += n->events;
  char key[24] = "-";
  if (n->key_id) snprintf(key, sizeof key, "%" PRId64, n->key_id);
  rp_log(RP_LOG_INFO, "http", "%s %d %.1fms key=%s%s", n->what, status, ms, key,
         written ? "" : " (client gone before the answer)");
}

static void handle(void *ctx, const rp_http_request *req, rp_http_response *res) {
  call c = {.api = ctx, .req = req, .res = res};
  route(&c);
  answer_note *n = malloc(sizeof *n);
  if (!n) { /* out of memory: counted now, unlogged */
    count_request(c.api, c.route, res->status ? res->status : 500, 0);
    return;
  }
  n->route = c.route;
  n->key_id = c.key_id;
  n->events = c.events;
  snprintf(n->what, sizeof n->what, "%s %s", req->method, req->path);
  res->note = n;
}

/* ---- life cycle ------------------------------------------------------------------------ */

static void on_stop(void *ctx) {
  rp_api_http *api = ctx;
  /* The transaction in hand commits and its answers go out first: synced
   * here, on the loop, since the server (which a worker's sync would have
   * released them through) is let go below. */
  group_flush(api);
  if (api->gen_synced < api->gen_done) {
    int fd = wal_fd(api);
    if (fd < 0 || fdatasync(fd) != 0) {
      rp_log(RP_LOG_ERROR, "http", "syncing the WAL at the stop failed");
      for (uint64_t g = api->gen_synced + 1; g <= api->gen_done; g++)
        rp_http_fail(api->server, g, commit_failed_body);
    }
    api->gen_synced = api->gen_done;
    rp_http_release(api->server, api->gen_done);
  }
  api->stopped = 1;
  uv_close((uv_handle_t *)&api->commit_check, NULL);
  uv_close((uv_handle_t *)&api->log_flush, NULL);
  rp_log_hold(0);
  rp_http_stop(api->server);
  api->server = NULL; /* it frees itself once its connections are closed */
}

int rp_api_http_start(rp_runtime *rt, rp_store *store, const rp_config *cfg, const char *listen,
                      rp_api_http **out, rp_err *err) {
  *out = NULL;
  rp_api_http *api = calloc(1, sizeof *api);
  if (!api) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  api->rt = rt;
  api->store = store;
  api->cfg = cfg;
  api->wal_fd = -1;
  const char *db_path = rp_store_path(store);
  if (db_path && strcmp(db_path, ":memory:") != 0 && db_path[0])
    snprintf(api->wal_path, sizeof api->wal_path, "%s-wal", db_path);
  rp_http_limits limits = {.max_body = (size_t)cfg->http_max_body,
                           .max_connections = cfg->http_max_connections,
                           .idle_timeout_ms = (uint64_t)cfg->http_idle_timeout_ms};
  int rc = rp_http_start(rp_runtime_loop(rt), listen, &limits, handle, api, &api->server, err);
  if (rc) {
    free(api);
    return rc;
  }
  if ((rc = rp_viewcache_open(store, (size_t)cfg->view_cache_mib << 20, &api->views, err))) {
    rp_http_stop(api->server);
    free(api);
    return rc;
  }
  rp_http_on_answered(api->server, on_answered);
  uv_check_init(rp_runtime_loop(rt), &api->commit_check);
  api->commit_check.data = api;
  uv_prepare_init(rp_runtime_loop(rt), &api->log_flush);
  uv_prepare_start(&api->log_flush, on_log_flush);
  uv_unref((uv_handle_t *)&api->log_flush); /* it never keeps the loop alive */
  rp_log_hold(1);
  rp_runtime_set_stop_hook(rt, on_stop, api);
  *out = api;
  return RP_OK;
}

int rp_api_http_port(const rp_api_http *api) { return api ? rp_http_port(api->server) : 0; }

void rp_api_http_free(rp_api_http *api) {
  if (!api) return;
  if (api->wal_fd >= 0) close(api->wal_fd);
  rp_viewcache_free(api->views);
  free(api);
}
