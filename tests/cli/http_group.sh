# http_group.sh: group commit. The requests of one turn of the loop share a
# transaction and their answers wait for its commit: a crash just before it
# acknowledged nothing and applied nothing; concurrent readers and writers
# are grouped (fewer commits than requests), every answer is right, and the
# audit chain holds.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init
assert_exit 0 "$RAPPORT" --json keys create --role admin
ADMIN=$(json_get "$OUT" key)

# post PORT PATH BODY: prints the status, or "none" when no answer came.
post() {
  python3 - "$@" "$ADMIN" <<'PY'
import http.client, sys
port, path, body, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
try:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", path, body=body, headers={"Content-Type": "application/json",
                                                "Authorization": "Bearer " + key})
    print(c.getresponse().status)
except Exception:
    print("none")
PY
}

# --- a crash before the group commit --------------------------------------------------
export RAPPORT_FAULT=http.before_commit
serve_start
unset RAPPORT_FAULT
EVENT='{"id": "crash-1", "type": "order.placed", "external_id": "G1"}'
assert_eq "$(post "$PORT" /v1/events "$EVENT")" none "no answer before the commit"
wait "$pid" && code=0 || code=$?
assert_eq "$code" 70 "crashed at http.before_commit"
assert_eq "$(sql "SELECT count(*) FROM events WHERE event_id = 'crash-1'")" 0 "nothing applied"
assert_eq "$(sql "SELECT count(*) FROM customer_identities WHERE kind = 'external_id' AND value = 'G1'")" 0 "no customer either"

serve_start
assert_eq "$(post "$PORT" /v1/events "$EVENT")" 201 "the retry is accepted, not a duplicate"
assert_eq "$(post "$PORT" /v1/events "$EVENT")" 200 "then a duplicate"
assert_eq "$(sql "SELECT count(*) FROM events WHERE event_id = 'crash-1'")" 1 "stored once"

# --- many clients at once ---------------------------------------------------------------
# 48 clients, each writing its own events and reading customers back on one
# keep-alive connection; every answer checked.
python3 - "$PORT" "$ADMIN" <<'PY' || fail "concurrent clients"
import http.client, json, sys, threading
port, key = int(sys.argv[1]), sys.argv[2]
H = {"Content-Type": "application/json", "Authorization": "Bearer " + key}
errors = []
def client(n):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(10):
            ev = {"id": "g-%d-%d" % (n, i), "type": "page.viewed", "external_id": "C%d" % n,
                  "properties": {"i": i}}
            c.request("POST", "/v1/events", body=json.dumps(ev), headers=H)
            r = c.getresponse(); body = json.loads(r.read())
            if r.status != 201 or body["duplicate"]:
                errors.append("event %d/%d: %d %s" % (n, i, r.status, body)); return
            c.request("GET", "/v1/customers?external_id=C%d" % n, headers=H)
            r = c.getresponse(); view = json.loads(r.read())
            if r.status != 200 or view["identities"]["external_id"] != ["C%d" % n]:
                errors.append("read %d/%d: %d %s" % (n, i, r.status, view)); return
            seen = [e["properties"]["i"] for e in view["recent_events"]]
            if i not in seen:
                errors.append("read %d/%d: own write not seen: %s" % (n, i, seen)); return
    except Exception as e:
        errors.append("client %d: %r" % (n, e))
threads = [threading.Thread(target=client, args=(n,)) for n in range(48)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    print("\n".join(errors[:5]), file=sys.stderr); sys.exit(1)
PY
assert_eq "$(sql "SELECT count(*) FROM events WHERE event_id LIKE 'g-%'")" 480 "every acknowledged event stored"
assert_eq "$(sql "SELECT count(*) FROM audit_log WHERE action = 'customer.read'")" 480 "one audit record per read"
METRICS=$(curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$PORT/metrics")
commits=$(printf '%s\n' "$METRICS" | sed -n 's/^rapport_http_group_commits_total{outcome="committed"} //p')
grouped=$(printf '%s\n' "$METRICS" | sed -n 's/^rapport_http_grouped_requests_total //p')
assert_eq "$(printf '%s\n' "$METRICS" | sed -n 's/^rapport_http_group_commits_total{outcome="failed"} //p')" 0 "no failed commit"
[ "$grouped" -ge 962 ] || fail "grouped requests: $grouped"
echo "group commit: $commits commits for $grouped requests" >&2
[ "$commits" -lt "$grouped" ] || fail "no request shared a commit: $commits commits for $grouped requests"
kill -TERM "$pid"
wait "$pid" || fail "serve exited $?"
assert_exit 0 "$RAPPORT" audit verify
echo "http_group: ok"
