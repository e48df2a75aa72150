# jobs.sh: `rapport jobs` end to end: manifest jobs, jobs added from the CLI
# (cron in a time zone, intervals, one-shots, scripts and plugin functions),
# refusals, runs on demand, history, missed-run policies after downtime, and
# the timer firing in a real `rapport serve`.
. "$(dirname "$0")/lib.sh" "$@"

T0=2026-03-02T10:00:00Z # a Monday
export RAPPORT_FAKE_NOW=$T0
assert_exit 0 "$RAPPORT" init --enable activity

# --- the manifest's job is registered -------------------------------------------
assert_exit 0 "$RAPPORT" jobs list
assert_contains "$OUT" "activity/dormancy      cron   0 3 * * *"
assert_contains "$OUT" "2026-03-03T03:00:00.000Z enabled"
assert_exit 0 "$RAPPORT" --json jobs list --owner activity
assert_eq "$(json_get "$OUT" jobs.0.origin)" manifest
assert_eq "$(json_get "$OUT" pending_one_shots)" 0

# --- refusals: usage errors, naming what is wrong ---------------------------------
cat >"$TMP/report.lua" <<'EOF'
crm.db.exec("CREATE TABLE IF NOT EXISTS operator_reports(at INTEGER, note TEXT)")
crm.db.exec("INSERT INTO operator_reports VALUES (?, ?)", crm.time.now(), (...) or "run")
return crm.db.value("SELECT count(*) FROM operator_reports")
EOF
assert_exit 1 "$RAPPORT" jobs add --name r --cron "0 25 * * *" --script "$TMP/report.lua"
assert_contains "$ERR" "the hour field is out of range (0-23)"
assert_exit 1 "$RAPPORT" jobs add --name r --cron "0 0 30 2 *" --script "$TMP/report.lua"
assert_contains "$ERR" "never fires"
assert_exit 1 "$RAPPORT" jobs add --name r --every 0s --script "$TMP/report.lua"
assert_exit 1 "$RAPPORT" jobs add --name r --at "next tuesday" --script "$TMP/report.lua"
assert_contains "$ERR" "is not a time"
assert_exit 1 "$RAPPORT" jobs add --name r --every 1h --script "$TMP/missing.lua"
assert_contains "$ERR" "missing.lua"
assert_exit 1 "$RAPPORT" jobs add --name r --every 1h --plugin activity --job nope
assert_contains "$ERR" "plugin 'activity' has no function jobs.nope"
assert_exit 1 "$RAPPORT" jobs add --name r --every 1h --plugin ghost --job x
assert_contains "$ERR" "no enabled plugin 'ghost'"
assert_exit 1 "$RAPPORT" jobs add --name r --every 1h --script "$TMP/report.lua" --payload '{'
assert_contains "$ERR" "payload"
assert_exit 1 "$RAPPORT" jobs add --name r --every 1h --script "$TMP/report.lua" --missed never
assert_exit 1 "$RAPPORT" jobs add --every 1h --script "$TMP/report.lua"
assert_contains "$ERR" "--name"
assert_eq "$(sql "SELECT count(*) FROM jobs WHERE owner = 'operator'")" 0 "jobs after refusals"

# --- cron in the configured time zone ---------------------------------------------
echo '{"timezone": "Europe/Paris"}' >"$TMP/rapport.json"
assert_exit 0 "$RAPPORT" --json jobs add --name morning --cron "0 9 * * 1-5" --script "$TMP/report.lua"
MORNING=$(json_get "$OUT" id)
# 09:00 in Paris on Tuesday 3 March 2026 is 08:00Z (winter time).
assert_eq "$(sql "SELECT next_run_at FROM jobs WHERE id = $MORNING")" 1772524800000 "next 09:00 Paris"
# A time zone the system does not know is refused when the settings load,
# naming the file.
echo '{"timezone": "Mars/Olympus"}' >"$TMP/rapport.json"
assert_exit 2 "$RAPPORT" jobs add --name m2 --cron "0 9 * * *" --script "$TMP/report.lua"
assert_contains "$ERR" "rapport.json: unknown time zone \"Mars/Olympus\""
rm "$TMP/rapport.json"

# --- run on demand, history ---------------------------------------------------------
assert_exit 0 "$RAPPORT" jobs run morning
assert_exit 0 "$RAPPORT" jobs run operator/morning
assert_eq "$(sql 'SELECT count(*) FROM operator_reports')" 2 "reports after two runs"
# ... without moving its schedule.
assert_eq "$(sql "SELECT next_run_at FROM jobs WHERE id = $MORNING")" 1772524800000 "schedule kept"
cat >"$TMP/broken.lua" <<'EOF'
crm.db.exec("CREATE TABLE IF NOT EXISTS operator_reports(at INTEGER, note TEXT)")
crm.db.exec("INSERT INTO operator_reports VALUES (0, 'half done')")
error("the report server is down")
EOF
assert_exit 0 "$RAPPORT" jobs add --name broken --every 1d --script "$TMP/broken.lua"
assert_exit 2 "$RAPPORT" jobs run broken
assert_contains "$ERR" "the report server is down"
# The failed run's writes were rolled back.
assert_eq "$(sql "SELECT count(*) FROM operator_reports WHERE note = 'half done'")" 0 "rolled back"
assert_exit 0 "$RAPPORT" --json jobs history broken
assert_eq "$(json_get "$OUT" 0.outcome)" error
assert_contains "$(json_get "$OUT" 0.error)" "the report server is down"
assert_exit 0 "$RAPPORT" jobs history
assert_contains "$OUT" "operator/morning"
assert_contains "$OUT" "operator/broken"
assert_exit 2 "$RAPPORT" jobs run nosuch
assert_contains "$ERR" "no job 'nosuch'"
assert_exit 0 "$RAPPORT" jobs remove broken
assert_exit 2 "$RAPPORT" jobs remove broken

# --- one-shots are counted, and listed on request -------------------------------------
assert_exit 0 "$RAPPORT" jobs add --at 2026-03-05T12:00:00Z --script "$TMP/report.lua" --payload '{"x": 1}'
assert_exit 0 "$RAPPORT" jobs add --name later --at 2026-03-04T12:00:00Z --script "$TMP/report.lua"
assert_exit 0 "$RAPPORT" jobs list
assert_contains "$OUT" "2 one-shot(s) pending"
assert_not_contains "$OUT" "operator/later"
assert_exit 0 "$RAPPORT" jobs list --one-shots -n 1
assert_contains "$OUT" "operator/later"
assert_not_contains "$OUT" "operator/-"

# --- missed runs after downtime: run once, or skip --------------------------------------
assert_exit 0 "$RAPPORT" jobs add --name hourly --every 1h --script "$TMP/report.lua"
assert_exit 0 "$RAPPORT" jobs add --name hourly-skip --every 1h --missed skip --script "$TMP/report.lua"
# Five hours and a half later: each missed hour does not run five times.
RAPPORT_FAKE_NOW=2026-03-02T15:30:00Z assert_exit 0 "$RAPPORT" serve --once
assert_eq "$(sql "SELECT group_concat(outcome) FROM job_runs WHERE name = 'hourly'")" ok "run once"
assert_eq "$(sql "SELECT group_concat(outcome) FROM job_runs WHERE name = 'hourly-skip'")" skipped "skip"
# Both keep their phase: next at 16:00.
assert_eq "$(sql "SELECT next_run_at FROM jobs WHERE name = 'hourly'")" 1772467200000 "phase"
assert_eq "$(sql "SELECT next_run_at FROM jobs WHERE name = 'hourly-skip'")" 1772467200000 "phase"
# The due one-shot ran and is gone; the later one waits.
RAPPORT_FAKE_NOW=2026-03-04T13:00:00Z assert_exit 0 "$RAPPORT" serve --once
assert_eq "$(sql "SELECT count(*) FROM jobs WHERE kind = 'at'")" 1 "one-shots left"

# --- the timer fires in a real server ----------------------------------------------------
unset RAPPORT_FAKE_NOW
assert_exit 0 "$RAPPORT" jobs remove hourly
assert_exit 0 "$RAPPORT" jobs remove hourly-skip
assert_exit 0 "$RAPPORT" jobs remove morning
cat >"$TMP/tick.lua" <<'EOF'
crm.db.exec("CREATE TABLE IF NOT EXISTS operator_ticks(at INTEGER)")
crm.db.exec("INSERT INTO operator_ticks VALUES (?)", crm.time.now())
EOF
assert_exit 0 "$RAPPORT" jobs add --name tick --every 1s --script "$TMP/tick.lua"
RAPPORT_LOG=info "$RAPPORT" serve --listen 127.0.0.1:0 >"$TMP/serve.out" 2>"$TMP/serve.err" &
pid=$!
for _ in $(seq 1 100); do
  n=$(sql "SELECT count(*) FROM job_runs WHERE name = 'tick' AND outcome = 'ok'" 2>/dev/null || echo 0)
  [ "${n:-0}" -ge 3 ] && break
  sleep 0.1
done
kill -TERM "$pid"
wait "$pid" || fail "serve exited with $? after SIGTERM: $(cat "$TMP/serve.err")"
n=$(sql "SELECT count(*) FROM job_runs WHERE name = 'tick' AND outcome = 'ok'")
[ "$n" -ge 3 ] || fail "the 1s job ran $n time(s) in 10s"
assert_eq "$(sql 'SELECT count(*) FROM operator_ticks')" "$n" "ticks = recorded runs"
assert_contains "$(cat "$TMP/serve.err")" "stopped"

echo "jobs: ok"
