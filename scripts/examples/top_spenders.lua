-- Operator script: the customers with the highest net revenue, from the
-- bundled `activity` plugin's table, with an optional currency and limit.
--
--   rapport run scripts/examples/top_spenders.lua [CURRENCY] [LIMIT]
--
-- Operator scripts have the operator's permissions: every crm function and
-- reads on every table. What the script returns is printed (tables as JSON).
local currency = arg[1] or "EUR"
local limit = math.tointeger(tonumber(arg[2] or "10")) or 10

local top = {}
for r in crm.db.rows([[SELECT customer_id, amount FROM activity_revenue
                       WHERE currency = ? ORDER BY amount DESC LIMIT ?]], currency, limit) do
  local c = crm.customers.get(r.customer_id)
  top[#top + 1] = {
    customer_id = r.customer_id,
    external_id = c and c.external_id,
    revenue = ("%d.%02d %s"):format(r.amount // 100, r.amount % 100, currency),
  }
end
return crm.json.array(top)
