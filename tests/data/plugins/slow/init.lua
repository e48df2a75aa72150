-- A job that computes for a few seconds without ever yielding by itself:
-- the host must slice it (count hook) so that events are handled meanwhile.
local M = { handlers = {}, jobs = {} }

local function log(what)
  crm.db.exec("INSERT INTO slow_log(what, at) VALUES (?, ?)", what, crm.time.now())
end

function M.handlers.on_ping(event)
  log("ping")
end

function M.jobs.crunch(job)
  log("start")
  local deadline = crm.time.now() + 3000
  local x = 0
  while crm.time.now() < deadline do
    for i = 1, 10000 do x = x + i % 7 end
  end
  -- Then three seconds in SQL, a handful of Lua instructions a statement:
  -- the count hook alone would hardly ever run; the host yields at the end
  -- of a crm.db call once the slice is spent.
  log("sql")
  deadline = crm.time.now() + 3000
  while crm.time.now() < deadline do
    crm.db.value([[WITH RECURSIVE slow_n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM slow_n WHERE x < 100000)
                   SELECT count(*) FROM slow_n]])
  end
  log("end")
end

return M
