-- Handlers that probe the API under this plugin's own permissions (it was
-- not granted customers:write nor pii:read) and record what happened.
local util = require("lib.util")
local M = { handlers = {}, jobs = {} }

local function record(probe, ok, detail)
  crm.db.exec("INSERT INTO api_check_results(probe, ok, detail) VALUES (?, ?, ?)",
              probe, ok, detail)
end

local probes = {}
function probes.upsert() return crm.customers.upsert { external_id = "NEW" } end
function probes.find_email() return crm.customers.find("email", "a@example.com") end
function probes.find_external() return crm.customers.find("external_id", "P1") end
function probes.identities() return crm.db.query("SELECT * FROM customer_identities") end
function probes.jobs_table() return crm.db.query("SELECT * FROM jobs") end
function probes.write_core() return crm.db.exec("DELETE FROM customers") end
function probes.begin() return crm.db.exec("BEGIN") end
function probes.attach() return crm.db.exec("ATTACH DATABASE ':memory:' AS x") end
function probes.require_outside() return require("../../hostile/init") end
function probes.double() return util.double(21) end
function probes.get_view()
  local v = crm.customers.get(crm.customers.find("external_id", "P1"))
  return v.identities == nil and v.consent == nil and "no pii, no consent" or "leaked"
end

function M.handlers.probe(event)
  local name = event.type:sub(#"probe." + 1)
  local ok, res = pcall(probes[name])
  record(name, ok and 1 or 0, ok and tostring(res) or tostring(res))
end

function M.handlers.loop(event)
  while true do end
end

function M.jobs.tick(job)
  crm.db.exec("INSERT INTO api_check_ticks(at, payload) VALUES (?, ?)", job.scheduled_for,
              crm.json.encode(job.payload))
end

-- ---- checks run as jobs, in the plugin's own context --------------------------
-- Each raises with a message saying what differed; the spec runs them with
-- test.run_job and expects "ok".

local function eq(want, got, what)
  if want ~= got then
    error(("%s: expected %s, got %s"):format(what, tostring(want), tostring(got)), 2)
  end
end

local function fails(fn, pattern, what)
  local ok, e = pcall(fn)
  if ok then error(what .. ": expected an error, none was raised", 2) end
  if pattern and not tostring(e):find(pattern, 1, true) then
    error(("%s: error %q does not mention %q"):format(what, tostring(e), pattern), 2)
  end
end

function M.jobs.config_checks()
  eq("api_check", crm.plugin, "crm.plugin")
  eq("hello", crm.config.greeting, "config default")
  eq(3, crm.config.threshold, "config default")
end

function M.jobs.db_checks()
  crm.db.exec("DELETE FROM api_check_items")
  -- parameters of every type
  crm.db.exec("INSERT INTO api_check_items(name, n, flag, doc) VALUES (?, ?, ?, ?)",
              "O'Brien \"quoted\"", 42, true, { k = "v" })
  local changes, last = crm.db.exec("INSERT INTO api_check_items(name, n, flag, doc) VALUES (?, ?, ?, ?)",
                                    nil, -1, false, crm.json.null)
  eq(1, changes, "exec changes")
  eq(2, last, "exec last id")
  local rows = crm.db.query("SELECT * FROM api_check_items ORDER BY id")
  eq(2, #rows, "query rows")
  eq("O'Brien \"quoted\"", rows[1].name, "text with quotes")
  eq(1, rows[1].flag, "true binds 1")
  eq("v", crm.json.decode(rows[1].doc).k, "table binds JSON")
  eq(nil, rows[2].name, "nil binds NULL")
  eq(nil, rows[2].doc, "crm.json.null binds NULL")
  eq(0, rows[2].flag, "false binds 0")
  eq(41, crm.db.value("SELECT sum(n) FROM api_check_items"), "value")
  eq(42, crm.db.one("SELECT n FROM api_check_items WHERE flag = ?", 1).n, "one")
  eq(nil, crm.db.one("SELECT * FROM api_check_items WHERE n = 99"), "one of nothing")
  -- large results: rows, not query
  crm.db.exec([[WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 25000)
                INSERT INTO api_check_items(n) SELECT i FROM c]])
  local n, sum = 0, 0
  for row in crm.db.rows("SELECT n FROM api_check_items WHERE n > ?", 0) do
    n = n + 1
    sum = sum + row.n
  end
  eq(25000 + 1, n, "rows count") -- 42 is > 0 too
  eq(25000 * 25001 // 2 + 42, sum, "rows sum")
  fails(function() crm.db.query("SELECT n FROM api_check_items") end, "crm.db.rows", "query limit")
  -- atomic
  local before = crm.db.value("SELECT count(*) FROM api_check_items")
  fails(function()
    crm.db.atomic(function()
      crm.db.exec("INSERT INTO api_check_items(n) VALUES (1)")
      error("half way")
    end)
  end, "half way", "atomic raises again")
  eq(before, crm.db.value("SELECT count(*) FROM api_check_items"), "atomic rolled back")
  eq(7, crm.db.atomic(function(x) return x end, 7), "atomic returns")
  -- errors
  fails(function() crm.db.exec("INSERT INTO api_check_nowhere VALUES (1)") end, "api_check_nowhere",
        "unknown table")
  fails(function() crm.db.exec("SELEKT 1") end, "syntax", "syntax error")
  fails(function() crm.db.exec("INSERT INTO api_check_items(n) VALUES (?)") end, "parameter",
        "missing parameter")
  crm.db.exec("DELETE FROM api_check_items")
end

function M.jobs.schedule_checks()
  local id = crm.schedule.at(crm.time.now() + 30 * crm.time.MINUTE, "tick", { n = 1 }, "once")
  eq("number", math.type(id) and "number" or type(id), "at returns an id")
  crm.schedule.every("often", "10m", "tick", { n = 2 })
  local names = {}
  for _, j in ipairs(crm.schedule.list()) do names[j.name or "?"] = true end
  eq(true, names.once and names.often and names.tick and true, "list has once, often, tick")
  fails(function() crm.schedule.cron("bad", "61 * * * *", "tick") end, "minute", "bad cron")
  fails(function() crm.schedule.every("x", "1h", "nope") end, "nope", "unknown job function")
  eq(true, crm.schedule.cancel("once"), "cancel")
  eq(false, crm.schedule.cancel("once"), "cancel again")
  crm.schedule.at(crm.time.now() + 30 * crm.time.MINUTE, "tick", { n = 1 }, "once")
end

function M.profile(customer_id)
  return { ticks = crm.db.value("SELECT count(*) FROM api_check_ticks") }
end

return M
