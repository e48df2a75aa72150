# http.sh: the HTTP API against a real `rapport serve` on a loopback port:
# keys and roles, events and batches (Segment-style fields, idempotence,
# per-event results), customer lookups with and without PII, JSON errors,
# limits, keep-alive and pipelining, rate-limited authentication, graceful
# stop. Requests are sent with Python's http.client and raw sockets.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init --enable activity
assert_exit 0 "$RAPPORT" keys create --role operator --name ingest
OPERATOR=$OUT
assert_contains "$ERR" "shown only now"
assert_exit 0 "$RAPPORT" keys create --role analyst
ANALYST=$OUT
assert_exit 0 "$RAPPORT" --json keys create --role admin
ADMIN=$(json_get "$OUT" key)
assert_exit 1 "$RAPPORT" keys create --role root
assert_exit 1 "$RAPPORT" keys create --role partner
# Only a hash is stored.
assert_eq "$(sql "SELECT count(*) FROM api_keys WHERE instr(secret_sha256, '${OPERATOR##*_}') > 0")" 0 "secret stored"
assert_exit 0 "$RAPPORT" keys list
assert_contains "$OUT" "ingest"
assert_not_contains "$OUT" "${OPERATOR##*_}"

serve_start

call GET /healthz -
assert_eq "$STATUS" 200 healthz
assert_eq "$(sql "SELECT count(*) FROM api_keys WHERE last_used_at IS NOT NULL")" 0 "unused keys"
assert_eq "$(json_get "$BODY" status)" ok

# --- authentication --------------------------------------------------------------
call GET /v1/customers/1 -
assert_eq "$STATUS" 401 "no key"
assert_eq "$(json_get "$BODY" error.code)" unauthorized
call GET /v1/customers/1 "rpk_1_0000000000000000000000000000000000000000000000000000000000000000"
assert_eq "$STATUS" 401 "wrong secret"

# --- events -------------------------------------------------------------------------
call POST /v1/events "$OPERATOR" '{"event": "order.placed", "type": "track", "userId": "U1", "messageId": "m-1", "timestamp": "2026-03-01T10:00:00Z", "properties": {"amount": 500}, "context": {"ip": "10.0.0.1"}}'
assert_eq "$STATUS" 201 "event accepted"
assert_eq "$(json_get "$BODY" duplicate)" false
call POST /v1/events "$OPERATOR" '{"event": "order.placed", "userId": "U1", "messageId": "m-1"}'
assert_eq "$STATUS" 200 "duplicate"
assert_eq "$(sql "SELECT name FROM api_keys WHERE last_used_at IS NOT NULL")" ingest "last used"
assert_eq "$(json_get "$BODY" duplicate)" true
assert_eq "$(sql "SELECT count(*) FROM events WHERE event_id = 'm-1'")" 1 "stored once"
assert_eq "$(sql "SELECT occurred_at FROM events WHERE event_id = 'm-1'")" 1772359200000 "Segment timestamp"
assert_eq "$(sql "SELECT properties FROM events WHERE event_id = 'm-1'")" '{"amount":500}' "context dropped"
call POST /v1/events "$OPERATOR" '{"type": "Bad Type", "email": "a@example.com"}'
assert_eq "$STATUS" 422 "bad type"
assert_eq "$(json_get "$BODY" error.field)" type
call POST /v1/events "$OPERATOR" '{"type": "x", "email": '
assert_eq "$STATUS" 400 "malformed JSON"
assert_eq "$(json_get "$BODY" error.code)" invalid_json
call POST /v1/events "$OPERATOR" 'type=x' 'application/x-www-form-urlencoded'
assert_eq "$STATUS" 415 "content type"
call POST /v1/events "$ANALYST" '{"type": "x", "email": "a@example.com"}'
assert_eq "$STATUS" 403 "analyst cannot ingest"
assert_contains "$(json_get "$BODY" error.message)" "events:write"

call POST /v1/batch "$OPERATOR" '{"batch": [{"type": "page.viewed", "email": "Ana@Example.com"}, {"type": "Bad Type", "email": "a@example.com"}, {"event": "order.placed", "userId": "U1", "messageId": "m-1"}]}'
assert_eq "$STATUS" 200 batch
assert_eq "$(json_get "$BODY" accepted)" 1
assert_eq "$(json_get "$BODY" rejected)" 1
assert_eq "$(json_get "$BODY" results.1.status)" rejected
assert_eq "$(json_get "$BODY" results.1.error.field)" type
assert_eq "$(json_get "$BODY" results.2.status)" duplicate
BIG=$(python3 -c 'import json; print(json.dumps([{"type": "t", "external_id": "B"}] * 1001))')
call POST /v1/batch "$OPERATOR" "$BIG"
assert_eq "$STATUS" 413 "batch over 1000"
assert_eq "$(sql "SELECT count(*) FROM events WHERE type <> 'customer.follow_up_due'")" 2 "events after the batches"

# --- customers: PII by role ----------------------------------------------------------
CID=$(cid email:ana@example.com)
call GET "/v1/customers/$CID" "$OPERATOR"
assert_eq "$STATUS" 200 "operator reads"
assert_eq "$(json_get "$BODY" identities.email.0)" ana@example.com
call GET "/v1/customers/$CID" "$ANALYST"
assert_eq "$STATUS" 200 "analyst reads"
assert_not_contains "$BODY" "ana@example.com"
call GET "/v1/customers?email=ana%40example.com" "$OPERATOR"
assert_eq "$(json_get "$BODY" id)" "$CID" "lookup by email"
# Each read is in the audit log: which key, from where, which fields.
assert_eq "$(sql "SELECT actor || ' ' || origin FROM audit_log WHERE customer_id = $CID ORDER BY id DESC LIMIT 1")" "key:1 127.0.0.1" "audit of a read"
assert_eq "$(sql "SELECT fields FROM audit_log WHERE customer_id = $CID AND actor = 'key:2'")" '["attributes","recent_events"]' "analyst read no PII"
call GET "/v1/customers?email=ana%40example.com" "$ANALYST"
assert_eq "$STATUS" 403 "analyst cannot look up by email"
call GET "/v1/customers?external_id=U1" "$ANALYST"
assert_eq "$STATUS" 200 "analyst looks up by external id"
call GET /v1/customers/999999 "$OPERATOR"
assert_eq "$STATUS" 404 "unknown customer"
call GET /v1/plugins "$OPERATOR"
assert_eq "$STATUS" 403 "operator is not admin"
call GET /v1/plugins "$ADMIN"
assert_eq "$STATUS" 200 "admin lists plugins"
assert_eq "$(json_get "$BODY" 0.name)" activity
call GET /v1/nowhere "$ADMIN"
assert_eq "$STATUS" 404 "unknown route"

# --- identify, PATCH, consent, timeline ---------------------------------------------------
call POST /v1/identify "$OPERATOR" '{"type": "identify", "userId": "U1", "traits": {"email": "U1@Example.com", "plan": "pro", "seats": 3}, "context": {}}'
assert_eq "$STATUS" 200 "identify a known customer"
U1=$(json_get "$BODY" id)
assert_eq "$(cid email:u1@example.com)" "$U1" "traits.email is an identity"
assert_eq "$(sql "SELECT value FROM customer_attributes WHERE customer_id = $U1 AND name = 'plan'")" pro "traits are attributes"
call POST /v1/identify "$OPERATOR" '{"userId": "NEW-1"}'
assert_eq "$STATUS" 201 "identify creates"
call PATCH "/v1/customers/$U1" "$OPERATOR" '{"attributes": {"seats": 5, "plan": null}}'
assert_eq "$STATUS" 200 patch
assert_eq "$(json_get "$BODY" attributes.seats)" 5
assert_eq "$(sql "SELECT count(*) FROM customer_attributes WHERE customer_id = $U1 AND name = 'plan'")" 0 "null deletes"
call PATCH "/v1/customers/$U1" "$OPERATOR" '{"attributes": {"seats": 1.5}}'
assert_eq "$STATUS" 422 "patch refused"
assert_contains "$(json_get "$BODY" error.field)" seats
assert_eq "$(sql "SELECT value FROM customer_attributes WHERE customer_id = $U1 AND name = 'seats'")" 5 "nothing half-applied"
call PATCH "/v1/customers/$U1" "$OPERATOR" '{"email": "x@example.com"}'
assert_eq "$STATUS" 422 "patch takes attributes only"
call PUT "/v1/customers/$U1/consent" "$OPERATOR" '{"email": {"granted": false, "source": "preferences-page"}}'
assert_eq "$STATUS" 200 consent
assert_eq "$(json_get "$BODY" consent.email.granted)" false
assert_eq "$(json_get "$BODY" consent.email.source)" preferences-page
call PUT "/v1/customers/$U1/consent" "$OPERATOR" '{"fax": true}'
assert_eq "$STATUS" 422 "unknown channel"
for i in 1 2 3 4 5; do
  call POST /v1/events "$OPERATOR" "{\"type\": \"step.$i\", \"external_id\": \"U1\"}"
done
call GET "/v1/customers/$U1/events?limit=2" "$OPERATOR"
assert_eq "$(json_get "$BODY" events.0.type)" step.5 "newest first"
NEXT=$(json_get "$BODY" next_before)
call GET "/v1/customers/$U1/events?limit=2&before=$NEXT" "$OPERATOR"
assert_eq "$(json_get "$BODY" events.0.type)" step.3 "next page"
call GET "/v1/customers/$U1/events?limit=5000" "$OPERATOR"
assert_eq "$STATUS" 422 "limit"
call DELETE "/v1/customers/$U1/events" "$OPERATOR"
assert_eq "$STATUS" 405 "method not allowed"

# --- cached views: a read after any change shows it ------------------------------------------
call GET "/v1/customers/$U1" "$OPERATOR"
FIRST=$BODY
call GET "/v1/customers/$U1" "$OPERATOR"
assert_eq "$BODY" "$FIRST" "the same view from the cache"
call GET /metrics "$ADMIN"
HITS=$(printf '%s\n' "$BODY" | sed -n 's/^rapport_view_cache_lookups_total{result="hit"} //p')
[[ "${HITS:-0}" -ge 1 ]] || fail "no view cache hit counted: '$HITS'"
call PATCH "/v1/customers/$U1" "$OPERATOR" '{"attributes": {"seats": 6}}'
call GET "/v1/customers/$U1" "$OPERATOR"
assert_eq "$(json_get "$BODY" attributes.seats)" 6 "a PATCH shows at once"
call POST /v1/events "$OPERATOR" '{"type": "step.6", "external_id": "U1"}'
call GET "/v1/customers/$U1" "$OPERATOR"
assert_eq "$(json_get "$BODY" recent_events.0.type)" step.6 "an event shows at once"
call PUT "/v1/customers/$U1/consent" "$OPERATOR" '{"email": {"granted": true, "source": "form"}}'
call GET "/v1/customers/$U1" "$OPERATOR"
assert_eq "$(json_get "$BODY" consent.email.granted)" true "consent shows at once"
# Another process writes (the triggers do not see it; data_version does).
sql "UPDATE customer_attributes SET value = 7 WHERE customer_id = $U1 AND name = 'seats'"
call GET "/v1/customers/$U1" "$OPERATOR"
assert_eq "$(json_get "$BODY" attributes.seats)" 7 "another process's change shows at once"
# A merge: both views change.
call POST /v1/identify "$OPERATOR" '{"userId": "M1"}'
M1=$(json_get "$BODY" id)
call POST /v1/identify "$OPERATOR" '{"userId": "M2", "traits": {"email": "m2@example.com"}}'
M2=$(json_get "$BODY" id)
call GET "/v1/customers/$M1" "$OPERATOR"
call GET "/v1/customers/$M2" "$OPERATOR"
assert_eq "$(json_get "$BODY" id)" "$M2"
call POST /v1/identify "$OPERATOR" '{"userId": "M1", "traits": {"email": "m2@example.com"}}'
assert_eq "$STATUS" 200 "identify merges"
call GET "/v1/customers/$M2" "$OPERATOR"
assert_eq "$(json_get "$BODY" id)" "$M1" "the absorbed id answers with the survivor"
call GET "/v1/customers/$M1" "$OPERATOR"
assert_eq "$(json_get "$BODY" merged_from.0)" "$M2" "the survivor shows the merge"

# --- admin routes ---------------------------------------------------------------------------
call GET /v1/jobs "$ADMIN"
assert_eq "$(json_get "$BODY" jobs.0.name)" dormancy
call GET /v1/dlq "$ADMIN"
assert_eq "$BODY" "[]" "no dead letters"
call POST /v1/dlq/42/retry "$ADMIN"
assert_eq "$STATUS" 404 "unknown dead letter"

# --- metrics (Prometheus text) --------------------------------------------------------------
call GET /metrics "$ADMIN"
assert_eq "$STATUS" 200 metrics
assert_contains "$BODY" 'rapport_http_requests_total{route="/v1/events",status="201"}'
assert_contains "$BODY" 'rapport_http_request_duration_seconds_bucket{le="+Inf"}'
assert_contains "$BODY" 'rapport_bus_lag_events{plugin="activity"}'
assert_contains "$BODY" 'rapport_plugins_suspended 0'
INGESTED=$(printf '%s\n' "$BODY" | sed -n 's/^rapport_events_ingested_total //p')
assert_eq "$INGESTED" 8 "events ingested (m-1, one of the batch, six steps)"
call GET /metrics "$OPERATOR"
assert_eq "$STATUS" 403 "metrics need admin"

# --- every route x every role ------------------------------------------------------------------
assert_exit 0 "$RAPPORT" keys create --role support
SUPPORT=$OUT
assert_exit 0 "$RAPPORT" keys create --role partner --plugin activity
PARTNER=$OUT
# route | roles allowed (from the role definitions, not from the code)
while IFS='|' read -r method path body allowed; do
  for role in admin operator analyst support partner; do
    case $role in
      admin) key=$ADMIN ;; operator) key=$OPERATOR ;; analyst) key=$ANALYST ;;
      support) key=$SUPPORT ;; partner) key=$PARTNER ;;
    esac
    if [ -n "$body" ]; then call "$method" "$path" "$key" "$body"; else call "$method" "$path" "$key"; fi
    case " $allowed " in
      *" $role "*) [ "$STATUS" != 403 ] && [ "$STATUS" != 401 ] ||
                   fail "$role on $method $path: expected access, got $STATUS: $BODY" ;;
      *) [ "$STATUS" = 403 ] || fail "$role on $method $path: expected 403, got $STATUS: $BODY" ;;
    esac
  done
done <<ROUTES
POST|/v1/events|{"type": "matrix.test", "external_id": "M"}|admin operator
POST|/v1/batch|{"batch": []}|admin operator
POST|/v1/identify|{"external_id": "M"}|admin operator support
GET|/v1/customers?external_id=U1||admin operator analyst support
GET|/v1/customers/$U1||admin operator analyst support
PATCH|/v1/customers/$U1|{"attributes": {"matrix": 1}}|admin operator support
GET|/v1/customers/$U1/events||admin operator analyst support
PUT|/v1/customers/$U1/consent|{"sms": true}|admin operator support
GET|/v1/plugins||admin
GET|/v1/jobs||admin
GET|/v1/dlq||admin
POST|/v1/dlq/1/retry||admin
GET|/metrics||admin
GET|/v1/customers/$U1/export||admin
ROUTES

# --- export and erasure over HTTP --------------------------------------------------------------
call GET "/v1/customers/$CID/export" "$ADMIN"
assert_eq "$STATUS" 200 export
assert_eq "$(json_get "$BODY" customer.identities.email.0)" ana@example.com
call DELETE "/v1/customers/$CID" "$OPERATOR"
assert_eq "$STATUS" 403 "only admin erases"
call DELETE "/v1/customers/$CID" "$ADMIN"
assert_eq "$STATUS" 200 erase
call GET "/v1/customers?email=ana%40example.com" "$ADMIN"
assert_eq "$STATUS" 404 "erased customer not found by email"
assert_eq "$(sql "SELECT actor FROM audit_log WHERE action = 'customer.erase'")" "key:3" "erasure audited"

# --- the wire: limits, keep-alive, pipelining ---------------------------------------------
python3 - "$PORT" "$OPERATOR" <<'EOF' || fail "wire checks failed"
import socket, sys
port, key = int(sys.argv[1]), sys.argv[2]
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s
def read_all(s):
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk: return data
        data += chunk
# Two pipelined requests on one connection, answered in order.
s = conn()
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
data = read_all(s).decode()
assert data.count("HTTP/1.1 ") == 2, data
assert data.index("200 OK") < data.index("404 Not Found"), data
# A body over the limit: 413 before it is read.
s = conn()
s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: 5000000\r\n\r\n")
data = read_all(s).decode()
assert data.startswith("HTTP/1.1 413"), data
# Headers over the limit: 431.
s = conn()
s.sendall(b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
data = read_all(s).decode()
assert data.startswith("HTTP/1.1 431"), data
# Garbage: 400 and the connection closes.
s = conn()
s.sendall(b"HELLO THERE\r\n\r\n")
data = read_all(s).decode()
assert data.startswith("HTTP/1.1 400"), data
# A chunked body.
s = conn()
body = b'{"type": "chunked.event", "external_id": "CH"}'
s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Authorization: Bearer " + key.encode() + b"\r\nTransfer-Encoding: chunked\r\n"
          b"Connection: close\r\n\r\n" + (b"%x\r\n" % 10) + body[:10] + b"\r\n" +
          (b"%x\r\n" % (len(body) - 10)) + body[10:] + b"\r\n0\r\n\r\n")
data = read_all(s).decode()
assert data.startswith("HTTP/1.1 201"), data
# Many connections at once, all answered.
socks = [conn() for _ in range(200)]
for s in socks: s.sendall(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
for s in socks:
    assert read_all(s).decode().startswith("HTTP/1.1 200")
print("wire ok")
EOF
assert_eq "$(sql "SELECT count(*) FROM events WHERE type = 'chunked.event'")" 1 "chunked event"

# --- a revoked key stops at once (from another process) --------------------------------------
ANALYST_ID=$(sql "SELECT id FROM api_keys WHERE role = 'analyst'")
call GET "/v1/customers/$CID" "$ANALYST"
assert_eq "$STATUS" 200 "the analyst's key works (and is remembered by the server)"
assert_exit 0 "$RAPPORT" keys revoke "$ANALYST_ID"
call GET "/v1/customers/$CID" "$ANALYST"
assert_eq "$STATUS" 401 "revoked key"

# --- failed authentications are rate-limited ------------------------------------------------
for _ in $(seq 1 20); do call GET /v1/customers/1 "rpk_9_bad"; done
call GET /v1/customers/1 "$OPERATOR"
assert_eq "$STATUS" 429 "rate limited after 20 failures"

assert_exit 0 "$RAPPORT" audit verify

# --- graceful stop ----------------------------------------------------------------------------
kill -TERM "$pid"
wait "$pid" || fail "serve exited with $? after SIGTERM"
assert_contains "$(cat "$TMP/serve.err")" "POST /v1/events 201"
assert_not_contains "$(cat "$TMP/serve.err")" "${OPERATOR##*_}"
assert_not_contains "$(cat "$TMP/serve.err")" "ana@example.com"
# The dispatched events reached the plugin.
# (U1's order; Ana's page view went with her erasure)
assert_eq "$(sql "SELECT sum(touches) FROM activity_customers")" 1 "events dispatched"
echo "http: ok"
