# segments.sh: the bundled segments plugin through the real binary: rules
# defined and built from the CLI (text and --json), explain, preview, a
# static list from a CSV file, CSV export read back with Python's csv
# module; over HTTP: a segment defined by an operator key and built by the
# server's job, events moving customers in and out with segment.entered /
# segment.exited in the log, an asynchronous preview, the CSV export's
# content type; erasure taking the person out of every segment.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init --enable segments
cat >"$TMP/c.csv" <<'EOF2'
external_id,email,country,age:integer
SEG-1,one@example.com,FR,34
SEG-2,two@example.com,DE,19
"SEG,3",,FR,51
EOF2
assert_exit 0 "$RAPPORT" --quiet import customers "$TMP/c.csv"
NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cat >"$TMP/e.jsonl" <<EOF2
{"type": "order.placed", "external_id": "SEG-1", "occurred_at": "$NOW", "properties": {"amount": 30000, "currency": "EUR"}}
{"type": "order.placed", "external_id": "SEG-1", "occurred_at": "$NOW", "properties": {"amount": 30000, "currency": "EUR"}}
{"type": "order.placed", "external_id": "SEG-2", "occurred_at": "$NOW", "properties": {"amount": 100, "currency": "EUR"}}
EOF2
assert_exit 0 "$RAPPORT" --quiet import events "$TMP/e.jsonl"
assert_exit 0 "$RAPPORT" serve --once

# --- commands -------------------------------------------------------------------------
assert_exit 0 "$RAPPORT" segments --help
assert_contains "$OUT" "explain"
assert_exit 0 "$RAPPORT" segments define big_fr 'country = "FR" and sum(order.placed, 365d) > 50000' \
  --description "French big spenders"
assert_contains "$OUT" "segment big_fr (dynamic)"
assert_contains "$OUT" "1 member(s)"
assert_exit 0 "$RAPPORT" --json segments define adults "age >= 18"
assert_eq "$(json_get "$OUT" members)" 3 "adults built at once"
assert_exit 2 "$RAPPORT" segments define broken 'country = "FR" and'
assert_contains "$ERR" "column 19: expected a condition"
assert_exit 0 "$RAPPORT" segments list
assert_contains "$OUT" "big_fr"
assert_exit 0 "$RAPPORT" segments preview 'country = "FR"'
assert_contains "$OUT" "2 of 3 customer(s)"
assert_exit 0 "$RAPPORT" segments explain big_fr SEG-2
assert_contains "$OUT" "does not match segment big_fr"
assert_contains "$OUT" 'no  country = "FR"   [found: DE]'
assert_contains "$OUT" "[found: 100]"

# A static list from a spreadsheet's CSV (email column, byte order mark).
printf '\xef\xbb\xbfname,email\r\n"Two, D",two@example.com\r\nX,nobody@example.com\r\n' >"$TMP/list.csv"
assert_exit 0 "$RAPPORT" segments define newsletter --static
assert_exit 0 "$RAPPORT" segments add newsletter SEG-1 --file @"$TMP/list.csv"
assert_contains "$OUT" "newsletter: 2 added, 0 unchanged, 1 unknown (nobody@example.com); 2 member(s)"

assert_exit 0 "$RAPPORT" segments export adults
printf '%s\n' "$OUT" >"$TMP/adults.csv"
python3 - "$TMP/adults.csv" <<'PY' || fail "export is not the CSV expected"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
assert [r["external_id"] for r in rows] == ["SEG-1", "SEG-2", "SEG,3"], rows
assert all(r["entered_at"].endswith("Z") for r in rows), rows
PY

# --- HTTP -----------------------------------------------------------------------------
assert_exit 0 "$RAPPORT" keys create --role operator
OPERATOR=$OUT
assert_exit 0 "$RAPPORT" keys create --role analyst
ANALYST=$OUT
serve_start
call PUT /v1/p/segments/segments "$ANALYST" '{"name": "x", "rule": "age > 1"}'
assert_eq "$STATUS" 403 "analyst"
call PUT /v1/p/segments/segments "$OPERATOR" \
  '{"name": "loyal", "rule": {"all": [{"count": "order.placed", "within": "30d", "gte": 3}]}}'
assert_eq "$STATUS" 200 "define"
assert_eq "$(json_get "$BODY" status)" building
for _ in $(seq 1 100); do
  call GET "/v1/p/segments/segments?name=loyal" "$OPERATOR"
  [ "$(json_get "$BODY" status)" = ready ] && break
  sleep 0.1
done
assert_eq "$(json_get "$BODY" status)" ready "built by the server's job"
assert_eq "$(json_get "$BODY" members)" 0

# A third purchase of SEG-1 through the API: in at once, with its event.
call POST /v1/events "$OPERATOR" \
  "{\"type\": \"order.placed\", \"external_id\": \"SEG-1\", \"properties\": {\"amount\": 500, \"currency\": \"EUR\"}}"
assert_eq "$STATUS" 201 "event"
for _ in $(seq 1 100); do
  [ "$(sql "SELECT members FROM segments_defs WHERE name = 'loyal'")" = 1 ] && break
  sleep 0.1
done
assert_eq "$(sql "SELECT count(*) FROM events WHERE type = 'segment.entered' AND json_extract(properties, '$.segment') = 'loyal'")" 1 "entered once"
call GET "/v1/p/segments/members?segment=loyal" "$OPERATOR"
assert_eq "$(json_get "$BODY" members.0.external_id)" SEG-1

call POST /v1/p/segments/previews "$OPERATOR" '{"rule": "age >= 30"}'
assert_eq "$STATUS" 202 "preview started"
PREVIEW=$(json_get "$BODY" id)
for _ in $(seq 1 100); do
  call GET "/v1/p/segments/previews?id=$PREVIEW" "$OPERATOR"
  [ "$(json_get "$BODY" status)" = done ] && break
  sleep 0.1
done
assert_eq "$(json_get "$BODY" count)" 2 "preview counted by the job"

call GET "/v1/p/segments/export?segment=adults" "$OPERATOR"
assert_eq "$STATUS" 200 "export"
assert_contains "$BODY" '"SEG,3"'
python3 - "$PORT" "$OPERATOR" <<'PY' || fail "export content type"
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
c.request("GET", "/v1/p/segments/export?segment=adults", headers={"Authorization": "Bearer " + sys.argv[2]})
r = c.getresponse()
assert r.getheader("Content-Type") == "text/csv; charset=utf-8", r.getheader("Content-Type")
assert r.getheader("X-Content-Type-Options") == "nosniff"
assert r.read().decode().startswith("customer_id,external_id,entered_at\r\n")
PY
kill -TERM "$pid"
wait "$pid" || fail "serve exited with $?"

# --- erasure ----------------------------------------------------------------------------
SEG1=$(cid SEG-1)
assert_exit 0 "$RAPPORT" gdpr export SEG-1 --out "$TMP/export.json"
assert_contains "$(cat "$TMP/export.json")" '"loyal"'
assert_exit 0 "$RAPPORT" gdpr erase SEG-1 --yes
assert_eq "$(sql "SELECT count(*) FROM segments_members WHERE customer_id = $SEG1")" 0 "out of every segment"
assert_eq "$(sql "SELECT count(*) FROM segments_profile WHERE customer_id = $SEG1")" 0 "facts erased"
# The core keeps the row and the events' types and times: nothing takes the
# person back (a rebuild, the profile and nightly jobs).
before=$(sql "SELECT count(*) FROM events WHERE type = 'segment.entered'")
assert_exit 0 "$RAPPORT" segments rebuild
assert_exit 0 "$RAPPORT" segments scores
assert_exit 0 "$RAPPORT" jobs run segments/profiles
assert_eq "$(sql "SELECT count(*) FROM segments_members WHERE customer_id = $SEG1")" 0 "still out after a rebuild"
assert_eq "$(sql "SELECT count(*) FROM events WHERE type = 'segment.entered'")" "$before" "no event names the erased person"
assert_exit 0 "$RAPPORT" segments preview 'sum(order.placed, 365d) > 50000'
assert_contains "$OUT" "0 of"
echo "segments: ok"
