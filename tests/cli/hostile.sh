# hostile.sh: a plugin that misbehaves in every way the sandbox must stop
# (endless loop, runaway allocation, os.execute, precompiled bytecode, PII
# read without pii:read, writes to core tables) cannot take the core down:
# each failure is rolled back, dead-lettered with a clear error, and the bus
# moves on; repeated failures suspend the plugin; dead letters can be retried.
. "$(dirname "$0")/lib.sh" "$@"

HOSTILE=$DATA/plugins/hostile
# The fixture's exec handler would touch this file if os.execute existed.
rm -f /tmp/rapport-hostile-was-here

assert_exit 0 "$RAPPORT" init
assert_exit 0 "$RAPPORT" plugin enable "$HOSTILE"
assert_contains "$OUT" "plugin 'hostile' 0.1.0 enabled"

cat >"$TMP/emit.lua" <<'EOF'
local kinds = { ... }
for _, n in ipairs(kinds) do
  crm.events.emit { type = "hostile." .. n, external_id = "H1", id = "h-" .. n .. "-" .. #kinds }
end
return #kinds
EOF

assert_exit 0 "$RAPPORT" run "$TMP/emit.lua" loop alloc exec bytecode steal write_core ok
assert_eq "$OUT" 7 "events emitted"
assert_exit 0 "$RAPPORT" serve --once

# Every misbehaving handler is dead-lettered with an error that says why.
assert_exit 0 "$RAPPORT" --json dlq list --plugin hostile
DLQ=$OUT
assert_eq "$(json_get "$DLQ" 5.event_type)" hostile.loop
assert_contains "$(json_get "$DLQ" 5.error)" "instruction budget of 50000000 exceeded"
assert_eq "$(json_get "$DLQ" 4.event_type)" hostile.alloc
assert_contains "$(json_get "$DLQ" 4.error)" "memory limit of 64 MiB exceeded"
assert_contains "$(json_get "$DLQ" 3.error)" "attempt to call a nil value (field 'execute')"
assert_contains "$(json_get "$DLQ" 2.error)" "attempt to load a binary chunk"
assert_contains "$(json_get "$DLQ" 1.error)" \
  "reading table 'customer_identities' needs permission 'pii:read'"
assert_contains "$(json_get "$DLQ" 1.traceback)" "hostile/init.lua:37"
assert_contains "$(json_get "$DLQ" 0.error)" "deleting from table 'events' denied"
assert_eq "$(json_get "$DLQ" 0.status)" pending
[ ! -e /tmp/rapport-hostile-was-here ] || fail "os.execute ran a command"

# Their own writes were rolled back with them; only the good handler's stayed.
assert_eq "$(sql 'SELECT group_concat(what) FROM hostile_log')" ok "hostile_log"
# The core data is intact and the cursor moved past every event.
assert_eq "$(sql 'SELECT count(*) FROM events')" 7 "events kept"
assert_eq "$(sql "SELECT last_event_id FROM bus_cursors WHERE plugin = 'hostile'")" 7 "cursor"
assert_eq "$(sql "SELECT status FROM plugins WHERE name = 'hostile'")" enabled "status"

# The human-readable listing names each failure on one line.
assert_exit 0 "$RAPPORT" dlq list
assert_contains "$OUT" "event 1 (hostile.loop) -> loop  [pending, 1 attempt(s)]"

# A retry of a handler that still fails keeps it pending, with one more attempt.
DL_ID=$(sql "SELECT id FROM dead_letters WHERE handler = 'exec'")
assert_exit 2 "$RAPPORT" dlq retry "$DL_ID"
assert_eq "$(sql "SELECT status || ':' || attempts FROM dead_letters WHERE id = $DL_ID")" \
  "pending:2" "dead letter after a failed retry"
assert_exit 1 "$RAPPORT" dlq retry
assert_exit 2 "$RAPPORT" dlq retry 9999
assert_contains "$OUT" "no dead letter 9999"

# Consecutive failures suspend the plugin (here after 3, from rapport.json).
echo '{"suspend_after": 3}' >"$TMP/rapport.json"
assert_exit 0 "$RAPPORT" run "$TMP/emit.lua" exec exec2 steal write_core ok
assert_exit 0 "$RAPPORT" serve --once
assert_contains "$ERR" "suspended after 3 consecutive failures"
assert_eq "$(sql "SELECT status FROM plugins WHERE name = 'hostile'")" suspended "status"
assert_exit 0 "$RAPPORT" plugin list
assert_contains "$OUT" "suspended"
# Delivery stopped at the failure that suspended it: 'ok' is not yet handled.
assert_eq "$(sql 'SELECT count(*) FROM hostile_log')" 1 "hostile_log while suspended"
assert_exit 0 "$RAPPORT" serve --once
assert_eq "$(sql 'SELECT count(*) FROM hostile_log')" 1 "hostile_log while suspended"
# Enabling resumes it where it stopped.
assert_exit 0 "$RAPPORT" plugin enable hostile
assert_exit 0 "$RAPPORT" serve --once
assert_eq "$(sql 'SELECT count(*) FROM hostile_log')" 2 "hostile_log after resuming"
assert_eq "$(sql "SELECT status FROM plugins WHERE name = 'hostile'")" enabled "status"

echo "hostile: ok"
