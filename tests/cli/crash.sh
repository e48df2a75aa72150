# crash.sh: a crash at any instant loses no acknowledged data and applies no
# effect twice. The bundled activity plugin sums order revenue per customer:
# after crashes (injected at the worst instant, and kill -9 at random ones)
# and restarts, every sum must be exact, and a one-shot job's effect must
# happen exactly once.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init --enable activity

# N orders over 40 customers, amounts in minor units; the expected totals are
# computed here, independently of Rapport.
gen_orders() { # FILE FIRST COUNT
  python3 - "$@" <<'EOF'
import json, sys
path, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "w") as f:
    for i in range(first, first + count):
        f.write(json.dumps({"id": f"ord-{i}", "type": "order.placed",
                            "external_id": f"C{i % 40}", "occurred_at": 1767225600000 + i,
                            "properties": {"amount": (i * 7919) % 10000 + 1,
                                           "currency": "EUR"}}) + "\n")
EOF
}
expected_total() { # COUNT
  python3 -c "import sys; n=int(sys.argv[1]); print(sum((i*7919)%10000+1 for i in range(n)))" "$1"
}
revenue() { sql "SELECT coalesce(sum(amount), 0) FROM activity_revenue WHERE currency = 'EUR'"; }
orders() { sql "SELECT coalesce(sum(orders), 0) FROM activity_customers"; }
cursor() { sql "SELECT last_event_id FROM bus_cursors WHERE plugin = 'activity'"; }

# --- 1. a crash after the handlers ran, before COMMIT ---------------------------
gen_orders "$TMP/a.jsonl" 0 200
assert_exit 0 "$RAPPORT" --quiet import events "$TMP/a.jsonl"
RAPPORT_FAULT=bus.before_commit assert_exit 70 "$RAPPORT" serve --once
assert_contains "$ERR" "fault injected at bus.before_commit"
assert_eq "$(revenue)" 0 "revenue after the crash (nothing committed)"
assert_eq "$(cursor)" 0 "cursor after the crash"
assert_exit 0 "$RAPPORT" serve --once
assert_eq "$(revenue)" "$(expected_total 200)" "revenue after restart"
assert_eq "$(orders)" 200 "orders after restart"
# Running again applies nothing twice.
assert_exit 0 "$RAPPORT" serve --once
assert_eq "$(orders)" 200 "orders after a second run"

# --- 2. kill -9 at random instants while serving ----------------------------------
gen_orders "$TMP/b.jsonl" 200 39800
assert_exit 0 "$RAPPORT" --quiet import events "$TMP/b.jsonl"
LAST=$(sql 'SELECT max(id) FROM events')
kills=0
for _ in $(seq 1 300); do
  [ "$(cursor)" = "$LAST" ] && break
  "$RAPPORT" serve --listen 127.0.0.1:0 >/dev/null 2>&1 &
  pid=$!
  sleep "0.$(( (RANDOM % 28) + 2 ))"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null
done
assert_exit 0 "$RAPPORT" serve --once
assert_eq "$(cursor)" "$LAST" "cursor at the end"
assert_eq "$(revenue)" "$(expected_total 40000)" "revenue after $kills kill -9"
assert_eq "$(orders)" 40000 "orders after $kills kill -9"
assert_eq "$(sql 'SELECT count(*) FROM dead_letters')" 0 "dead letters"
[ "$kills" -ge 1 ] || fail "the server was never killed mid-run"

# --- 3. a crash inside a scheduled run ---------------------------------------------
# A first order four days ago: its three-day follow-up one-shot is already due.
echo '{"id": "late-1", "type": "order.placed", "external_id": "LATE", "occurred_at": 1000, "properties": {"amount": 5}}' \
  >"$TMP/late.jsonl"
assert_exit 0 "$RAPPORT" --quiet import events "$TMP/late.jsonl"
assert_exit 0 "$RAPPORT" serve --once   # dispatches the order: the one-shot is created
assert_eq "$(sql "SELECT count(*) FROM jobs WHERE owner = 'activity' AND kind = 'at'")" 1 "one-shot"
follow_ups() {
  sql "SELECT count(*) FROM events e JOIN customer_identities i ON i.customer_id = e.customer_id
       WHERE e.type = 'customer.follow_up_due' AND i.kind = 'external_id' AND i.value = 'LATE'"
}
RAPPORT_FAULT=sched.before_commit assert_exit 70 "$RAPPORT" serve --once
assert_eq "$(follow_ups)" 0 "follow-ups after the crash"
assert_eq "$(sql "SELECT count(*) FROM jobs WHERE owner = 'activity' AND kind = 'at'")" 1 \
  "one-shot after the crash"
assert_exit 0 "$RAPPORT" serve --once
assert_exit 0 "$RAPPORT" serve --once
assert_eq "$(follow_ups)" 1 "follow-ups after restart"
assert_eq "$(sql "SELECT count(*) FROM jobs WHERE owner = 'activity' AND kind = 'at'")" 0 \
  "one-shot after it ran"
assert_eq "$(sql "SELECT group_concat(r.outcome) FROM job_runs r JOIN customer_identities i
                  ON r.name = 'follow_up:' || i.customer_id
                  WHERE i.kind = 'external_id' AND i.value = 'LATE'")" ok "runs of the one-shot"

echo "crash: ok ($kills kill -9)"
