-- {{name}}: a Rapport plugin. init.lua returns the plugin's table:
--   handlers: functions the bus calls with an event (see plugin.json
--             "subscriptions"); each runs in a transaction with its writes
--   jobs:     functions the scheduler calls with a job (plugin.json "jobs",
--             or crm.schedule.*)
--   profile:  optional, what this plugin adds to `rapport customer show`
-- The crm API is documented in docs/plugin-api.md; `rapport plugin meta`
-- prints LuaLS definitions for your editor.
local M = { handlers = {}, jobs = {} }

function M.handlers.on_order(event)
  local amount = math.tointeger(event.properties.amount) or 0
  crm.db.exec([[INSERT INTO {{name}}_orders(event_id, customer_id, type, amount, currency, at)
                VALUES (?, ?, ?, ?, ?, ?)]],
              event.id, event.customer_id, event.type, amount,
              event.properties.currency or "EUR", event.occurred_at)
end

function M.jobs.daily_summary(job)
  local since = crm.time.now() - crm.config.summary_window_days * crm.time.DAY
  local row = crm.db.one([[SELECT count(*) AS orders, coalesce(sum(amount), 0) AS total
                           FROM {{name}}_orders WHERE at >= ? AND type = 'order.placed']], since)
  crm.db.exec("INSERT INTO {{name}}_summaries(at, orders, total) VALUES (?, ?, ?)",
              crm.time.now(), row.orders, row.total)
  crm.log.info("orders since", crm.time.format(since), row.orders, "total", row.total)
end

function M.profile(customer_id)
  return crm.db.one([[SELECT count(*) AS orders, coalesce(sum(amount), 0) AS total
                      FROM {{name}}_orders WHERE customer_id = ?]], customer_id)
end

-- Data-subject requests: a plugin that keeps customer data must hand it over
-- (export) and forget it (erase); Rapport refuses to enable it otherwise.
function M.export(customer_id)
  return { orders = crm.db.query("SELECT * FROM {{name}}_orders WHERE customer_id = ?", customer_id) }
end

function M.erase(customer_id)
  crm.db.exec("DELETE FROM {{name}}_orders WHERE customer_id = ?", customer_id)
end

return M
