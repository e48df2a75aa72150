# slicing.sh: a long plugin job is time-sliced (Lua count hook + coroutine,
# and the end of each crm.db call): while it computes for three seconds, then
# runs SQL for three more, `rapport serve` keeps dispatching the events that
# arrive, and the job still ends with its effects committed.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init --enable "$DATA/plugins/slow"
cat >"$TMP/ping.lua" <<'LUA'
crm.events.emit { type = "ping", external_id = "P", id = "ping-" .. arg[1] }
LUA

RAPPORT_LOG=info "$RAPPORT" serve --listen 127.0.0.1:0 >"$TMP/serve.out" 2>"$TMP/serve.err" &
pid=$!
# Wait for the job to start, then send pings while it runs.
for _ in $(seq 1 100); do
  [ "$(sql "SELECT count(*) FROM slow_log WHERE what = 'start'" 2>/dev/null)" = 1 ] && break
  sleep 0.05
done
for i in 1 2 3; do
  assert_exit 0 "$RAPPORT" run "$TMP/ping.lua" "$i"
  sleep 0.3
done
# The second half of the job spends its time in SQL.
for _ in $(seq 1 200); do
  [ "$(sql "SELECT count(*) FROM slow_log WHERE what = 'sql'" 2>/dev/null)" = 1 ] && break
  sleep 0.05
done
for i in 5 6 7; do
  assert_exit 0 "$RAPPORT" run "$TMP/ping.lua" "$i"
  sleep 0.3
done
for _ in $(seq 1 200); do
  [ "$(sql "SELECT count(*) FROM slow_log WHERE what = 'end'" 2>/dev/null)" = 1 ] && break
  sleep 0.05
done
kill -TERM "$pid"
wait "$pid" || fail "serve exited with $?: $(cat "$TMP/serve.err")"

assert_eq "$(sql "SELECT count(*) FROM slow_log WHERE what = 'end'")" 1 "the job ended"
# Every ping was handled before the job ended: the loop was never held.
handled_during=$(sql "SELECT count(*) FROM slow_log p WHERE p.what = 'ping' AND
                      p.at < (SELECT at FROM slow_log WHERE what = 'end')")
assert_eq "$handled_during" 6 "pings handled while the job ran"
handled_in_sql=$(sql "SELECT count(*) FROM slow_log p WHERE p.what = 'ping' AND
                      p.at > (SELECT at FROM slow_log WHERE what = 'sql') AND
                      p.at < (SELECT at FROM slow_log WHERE what = 'end')")
assert_eq "$handled_in_sql" 3 "pings handled while the job was in SQL"
assert_eq "$(sql "SELECT outcome FROM job_runs WHERE name = 'crunch'")" ok "the run"
# The manifest's one-shot has run: loading the plugin again (any command
# does) does not bring it back.
assert_exit 0 "$RAPPORT" run "$TMP/ping.lua" 4
assert_exit 0 "$RAPPORT" serve --once
assert_eq "$(sql "SELECT count(*) FROM slow_log WHERE what = 'start'")" 1 "runs of the one-shot"
assert_eq "$(sql "SELECT count(*) FROM jobs WHERE owner = 'slow'")" 0 "the one-shot is gone"
echo "slicing: ok"
