# lib.sh: what the CLI test scripts share. Sourced, never run on its own:
#
#   . "$(dirname "$0")/lib.sh" "$@"
#
# It takes the rapport binary as the script's first argument ($RAPPORT),
# makes a fresh temporary folder ($TMP) that is removed when the script
# exits, points RAPPORT_DB at a database inside it, and finds the test data
# ($DATA: $RP_TEST_DATA, or tests/data beside this file). A failed assertion
# prints what was expected and what came instead, then ends the script with
# status 1.

set -u

RAPPORT=${1:?usage: bash SCRIPT PATH_TO_RAPPORT}
case $RAPPORT in /*) ;; *) RAPPORT=$PWD/$RAPPORT ;; esac
[ -x "$RAPPORT" ] || { echo "FAIL: $RAPPORT is not an executable" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/rapport-cli.XXXXXX") || exit 1
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$TMP"' EXIT
export RAPPORT_DB=$TMP/rapport.db
unset RAPPORT_CONFIG
DATA=${RP_TEST_DATA:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../data" && pwd)}

# Output of the last assert_exit (or run): stdout and stderr, as text.
OUT=
ERR=

fail() {
  echo "FAIL: $*" >&2
  [ -n "$OUT" ] && printf -- '--- stdout:\n%s\n' "$OUT" >&2
  [ -n "$ERR" ] && printf -- '--- stderr:\n%s\n' "$ERR" >&2
  exit 1
}

# assert_eq ACTUAL EXPECTED [WHAT]
assert_eq() {
  [ "$1" = "$2" ] || fail "${3:-value}: expected '$2', got '$1'"
}

# assert_contains TEXT NEEDLE [WHAT]
assert_contains() {
  case $1 in
    *"$2"*) ;;
    *) fail "${3:-text} does not contain '$2': $1" ;;
  esac
}

# assert_not_contains TEXT NEEDLE [WHAT]
assert_not_contains() {
  case $1 in
    *"$2"*) fail "${3:-text} contains '$2': $1" ;;
  esac
}

# run CMD...: runs CMD, keeping its stdout in $OUT, its stderr in $ERR and
# its exit status in $STATUS; never fails by itself.
run() {
  STATUS=0
  "$@" >"$TMP/.out" 2>"$TMP/.err" || STATUS=$?
  OUT=$(cat "$TMP/.out")
  ERR=$(cat "$TMP/.err")
}

# assert_exit CODE CMD...: runs CMD (as run does) and fails unless it exits
# with CODE.
assert_exit() {
  local want=$1
  shift
  run "$@"
  [ "$STATUS" = "$want" ] || fail "exit status $STATUS, expected $want: $*"
}

# json_get JSON PATH: prints the value at PATH (keys and indexes separated by
# dots, e.g. "first_rejects.0.line") of the JSON text; null prints "null".
json_get() {
  python3 -c '
import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print("null" if v is None else json.dumps(v) if isinstance(v, (dict, list, bool)) else v)
' "$1" "$2" || fail "cannot read $2 from: $1"
}

# sql QUERY: runs QUERY on $RAPPORT_DB with the sqlite3 shell, printing the
# rows ("|" between columns).
sql() {
  command -v sqlite3 >/dev/null || fail "the sqlite3 shell is not installed"
  sqlite3 -batch "$RAPPORT_DB" "$1"
}

# cid REF: the id of the customer REF names (an id, an email, a phone,
# kind:value...), looked up by `rapport customer show` (emails and phones are
# stored sealed, so SQL cannot find them); empty when nobody.
cid() {
  "$RAPPORT" customer show "$1" --events 0 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' 2>/dev/null
}

# attr REF NAME: the value of attribute NAME of the customer REF names, as
# `rapport customer show` prints it (money as {"amount", "currency"}).
attr() {
  "$RAPPORT" customer show "$1" --events 0 2>/dev/null | python3 -c '
import json, sys
v = json.load(sys.stdin)["attributes"].get(sys.argv[1])
print("null" if v is None else json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, bool)) else v)
' "$2"
}

# serve_start [WRAPPER ARGS...]: starts `rapport serve` on a free loopback
# port in the background (under WRAPPER when given, strace say), with its
# output in $TMP/serve.out and $TMP/serve.err; sets pid (the wrapper's, when
# given) and PORT once it listens.
serve_start() {
  RAPPORT_LOG=info "$@" "$RAPPORT" serve --listen 127.0.0.1:0 >"$TMP/serve.out" 2>"$TMP/serve.err" &
  pid=$!
  PORT=
  for _ in $(seq 1 100); do
    PORT=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$TMP/serve.err")
    [ -n "$PORT" ] && break
    sleep 0.05
  done
  [ -n "$PORT" ] || fail "serve did not start: $(cat "$TMP/serve.err")"
}

# call METHOD PATH KEY [BODY [CONTENT-TYPE]]: one HTTP request to the server
# serve_start started (KEY "-" for none); sets STATUS and BODY.
call() {
  local out
  out=$(python3 - "$PORT" "$@" <<'EOF'
import http.client, sys
port, method, path, key = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
body = sys.argv[5] if len(sys.argv) > 5 else None
ctype = sys.argv[6] if len(sys.argv) > 6 else "application/json"
h = {"Content-Type": ctype}
if key != "-": h["Authorization"] = "Bearer " + key
c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
c.request(method, path, body=body, headers=h)
r = c.getresponse()
print(r.status)
print(r.read().decode())
EOF
  ) || fail "request failed: $*"
  STATUS=$(printf '%s\n' "$out" | head -1)
  BODY=$(printf '%s\n' "$out" | tail -n +2)
}
