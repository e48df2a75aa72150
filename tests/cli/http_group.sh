# http_group.sh: group commit. The requests of one turn of the loop share a
# transaction and their answers wait for its commit: a crash just before it
# acknowledged nothing and applied nothing; concurrent readers and writers
# are grouped (fewer commits than requests), every answer is right, and the
# audit chain holds.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init
assert_exit 0 "$RAPPORT" --json keys create --role admin
ADMIN=$(json_get "$OUT" key)

# post PORT PATH BODY: prints the status, or "none" when no answer came.
post() {
  python3 - "$@" "$ADMIN" <<'PY'
import http.client, sys
port, path, body, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
try:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", path, body=body, headers={"Content-Type": "application/json",
                                                "Authorization": "Bearer " + key})
    print(c.getresponse().status)
except Exception:
    print("none")
PY
}

# --- a crash before the group commit --------------------------------------------------
export RAPPORT_FAULT=http.before_commit
serve_start
unset RAPPORT_FAULT
EVENT='{"id": "crash-1", "type": "order.placed", "external_id": "G1"}'
assert_eq "$(post "$PORT" /v1/events "$EVENT")" none "no answer before the commit"
wait "$pid" && code=0 || code=$?
assert_eq "$code" 70 "crashed at http.before_commit"
assert_eq "$(sql "SELECT count(*) FROM events WHERE event_id = 'crash-1'")" 0 "nothing applied"
assert_eq "$(sql "SELECT count(*) FROM customer_identities WHERE kind = 'external_id' AND value = 'G1'")" 0 "no customer either"

serve_start
assert_eq "$(post "$PORT" /v1/events "$EVENT")" 201 "the retry is accepted, not a duplicate"
assert_eq "$(post "$PORT" /v1/events "$EVENT")" 200 "then a duplicate"
assert_eq "$(sql "SELECT count(*) FROM events WHERE event_id = 'crash-1'")" 1 "stored once"

# --- no answer before its commit is on disk ---------------------------------------------
# A group commits without syncing and a worker thread syncs the WAL while
# the loop goes on: under strace, every acknowledgement of a write must come
# after an fdatasync of the WAL that began after the write's last WAL page.
kill -TERM "$pid"
wait "$pid" || fail "serve exited $?"
if strace -o /dev/null true 2>/dev/null; then
  # LeakSanitizer cannot run under ptrace: leaks are left to the other tests.
  serve_start env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    strace -f -qq -y -s 24 -e trace=pwrite64,fdatasync,fsync,write,writev -o "$TMP/trace"
  for i in 1 2 3 4 5; do
    assert_eq "$(post "$PORT" /v1/events "{\"id\": \"sync-$i\", \"type\": \"t.x\", \"external_id\": \"S$i\"}")" 201 "event $i"
  done
  kill -TERM "$(pgrep -P "$pid" rapport)"
  wait "$pid" || fail "serve under strace exited $?"
  python3 - "$TMP/trace" <<'PY' || fail "an answer went out before its commit was synced"
import sys
synced, last_write, sync_began, answers = True, 0, -1, 0
for i, line in enumerate(open(sys.argv[1])):
    if "pwrite64(" in line and "-wal>" in line:
        synced, last_write = False, i
    elif ("fdatasync(" in line or "fsync(" in line) and "-wal>" in line:
        sync_began = i
        if line.rstrip().endswith("= 0") and sync_began > last_write: synced = True
    elif ("fdatasync resumed>" in line or "fsync resumed>" in line) and line.rstrip().endswith("= 0"):
        if sync_began > last_write: synced = True
    elif ("write(" in line or "writev(" in line) and "HTTP/1.1 201" in line:
        answers += 1
        if not synced:
            print("line %d: answered before the WAL was synced" % (i + 1), file=sys.stderr)
            sys.exit(1)
if answers != 5:
    print("expected 5 answers in the trace, saw %d" % answers, file=sys.stderr); sys.exit(1)
PY
else
  echo "SKIP: strace cannot trace here (ptrace not permitted); the sync order is not checked" >&2
fi
serve_start

# --- many clients at once ---------------------------------------------------------------
# 48 clients, each writing its own events and reading customers back on one
# keep-alive connection; every answer checked.
python3 - "$PORT" "$ADMIN" <<'PY' || fail "concurrent clients"
import http.client, json, sys, threading
port, key = int(sys.argv[1]), sys.argv[2]
H = {"Content-Type": "application/json", "Authorization": "Bearer " + key}
errors = []
def client(n):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for i in range(10):
            ev = {"id": "g-%d-%d" % (n, i), "type": "page.viewed", "external_id": "C%d" % n,
                  "properties": {"i": i}}
            c.request("POST", "/v1/events", body=json.dumps(ev), headers=H)
            r = c.getresponse(); body = json.loads(r.read())
            if r.status != 201 or body["duplicate"]:
                errors.append("event %d/%d: %d %s" % (n, i, r.status, body)); return
            c.request("GET", "/v1/customers?external_id=C%d" % n, headers=H)
            r = c.getresponse(); view = json.loads(r.read())
            if r.status != 200 or view["identities"]["external_id"] != ["C%d" % n]:
                errors.append("read %d/%d: %d %s" % (n, i, r.status, view)); return
            seen = [e["properties"]["i"] for e in view["recent_events"]]
            if i not in seen:
                errors.append("read %d/%d: own write not seen: %s" % (n, i, seen)); return
    except Exception as e:
        errors.append("client %d: %r" % (n, e))
threads = [threading.Thread(target=client, args=(n,)) for n in range(48)]
for t in threads: t.start()
for t in threads: t.join()
if errors:
    print("\n".join(errors[:5]), file=sys.stderr); sys.exit(1)
PY
assert_eq "$(sql "SELECT count(*) FROM events WHERE event_id LIKE 'g-%'")" 480 "every acknowledged event stored"
# Checkpoints run while serving (on a worker: SQLite's own are off in
# serve). Some 8 MB of events take the WAL well past 1000 pages however the
# requests were grouped; then the database file alone, WAL ignored, holds
# the events of the clients above.
python3 - "$PORT" "$ADMIN" <<'PY' || fail "bulk batches"
import http.client, json, sys
port, key = int(sys.argv[1]), sys.argv[2]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for b in range(8):
    batch = [{"id": "bulk-%d-%d" % (b, i), "type": "page.viewed", "external_id": "B%d" % i,
              "properties": {"pad": "x" * 900}} for i in range(1000)]
    c.request("POST", "/v1/batch", body=json.dumps({"batch": batch}),
              headers={"Content-Type": "application/json", "Authorization": "Bearer " + key})
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
PY
home=0
for _ in $(seq 1 100); do
  home=$(sqlite3 -batch "file:$RAPPORT_DB?immutable=1" "SELECT count(*) FROM events WHERE event_id LIKE 'g-%'")
  [ "$home" -gt 0 ] && break
  sleep 0.1
done
[ "$home" -gt 0 ] || fail "no checkpoint while serving: the database file alone holds $home of the events"
assert_eq "$(sql "SELECT count(*) FROM audit_log WHERE action = 'customer.read'")" 480 "one audit record per read"
METRICS=$(curl -sf -H "Authorization: Bearer $ADMIN" "http://127.0.0.1:$PORT/metrics")
commits=$(printf '%s\n' "$METRICS" | sed -n 's/^rapport_http_group_commits_total{outcome="committed"} //p')
grouped=$(printf '%s\n' "$METRICS" | sed -n 's/^rapport_http_grouped_requests_total //p')
assert_eq "$(printf '%s\n' "$METRICS" | sed -n 's/^rapport_http_group_commits_total{outcome="failed"} //p')" 0 "no failed commit"
[ "$grouped" -ge 960 ] || fail "grouped requests: $grouped"
# Each answer is counted once, when it went out: the 960 of the clients and
# the 8 bulk batches (this GET /metrics is counted after its own answer).
assert_eq "$(printf '%s\n' "$METRICS" | sed -n 's/^rapport_http_request_duration_seconds_count //p')" 968 "answers counted once each"
assert_eq "$(printf '%s\n' "$METRICS" | sed -n 's/^rapport_events_ingested_total //p')" 8480 "events counted once their answers went out"
echo "group commit: $commits commits for $grouped requests" >&2
[ "$commits" -lt "$grouped" ] || fail "no request shared a commit: $commits commits for $grouped requests"
kill -TERM "$pid"
wait "$pid" || fail "serve exited $?"

# --- SIGTERM under load -------------------------------------------------------------------
# 16 clients write as fast as they can; the server is stopped in the middle.
# It must exit (answers waiting for a sync are synced and written first),
# and every event it acknowledged must be stored.
serve_start
python3 - "$PORT" "$ADMIN" "$pid" "$TMP/acked" <<'PY' || fail "clients under SIGTERM"
import http.client, json, os, signal, sys, threading, time
port, key, pid, out = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
H = {"Content-Type": "application/json", "Authorization": "Bearer " + key}
acked, timeouts, lock = [], [], threading.Lock()
def client(n):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        for i in range(100000):
            eid = "t-%d-%d" % (n, i)
            c.request("POST", "/v1/events", headers=H,
                      body=json.dumps({"id": eid, "type": "page.viewed", "external_id": "T%d" % n}))
            r = c.getresponse(); r.read()
            if r.status in (200, 201):
                with lock: acked.append(eid)
    except TimeoutError:
        with lock: timeouts.append(n)  # a request in flight at the stop left unanswered
    except Exception:
        pass  # the server went away: expected
threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(16)]
for t in threads: t.start()
time.sleep(1.0)
os.kill(pid, signal.SIGTERM)
for t in threads: t.join(10)
open(out, "w").write("\n".join(acked) + "\n")
print("acknowledged before the stop: %d" % len(acked), file=sys.stderr)
if timeouts:
    print("%d client(s) never got the answer of a request in flight at the stop" % len(timeouts),
          file=sys.stderr)
sys.exit(0 if acked and not timeouts else 1)
PY
for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "serve did not exit within 6 s of SIGTERM under load"
wait "$pid" || fail "serve exited $? after SIGTERM under load"
sqlite3 -batch "$RAPPORT_DB" "SELECT event_id FROM events WHERE event_id LIKE 't-%'" | sort >"$TMP/stored"
sort "$TMP/acked" | sed '/^$/d' >"$TMP/acked.sorted"
missing=$(comm -23 "$TMP/acked.sorted" "$TMP/stored" | wc -l)
assert_eq "$missing" 0 "every acknowledged event stored after SIGTERM under load"
assert_exit 0 "$RAPPORT" audit verify
echo "http_group: ok"
