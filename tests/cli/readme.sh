# readme.sh: the README's tour runs as written (paths under /tmp moved to a
# scratch folder), so the first thing a reader tries cannot rot.
. "$(dirname "$0")/lib.sh" "$@"

ROOT=${RP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
tour=$(awk '/^## A short tour/ { on = 1; next }
            on && /^```sh/ { code = 1; next }
            code && /^```/ { exit }
            code { print }' "$ROOT/README.md")
[ -n "$tour" ] || fail "no tour found in README.md"
tour=$(printf '%s\n' "$tour" | sed "s|/tmp/|$TMP/|g")
printf '%s\n' "$tour" >"$TMP/tour.sh"

# The tour's `rapport` is this binary, and scripts/gen-data the generator
# built beside it; it starts from the repository root.
export GEN_DATA_BUILD
GEN_DATA_BUILD=$(dirname "$RAPPORT")
mkdir -p "$TMP/bin"
ln -s "$RAPPORT" "$TMP/bin/rapport"
(
  cd "$ROOT" || exit 1
  set -e
  export PATH="$TMP/bin:$PATH"
  # The tour's own export sets PATH to ./build: keep this binary first.
  . <(sed "s|export PATH=\$PWD/build:\$PATH|export PATH=$TMP/bin:\$PATH|" "$TMP/tour.sh")
) >"$TMP/tour.out" 2>"$TMP/tour.err" || {
  OUT=$(cat "$TMP/tour.out")
  ERR=$(cat "$TMP/tour.err")
  fail "the README tour failed"
}
OUT=$(cat "$TMP/tour.out")
assert_contains "$OUT" "activity/dormancy"
assert_contains "$OUT" "passed, 0 failed"
echo "readme: ok"
