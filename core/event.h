/* event: the append-only event log of customers.
 *
 * It owns the events table: validation of what goes in (type names, the
 * size of properties), idempotence on the client's event id, and reading
 * the log back (a customer's timeline, the newest id). Resolving the
 * customer an event names is profile's job (rp_profile_upsert); an event is
 * never updated or deleted here, except that a merge re-points events to
 * the surviving customer. The bus reads the log by id, which only grows.
 *
 * Ownership: rp_event_in borrows everything it points to; cJSON outputs are
 * owned by the caller (cJSON_Delete). */
#ifndef RP_EVENT_H
#define RP_EVENT_H

#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "store.h"

enum {
  RP_EVENT_MAX_TYPE = 128,              /* bytes of a type name */
  RP_EVENT_MAX_ID = 128,                /* bytes of a client event id */
  RP_EVENT_MAX_SOURCE = 128,            /* bytes of a source name */
  RP_EVENT_MAX_PROPERTIES = 256 * 1024  /* bytes of properties as compact JSON */
};

/* One event to append. Every pointer is borrowed and may be NULL unless
 * stated. */
typedef struct rp_event_in {
  const char *event_id;     /* the client's id for idempotence, or NULL */
  const char *type;         /* required: 1..128 of [a-z0-9_.:-] */
  int64_t customer_id;      /* 0: resolve from customer / shorthand */
  const cJSON *customer;    /* an upsert input naming the customer, e.g.
                               {"email": ..} or {"identities": {..}}; may also
                               carry attributes and consent (see profile.h) */
  int64_t occurred_at;      /* epoch ms; 0: now */
  const char *source;       /* NULL: "api" */
  const cJSON *properties;  /* an object, or NULL for {} */
  const cJSON *shorthand;   /* an object whose email, phone, external_id and
                               anonymous_id members also name the customer
                               (rp_event_from_json points it at the event);
                               NULL when unused */
} rp_event_in;

/* Validates ev and appends it, in the caller's transaction. The customer is
 * customer_id (followed through merges; RP_ENOTFOUND when unknown) and/or
 * the identities in customer and shorthand, resolved or created by
 * rp_profile_upsert (identities of two customers merge them; with a
 * customer_id too, the identities are attached to that customer). An event
 * naming no customer is refused.
 *
 * When event_id is already in the log, nothing is stored (not even the
 * customer side): returns RP_OK with *duplicate = 1 and *id the stored
 * event's id. Otherwise *duplicate = 0 and *id is the new event's id. id and
 * duplicate may be NULL. RP_EINVAL names the bad field; RP_ELIMIT for
 * properties over RP_EVENT_MAX_PROPERTIES. A refusal (RP_EINVAL, RP_ELIMIT,
 * RP_ENOTFOUND) has written nothing; after a failure of the database
 * (RP_EDB, RP_ENOMEM, RP_EIO) the customer side may be written without its
 * event: the caller must roll its transaction back (or call this inside a
 * savepoint of its own). */
int rp_event_append(rp_store *s, const rp_config *cfg, const rp_event_in *ev, int64_t *id,
                    int *duplicate, rp_err *err);

/* Fills out from a JSON event object:
 *   {"id" | "event_id": "..", "type": "..", "customer_id": 12,
 *    "customer": {...}, "email" | "phone" | "external_id" | "anonymous_id": ..,
 *    "occurred_at": ISO 8601 | epoch ms, "source": "..", "properties": {...}}
 * Unknown fields are refused naming the field; strings in out are borrowed
 * from obj, which must outlive out. Validation of the values themselves
 * happens in rp_event_append. */
int rp_event_from_json(const cJSON *obj, rp_event_in *out, rp_err *err);

/* The events of customer_id (followed through merges), newest first by
 * occurred_at (ties: the later logged first), starting after the event
 * before_id in that order (0: the newest; RP_EINVAL when there is no such
 * event), at most limit (1 to 1000; <= 0 means 50). *out is a JSON array of rp_event_row_to_json
 * objects, owned by the caller. */
int rp_event_timeline(rp_store *s, int64_t customer_id, int64_t before_id, int limit, cJSON **out,
                      rp_err *err);

/* The columns rp_event_row_to_json expects, in order, for SELECTs of other
 * modules: "id, event_id, customer_id, type, occurred_at, received_at,
 * source, properties". */
#define RP_EVENT_COLUMNS "id, event_id, customer_id, type, occurred_at, received_at, source, properties"

/* Turns the current row of st (columns as RP_EVENT_COLUMNS, from column 0)
 * into {"id", "event_id" (or null), "customer_id", "type", "occurred_at",
 * "received_at", "source", "properties"}. *out is owned by the caller.
 * Returns RP_OK, or RP_ENOMEM. */
int rp_event_row_to_json(sqlite3_stmt *st, cJSON **out);

/* The highest event id in the log, or 0 when it is empty (or on error). */
int64_t rp_event_last_id(rp_store *s);

#endif
