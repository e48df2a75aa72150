# audit.sh: every read or change of a customer's data is recorded (CLI,
# operator scripts, plugins, HTTP), the records hold no personal data, and
# the hash chain exposes an edited, inserted or deleted record.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init
cat >"$TMP/c.jsonl" <<'JSONL'
{"external_id": "A1", "email": "ana.secret@example.com", "attributes": {"first_name": "Anastasia"}}
JSONL
assert_exit 0 "$RAPPORT" --quiet import customers "$TMP/c.jsonl"
assert_exit 0 "$RAPPORT" audit verify
assert_contains "$OUT" "0 record(s) verified"

# The CLI
assert_exit 0 "$RAPPORT" customer show A1
ID=$(json_get "$OUT" id)
# An operator script
cat >"$TMP/s.lua" <<'LUA'
local id = crm.customers.find("external_id", "A1")
crm.customers.get(id)
crm.customers.set(id, { tier = "gold" })
crm.customers.set_consent(id, "email", false, "unsubscribe-link")
LUA
assert_exit 0 "$RAPPORT" run "$TMP/s.lua"

assert_exit 0 "$RAPPORT" --json audit show --customer A1
assert_eq "$(json_get "$OUT" 3.action)" customer.read "CLI read"
assert_contains "$(json_get "$OUT" 3.actor)" "cli:"
assert_eq "$(json_get "$OUT" 3.origin)" local
assert_eq "$(json_get "$OUT" 2.action)" customer.read "script read"
assert_contains "$(json_get "$OUT" 2.actor)" "operator:"
assert_eq "$(json_get "$OUT" 1.action)" customer.update
assert_eq "$(json_get "$OUT" 1.fields)" '["tier"]'
assert_eq "$(json_get "$OUT" 0.action)" consent.update
assert_eq "$(json_get "$OUT" 0.fields)" '["email"]'
assert_eq "$(json_get "$OUT" 0.customer_id)" "$ID"
# Records name fields, never values.
assert_eq "$(sql "SELECT count(*) FROM audit_log WHERE fields LIKE '%ana.secret%' OR fields LIKE '%Anastasia%' OR fields LIKE '%gold%'")" 0 "no data in records"

assert_exit 0 "$RAPPORT" --json audit verify
assert_eq "$(json_get "$OUT" verified)" 4 "verified"
HEAD=$(json_get "$OUT" head)
assert_contains "$HEAD" "4:"
assert_exit 0 "$RAPPORT" audit show
assert_contains "$OUT" "consent.update"

# Tampering: an edited record, then a deleted one, break the chain there.
cp "$RAPPORT_DB" "$TMP/pristine.db"
sql "UPDATE audit_log SET actor = 'cli:nobody' WHERE id = 2"
assert_exit 2 "$RAPPORT" audit verify
assert_contains "$ERR" "audit record 2 does not follow the chain"
cp "$TMP/pristine.db" "$RAPPORT_DB"
rm -f "$RAPPORT_DB-wal" "$RAPPORT_DB-shm"
sql "DELETE FROM audit_log WHERE id = 3"
assert_exit 2 "$RAPPORT" audit verify
assert_contains "$ERR" "audit record 4 does not follow the chain"
# Cutting off the newest record leaves an intact, shorter chain: the head
# recorded elsewhere is what shows it.
cp "$TMP/pristine.db" "$RAPPORT_DB"
sql "DELETE FROM audit_log WHERE id = 4"
assert_exit 0 "$RAPPORT" --json audit verify
[ "$(json_get "$OUT" head)" != "$HEAD" ] || fail "the head did not change"
echo "audit: ok"
