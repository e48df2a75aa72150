-- What segments know of each customer beyond the core's tables, in
-- segments_profile: purchase facts (first and last purchase, count), the
-- lifecycle stage they give, RFM scores and group, and the loyalty tier.
--
-- The lifecycle stage moves at once (a purchase, or a time edge from
-- lib/edges); RFM scores rank customers against each other and are
-- refreshed by the nightly `scores` job (M.rfm_*). Every writer marks the
-- rows whose stage, scores or tier changed (changed = 1) so that the
-- segments reading them are evaluated again for those customers only.
local M = {}

-- The stage of a customer from purchase facts, as SQL over p (a
-- segments_profile row) with ?1 = now and the configured windows; the
-- order of the CASE is the definition (docs/segments.md, Lifecycle).
function M.stage_sql(cfg)
  local l = cfg.lifecycle
  return ([[CASE
    WHEN p.last_order_at IS NULL THEN 'prospect'
    WHEN p.first_order_at > ?1 - %d THEN 'new'
    WHEN p.last_order_at > ?1 - %d THEN 'active'
    WHEN p.last_order_at > ?1 - %d THEN 'at_risk'
    WHEN p.last_order_at > ?1 - %d THEN 'lapsed'
    ELSE 'churned' END]]):format(l.new_ms, l.active_ms, l.at_risk_ms, l.lapsed_ms)
end

-- The next instant the stage changes by time alone, as SQL over p (NULL
-- when it never will: churned or prospect).
function M.stage_edge_sql(cfg)
  local l = cfg.lifecycle
  return ([[CASE
    WHEN p.last_order_at IS NULL THEN NULL
    WHEN p.first_order_at + %d > ?1 THEN p.first_order_at + %d
    WHEN p.last_order_at + %d > ?1 THEN p.last_order_at + %d
    WHEN p.last_order_at + %d > ?1 THEN p.last_order_at + %d
    WHEN p.last_order_at + %d > ?1 THEN p.last_order_at + %d
    ELSE NULL END]]):format(l.new_ms, l.new_ms, l.active_ms, l.active_ms, l.at_risk_ms, l.at_risk_ms,
                            l.lapsed_ms, l.lapsed_ms)
end

local function purchase_filter(cfg)
  local types = {}
  for t in pairs(cfg.purchase) do types[#types + 1] = t end
  table.sort(types)
  return "e.type IN (" .. string.rep("?", #types, ", ") .. ")", types
end

-- A purchase by customer cid at time at (an event just delivered): the
-- facts and the stage. Returns true when the stage changed.
function M.purchase(cfg, cid, at, now)
  crm.db.exec([[INSERT INTO segments_profile(customer_id, first_order_at, last_order_at, orders)
                VALUES (?1, ?2, ?2, 1)
                ON CONFLICT(customer_id) DO UPDATE SET
                  first_order_at = min(coalesce(first_order_at, ?2), ?2),
                  last_order_at = max(coalesce(last_order_at, ?2), ?2),
                  orders = orders + 1]], cid, at)
  return M.restage_ids(cfg, { cid }, now) > 0
end

-- The loyalty tier of cid, from the tier event. True when it changed.
function M.tier(cid, tier)
  if type(tier) ~= "string" or tier == "" then return false end
  local old = crm.db.value("SELECT tier FROM segments_profile WHERE customer_id = ?", cid)
  if old == tier then return false end
  crm.db.exec([[INSERT INTO segments_profile(customer_id, tier) VALUES (?1, ?2)
                ON CONFLICT(customer_id) DO UPDATE SET tier = ?2]], cid, tier)
  return true
end

-- Stages of the customers listed (a JSON array text or Lua list), as of
-- now; rows whose stage changes are marked changed. Returns how many.
local texts = {} -- statement texts built once per config (cfg is fixed while loaded)

function M.restage_ids(cfg, ids, now)
  texts.restage_ids = texts.restage_ids or ([[UPDATE segments_profile AS p SET stage = %s, changed = 1
                                              WHERE p.customer_id IN (SELECT value FROM json_each(?2))
                                                AND p.stage IS NOT (%s)]]):format(M.stage_sql(cfg), M.stage_sql(cfg))
  return crm.db.exec(texts.restage_ids, now, type(ids) == "string" and ids or crm.json.encode(crm.json.array(ids)))
end

-- Stages of the customers with ids in [lo, hi], as of now.
function M.restage_range(cfg, lo, hi, now)
  texts.restage_range = texts.restage_range or ([[UPDATE segments_profile AS p SET stage = %s, changed = 1
                                                  WHERE p.customer_id BETWEEN ?2 AND ?3 AND p.stage IS NOT (%s)]]):format(
                                                  M.stage_sql(cfg), M.stage_sql(cfg))
  crm.db.exec(texts.restage_range, now, lo, hi)
end

-- Recomputes the purchase facts of customers with ids in [lo, hi] from the
-- event log (the scores job, and merges: events move to the survivor).
-- Purchases dated in the future count, as when they are delivered.
-- Frequency and monetary count the RFM window only; monetary sums the
-- configured property of purchases in the configured currency (or with no
-- currency).
function M.recompute_range(cfg, lo, hi, now)
  local filter, types = purchase_filter(cfg)
  local args = { lo, hi, now, now - cfg.rfm_window_ms, "$." .. cfg.property, "$.currency", cfg.currency }
  for _, t in ipairs(types) do args[#args + 1] = t end
  -- Customers with purchases: upsert; the others in the range: cleared.
  crm.db.exec(([[
    INSERT INTO segments_profile(customer_id, first_order_at, last_order_at, orders, frequency, monetary)
    SELECT e.customer_id, min(e.occurred_at), max(e.occurred_at), count(*),
           sum(e.occurred_at > ?4),
           -- total(): a float that cannot overflow (sum() raises on int64
           -- overflow); whole minor units back as an integer.
           CAST(total(CASE WHEN e.occurred_at > ?4 AND coalesce(json_extract(e.properties, ?6), ?7) = ?7
                           THEN json_extract(e.properties, ?5) END) AS INTEGER)
    FROM events e
    WHERE e.customer_id BETWEEN ?1 AND ?2 AND %s
      AND e.customer_id NOT IN (SELECT customer_id FROM segments_erased)
    GROUP BY e.customer_id
    ON CONFLICT(customer_id) DO UPDATE SET
      first_order_at = excluded.first_order_at, last_order_at = excluded.last_order_at,
      orders = excluded.orders, frequency = excluded.frequency, monetary = excluded.monetary]]):format(filter),
    table.unpack(args))
  crm.db.exec(([[
    UPDATE segments_profile SET first_order_at = NULL, last_order_at = NULL, orders = 0, frequency = 0, monetary = 0
    WHERE customer_id BETWEEN ?1 AND ?2 AND orders > 0
      AND NOT EXISTS (SELECT 1 FROM events e WHERE e.customer_id = segments_profile.customer_id
                      AND %s)]]):format(filter),
    lo, hi, table.unpack(types))
  M.restage_range(cfg, lo, hi, now)
end

-- ---- RFM ------------------------------------------------------------------------
--
-- The population: customers with at least one purchase in the RFM window
-- (frequency > 0). A score is the quintile of the customer's rank, ties
-- sharing it: 1 + floor(5 * (how many have a lower value) / population).
-- R ranks the last purchase (later is better), F the purchases in the
-- window, M the money spent in it.

local SCORE_COLS = { r = "last_order_at", f = "frequency", m = "monetary" }

-- The four thresholds of a column: the values at the ranks where the
-- score steps up (ceil(k * N / 5) for k = 1..4), or nil with no population.
function M.thresholds()
  local n = crm.db.value("SELECT count(*) FROM segments_profile WHERE frequency > 0")
  if n == 0 then return nil, 0 end
  local out = {}
  for field, col in pairs(SCORE_COLS) do
    local t = {}
    for k = 1, 4 do
      local rank = (k * n + 4) // 5 -- ceil(k * n / 5), >= 1
      t[k] = crm.db.value(("SELECT %s FROM segments_profile WHERE frequency > 0 ORDER BY %s LIMIT 1 OFFSET ?"):format(col, col),
                          rank - 1)
    end
    out[field] = t
  end
  return out, n
end

-- score = 1 + the number of thresholds strictly below the value: exactly
-- 1 + floor(5 * lower / N), since lower >= m exactly when value > the
-- m-th smallest value. The thresholds are bound, in order, from params.
local function score_sql(col, t, params)
  for k = 1, 4 do params[#params + 1] = t[k] end
  return ("(1 + (%s > ?) + (%s > ?) + (%s > ?) + (%s > ?))"):format(col, col, col, col)
end

-- The named groups on R and FM (the mean of F and M, rounded up): a grid
-- that gives every pair one group (docs/segments.md, RFM).
local GROUP_SQL = [[CASE
  WHEN r >= 4 AND fm = 5 THEN 'champions'
  WHEN r = 5 AND fm = 4 THEN 'champions'
  WHEN r >= 3 AND fm >= 4 THEN 'loyal'
  WHEN r >= 4 AND fm >= 2 THEN 'potential_loyalists'
  WHEN r = 5 THEN 'new_customers'
  WHEN r = 4 THEN 'promising'
  WHEN r = 3 AND fm >= 2 THEN 'need_attention'
  WHEN r = 3 THEN 'about_to_sleep'
  WHEN fm = 5 THEN 'cant_lose'
  WHEN fm >= 3 THEN 'at_risk'
  WHEN r = 2 OR fm = 2 THEN 'hibernating'
  ELSE 'lost' END]]

function M.group_of(r, f, m)
  local fm = (f + m + 1) // 2
  if r >= 4 and fm == 5 then return "champions" end
  if r == 5 and fm == 4 then return "champions" end
  if r >= 3 and fm >= 4 then return "loyal" end
  if r >= 4 and fm >= 2 then return "potential_loyalists" end
  if r == 5 then return "new_customers" end
  if r == 4 then return "promising" end
  if r == 3 and fm >= 2 then return "need_attention" end
  if r == 3 then return "about_to_sleep" end
  if fm == 5 then return "cant_lose" end
  if fm >= 3 then return "at_risk" end
  if r == 2 or fm == 2 then return "hibernating" end
  return "lost"
end

-- Scores of the customers in [lo, hi] against the thresholds (nil: nobody
-- is scored); rows whose scores change are marked changed.
function M.rfm_range(th, lo, hi)
  if not th then
    crm.db.exec([[UPDATE segments_profile SET r = NULL, f = NULL, m = NULL, rfm_group = NULL, changed = 1
                  WHERE customer_id BETWEEN ? AND ? AND r IS NOT NULL]], lo, hi)
    return
  end
  local params = {}
  local r, f, m = score_sql("last_order_at", th.r, params), score_sql("frequency", th.f, params),
                  score_sql("monetary", th.m, params)
  params[#params + 1] = lo
  params[#params + 1] = hi
  crm.db.exec(([[
    WITH s AS (SELECT customer_id, %s AS r, %s AS f, %s AS m FROM segments_profile
               WHERE customer_id BETWEEN ? AND ? AND frequency > 0),
         g AS (SELECT customer_id, r, f, m, %s AS rfm_group FROM (SELECT *, (f + m + 1) / 2 AS fm FROM s))
    UPDATE segments_profile AS p SET r = g.r, f = g.f, m = g.m, rfm_group = g.rfm_group, changed = 1
    FROM g WHERE g.customer_id = p.customer_id
      AND (p.r IS NOT g.r OR p.f IS NOT g.f OR p.m IS NOT g.m)]]):format(r, f, m, GROUP_SQL), table.unpack(params))
  crm.db.exec([[UPDATE segments_profile SET r = NULL, f = NULL, m = NULL, rfm_group = NULL, changed = 1
                WHERE customer_id BETWEEN ? AND ? AND frequency = 0 AND r IS NOT NULL]], lo, hi)
end

return M
