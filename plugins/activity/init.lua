-- activity: the bundled example plugin, and the template partners copy.
--
-- It shows every part of the plugin contract:
--   * subscriptions (plugin.json) -> handlers.on_order / handlers.on_touch,
--     each called once per event inside the bus transaction;
--   * its own tables (migrations/, prefixed "activity_"), written with crm.db;
--   * a manifest job (the nightly dormancy scan, time-sliced, batch by batch);
--   * a one-shot per customer (crm.schedule.at: the follow-up after a first
--     order), the way journeys implement "wait 3 days";
--   * events it emits (customer.dormant, customer.reactivated,
--     customer.follow_up_due) through the same log everything else uses;
--   * permissions: it reads customers and events and emits events, but was
--     not granted "pii:read", so it never sees emails or phones;
--   * profile(): what it adds to `rapport customer show`.
local M = { handlers = {}, jobs = {} }

local DAY = crm.time.DAY

-- Records a touchpoint; returns the customer's row as it was before.
local function touch(event)
  local before = crm.db.one("SELECT * FROM activity_customers WHERE customer_id = ?",
                            event.customer_id)
  crm.db.exec([[
    INSERT INTO activity_customers(customer_id, first_seen, last_seen, touches)
    VALUES (?1, ?2, ?2, 1)
    ON CONFLICT(customer_id) DO UPDATE SET
      first_seen = min(first_seen, ?2),
      last_seen = max(last_seen, ?2),
      touches = touches + 1,
      dormant_since = NULL]], event.customer_id, event.occurred_at)
  if before and before.dormant_since then
    crm.events.emit {
      type = "customer.reactivated",
      customer_id = event.customer_id,
      id = "activity:reactivated:" .. event.id,
      properties = { dormant_since = before.dormant_since, by = event.type },
    }
  end
  return before
end

function M.handlers.on_touch(event)
  touch(event)
end

local function add_revenue(customer_id, currency, amount)
  crm.db.exec([[
    INSERT INTO activity_revenue(customer_id, currency, amount) VALUES (?1, ?2, ?3)
    ON CONFLICT(customer_id, currency) DO UPDATE SET amount = amount + ?3]],
    customer_id, currency, amount)
end

function M.handlers.on_order(event)
  touch(event)
  local p = event.properties
  local amount = math.tointeger(p.amount)
  if amount == nil or amount < 0 then
    -- Money is integer minor units: a float or missing amount is a bug
    -- upstream. Raising parks the event in the dead letters, visibly.
    error(("order event %d: properties.amount must be a non-negative integer "
           .. "(minor units), got %s"):format(event.id, tostring(p.amount)))
  end
  local currency = p.currency or "EUR"
  if event.type == "order.placed" then
    add_revenue(event.customer_id, currency, amount)
    crm.db.exec([[UPDATE activity_customers SET orders = orders + 1,
                    first_order_at = coalesce(first_order_at, ?2)
                  WHERE customer_id = ?1]], event.customer_id, event.occurred_at)
    local row = crm.db.one("SELECT orders FROM activity_customers WHERE customer_id = ?",
                           event.customer_id)
    if row.orders == 1 then
      local due = event.occurred_at + crm.time.duration(crm.config.follow_up_after)
      crm.schedule.at(due, "follow_up", { customer_id = event.customer_id, order_event = event.id },
                      "follow_up:" .. event.customer_id)
    end
  elseif event.type == "order.refunded" then
    add_revenue(event.customer_id, currency, -amount)
    crm.db.exec("UPDATE activity_customers SET refunds = refunds + 1 WHERE customer_id = ?",
                event.customer_id)
  end
end

-- One-shot, per customer, some days after the first order.
function M.jobs.follow_up(job)
  local cid = job.payload.customer_id
  local row = crm.db.one("SELECT orders FROM activity_customers WHERE customer_id = ?", cid)
  crm.events.emit {
    type = "customer.follow_up_due",
    customer_id = cid,
    id = "activity:follow_up:" .. cid,
    properties = { orders_since_first = row and row.orders or 0,
                   first_order_event = job.payload.order_event },
  }
end

-- Nightly: customers with no touchpoint for dormant_after_days become
-- dormant, once. Batches of 500 ids, each batch atomic, so the scan can be
-- time-sliced between batches over any number of customers.
function M.jobs.find_dormant(job)
  local cutoff = crm.time.now() - crm.config.dormant_after_days * DAY
  local flagged = 0
  while true do
    local batch = crm.db.query([[SELECT customer_id, last_seen FROM activity_customers
                                 WHERE dormant_since IS NULL AND last_seen < ?
                                 ORDER BY customer_id LIMIT 500]], cutoff)
    if #batch == 0 then break end
    crm.db.atomic(function()
      for _, c in ipairs(batch) do
        crm.db.exec("UPDATE activity_customers SET dormant_since = ? WHERE customer_id = ?",
                    job.scheduled_for, c.customer_id)
        crm.events.emit {
          type = "customer.dormant",
          customer_id = c.customer_id,
          id = ("activity:dormant:%d:%d"):format(c.customer_id, c.last_seen),
          properties = { last_seen = c.last_seen, days = crm.config.dormant_after_days },
        }
      end
    end)
    flagged = flagged + #batch
  end
  crm.log.info("dormancy scan:", flagged, "customer(s) flagged")
end

function M.profile(customer_id)
  local row = crm.db.one("SELECT * FROM activity_customers WHERE customer_id = ?", customer_id)
  if not row then return nil end
  row.customer_id = nil
  row.revenue = {}
  for r in crm.db.rows("SELECT currency, amount FROM activity_revenue WHERE customer_id = ?",
                       customer_id) do
    row.revenue[r.currency] = r.amount
  end
  return row
end

-- Data-subject requests (`rapport gdpr export|erase`): everything this plugin
-- keeps about one customer, and forgetting it. Revenue stays in the totals,
-- under customer 0 (erased customers), so that aggregates do not change.
function M.export(customer_id)
  return {
    customer = crm.db.one("SELECT * FROM activity_customers WHERE customer_id = ?", customer_id),
    revenue = crm.db.query("SELECT currency, amount FROM activity_revenue WHERE customer_id = ?",
                           customer_id),
  }
end

function M.erase(customer_id)
  crm.db.exec([[INSERT INTO activity_revenue(customer_id, currency, amount)
                SELECT 0, currency, amount FROM activity_revenue WHERE customer_id = ?1
                ON CONFLICT(customer_id, currency) DO UPDATE SET amount = amount + excluded.amount]],
              customer_id)
  crm.db.exec("DELETE FROM activity_revenue WHERE customer_id = ?", customer_id)
  crm.db.exec("DELETE FROM activity_customers WHERE customer_id = ?", customer_id)
end

return M
