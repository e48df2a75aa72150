/* event: validation, idempotent append and reading of the event log. */
#include "event.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "profile.h"

static const char *const shorthand_keys[] = {"email", "phone", "external_id", "anonymous_id", NULL};

static int is_shorthand(const char *k) {
  for (int i = 0; shorthand_keys[i]; i++)
    if (strcmp(shorthand_keys[i], k) == 0) return 1;
  return 0;
}

static int check_type(const char *type, rp_err *err) {
  size_t n = type ? strlen(type) : 0;
  if (n == 0) return rp_err_set(err, RP_EINVAL, "type", "type: is required");
  if (n > RP_EVENT_MAX_TYPE)
    return rp_err_set(err, RP_EINVAL, "type", "type: longer than %d characters", RP_EVENT_MAX_TYPE);
  for (size_t i = 0; i < n; i++) {
    char c = type[i];
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
          c == '-'))
      return rp_err_set(err, RP_EINVAL, "type",
                        "type: \"%.128s\" may hold only a-z, 0-9, '_', '.', ':' and '-'", type);
  }
  return RP_OK;
}

/* Checks a short printable string field. */
static int check_label(const char *v, const char *field, size_t max, rp_err *err) {
  size_t n = strlen(v);
  if (n == 0) return rp_err_set(err, RP_EINVAL, field, "%s: is empty", field);
  if (n > max) return rp_err_set(err, RP_EINVAL, field, "%s: longer than %zu bytes", field, max);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    if (c < 0x20 || c == 0x7f)
      return rp_err_set(err, RP_EINVAL, field, "%s: contains a control character", field);
  }
  return RP_OK;
}

/* Looks up a client event id; *id = 0 when new. */
static int find_event_id(rp_store *s, const char *event_id, int64_t *id, rp_err *err) {
  sqlite3_stmt *st;
  int rc = rp_store_prepare(s, "SELECT id FROM events WHERE event_id = ?1", &st, err);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, event_id, -1, SQLITE_STATIC);
  int r = sqlite3_step(st);
  *id = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  if (r != SQLITE_ROW && r != SQLITE_DONE) rc = rp_store_error(s, "find event", err);
  rp_store_done(st);
  return rc;
}

/* The common case of an event stream: the customer is named by one identity
 * that is already known, and nothing else is said about them. Then there is
 * nothing to upsert: *id receives the customer. Anything else (an unknown,
 * invalid or placeholder identity, several identities, attributes) leaves
 * *id at 0 for the full upsert, which also reports the errors. */
static void known_customer(rp_store *s, const rp_config *cfg, const cJSON *in, int64_t *id) {
  *id = 0;
  const cJSON *only = in->child;
  if (!only || only->next || !cJSON_IsString(only) || !is_shorthand(only->string)) return;
  int64_t found = 0;
  if (rp_profile_resolve(s, cfg, only->string, only->valuestring, &found, NULL) == RP_OK)
    *id = found;
}

/* Builds the upsert input naming the event's customer (references into the
 * borrowed objects; deleting it frees only the references). *in is NULL when
 * neither customer nor shorthand name anybody. */
static int customer_input(const rp_event_in *ev, cJSON **in, rp_err *err) {
  *in = NULL;
  if (ev->customer && !cJSON_IsNull(ev->customer) && !cJSON_IsObject(ev->customer))
    return rp_err_set(err, RP_EINVAL, "customer", "customer: must be an object such as "
                      "{\"email\": \"a@b.c\"}");
  cJSON *o = cJSON_CreateObject();
  if (!o) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
  const cJSON *item;
  if (cJSON_IsObject(ev->customer)) {
    cJSON_ArrayForEach(item, ev->customer)
      cJSON_AddItemReferenceToObject(o, item->string, (cJSON *)item);
  }
  if (ev->shorthand) {
    cJSON_ArrayForEach(item, ev->shorthand) {
      if (!is_shorthand(item->string)) continue;
      if (cJSON_GetObjectItemCaseSensitive(o, item->string)) {
        cJSON_Delete(o);
        return rp_err_set(err, RP_EINVAL, item->string,
                          "%s: given both in customer and at the top level", item->string);
      }
      cJSON_AddItemReferenceToObject(o, item->string, (cJSON *)item);
    }
  }
  if (!o->child) {
    cJSON_Delete(o);
    return RP_OK;
  }
  *in = o;
  return RP_OK;
}

int rp_event_append(rp_store *s, const rp_config *cfg, const rp_event_in *ev, int64_t *id,
                    int *duplicate, rp_err *err) {
  int64_t id_local;
  int dup_local;
  if (!id) id = &id_local;
  if (!duplicate) duplicate = &dup_local;
  *id = 0;
  *duplicate = 0;
  int rc = check_type(ev->type, err);
  if (rc) return rc;
  if (ev->event_id && (rc = check_label(ev->event_id, "event_id", RP_EVENT_MAX_ID, err))) return rc;
  const char *source = ev->source ? ev->source : "api";
  if ((rc = check_label(source, "source", RP_EVENT_MAX_SOURCE, err))) return rc;
  if (ev->customer_id < 0)
    return rp_err_set(err, RP_EINVAL, "customer_id", "customer_id: must be positive");
  if (ev->properties && !cJSON_IsNull(ev->properties) && !cJSON_IsObject(ev->properties))
    return rp_err_set(err, RP_EINVAL, "properties", "properties: must be an object");

  char *props = NULL;
  if (ev->properties && cJSON_IsObject(ev->properties)) {
    props = cJSON_PrintUnformatted(ev->properties);
    if (!props) return rp_err_set(err, RP_ENOMEM, NULL, "out of memory");
    if (strlen(props) > RP_EVENT_MAX_PROPERTIES) {
      size_t len = strlen(props);
      cJSON_free(props);
      return rp_err_set(err, RP_ELIMIT, "properties", "properties: %zu bytes, more than the %d allowed",
                        len, RP_EVENT_MAX_PROPERTIES);
    }
  }
  cJSON *in = NULL;
  if ((rc = customer_input(ev, &in, err))) {
    cJSON_free(props);
    return rc;
  }
  if (!in && !ev->customer_id) {
    cJSON_free(props);
    return rp_err_set(err, RP_EINVAL, "customer",
                      "an event names its customer: customer_id, customer, or email, phone, "
                      "external_id, anonymous_id");
  }
  if (in && ev->customer_id) {
    const cJSON *given = cJSON_GetObjectItemCaseSensitive(in, "id");
    if (given && !(cJSON_IsNumber(given) && given->valuedouble == (double)ev->customer_id)) {
      cJSON_Delete(in);
      cJSON_free(props);
      return rp_err_set(err, RP_EINVAL, "customer_id", "customer_id and customer.id disagree");
    }
    if (!given) cJSON_AddNumberToObject(in, "id", (double)ev->customer_id);
  }

  int64_t customer = 0;
  if (in && !ev->customer_id) known_customer(s, cfg, in, &customer);
  /* A known event id stores nothing at all, the customer side included. With
   * the customer already known there is no customer side: the INSERT's own
   * conflict check below finds the duplicate, and saves a lookup. */
  if (ev->event_id && !customer) {
    if ((rc = find_event_id(s, ev->event_id, id, err)) || *id) {
      *duplicate = rc == RP_OK;
      cJSON_Delete(in);
      cJSON_free(props);
      return rc;
    }
  }
  /* No savepoint of its own: a refusal comes before any write (the upsert
   * undoes its own), and after the upsert only the database can fail, which
   * the caller's transaction rolls back (see event.h). A savepoint per event
   * copied each page it touched into the statement journal: in a batch of a
   * thousand, most of the cost of an event. */
  if (customer) {
    rc = RP_OK;
  } else if (in) {
    rp_upsert res;
    rc = rp_profile_upsert(s, cfg, in, source, &res, err);
    customer = res.customer_id;
  } else {
    rc = rp_profile_canonical(s, ev->customer_id, &customer, err);
    if (rc == RP_ENOTFOUND && err) snprintf(err->field, sizeof err->field, "customer_id");
  }
  int64_t now = rp_clock_now_ms();
  sqlite3_stmt *st = NULL;
  if (rc == RP_OK)
    rc = rp_store_prepare(s, "INSERT OR IGNORE INTO events(event_id, customer_id, type, "
                             "occurred_at, received_at, source, properties) "
                             "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                          &st, err);
  if (rc == RP_OK) {
    if (ev->event_id) sqlite3_bind_text(st, 1, ev->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, customer);
    sqlite3_bind_text(st, 3, ev->type, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, ev->occurred_at ? ev->occurred_at : now);
    sqlite3_bind_int64(st, 5, now);
    sqlite3_bind_text(st, 6, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, props ? props : "{}", -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
      rc = rp_store_error(s, "append event", err);
    } else if (sqlite3_changes(rp_store_db(s)) == 1) {
      *id = sqlite3_last_insert_rowid(rp_store_db(s));
      rp_store_customer_changed(s, customer); /* no trigger watches this INSERT */
    }
    rp_store_done(st);
    if (rc == RP_OK && *id == 0) {
      /* Only the event id can conflict: a duplicate. */
      rc = find_event_id(s, ev->event_id ? ev->event_id : "", id, err);
      if (rc == RP_OK && *id == 0) rc = rp_err_set(err, RP_EDB, NULL, "append event: not stored");
      *duplicate = rc == RP_OK;
    }
  }
  if (rc != RP_OK) *id = 0;
  cJSON_Delete(in);
  cJSON_free(props);
  return rc;
}

int rp_event_from_json(const cJSON *obj, rp_event_in *out, rp_err *err) {
  memset(out, 0, sizeof *out);
  if (!cJSON_IsObject(obj)) return rp_err_set(err, RP_EINVAL, NULL, "an event must be a JSON object");
  const cJSON *item;
  cJSON_ArrayForEach(item, obj) {
    const char *k = item->string;
    if (strcmp(k, "id") == 0 || strcmp(k, "event_id") == 0) {
      if (cJSON_IsNull(item)) continue;
      if (!cJSON_IsString(item)) return rp_err_set(err, RP_EINVAL, k, "%s: must be a string", k);
      if (out->event_id)
        return rp_err_set(err, RP_EINVAL, k, "%s: give either id or event_id, not both", k);
      out->event_id = item->valuestring;
    } else if (strcmp(k, "type") == 0) {
      if (!cJSON_IsString(item)) return rp_err_set(err, RP_EINVAL, k, "type: must be a string");
      out->type = item->valuestring;
    } else if (strcmp(k, "customer_id") == 0) {
      if (cJSON_IsNull(item)) continue;
      double d = item->valuedouble;
      if (!cJSON_IsNumber(item) || d != floor(d) || d < 1 || d > 9007199254740991.0)
        return rp_err_set(err, RP_EINVAL, k, "customer_id: must be a positive whole number");
      out->customer_id = (int64_t)d;
    } else if (strcmp(k, "customer") == 0) {
      if (cJSON_IsNull(item)) continue;
      if (!cJSON_IsObject(item)) return rp_err_set(err, RP_EINVAL, k, "customer: must be an object");
      out->customer = item;
    } else if (is_shorthand(k)) {
      out->shorthand = obj;
    } else if (strcmp(k, "occurred_at") == 0) {
      if (cJSON_IsNull(item)) continue;
      double d = item->valuedouble;
      if (cJSON_IsNumber(item) && d == floor(d) && fabs(d) < 9007199254740992.0) {
        out->occurred_at = (int64_t)d;
      } else if (!cJSON_IsString(item) || rp_clock_parse(item->valuestring, &out->occurred_at) != 0) {
        return rp_err_set(err, RP_EINVAL, k, "occurred_at: must be ISO 8601 "
                          "(2024-03-01T10:00:00Z) or epoch milliseconds");
      }
      if (out->occurred_at == 0)
        return rp_err_set(err, RP_EINVAL, k, "occurred_at: the epoch itself is not a real time");
    } else if (strcmp(k, "source") == 0) {
      if (cJSON_IsNull(item)) continue;
      if (!cJSON_IsString(item)) return rp_err_set(err, RP_EINVAL, k, "source: must be a string");
      out->source = item->valuestring;
    } else if (strcmp(k, "properties") == 0) {
      if (cJSON_IsNull(item)) continue;
      if (!cJSON_IsObject(item)) return rp_err_set(err, RP_EINVAL, k, "properties: must be an object");
      out->properties = item;
    } else {
      return rp_err_set(err, RP_EINVAL, k, "unknown field \"%s\" (id, type, customer_id, customer, "
                        "email, phone, external_id, anonymous_id, occurred_at, source, properties)", k);
    }
  }
  if (!out->type) return rp_err_set(err, RP_EINVAL, "type", "type: is required");
  return RP_OK;
}

int rp_event_row_to_json(sqlite3_stmt *st, cJSON **out) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return RP_ENOMEM;
  cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
  if (sqlite3_column_type(st, 1) == SQLITE_NULL) cJSON_AddNullToObject(o, "event_id");
  else cJSON_AddStringToObject(o, "event_id", (const char *)sqlite3_column_text(st, 1));
  cJSON_AddNumberToObject(o, "customer_id", (double)sqlite3_column_int64(st, 2));
  cJSON_AddStringToObject(o, "type", (const char *)sqlite3_column_text(st, 3));
  cJSON_AddNumberToObject(o, "occurred_at", (double)sqlite3_column_int64(st, 4));
  cJSON_AddNumberToObject(o, "received_at", (double)sqlite3_column_int64(st, 5));
  cJSON_AddStringToObject(o, "source", (const char *)sqlite3_column_text(st, 6));
  /* The stored text, checked on the way in: printed as it is, parsed only
   * by whoever needs the values (rp_lua_push_json does). */
  const char *props = (const char *)sqlite3_column_text(st, 7);
  cJSON_AddRawToObject(o, "properties", props && props[0] == '{' ? props : "{}");
  *out = o;
  return RP_OK;
}

int rp_event_timeline(rp_store *s, int64_t customer_id, int64_t before_id, int limit, cJSON **out,
                      rp_err *err) {
  *out = NULL;
  if (limit <= 0) limit = 50;
  if (limit > 1000) limit = 1000;
  int64_t cid;
  int rc = rp_profile_canonical(s, customer_id, &cid, err);
  if (rc) return rc;
  /* Newest first by when they happened (ties by id), straight off the
   * events_customer index: no sort, however long the history. The cursor is
   * the last event of the previous page. */
  sqlite3_stmt *st;
  int64_t before_at = INT64_MAX, before = INT64_MAX;
  if (before_id > 0) {
    if ((rc = rp_store_prepare(s, "SELECT occurred_at FROM events WHERE id = ?1", &st, err)))
      return rc;
    sqlite3_bind_int64(st, 1, before_id);
    int found = sqlite3_step(st) == SQLITE_ROW;
    if (found) before_at = sqlite3_column_int64(st, 0);
    rp_store_done(st);
    if (!found) return rp_err_set(err, RP_EINVAL, "before", "no event %" PRId64, before_id);
    before = before_id;
  }
  if ((rc = rp_store_prepare(s, "SELECT " RP_EVENT_COLUMNS " FROM events WHERE customer_id = ?1 "
                                "AND (occurred_at, id) < (?2, ?3) "
                                "ORDER BY occurred_at DESC, id DESC LIMIT ?4", &st, err)))
    return rc;
  sqlite3_bind_int64(st, 1, cid);
  sqlite3_bind_int64(st, 2, before_at);
  sqlite3_bind_int64(st, 3, before);
  sqlite3_bind_int(st, 4, limit);
  cJSON *arr = cJSON_CreateArray();
  int r;
  while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    cJSON *e;
    if (rp_event_row_to_json(st, &e) != RP_OK) {
      r = SQLITE_NOMEM;
      break;
    }
    cJSON_AddItemToArray(arr, e);
  }
  if (r != SQLITE_DONE) rc = rp_store_error(s, "read events", err);
  rp_store_done(st);
  if (rc) {
    cJSON_Delete(arr);
    return rc;
  }
  *out = arr;
  return RP_OK;
}

int64_t rp_event_last_id(rp_store *s) {
  sqlite3_stmt *st;
  if (rp_store_prepare(s, "SELECT coalesce(max(id), 0) FROM events", &st, NULL)) return 0;
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  rp_store_done(st);
  return v;
}
