# loyalty.sh: the bundled loyalty plugin through the real binary: purchases
# imported and dispatched, its commands (text and --json, an operator's Lua
# rule from a file), its HTTP routes by role with audit records naming the
# key, and data-subject export and erasure of its tables (anonymous totals
# kept, the erased reason text gone from the database file).
. "$(dirname "$0")/lib.sh" "$@"

cat >"$TMP/rapport.json" <<'EOF'
{ "plugins": { "loyalty": { "allow_transfers": true,
                             "rules": [ { "name": "big_basket", "type": "lua", "rule": "big_basket" } ] } } }
EOF
assert_exit 0 "$RAPPORT" init --enable loyalty
cat >"$TMP/rule.lua" <<'EOF'
-- 50 bonus points for baskets of 200.00 or more
return function(ctx)
  if ctx.amount >= 20000 then return 50 end
end
EOF
assert_exit 0 "$RAPPORT" loyalty rule-set big_basket --source @"$TMP/rule.lua"
assert_contains "$OUT" "lua rule big_basket saved"

NOW=$(date -u +%Y-%m-%dT%H:%M:%SZ)
cat >"$TMP/e.jsonl" <<EOF
{"id": "o-1", "type": "order.placed", "external_id": "LOY-ERASE-5521", "occurred_at": "$NOW", "properties": {"order_id": "A1", "amount": 25000, "currency": "EUR"}}
{"id": "o-2", "type": "order.placed", "external_id": "LOY-KEEP-8830", "occurred_at": "$NOW", "properties": {"order_id": "B1", "amount": 9000, "currency": "EUR"}}
{"id": "o-3", "type": "order.placed", "external_id": "LOY-ERASE-5521", "occurred_at": "$NOW", "properties": {"order_id": "A1", "amount": 25000, "currency": "EUR"}}
EOF
assert_exit 0 "$RAPPORT" --quiet import events "$TMP/e.jsonl"
assert_exit 0 "$RAPPORT" serve --once

# --- commands -------------------------------------------------------------------------
assert_exit 0 "$RAPPORT" loyalty --help
assert_contains "$OUT" "redeem"
assert_exit 0 "$RAPPORT" loyalty balance LOY-ERASE-5521
assert_contains "$OUT" "300 point(s), 300 spendable, 0 pending; tier member"
assert_exit 0 "$RAPPORT" --json loyalty balance LOY-KEEP-8830
assert_eq "$(json_get "$OUT" balance)" 90 "keep's balance"
assert_exit 2 "$RAPPORT" loyalty balance NOBODY
assert_contains "$ERR" "no customer with external id 'NOBODY'"
assert_exit 0 "$RAPPORT" loyalty adjust LOY-ERASE-5521 -20 --reason "zq-secret-reason called about order A1"
assert_contains "$OUT" "-20 point(s); balance 280"
assert_exit 0 "$RAPPORT" loyalty reward-set MUG --name "Mug" --cost 100 --stock 10
assert_exit 0 "$RAPPORT" --json loyalty redeem LOY-ERASE-5521 MUG --request-id r-1
COUPON=$(json_get "$OUT" coupon)
assert_exit 0 "$RAPPORT" loyalty history LOY-ERASE-5521
assert_contains "$OUT" "redeem"
assert_contains "$OUT" "zq-secret-reason"
assert_exit 0 "$RAPPORT" loyalty coupon-use "$COUPON"
assert_exit 2 "$RAPPORT" loyalty coupon-use "$COUPON"
assert_contains "$ERR" "was used at"

# --- HTTP routes by role ---------------------------------------------------------------
assert_exit 0 "$RAPPORT" keys create --role operator
OPERATOR=$OUT
assert_exit 0 "$RAPPORT" keys create --role analyst
ANALYST=$OUT
serve_start
call GET "/v1/p/loyalty/balance?customer=LOY-KEEP-8830" "$OPERATOR"
assert_eq "$STATUS" 200 "operator reads a balance"
assert_eq "$(json_get "$BODY" balance)" 90 "balance over HTTP"
call GET "/v1/p/loyalty/balance?customer=LOY-KEEP-8830" "$ANALYST"
assert_eq "$STATUS" 403 "analyst"
call POST /v1/p/loyalty/redeem "$OPERATOR" '{"customer": "LOY-KEEP-8830", "reward": "MUG"}'
assert_eq "$STATUS" 409 "not enough points"
assert_eq "$(json_get "$BODY" error.code)" insufficient_points "error code"
call POST /v1/p/loyalty/earn "$OPERATOR" '{"customer": "LOY-KEEP-8830", "points": 15, "reason": "survey answered", "request_id": "s-1"}'
assert_eq "$STATUS" 200 "earn"
assert_eq "$(json_get "$BODY" balance)" 105 "balance after earn"
kill -TERM "$pid"
wait "$pid" 2>/dev/null
OP_ID=$(sql "SELECT id FROM api_keys WHERE role = 'operator'")
KEEP=$(cid LOY-KEEP-8830)
assert_eq "$(sql "SELECT count(*) FROM audit_log WHERE action = 'loyalty.earn' AND customer_id = $KEEP AND actor = 'key:$OP_ID+plugin:loyalty' AND origin = '127.0.0.1'")" 1 "earn audited with the key"
assert_exit 0 "$RAPPORT" audit verify

# --- data-subject requests -------------------------------------------------------------
ERASE=$(cid LOY-ERASE-5521)
assert_exit 0 "$RAPPORT" loyalty transfer LOY-ERASE-5521 LOY-KEEP-8830 10
assert_eq "$(sql "SELECT count(*) FROM loyalty_ledger WHERE customer_id = $KEEP AND reason = 'from customer $ERASE'")" 1 "transfer names the sender"
TOTAL=$(sql "SELECT sum(points) FROM loyalty_ledger")
assert_exit 0 "$RAPPORT" gdpr export LOY-ERASE-5521 --out "$TMP/export.json"
DOC=$(cat "$TMP/export.json")
assert_eq "$(json_get "$DOC" plugins.loyalty.member.balance)" 170 "exported balance"
assert_contains "$DOC" "zq-secret-reason"
assert_contains "$DOC" "$COUPON"
assert_exit 0 "$RAPPORT" gdpr erase LOY-ERASE-5521 --yes
assert_eq "$(sql "SELECT count(*) FROM loyalty_members WHERE customer_id = $ERASE")" 0 "member erased"
assert_eq "$(sql "SELECT count(*) FROM loyalty_ledger WHERE customer_id = $ERASE")" 0 "ledger detached"
assert_eq "$(sql "SELECT sum(points) FROM loyalty_ledger")" "$TOTAL" "anonymous totals kept"
assert_eq "$(sql "SELECT count(*) FROM loyalty_coupons WHERE customer_id = $ERASE")" 0 "coupons erased"
assert_eq "$(sql "SELECT count(*) FROM loyalty_ledger WHERE reason LIKE '%customer $ERASE' OR json_extract(detail, '$.from') = $ERASE OR json_extract(detail, '$.to') = $ERASE")" 0 "no mention left in other rows"
for f in "$RAPPORT_DB" "$RAPPORT_DB-wal"; do
  [ -f "$f" ] || continue
  grep -c "zq-secret-reason" "$f" >/dev/null && fail "the erased reason is still in $f"
done
assert_exit 0 "$RAPPORT" --json loyalty balance LOY-KEEP-8830
assert_eq "$(json_get "$OUT" balance)" 115 "the other member keeps what they hold"
assert_exit 0 "$RAPPORT" audit verify

echo "loyalty: ok"
