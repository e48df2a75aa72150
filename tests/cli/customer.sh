# customer.sh: the unified view of one customer (`rapport customer show`)
# by any identity, after normalisation and a merge; placeholders never
# match; `rapport events tail` and its filters.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init --enable activity
echo '{"default_country": "FR"}' >"$TMP/rapport.json"
cat >"$TMP/c.csv" <<'CSV'
external_id,email,phone,first_name,vip:boolean,ltv:money,consent.email
A1, Ana@Example.COM ,,Ana,yes,120.50 EUR,yes
B1,,06 12 34 56 78,Bruno,no,,no
CSV
cat >"$TMP/e.jsonl" <<'JSONL'
{"id":"e1","type":"page.viewed","email":"ana@example.com","occurred_at":"2026-01-05T10:00:00Z","properties":{"path":"/"}}
{"id":"e2","type":"order.placed","phone":"+33612345678","occurred_at":"2026-01-06T10:00:00Z","properties":{"amount":4200,"currency":"EUR"}}
{"id":"e3","type":"login","email":"ANA@example.com","phone":"0612345678","occurred_at":"2026-01-07T10:00:00Z"}
{"id":"e3","type":"login","email":"ana@example.com","occurred_at":"2026-01-07T10:00:00Z"}
{"id":"p1","type":"page.viewed","email":"test@test.com","external_id":"C9"}
{"id":"p2","type":"page.viewed","email":"null","phone":"unknown","external_id":"C10"}
JSONL
# Both consents are recorded at the same instant (a frozen clock), so the
# merge's rule for a tie decides: the refusal wins.
RAPPORT_FAKE_NOW=2026-02-01T00:00:00Z assert_exit 0 "$RAPPORT" --quiet import customers "$TMP/c.csv"
assert_exit 0 "$RAPPORT" --json import events "$TMP/e.jsonl"
assert_eq "$(json_get "$OUT" accepted)" 5 accepted
assert_eq "$(json_get "$OUT" duplicate)" 1 "duplicate event id"
assert_exit 0 "$RAPPORT" serve --once

# e3 named Ana by email and Bruno by phone: they are one person now.
assert_exit 0 "$RAPPORT" --json customer show email:ana@example.com
ANA=$OUT
ID=$(json_get "$ANA" id)
assert_eq "$(json_get "$ANA" identities.email.0)" ana@example.com
assert_eq "$(json_get "$ANA" identities.phone.0)" +33612345678 "phone in E.164"
assert_eq "$(json_get "$ANA" identities.external_id)" '["A1", "B1"]' "both external ids"
assert_eq "$(json_get "$ANA" attributes.vip)" true
assert_eq "$(json_get "$ANA" attributes.ltv.amount)" 12050 "money in minor units"
assert_eq "$(json_get "$ANA" attributes.ltv.currency)" EUR
assert_eq "$(json_get "$ANA" consent.email.granted)" false "consent after the merge"
assert_eq "$(json_get "$ANA" consent.email.source)" import
ABSORBED=$(json_get "$ANA" merged_from.0)
assert_eq "$(json_get "$ANA" recent_events.0.type)" login "most recent first"
assert_eq "$(json_get "$ANA" plugins.activity.revenue.EUR)" 4200 "the plugin's contribution"

# Every way of naming her lands on the same record, the absorbed id included.
for ref in "$ID" "$ABSORBED" A1 B1 external_id:B1 ANA@EXAMPLE.COM "+33 6 12 34 56 78" phone:0612345678; do
  assert_exit 0 "$RAPPORT" --json customer show "$ref"
  assert_eq "$(json_get "$OUT" id)" "$ID" "customer show $ref"
done
assert_exit 0 "$RAPPORT" --json customer show "$ID" --events 1
assert_eq "$(json_get "$OUT" recent_events)" "$(json_get "$ANA" recent_events | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)[:1]))')" "--events 1"

# Placeholders name nobody and merge nothing.
assert_exit 2 "$RAPPORT" customer show test@test.com
assert_contains "$ERR" "placeholder"
assert_exit 0 "$RAPPORT" --json customer show C9
assert_eq "$(json_get "$OUT" identities)" '{"external_id": ["C9"]}' "C9 identities"
assert_exit 0 "$RAPPORT" --json customer show C10
assert_eq "$(json_get "$OUT" identities)" '{"external_id": ["C10"]}' "C10 identities"
assert_exit 2 "$RAPPORT" customer show nobody@example.com
assert_contains "$ERR" "nobody@example.com"
assert_exit 1 "$RAPPORT" customer show
assert_exit 1 "$RAPPORT" customer show A1 --events x

# --- events tail --------------------------------------------------------------------------
assert_exit 0 "$RAPPORT" events tail -n 2
assert_eq "$(printf '%s\n' "$OUT" | wc -l)" 2 "two lines"
assert_contains "$OUT" "page.viewed"
assert_exit 0 "$RAPPORT" --json events tail --customer B1
assert_eq "$(printf '%s\n' "$OUT" | wc -l)" 3 "Ana's events (merged)"
assert_eq "$(json_get "$(printf '%s\n' "$OUT" | head -1)" event_id)" e1 "oldest first"
assert_exit 0 "$RAPPORT" --json events tail --type 'order.*'
assert_eq "$(json_get "$OUT" properties.amount)" 4200
assert_exit 0 "$RAPPORT" events tail --type 'nothing.*'
assert_eq "$OUT" "" "no match"

# --follow prints events committed after it started.
"$RAPPORT" --json events tail -n 0 --follow >"$TMP/follow.out" 2>&1 &
pid=$!
sleep 0.5
cat >"$TMP/emit.lua" <<'LUA'
crm.events.emit { type = "note.added", external_id = "A1", id = "n1", properties = { text = "hi" } }
LUA
assert_exit 0 "$RAPPORT" run "$TMP/emit.lua"
for _ in $(seq 1 50); do grep -q note.added "$TMP/follow.out" && break; sleep 0.1; done
kill "$pid"
wait "$pid" 2>/dev/null
assert_contains "$(cat "$TMP/follow.out")" '"type":"note.added"'
echo "customer: ok"
