# plugin_commands.sh: `rapport PLUGIN COMMAND`: the commands a plugin declares
# (help, arguments and options, text and --json output, errors rolled back),
# their audit records naming the local user with the plugin, crm.random
# codes, and typos of core commands creating no database.
. "$(dirname "$0")/lib.sh" "$@"

# No database yet: an unknown command is a usage error and creates none.
assert_exit 1 "$RAPPORT" jobz list
assert_contains "$ERR" "unknown command 'jobz'"
[ -e "$RAPPORT_DB" ] && fail "a typo created the database"

assert_exit 0 "$RAPPORT" init
mkdir -p "$TMP/notes/migrations"
cat >"$TMP/notes/plugin.json" <<'EOF'
{ "name": "notes", "version": "0.1.0", "api": "1.1",
  "description": "notes on customers",
  "permissions": ["customers:read"],
  "commands": [
    { "name": "add", "handler": "add", "usage": "CUSTOMER TEXT [--pin]", "description": "add a note" },
    { "name": "list", "handler": "list", "description": "every note" },
    { "name": "boom", "handler": "boom" }
  ] }
EOF
cat >"$TMP/notes/migrations/001_init.sql" <<'EOF'
CREATE TABLE notes_notes(id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL, text TEXT NOT NULL,
                         pinned INTEGER NOT NULL, code TEXT NOT NULL UNIQUE);
EOF
cat >"$TMP/notes/init.lua" <<'EOF'
local M = { commands = {} }
function M.commands.add(input)
  local cid = math.tointeger(tonumber(input.args[1]))
  if not cid or not input.args[2] then error("usage: notes add CUSTOMER TEXT", 0) end
  local code = crm.random.code(12)
  local text = input.options.text and input.options.text:gsub("\n$", "") or input.args[2]
  local _, id = crm.db.exec("INSERT INTO notes_notes(customer_id, text, pinned, code) VALUES (?, ?, ?, ?)",
                            cid, text, input.options.pin and 1 or 0, code)
  crm.audit.record("notes.add", cid, { "text" })
  return { id = id, code = code }, ("note %d added (%s)"):format(id, code)
end
function M.commands.list()
  return crm.db.query("SELECT id, customer_id, text, pinned FROM notes_notes ORDER BY id")
end
function M.commands.boom(input)
  crm.db.exec("INSERT INTO notes_notes(customer_id, text, pinned, code) VALUES (1, 'half', 0, 'X')")
  crm.audit.record("customer.read", 1)
end
function M.export(cid) return crm.db.query("SELECT * FROM notes_notes WHERE customer_id = ?", cid) end
function M.erase(cid) crm.db.exec("DELETE FROM notes_notes WHERE customer_id = ?", cid) end
return M
EOF
assert_exit 0 "$RAPPORT" plugin enable "$TMP/notes"

assert_exit 0 "$RAPPORT" notes --help
assert_contains "$OUT" "add CUSTOMER TEXT [--pin]"
assert_contains "$OUT" "add a note"
assert_exit 0 "$RAPPORT" help notes
assert_contains "$OUT" "Commands of plugin 'notes'"
assert_exit 1 "$RAPPORT" notes
assert_exit 1 "$RAPPORT" notes nope
assert_contains "$ERR" "unknown command 'nope'"
assert_exit 0 "$RAPPORT" --help
assert_contains "$OUT" "PLUGIN"

# Text for people, JSON with --json; options after the arguments.
assert_exit 0 "$RAPPORT" notes add 7 "called back" --pin
assert_contains "$OUT" "note 1 added ("
assert_exit 0 "$RAPPORT" --json notes add 8 "second"
code=$(json_get "$OUT" code)
[[ "$code" =~ ^[A-HJ-NP-Z2-9]{12}$ ]] || fail "code '$code' is not 12 characters of the default alphabet"
assert_eq "$(sql "SELECT count(DISTINCT code) FROM notes_notes")" 2 "distinct codes"
assert_exit 0 "$RAPPORT" --json notes list
assert_eq "$(json_get "$OUT" 0.pinned)" 1 "first note pinned"
assert_eq "$(json_get "$OUT" 1.pinned)" 0 "second note not pinned"
assert_eq "$(json_get "$OUT" 1.text)" "second" "second note"

# --NAME @FILE passes the file's content; @@ a literal @; a missing file is
# a usage error.
printf 'from a file\n' >"$TMP/note.txt"
assert_exit 0 "$RAPPORT" --json notes add 9 x --text @"$TMP/note.txt"
assert_exit 0 "$RAPPORT" --json notes add 9 x --text @@handle
assert_exit 0 "$RAPPORT" --json notes list
assert_eq "$(json_get "$OUT" 2.text)" "from a file" "@file option"
assert_eq "$(json_get "$OUT" 3.text)" "@handle" "@@ option"
assert_exit 1 "$RAPPORT" notes add 9 x --text @"$TMP/missing.txt"
assert_contains "$ERR" "cannot read"

# The audit record names the local user with the plugin, and the action.
actor=$(sql "SELECT actor FROM audit_log WHERE action = 'notes.add' AND customer_id = 7")
[[ "$actor" == cli:*+plugin:notes ]] || fail "audit actor '$actor'"
assert_eq "$(sql "SELECT fields FROM audit_log WHERE action = 'notes.add' AND customer_id = 7")" '["text"]' "audit fields"
assert_exit 0 "$RAPPORT" audit verify

# A command that fails applies nothing: its insert is rolled back; a plugin
# cannot write an audit record that reads as the core's.
assert_exit 2 "$RAPPORT" notes boom
assert_contains "$ERR" "must be 'notes.<what>'"
assert_eq "$(sql "SELECT count(*) FROM notes_notes")" 4 "rows after a failed command"
assert_exit 2 "$RAPPORT" notes add x
assert_contains "$ERR" "usage: notes add CUSTOMER TEXT"

# Disabled: its commands are not there.
assert_exit 0 "$RAPPORT" plugin disable notes
assert_exit 1 "$RAPPORT" notes list
assert_contains "$ERR" "need the plugin enabled"

echo "plugin_commands: ok"
