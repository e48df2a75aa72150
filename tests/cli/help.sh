# help.sh: every command has --help (exit 0, a usage line); usage errors say
# what is wrong and exit 1; --json errors are JSON.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" --help
assert_contains "$OUT" "usage: rapport"
assert_contains "$OUT" "Exit codes: 0 success, 1 usage error, 2 runtime error."
assert_exit 0 "$RAPPORT" -h
assert_exit 0 "$RAPPORT" --version
assert_contains "$OUT" "0."

for cmd in init import customer events run repl plugin jobs dlq serve keys audit gdpr; do
  assert_exit 0 "$RAPPORT" "$cmd" --help
  assert_contains "$OUT" "usage: rapport $cmd" "$cmd --help"
  # Every command named in the top-level help has its own help.
  assert_exit 0 "$RAPPORT" help "$cmd"
  assert_contains "$OUT" "usage: rapport $cmd" "help $cmd"
done

assert_exit 1 "$RAPPORT"
assert_contains "$ERR" "usage"
assert_exit 1 "$RAPPORT" frobnicate
assert_contains "$ERR" "frobnicate"
assert_exit 1 "$RAPPORT" --bogus init
assert_contains "$ERR" "--bogus"
assert_exit 1 "$RAPPORT" --db
for sub in "plugin" "plugin frob" "jobs" "jobs frob" "dlq" "dlq frob" "events" "events frob" \
           "customer" "customer frob" "events tail -n x" "serve --twice" "init --enable"; do
  # shellcheck disable=SC2086
  assert_exit 1 "$RAPPORT" $sub
  # Either the command's usage, or one line that points to it.
  case $ERR in
    *"usage: rapport "*|*"--help"*) ;;
    *) fail "the error of '$sub' shows neither the usage nor --help: $ERR" ;;
  esac
done

# Errors are JSON under --json, on stderr.
assert_exit 2 "$RAPPORT" --json customer show 999
assert_eq "$(json_get "$ERR" error.code)" not_found
echo "help: ok"
