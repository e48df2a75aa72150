# import.sh: `rapport import` end to end: customers CSV and JSON Lines,
# events JSON Lines and CSV, summaries, rejects files and exit codes.
. "$(dirname "$0")/lib.sh" "$@"

IN=$DATA/import
# Rejects files are written beside the input: work on copies.
cp "$IN"/*.csv "$IN"/*.jsonl "$TMP/"

assert_exit 0 "$RAPPORT" init

# --- usage errors (1) ---------------------------------------------------------
assert_exit 1 "$RAPPORT" import
assert_contains "$ERR" "customers or events"
assert_exit 1 "$RAPPORT" import people "$TMP/customers.csv"
assert_exit 1 "$RAPPORT" import customers
assert_exit 1 "$RAPPORT" import customers "$TMP/customers.csv" --format xml
assert_exit 1 "$RAPPORT" import customers "$TMP/customers.csv" --batch 0
assert_exit 1 "$RAPPORT" import customers "$TMP/customers.csv" --bogus
assert_exit 1 "$RAPPORT" import customers "$TMP/customers.txt"
assert_contains "$ERR" "--format"
assert_exit 0 "$RAPPORT" import --help
assert_contains "$OUT" "usage: rapport import customers|events FILE"

# --- file and header errors (2) ---------------------------------------------
assert_exit 2 "$RAPPORT" import customers "$TMP/missing.csv"
assert_contains "$ERR" "missing.csv: cannot open"
assert_exit 2 "$RAPPORT" import customers "$TMP/bad_header.csv"
assert_contains "$ERR" "bad_header.csv: column 3 \"age:float\": unknown type \"float\""
assert_exit 2 "$RAPPORT" --json import customers "$TMP/bad_header.csv"
assert_eq "$(json_get "$ERR" error.code)" "invalid"
assert_eq "$(sql 'SELECT count(*) FROM customers')" 0 "customers after a bad header"
[ ! -e "$TMP/bad_header.csv.rejects.csv" ] || fail "a rejects file for a refused header"

# --- customers CSV ----------------------------------------------------------------
assert_exit 0 "$RAPPORT" --json import customers "$TMP/customers.csv" --source crm
J=$OUT
assert_eq "$(json_get "$J" kind)" customers
assert_eq "$(json_get "$J" format)" csv
assert_eq "$(json_get "$J" rows)" 10
assert_eq "$(json_get "$J" created)" 4 created
assert_eq "$(json_get "$J" updated)" 1 updated
assert_eq "$(json_get "$J" merged)" 1 merged
assert_eq "$(json_get "$J" unchanged)" 0 unchanged
assert_eq "$(json_get "$J" rejected)" 4 rejected
assert_eq "$(json_get "$J" rejects_file)" "$TMP/customers.csv.rejects.csv"
assert_eq "$(json_get "$J" first_rejects.0.line)" 4
assert_contains "$(json_get "$J" first_rejects.0.error)" "email: \"bob@\""

R=$(cat "$TMP/customers.csv.rejects.csv")
assert_contains "$R" "external_id,email,phone,first_name,age:integer,vip:boolean,signed_up:timestamp,ltv:money,consent.email,_line,_error"
assert_contains "$R" "CRM-3,bob@,,Bobby,29,no,,,,4,"
assert_contains "$R" ",6,\"attributes.age: not a whole number (column age:integer: \"\"forty\"\")\""
assert_contains "$R" ",7,\"expected 9 cells, found 4\""
assert_contains "$R" ",9,\"malformed CSV: cell 2: a quoted cell is never closed"
assert_eq "$(wc -l <"$TMP/customers.csv.rejects.csv" | tr -d ' ')" 5 "rejects file lines"

# What was stored: normalised identities, typed attributes, consent, the merge.
ALICE=$(cid email:alice@example.com)
[ -n "$ALICE" ] || fail "alice is not found by email"
assert_eq "$(cid phone:+33612345678)" "$ALICE" "alice's phone"
assert_eq "$(sql "SELECT type || ':' || value FROM customer_attributes WHERE name = 'age' AND customer_id = (SELECT customer_id FROM customer_identities WHERE value = 'CRM-1')")" "integer:34"
assert_eq "$(sql "SELECT value || ' ' || currency FROM customer_attributes WHERE name = 'ltv' AND customer_id = (SELECT customer_id FROM customer_identities WHERE value = 'CRM-9')")" "999 USD"
assert_eq "$(sql "SELECT count(*) FROM customer_attributes WHERE name = 'first_name' AND typeof(value) = 'blob'")" 3 "names are sealed"
assert_eq "$(attr email:carol@example.com first_name)" "Carol, Jr."
assert_eq "$(sql "SELECT granted || ':' || source FROM customer_consent c JOIN customer_identities i ON i.customer_id = c.customer_id WHERE i.value = 'CRM-1'")" "1:crm"
assert_eq "$(sql "SELECT count(*) FROM customer_merges")" 1 "merges"
assert_eq "$(sql "SELECT count(*) FROM customers WHERE merged_into IS NULL")" 3 "live customers"

# The same file again changes nothing.
assert_exit 0 "$RAPPORT" --json import customers "$TMP/customers.csv" --source crm --batch 2
assert_eq "$(json_get "$OUT" created)" 0
assert_eq "$(json_get "$OUT" updated)" 0
assert_eq "$(json_get "$OUT" merged)" 0
assert_eq "$(json_get "$OUT" unchanged)" 6
assert_eq "$(json_get "$OUT" rejected)" 4

# For people: one line per count, and where the rejects went.
assert_exit 0 "$RAPPORT" import customers "$TMP/customers.csv" --rejects "$TMP/r.csv"
assert_contains "$OUT" "  unchanged  6"
assert_contains "$OUT" "  rejected   4"
assert_contains "$OUT" "rejected rows written to $TMP/r.csv"
assert_contains "$OUT" "line 4: email: \"bob@\""
[ -s "$TMP/r.csv" ] || fail "no rejects file at --rejects"

# --- customers JSON Lines ----------------------------------------------------------
assert_exit 0 "$RAPPORT" --json import customers "$TMP/customers.jsonl"
assert_eq "$(json_get "$OUT" format)" jsonl
assert_eq "$(json_get "$OUT" created)" 2
assert_eq "$(json_get "$OUT" rejected)" 1
R=$(cat "$TMP/customers.jsonl.rejects.jsonl")
assert_eq "$(json_get "$R" line)" 2
assert_contains "$(json_get "$R" error)" "email: \"ivan@example\""
assert_contains "$(json_get "$R" input)" "\"attributes\": {\"first_name\": \"Ivan\"}"

# --- events JSON Lines and CSV -----------------------------------------------------
assert_exit 0 "$RAPPORT" --json import events "$TMP/events.jsonl"
J=$OUT
assert_eq "$(json_get "$J" kind)" events
assert_eq "$(json_get "$J" accepted)" 4 accepted
assert_eq "$(json_get "$J" duplicate)" 1 duplicate
assert_eq "$(json_get "$J" rejected)" 2 rejected
assert_eq "$(json_get "$J" customers_created)" 2 "customers created by events"
R=$(cat "$TMP/events.jsonl.rejects.jsonl")
assert_contains "$R" '{"line":4,"error":"type: '
assert_contains "$R" '{"line":6,"error":"malformed JSON at byte'
assert_eq "$(sql "SELECT source FROM events WHERE event_id = 'evt-4'")" mailer
assert_eq "$(sql "SELECT source FROM events WHERE event_id = 'evt-2'")" import

assert_exit 0 "$RAPPORT" --json import events "$TMP/events.jsonl"
assert_eq "$(json_get "$OUT" accepted)" 0
assert_eq "$(json_get "$OUT" duplicate)" 5

assert_exit 0 "$RAPPORT" import events "$TMP/events.csv" --source shop
assert_contains "$OUT" "  accepted   2"
assert_contains "$OUT" "  rejected   1"
assert_contains "$OUT" "customers created by these events: 1"
assert_contains "$OUT" "line 3: properties.quantity:integer: \"one\" is not a whole number"
assert_eq "$(sql "SELECT properties FROM events WHERE event_id = 'csv-1'")" '{"sku":"SKU-1","quantity":2,"gift":false}'
assert_eq "$(sql "SELECT source FROM events WHERE event_id = 'csv-3'")" shop

# --format wins over the extension.
cp "$TMP/events.jsonl" "$TMP/events.txt"
assert_exit 0 "$RAPPORT" --json import events "$TMP/events.txt" --format jsonl
assert_eq "$(json_get "$OUT" duplicate)" 5

echo "import: ok"
