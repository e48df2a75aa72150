-- One write per event: the smallest handler that does real work.
local M = { handlers = {}, jobs = {} }

function M.handlers.count(event)
  crm.db.exec([[INSERT INTO bench_counter_counts(customer_id, type, n) VALUES (?, ?, 1)
                ON CONFLICT(customer_id, type) DO UPDATE SET n = n + 1]],
              event.customer_id, event.type)
end

-- One write per fired one-shot (scripts/bench scheduler): the job's own row.
function M.jobs.tick(job)
  crm.db.exec("INSERT INTO bench_counter_ticks(run_id, at) VALUES (?, ?)", job.run_id, job.scheduled_for)
end

function M.export(customer_id)
  return crm.db.query("SELECT type, n FROM bench_counter_counts WHERE customer_id = ?", customer_id)
end

function M.erase(customer_id)
  crm.db.exec("DELETE FROM bench_counter_counts WHERE customer_id = ?", customer_id)
end

return M
