# gdpr.sh: data-subject export and erasure. After erasing a customer, the
# database file and its WAL hold none of their identifiers or values, other
# customers are untouched, anonymous aggregates remain, and the erasure is in
# the audit log.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init --enable activity
echo '{"default_country": "FR"}' >"$TMP/rapport.json"
cat >"$TMP/c.csv" <<'CSV'
external_id,email,phone,first_name,last_name,city
ERASE-ME-7731,zelda.quixote@example.org,06 98 76 54 32,Zeldaqx,Quixotewq,Villeneuve-Tolosane
KEEP-ME-4410,bartholomew.keep@example.net,06 11 22 33 44,Bartholomew,Keeperson,Lyon
CSV
cat >"$TMP/e.jsonl" <<'JSONL'
{"id": "evt-zq-1", "type": "order.placed", "external_id": "ERASE-ME-7731", "occurred_at": "2026-01-02T10:00:00Z", "properties": {"amount": 4200, "note": "deliver to Zeldaqx at gate 9"}}
{"id": "evt-zq-2", "type": "page.viewed", "email": "zelda.quixote@example.org", "occurred_at": "2026-01-03T10:00:00Z", "properties": {"path": "/account/zeldaqx"}}
{"id": "evt-bk-1", "type": "order.placed", "external_id": "KEEP-ME-4410", "occurred_at": "2026-01-02T11:00:00Z", "properties": {"amount": 1000}}
JSONL
assert_exit 0 "$RAPPORT" --quiet import customers "$TMP/c.csv"
assert_exit 0 "$RAPPORT" --quiet import events "$TMP/e.jsonl"
assert_exit 0 "$RAPPORT" serve --once
# A merge, so that the request must cover two ids of one person.
echo '{"external_id": "ERASE-ALT-9", "attributes": {"nickname": "Zeeqx"}}' >"$TMP/m.jsonl"
echo '{"external_id": "ERASE-ALT-9", "email": "zelda.quixote@example.org"}' >>"$TMP/m.jsonl"
assert_exit 0 "$RAPPORT" --quiet import customers "$TMP/m.jsonl"
assert_eq "$(sql 'SELECT count(*) FROM customer_merges')" 1 "merged"

# --- export ---------------------------------------------------------------------------
assert_exit 0 "$RAPPORT" gdpr export zelda.quixote@example.org --out "$TMP/export.json"
DOC=$(cat "$TMP/export.json")
assert_eq "$(json_get "$DOC" customer.identities.phone.0)" +33698765432 export
assert_eq "$(json_get "$DOC" customer.attributes.nickname)" Zeeqx "merged attributes"
assert_eq "$(json_get "$DOC" events.0.properties.note)" "deliver to Zeldaqx at gate 9"
assert_eq "$(json_get "$DOC" plugins.activity.customer.orders)" 1 "the plugin's part"
assert_eq "$(json_get "$DOC" plugins.activity.revenue.0.amount)" 4200
assert_eq "$(sql "SELECT action FROM audit_log ORDER BY id DESC LIMIT 1")" customer.export

# --- erase ------------------------------------------------------------------------------
assert_exit 1 "$RAPPORT" gdpr erase ERASE-ME-7731            # needs --yes
assert_exit 0 "$RAPPORT" gdpr erase ERASE-ME-7731 --yes
assert_contains "$OUT" "erased"
assert_eq "$(sql "SELECT action FROM audit_log ORDER BY id DESC LIMIT 1")" customer.erase

for needle in ERASE-ME-7731 ERASE-ALT-9 zelda.quixote Zeldaqx Quixotewq Villeneuve-Tolosane \
              Zeeqx 33698765432 "98 76 54 32" zeldaqx evt-zq-1; do
  for f in "$RAPPORT_DB" "$RAPPORT_DB-wal"; do
    [ -e "$f" ] || continue
    if grep -a -q -- "$needle" "$f"; then fail "'$needle' is still in $(basename "$f")"; fi
  done
done
# The other customer is intact.
[ -n "$(cid email:bartholomew.keep@example.net)" ] || fail "the other customer is gone"
assert_exit 0 "$RAPPORT" --json customer show KEEP-ME-4410
assert_eq "$(json_get "$OUT" attributes.city)" Lyon "other customer"
# Anonymous aggregates remain: the events' types and times, the revenue total.
assert_eq "$(sql "SELECT count(*) FROM events WHERE type IN ('order.placed', 'page.viewed')")" 3 "events kept"
assert_eq "$(sql "SELECT sum(amount) FROM activity_revenue")" 5200 "revenue total kept"
assert_eq "$(sql "SELECT count(*) FROM activity_customers")" 1 "plugin rows erased"
assert_exit 0 "$RAPPORT" audit verify
assert_exit 2 "$RAPPORT" customer show zelda.quixote@example.org

# --- a plugin that keeps customer data without the hooks is refused -------------------------
mkdir -p "$TMP/nohooks/migrations"
cat >"$TMP/nohooks/plugin.json" <<'JSON'
{"name": "nohooks", "version": "0.1.0", "api": "1.0", "permissions": []}
JSON
echo 'CREATE TABLE nohooks_notes(customer_id INTEGER, note TEXT);' >"$TMP/nohooks/migrations/001_init.sql"
echo 'return {}' >"$TMP/nohooks/init.lua"
assert_exit 2 "$RAPPORT" plugin enable "$TMP/nohooks"
assert_contains "$ERR" "returns no export(customer_id) function"
assert_eq "$(sql "SELECT count(*) FROM sqlite_master WHERE name = 'nohooks_notes'")" 0 "nothing left"
echo "gdpr: ok"
