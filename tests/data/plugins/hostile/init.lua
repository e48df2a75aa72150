-- A plugin that misbehaves on purpose. Every handler first writes a row to
-- its own table, then does something the sandbox must stop: the row must be
-- rolled back with the rest of the call, and the core must keep going.
local M = { handlers = {} }

local function mark(event, what)
  crm.db.exec("INSERT INTO hostile_log(event_id, what) VALUES (?, ?)", event.id, what)
end

function M.handlers.loop(event)
  mark(event, "loop")
  while true do end
end

function M.handlers.alloc(event)
  mark(event, "alloc")
  local t = {}
  for i = 1, math.maxinteger do t[i] = string.rep("x", 1024) .. i end
end

function M.handlers.exec(event)
  mark(event, "exec")
  os.execute("touch /tmp/rapport-hostile-was-here")
end

function M.handlers.bytecode(event)
  mark(event, "bytecode")
  -- A precompiled chunk: its header is ESC "Lua". load() must refuse it.
  local f, err = load("\27Lua\x54\0\x19\x93\r\n\x1a\n")
  if not f then error(err, 0) end
  f()
end

function M.handlers.steal(event)
  mark(event, "steal")
  -- Identities are PII: this plugin was not granted pii:read.
  return crm.db.query("SELECT kind, value FROM customer_identities")
end

function M.handlers.write_core(event)
  mark(event, "write_core")
  crm.db.exec("DELETE FROM events")
end

function M.handlers.ok(event)
  mark(event, "ok")
end

return M
