-- Tiers: a member's level from what they earned (or spent) over a rolling
-- window of days. Upgrades happen as soon as the threshold is crossed; the
-- nightly job takes the days that left the window off each member's totals
-- and applies the program's downgrade policy.
local config = require("lib.config")
local dates = require("lib.dates")
local rules = require("lib.rules")

local M = {}

local function value_of(cfg, m)
  return cfg.basis == "spend" and m.qual_spend or m.qual_points
end

local function change(cfg, m, to, at, why, event_key)
  if to == m.tier then return end
  local up = cfg.tier_rank[to] > (cfg.tier_rank[m.tier] or 0)
  crm.db.exec("UPDATE loyalty_members SET tier = ?, tier_since = ? WHERE customer_id = ?", to, at, m.customer_id)
  crm.events.emit {
    type = "loyalty.tier_changed", customer_id = m.customer_id,
    id = ("loyalty:tier:%d:%s"):format(m.customer_id, event_key),
    occurred_at = at,
    properties = { from = m.tier, to = to, direction = up and "up" or "down", reason = why,
                   qualifying = value_of(cfg, m) },
  }
  m.tier = to
end

-- Counts points and spend earned at time at towards the window (nothing
-- when at is already outside it), then upgrades the member at once when a
-- threshold is crossed. Negative amounts (a refund) take off what the day
-- still holds.
function M.qualify(cfg, m, at, points, spend, now, event_key)
  local day = dates.day(at)
  if day <= dates.day(now) - cfg.window_days then return end
  if points < 0 or spend < 0 then
    local q = crm.db.one("SELECT points, spend FROM loyalty_qual WHERE customer_id = ? AND day = ?", m.customer_id, day)
    if not q then return end
    points = -math.min(-points, q.points)
    spend = -math.min(-spend, q.spend)
  end
  if points == 0 and spend == 0 then return end
  crm.db.exec([[INSERT INTO loyalty_qual(customer_id, day, points, spend) VALUES (?1, ?2, ?3, ?4)
                ON CONFLICT(customer_id, day) DO UPDATE SET points = points + ?3, spend = spend + ?4]],
              m.customer_id, day, points, spend)
  crm.db.exec([[UPDATE loyalty_members SET qual_points = qual_points + ?2, qual_spend = qual_spend + ?3
                WHERE customer_id = ?1]], m.customer_id, points, spend)
  m.qual_points = m.qual_points + points
  m.qual_spend = m.qual_spend + spend
  local t = config.tier_for(cfg, value_of(cfg, m))
  if t.rank > (cfg.tier_rank[m.tier] or 0) then change(cfg, m, t.name, now, "threshold", event_key) end
end

-- Takes the days that left the window off the members' totals, up to
-- cutoff (inclusive), a chunk at a time; each chunk's update and deletion
-- go together, so a run cut short resumes where it stopped.
function M.roll_window(cfg, cutoff)
  local through = crm.db.value("SELECT value FROM loyalty_state WHERE key = 'qual_through'")
  if not through then
    through = crm.db.value("SELECT min(day) - 1 FROM loyalty_qual") or cutoff
    through = math.min(through, cutoff)
  end
  local rolled = 0
  for day = through + 1, cutoff do
    local after = math.mininteger
    while true do
      local last = crm.db.value([[SELECT max(customer_id) FROM (SELECT customer_id FROM loyalty_qual
                                  WHERE day = ?1 AND customer_id > ?2 ORDER BY customer_id LIMIT ?3)]],
                                day, after, cfg.batch)
      if not last then break end
      crm.db.atomic(function()
        crm.db.exec([[UPDATE loyalty_members AS m SET qual_points = m.qual_points - q.points,
                                                      qual_spend = m.qual_spend - q.spend
                      FROM loyalty_qual AS q
                      WHERE q.day = ?1 AND q.customer_id > ?2 AND q.customer_id <= ?3
                        AND m.customer_id = q.customer_id]], day, after, last)
        rolled = rolled + crm.db.exec([[DELETE FROM loyalty_qual
                                        WHERE day = ?1 AND customer_id > ?2 AND customer_id <= ?3]],
                                      day, after, last)
      end)
      after = last
    end
    crm.db.exec([[INSERT INTO loyalty_state(key, value) VALUES ('qual_through', ?1)
                  ON CONFLICT(key) DO UPDATE SET value = ?1]], day)
  end
  return rolled
end

-- SQL for the tier a member's totals reach.
local function tier_case(cfg)
  local col = cfg.basis == "spend" and "qual_spend" or "qual_points"
  local parts = { "CASE" }
  for i = #cfg.tiers, 2, -1 do
    parts[#parts + 1] = ("WHEN %s >= %d THEN '%s'"):format(col, cfg.tiers[i].min, cfg.tiers[i].name)
  end
  parts[#parts + 1] = ("ELSE '%s' END"):format(cfg.tiers[1].name)
  return table.concat(parts, " ")
end

-- The tier the policy gives a member under review.
local function policy_tier(cfg, m, computed, today)
  local p = cfg.downgrade
  if p == "reevaluate" or p == "anniversary" then return computed end
  if p == "one_level" then
    local rank = cfg.tier_rank[m.tier] or 1
    local want = cfg.tier_rank[computed]
    if want >= rank then return computed end
    return cfg.tiers[rank - 1].name
  end
  local fn = rules.lua_rule(p:sub(5))
  local t = fn({ member = m, computed = computed, tiers = cfg.tiers, today = today })
  if t == nil then return m.tier end
  if not cfg.tier_rank[t] then
    error(("lua rule %s returned the tier '%s', which the program does not have"):format(p:sub(5), tostring(t)), 0)
  end
  return t
end

-- Applies the downgrade policy at time now: every member whose tier differs
-- from their totals ("reevaluate"), or the members whose membership
-- anniversary is today (the other policies), once each; anniversaries of
-- days the job missed (the server was down) are caught up, up to 31 days
-- back. Returns the number of members whose tier changed.
function M.review(cfg, now)
  local today = dates.day(now)
  local case = tier_case(cfg)
  local changed = 0
  local function run(sql, day, per_row)
    local after = math.mininteger
    while true do
      -- The page is read inside its atomic block: the host may run events
      -- between two blocks, and a member upgraded meanwhile must be seen so.
      local n = crm.db.atomic(function()
        local batch = per_row and crm.db.query(sql, after, cfg.batch, day, day * dates.DAY)
                               or crm.db.query(sql, after, cfg.batch)
        for _, m in ipairs(batch) do
          local to = policy_tier(cfg, m, m.computed, day)
          if to ~= m.tier then
            change(cfg, m, to, now, cfg.downgrade, "review:" .. day)
            changed = changed + 1
          end
          if per_row then per_row(m) end
        end
        if #batch > 0 then after = batch[#batch].customer_id end
        return #batch
      end)
      if n == 0 then break end
    end
  end
  if cfg.downgrade == "reevaluate" then
    run(([[SELECT *, %s AS computed FROM loyalty_members
           WHERE customer_id > ?1 AND tier != %s ORDER BY customer_id LIMIT ?2]]):format(case, case), today)
    return changed
  end
  local last = crm.db.value("SELECT value FROM loyalty_state WHERE key = 'reviewed_through'") or today - 1
  for day = math.max(last + 1, today - 31), today do
    local mds = dates.anniversaries_on(day * dates.DAY)
    run(([[SELECT *, %s AS computed FROM loyalty_members
           WHERE customer_id > ?1 AND anniv_md IN ('%s', '%s')
             AND (tier_reviewed_day IS NULL OR tier_reviewed_day < ?3) AND joined_at < ?4
           ORDER BY customer_id LIMIT ?2]]):format(case, mds[1], mds[2] or mds[1]), day,
        function(m)
          crm.db.exec("UPDATE loyalty_members SET tier_reviewed_day = ? WHERE customer_id = ?", day, m.customer_id)
        end)
    crm.db.exec([[INSERT INTO loyalty_state(key, value) VALUES ('reviewed_through', ?1)
                  ON CONFLICT(key) DO UPDATE SET value = ?1]], day)
  end
  return changed
end

return M
