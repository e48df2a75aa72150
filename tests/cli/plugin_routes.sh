# plugin_routes.sh: HTTP routes declared by a plugin, under /v1/p/<plugin>:
# private ones by role (admin, operator, the plugin's own partner key), public
# ones only with a signed, expiring token the plugin issued; the route runs in
# the plugin's sandbox and its writes commit (or roll back) as a whole.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init --enable "$DATA/plugins/survey_fix"
echo '{"external_id": "S1"}' >"$TMP/c.jsonl"
assert_exit 0 "$RAPPORT" --quiet import customers "$TMP/c.jsonl"
assert_exit 0 "$RAPPORT" keys create --role operator
OPERATOR=$OUT
assert_exit 0 "$RAPPORT" keys create --role analyst
ANALYST=$OUT
assert_exit 0 "$RAPPORT" keys create --role partner --plugin survey_fix
PARTNER=$OUT
assert_exit 0 "$RAPPORT" keys create --role partner --plugin activity
OTHER_PARTNER=$OUT

serve_start

call() { # METHOD PATH KEY|- [BODY] [HEADER]; sets STATUS, TYPE, BODY
  local out
  out=$(python3 - "$PORT" "$@" <<'PY'
import http.client, sys
port, method, path, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
body = sys.argv[5] if len(sys.argv) > 5 and sys.argv[5] != "" else None
h = {"Content-Type": "application/json"}
if key != "-": h["Authorization"] = "Bearer " + key
if len(sys.argv) > 6: h["X-Rapport-Token"] = sys.argv[6]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request(method, path, body=body, headers=h)
r = c.getresponse()
print(r.status)
print(r.getheader("Content-Type"))
print(r.read().decode())
PY
  ) || fail "request failed: $*"
  STATUS=$(printf '%s\n' "$out" | head -1)
  TYPE=$(printf '%s\n' "$out" | sed -n 2p)
  BODY=$(printf '%s\n' "$out" | tail -n +3)
}

# Private routes, by role.
call POST /v1/p/survey_fix/invite "$ANALYST" '{"external_id": "S1"}'
assert_eq "$STATUS" 403 "analyst"
call POST /v1/p/survey_fix/invite "$OTHER_PARTNER" '{"external_id": "S1"}'
assert_eq "$STATUS" 403 "another plugin's partner"
call POST /v1/p/survey_fix/invite - '{"external_id": "S1"}'
assert_eq "$STATUS" 401 "no key"
call POST /v1/p/survey_fix/invite "$PARTNER" '{"external_id": "S1"}'
assert_eq "$STATUS" 201 "the plugin's partner"
TOKEN=$(json_get "$BODY" token)
call POST /v1/p/survey_fix/invite "$OPERATOR" '{"external_id": "NOBODY"}'
assert_eq "$STATUS" 404 "the route's own status"

# The public route: only with a valid token.
call POST /v1/p/survey_fix/answer - '{"score": 9}'
assert_eq "$STATUS" 401 "no token"
call POST "/v1/p/survey_fix/answer?token=${TOKEN}x" - '{"score": 9}'
assert_eq "$STATUS" 401 "forged token"
call POST "/v1/p/survey_fix/answer?token=$TOKEN" - '{"score": 11}'
assert_eq "$STATUS" 422 "validated by the plugin"
call POST "/v1/p/survey_fix/answer?token=$TOKEN" - '{"score": 9, "comment": "great"}'
assert_eq "$STATUS" 201 "answered by link"
call POST /v1/p/survey_fix/answer - '{"score": 7}' "$TOKEN"
assert_eq "$STATUS" 201 "answered by header"
S1=$(sql "SELECT customer_id FROM customer_identities WHERE value = 'S1'")
assert_eq "$(sql "SELECT group_concat(customer_id || ':' || score) FROM survey_fix_answers")" "$S1:9,$S1:7" "answers"
# Audit records made by a route name its caller with the plugin, and the
# client's address: the partner's key for the invitation, the token for the
# answers.
PARTNER_ID=$(sql "SELECT id FROM api_keys WHERE role = 'partner' AND plugin = 'survey_fix'")
assert_eq "$(sql "SELECT actor || ' ' || origin FROM audit_log WHERE action = 'survey_fix.invite' AND customer_id = $S1")" \
  "key:$PARTNER_ID+plugin:survey_fix 127.0.0.1" "invitation audited"
assert_eq "$(sql "SELECT count(*) FROM audit_log WHERE action = 'survey_fix.answer' AND actor = 'token+plugin:survey_fix' AND customer_id = $S1")" 2 "answers audited"
assert_eq "$(sql "SELECT count(*) FROM events WHERE type = 'survey.answered'")" 2 "events emitted"
# A token of another plugin, or an expired one, is refused.
call POST /v1/p/survey_fix/invite "$OPERATOR" '{"external_id": "S1", "ttl": 1000}'
SHORT=$(json_get "$BODY" token)
sleep 1.2
call POST /v1/p/survey_fix/answer - '{"score": 5}' "$SHORT"
assert_eq "$STATUS" 401 "expired token"

call GET /v1/p/survey_fix/results "$OPERATOR"
assert_eq "$(json_get "$BODY" answers)" 2 results
# Text answers: CSV as the plugin wrote it, with its content type; a type
# off the list (HTML) is a plugin error, never sent.
call GET /v1/p/survey_fix/results_csv "$OPERATOR"
assert_eq "$STATUS" 200 "csv route"
assert_eq "$TYPE" "text/csv; charset=utf-8" "csv content type"
assert_contains "$BODY" "customer_id,score,comment"
call GET /v1/p/survey_fix/html "$OPERATOR"
assert_eq "$STATUS" 500 "html refused"
assert_eq "$TYPE" "application/json" "the error is JSON"
assert_not_contains "$BODY" "<script>"
call DELETE /v1/p/survey_fix/results "$OPERATOR"
assert_eq "$STATUS" 405 "method"
call GET /v1/p/survey_fix/nothing "$OPERATOR"
assert_eq "$STATUS" 404 "unknown route"
call GET /v1/p/ghost/results "$OPERATOR"
assert_eq "$STATUS" 404 "unknown plugin"
# A route that fails after writing: 500, and its write rolled back.
call GET /v1/p/survey_fix/boom "$OPERATOR"
assert_eq "$STATUS" 500 "failing route"
assert_eq "$(json_get "$BODY" error.code)" plugin_error
assert_eq "$(sql "SELECT count(*) FROM survey_fix_answers")" 2 "rolled back"

kill -TERM "$pid"
wait "$pid" || fail "serve exited with $?"
assert_contains "$(cat "$TMP/serve.err")" "this route fails after a write"
assert_contains "$(cat "$TMP/serve.err")" "content type must be text/csv, text/plain or application/x-ndjson"
assert_not_contains "$(cat "$TMP/serve.err")" "$TOKEN"
echo "plugin_routes: ok"
