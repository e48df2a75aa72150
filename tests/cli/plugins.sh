# plugins.sh: the plugin life cycle from the CLI: scaffold, test, enable,
# status, disable; refusals of broken plugins with one clear line naming the
# file and field; migrations applied once and atomically; a database newer
# than the binary (or than a plugin) is refused.
. "$(dirname "$0")/lib.sh" "$@"

assert_exit 0 "$RAPPORT" init

# --- scaffold, test, enable -----------------------------------------------------------
assert_exit 0 "$RAPPORT" plugin new tiers --dir "$TMP"
for f in plugin.json init.lua migrations/001_init.sql spec/tiers_spec.lua types/crm.lua; do
  [ -f "$TMP/tiers/$f" ] || fail "plugin new did not write $f"
done
assert_exit 0 "$RAPPORT" plugin test "$TMP/tiers"
assert_contains "$OUT" "2 passed, 0 failed"
assert_exit 1 "$RAPPORT" plugin new "Bad Name" --dir "$TMP"
assert_exit 2 "$RAPPORT" plugin new tiers --dir "$TMP"   # never overwrites
assert_contains "$ERR" "exists"

assert_exit 0 "$RAPPORT" plugin enable "$TMP/tiers"
assert_eq "$(sql "SELECT version FROM schema_migrations WHERE scope = 'tiers'")" 1 "migration"
assert_exit 0 "$RAPPORT" plugin enable "$TMP/tiers"   # idempotent
assert_eq "$(sql "SELECT count(*) FROM schema_migrations WHERE scope = 'tiers'")" 1 "applied once"
assert_exit 0 "$RAPPORT" --json plugin status tiers
assert_eq "$(json_get "$OUT" status)" enabled
assert_exit 0 "$RAPPORT" plugin list
assert_contains "$OUT" "tiers"
assert_exit 0 "$RAPPORT" plugin disable tiers
assert_eq "$(sql "SELECT status FROM plugins WHERE name = 'tiers'")" disabled "after disable"
assert_eq "$(sql "SELECT count(*) FROM jobs WHERE owner = 'tiers' AND enabled = 1")" 0 "paused jobs"
assert_exit 0 "$RAPPORT" plugin enable tiers
assert_eq "$(sql "SELECT count(*) FROM jobs WHERE owner = 'tiers' AND enabled = 0")" 0 "resumed jobs"

# A failing spec fails `plugin test`, naming the spec and line.
sed -i 's/assert.equals(2, s.orders)/assert.equals(99, s.orders)/' "$TMP/tiers/spec/tiers_spec.lua"
assert_exit 2 "$RAPPORT" plugin test "$TMP/tiers"
assert_contains "$OUT$ERR" "tiers_spec.lua:"
assert_contains "$OUT$ERR" "failed"

# --- unknown plugins ----------------------------------------------------------------------
assert_exit 2 "$RAPPORT" plugin enable ghost
assert_contains "$ERR" "unknown plugin 'ghost'"
assert_exit 2 "$RAPPORT" plugin status ghost
assert_exit 2 "$RAPPORT" plugin disable ghost

# --- broken plugins: one line naming the file and the field ----------------------------------
broken() { # NAME: a copy of the scaffold to break
  rm -rf "$TMP/b"
  mkdir -p "$TMP/b"
  cp -r "$TMP/tiers" "$TMP/b/$1"
  sed -i "s/\"tiers\"/\"$1\"/; s/tiers_/$1_/g" "$TMP/b/$1/plugin.json" "$TMP/b/$1/init.lua" \
    "$TMP/b/$1/migrations/001_init.sql"
}
refused() { # NEEDLE...: enabling $TMP/b/NAME fails with each NEEDLE in one line
  local dir=$1
  shift
  assert_exit 2 "$RAPPORT" plugin enable "$dir"
  [ "$(printf '%s\n' "$ERR" | grep -c .)" = 1 ] || fail "more than one line: $ERR"
  for needle in "$@"; do assert_contains "$ERR" "$needle"; done
}
tables_before=$(sql "SELECT count(*) FROM sqlite_master")

broken b1
printf '{ "name": "b1", "version": "0.1.0",, }' >"$TMP/b/b1/plugin.json"
refused "$TMP/b/b1" "b1/plugin.json:1: malformed JSON"

broken b2
python3 - "$TMP/b/b2/plugin.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1])); m["permisions"] = ["customers:read"]
json.dump(m, open(sys.argv[1], "w"))
EOF
refused "$TMP/b/b2" "plugin.json" "permisions"

broken b3
python3 - "$TMP/b/b3/plugin.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1])); m["permissions"] = ["customers:read", "root"]
json.dump(m, open(sys.argv[1], "w"))
EOF
refused "$TMP/b/b3" "plugin.json" "permissions" "root"

broken b4
python3 - "$TMP/b/b4/plugin.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1])); m["api"] = "9.0"
json.dump(m, open(sys.argv[1], "w"))
EOF
refused "$TMP/b/b4" "api" "9.0"

broken b5
python3 - "$TMP/b/b5/plugin.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1])); m["jobs"] = [{"name": "x", "cron": "61 * * * *", "handler": "x"}]
json.dump(m, open(sys.argv[1], "w"))
EOF
refused "$TMP/b/b5" "plugin.json" "jobs" "61 * * * *"

broken b6
echo 'local M = { handlers = {} ' >"$TMP/b/b6/init.lua"
refused "$TMP/b/b6" "b6/init.lua:"

broken b7
echo 'return { handlers = {}, jobs = {} }' >"$TMP/b/b7/init.lua"
refused "$TMP/b/b7" "plugin.json: subscriptions[0].handler: init.lua returns no function handlers.on_order"

# A migration that fails half-way leaves nothing behind.
broken b8
cat >"$TMP/b/b8/migrations/002_more.sql" <<'EOF'
CREATE TABLE b8_first(x INTEGER);
CREATE TABLE b8_second(y INTEGER;
EOF
refused "$TMP/b/b8" "002_more"
assert_eq "$(sql "SELECT count(*) FROM sqlite_master WHERE name LIKE 'b8%'")" 0 "b8 tables"
assert_eq "$(sql "SELECT count(*) FROM schema_migrations WHERE scope = 'b8'")" 0 "b8 migrations"

# A migration cannot touch core tables.
broken b9
echo 'DROP TABLE events;' >"$TMP/b/b9/migrations/002_evil.sql"
refused "$TMP/b/b9" "events"
assert_eq "$(sql "SELECT count(*) FROM sqlite_master WHERE name = 'events'")" 1 "events table"

assert_eq "$(sql "SELECT count(*) FROM sqlite_master")" "$tables_before" "schema after refusals"
assert_eq "$(sql "SELECT count(*) FROM plugins WHERE name LIKE 'b_'")" 0 "refused plugins recorded"

# --- a database newer than the binary, or than a plugin ---------------------------------------
sql "INSERT INTO schema_migrations VALUES ('tiers', 7, 'future', 0)"
assert_exit 2 "$RAPPORT" plugin enable tiers
assert_contains "$ERR" "the database has migration 7 of 'tiers'"
sql "DELETE FROM schema_migrations WHERE scope = 'tiers' AND version = 7"
sql "INSERT INTO schema_migrations VALUES ('core', 999, 'future', 0)"
assert_exit 2 "$RAPPORT" jobs list
assert_contains "$ERR" "database schema version 999 is newer than this rapport"
assert_exit 2 "$RAPPORT" init
assert_contains "$ERR" "upgrade rapport"

echo "plugins: ok"
