-- One write per event: the smallest handler that does real work.
local M = { handlers = {} }

function M.handlers.count(event)
  crm.db.exec([[INSERT INTO bench_counter_counts(customer_id, type, n) VALUES (?, ?, 1)
                ON CONFLICT(customer_id, type) DO UPDATE SET n = n + 1]],
              event.customer_id, event.type)
end

function M.export(customer_id)
  return crm.db.query("SELECT type, n FROM bench_counter_counts WHERE customer_id = ?", customer_id)
end

function M.erase(customer_id)
  crm.db.exec("DELETE FROM bench_counter_counts WHERE customer_id = ?", customer_id)
end

return M
