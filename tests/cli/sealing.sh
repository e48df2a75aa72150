# sealing.sh: customers' sensitive values encrypted at rest. After importing
# known customers (CSV and HTTP), neither the database file nor its WAL holds
# their emails, phones, names or addresses in clear, while lookups by email
# and phone still work; the data key's file mode, absence and mismatch are
# refused; a rotation under a live server loses nothing and leaves no value
# under the old key; clear values of an older database, a changed PII list
# and a rotation through RAPPORT_DATA_KEY are all brought in line.
. "$(dirname "$0")/lib.sh" "$@"

KEYFILE=$RAPPORT_DB.key
assert_exit 0 "$RAPPORT" init
[ -f "$KEYFILE" ] || fail "init did not create the data key"
assert_eq "$(stat -c %a "$KEYFILE")" 600 "key file mode"
KEY1=$(cat "$KEYFILE")

cat >"$TMP/people.csv" <<'EOF'
external_id,email,phone,first_name,last_name,address,city
P-1,Zoe.Quarkette@Example.org,+33 6 11 22 33 44,Zoequark,Quarkington,12 Rue Plumeauvert,Lyon
P-2,yann.zephyrin@example.org,+44 7700 900123,Yannzeph,Zephyrmoor,5 Bakerloo Lanewise,London
EOF
assert_exit 0 "$RAPPORT" import customers "$TMP/people.csv" --source crm
assert_exit 0 "$RAPPORT" keys create --role admin
ADMIN=$OUT
assert_exit 0 "$RAPPORT" keys create --role analyst
ANALYST=$OUT

serve_start
call POST /v1/identify "$ADMIN" '{"userId": "P-3", "traits": {"email": "xavier.quillbright@example.org", "phone": "+33 7 55 44 33 22", "first_name": "Xavquill", "address": "9 Impasse Grenadiervert", "plan": "pro"}}'
assert_eq "$STATUS" 201 "identify (created)"

# The files on disk, WAL included while the server holds it open.
NEEDLES="zoe.quarkette quarkette Zoe.Quarkette yann.zephyrin 611223344 7700900123 755443322
Zoequark Quarkington Plumeauvert Yannzeph Zephyrmoor Bakerloo xavier.quillbright Xavquill
Grenadiervert"
clear_text() { # prints the needles found in clear in the database or its WAL
  local n f
  for n in $NEEDLES; do
    for f in "$RAPPORT_DB" "$RAPPORT_DB-wal"; do
      [ -e "$f" ] && grep -a -q -i -- "$n" "$f" && echo "$n in $(basename "$f")"
    done
  done
}
[ -e "$RAPPORT_DB-wal" ] || fail "expected a WAL while the server runs"
assert_eq "$(clear_text)" "" "clear text on disk"
assert_eq "$(sql "SELECT value FROM customer_attributes WHERE name = 'city' ORDER BY value")" \
  "$(printf 'London\nLyon')" "attributes not declared PII stay in clear (and queryable)"
assert_eq "$(sql "SELECT count(*) FROM customer_identities WHERE kind IN ('email', 'phone') AND typeof(sealed) = 'blob' AND length(value) = 64")" 6 "sealed identities"

# Lookups by email and phone work through the blind index.
call GET "/v1/customers?email=ZOE.QUARKETTE@example.org" "$ADMIN"
assert_eq "$STATUS" 200 "lookup by email"
assert_eq "$(json_get "$BODY" attributes.last_name)" Quarkington
P1=$(json_get "$BODY" id)
call GET "/v1/customers?phone=%2B33611223344" "$ADMIN"
assert_eq "$(json_get "$BODY" id)" "$P1" "lookup by phone"
call GET "/v1/customers/$P1" "$ANALYST"
assert_eq "$STATUS" 200 "analyst reads"
assert_not_contains "$BODY" Quarkington
assert_not_contains "$BODY" last_name
assert_contains "$BODY" Lyon
kill -TERM "$pid"
wait "$pid" || fail "serve exited with $?"
assert_eq "$(cid email:xavier.quillbright@example.org)" "$(cid external_id:P-3)" "identify sealed"
assert_eq "$(attr phone:+33755443322 address)" "9 Impasse Grenadiervert"
assert_eq "$(clear_text)" "" "clear text on disk after the server stopped"

# --- the key file ---------------------------------------------------------------
chmod 644 "$KEYFILE"
assert_exit 2 "$RAPPORT" customer show "$P1"
assert_contains "$ERR" "readable by others"
chmod 600 "$KEYFILE"
mv "$KEYFILE" "$TMP/saved.key"
assert_exit 2 "$RAPPORT" customer show "$P1"
assert_contains "$ERR" "is sealed"
assert_contains "$ERR" "does not exist"
[ ! -e "$KEYFILE" ] || fail "a new key was created for a sealed database"
# The key may come from the environment instead.
RAPPORT_DATA_KEY=$KEY1 "$RAPPORT" customer show "$P1" >"$TMP/show.json" ||
  fail "RAPPORT_DATA_KEY was not used"
assert_contains "$(cat "$TMP/show.json")" Zoequark
mv "$TMP/saved.key" "$KEYFILE"
python3 -c 'import secrets; print(secrets.token_hex(32))' >"$TMP/other.key"
chmod 600 "$TMP/other.key"
printf '{"data_key_file": "%s"}\n' "$TMP/other.key" >"$TMP/other.json"
assert_exit 2 "$RAPPORT" --config "$TMP/other.json" customer show "$P1"
assert_contains "$ERR" "is not the key"

# --- rotation under a live server ------------------------------------------------
serve_start
FP1=$(sql "SELECT value FROM settings WHERE key = 'data_key_fingerprint'")
# A writer creates customers and looks the first ones up again, all through
# the rotation; it fails on any error or on a lookup that finds nobody.
python3 - "$PORT" "$ADMIN" >"$TMP/writer.out" 2>&1 <<'EOF' &
import http.client, json, sys, time
port, key = int(sys.argv[1]), sys.argv[2]
h = {"Content-Type": "application/json", "Authorization": "Bearer " + key}
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
def call(method, path, body=None):
    c.request(method, path, body=json.dumps(body) if body else None, headers=h)
    r = c.getresponse()
    data = r.read()
    if r.status not in (200, 201):
        sys.exit("%s %s: %d %s" % (method, path, r.status, data))
    return json.loads(data)
ids = {}
deadline = time.time() + 5
i = 0
while time.time() < deadline:
    email = "rot%d@example.com" % i
    ids[email] = call("POST", "/v1/identify", {"userId": "R-%d" % i, "traits": {"email": email,
                      "first_name": "Rot%d" % i}})["id"]
    probe = "rot%d@example.com" % (i // 2)
    got = call("GET", "/v1/customers?email=" + probe)["id"]
    if got != ids[probe]:
        sys.exit("lookup of %s found %s, not %s" % (probe, got, ids[probe]))
    i += 1
    time.sleep(0.01)
print(i)
EOF
writer=$!
sleep 0.5
assert_exit 0 "$RAPPORT" --json keys rotate-data-key --batch 7 --grace-ms 1500
ROT=$OUT
wait "$writer" || fail "the writer failed during the rotation: $(cat "$TMP/writer.out")"
WRITTEN=$(cat "$TMP/writer.out")
[ "$WRITTEN" -gt 20 ] || fail "the writer wrote only $WRITTEN customers"
assert_eq "$(json_get "$ROT" previous_key)" "$FP1"
assert_eq "$(json_get "$ROT" resumed)" false
FP2=$(json_get "$ROT" key)
[ "$FP2" != "$FP1" ] || fail "the key did not change"
assert_eq "$(sql "SELECT value FROM settings WHERE key = 'data_key_fingerprint'")" "$FP2"
assert_eq "$(wc -l <"$KEYFILE" | tr -d ' ')" 1 "the old key is retired"
[ "$(cat "$KEYFILE")" != "$KEY1" ] || fail "the key file still holds the old key"
assert_eq "$(stat -c %a "$KEYFILE")" 600 "key file mode after rotation"
# Nothing is left under the old key; nothing was duplicated; all is readable.
OLD_ID=$(printf '%s' "$FP1" | cut -c1-8 | tr a-f A-F)
assert_eq "$(sql "SELECT count(*) FROM customer_identities WHERE hex(substr(sealed, 2, 4)) = '$OLD_ID'")" 0 "identities under the old key"
assert_eq "$(sql "SELECT count(*) FROM customer_attributes WHERE typeof(value) = 'blob' AND hex(substr(value, 2, 4)) = '$OLD_ID'")" 0 "attributes under the old key"
assert_eq "$(sql "SELECT count(*) FROM customer_identities WHERE kind = 'email' AND value LIKE 'rot%'")" 0 "clear emails"
assert_eq "$(sql "SELECT count(*) FROM customers WHERE external_id LIKE 'R-%'")" "$WRITTEN" "customers written"
assert_eq "$(sql "SELECT count(*) FROM customer_identities WHERE kind = 'email'")" "$((WRITTEN + 3))" "one email each"
call GET "/v1/customers?email=rot0@example.com" "$ADMIN"
assert_eq "$(json_get "$BODY" attributes.first_name)" Rot0
kill -TERM "$pid"
wait "$pid" || fail "serve exited with $?"
assert_eq "$(attr email:zoe.quarkette@example.org first_name)" Zoequark

# An interrupted rotation (the key file holds a new key and the old one) is
# finished by running it again.
python3 -c 'import secrets; print(secrets.token_hex(32))' >"$TMP/ring"
cat "$KEYFILE" >>"$TMP/ring"
cat "$TMP/ring" >"$KEYFILE"
assert_exit 0 "$RAPPORT" --json keys rotate-data-key --grace-ms 0
assert_eq "$(json_get "$OUT" resumed)" true
assert_eq "$(json_get "$OUT" previous_key)" "$FP2"
assert_eq "$(wc -l <"$KEYFILE" | tr -d ' ')" 1 "ring after the resumed rotation"
assert_eq "$(head -c 64 "$KEYFILE")" "$(head -c 64 "$TMP/ring")" "the new key stays"
assert_eq "$(attr email:yann.zephyrin@example.org first_name)" Yannzeph

# --- values in clear from before encryption are sealed at the next open -----------
sql "INSERT INTO customer_identities(kind, value, customer_id, created_at) VALUES('email', 'legacy.lumberjack@example.com', $P1, 0);
     INSERT INTO customer_attributes(customer_id, name, type, value, updated_at) VALUES($P1, 'nickname', 'text', 'Lumberlegacy', 0);
     DELETE FROM settings WHERE key = 'data_key_fingerprint';"
assert_eq "$(cid email:legacy.lumberjack@example.com)" "$P1" "legacy identity"
assert_eq "$(attr "$P1" nickname)" Lumberlegacy
NEEDLES="legacy.lumberjack Lumberlegacy"
assert_eq "$(clear_text)" "" "legacy clear text on disk"

# --- the PII list: declared attributes are sealed, undeclared ones unsealed ------
printf '{"pii_attributes": ["first_name", "city"]}\n' >"$TMP/pii.json"
assert_exit 0 "$RAPPORT" --config "$TMP/pii.json" customer show "$P1"
assert_eq "$(sql "SELECT typeof(value) FROM customer_attributes WHERE customer_id = $P1 AND name = 'city'")" blob "city sealed"
assert_eq "$(sql "SELECT value FROM customer_attributes WHERE customer_id = $P1 AND name = 'last_name'")" Quarkington "last_name in clear"
assert_contains "$OUT" Lyon
assert_exit 0 "$RAPPORT" customer show "$P1"
assert_eq "$(sql "SELECT typeof(value) FROM customer_attributes WHERE customer_id = $P1 AND name = 'last_name'")" blob "back to the defaults"

# --- rotation through RAPPORT_DATA_KEY -------------------------------------------
CUR=$(cat "$KEYFILE")
assert_exit 2 env RAPPORT_DATA_KEY="$CUR" "$RAPPORT" keys rotate-data-key
assert_contains "$ERR" "RAPPORT_DATA_KEY=NEW,OLD"
NEW=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
assert_exit 0 env RAPPORT_DATA_KEY="$NEW,$CUR" "$RAPPORT" --json keys reseal --batch 3
[ "$(json_get "$OUT" sealed)" -gt 0 ] || fail "nothing resealed: $OUT"
assert_exit 0 env RAPPORT_DATA_KEY="$NEW" "$RAPPORT" customer show email:zoe.quarkette@example.org
assert_contains "$OUT" Zoequark
assert_exit 2 "$RAPPORT" customer show "$P1"
assert_contains "$ERR" "is not the key"
assert_exit 0 "$RAPPORT" keys --help
assert_contains "$OUT" "rotate-data-key"
