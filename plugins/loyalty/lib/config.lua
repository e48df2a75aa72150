-- The program's settings (plugin.json "config", overridden per instance in
-- rapport.json), checked once when the plugin loads: a mistake stops the
-- plugin from loading with a message naming the setting, rather than
-- awarding wrong points.
local M = {}

local function fail(field, msg)
  error(("loyalty: config.%s: %s"):format(field, msg), 0)
end

local function int(v, field, min)
  if math.type(v) ~= "integer" then
    -- JSON numbers arrive as floats when written 1.0; accept whole ones.
    if type(v) == "number" and v == math.floor(v) then v = math.tointeger(v) end
  end
  if math.type(v) ~= "integer" or (min and v < min) then
    fail(field, ("must be a whole number%s, got %s"):format(min and (" >= " .. min) or "", tostring(v)))
  end
  return v
end

local function string_list(v, field)
  if type(v) ~= "table" then fail(field, "must be a list of event types") end
  local set = {}
  for i, t in ipairs(v) do
    if type(t) ~= "string" or t == "" then fail(field .. "[" .. i .. "]", "must be an event type") end
    set[t] = true
  end
  return set
end

local RULE_TYPES = {
  tier_multiplier = true, category = true, product = true, first_purchase = true,
  birthday = true, referral = true, lua = true,
}

function M.load(c)
  local cfg = {
    auto_enroll = c.auto_enroll ~= false,
    purchase = string_list(c.purchase_events or {}, "purchase_events"),
    refund = string_list(c.refund_events or {}, "refund_events"),
    pending_ms = int(c.pending_days or 0, "pending_days", 0) * 86400000,
    expiry_ms = int(c.expiry_days or 365, "expiry_days", 1) * 86400000,
    window_days = int(c.tier_window_days or 365, "tier_window_days", 1),
    allow_transfers = c.allow_transfers == true,
    batch = int(c.job_batch or 10000, "job_batch", 1),  -- at most 10,000: crm.db.query's page
    currencies = {},
    tiers = {},
    rules = {},
    reminder_days = {},
  }
  if cfg.batch > 10000 then fail("job_batch", "must be at most 10000") end
  if type(c.currencies) ~= "table" or next(c.currencies) == nil then
    fail("currencies", "must name at least one currency: {\"EUR\": {\"points\": 1, \"per\": 100}}")
  end
  for code, cur in pairs(c.currencies) do
    if type(code) ~= "string" or not code:match("^%u%u%u$") then fail("currencies", "'" .. tostring(code) .. "' is not an ISO 4217 code") end
    if type(cur) ~= "table" then fail("currencies." .. code, "must be an object") end
    cfg.currencies[code] = {
      points = int(cur.points or 1, "currencies." .. code .. ".points", 0),
      per = int(cur.per or 100, "currencies." .. code .. ".per", 1),
      spend_ppm = int(cur.spend_ppm or 1000000, "currencies." .. code .. ".spend_ppm", 0),
    }
  end
  if type(c.tiers) ~= "table" or #c.tiers == 0 then fail("tiers", "must list at least one tier") end
  local seen = {}
  for i, t in ipairs(c.tiers) do
    local f = "tiers[" .. i .. "]"
    if type(t) ~= "table" or type(t.name) ~= "string" or not t.name:match("^[%w_%-]+$") then
      fail(f .. ".name", "must be a name of letters, digits, '_' or '-'")
    end
    if seen[t.name] then fail(f .. ".name", "'" .. t.name .. "' is listed twice") end
    seen[t.name] = true
    local min = int(t.min, f .. ".min", 0)
    if i == 1 and min ~= 0 then fail(f .. ".min", "the first tier starts at 0") end
    if i > 1 and min <= cfg.tiers[i - 1].min then fail(f .. ".min", "must be above the tier before") end
    cfg.tiers[i] = { name = t.name, min = min, rank = i }
  end
  cfg.tier_rank = {}
  for _, t in ipairs(cfg.tiers) do cfg.tier_rank[t.name] = t.rank end
  cfg.basis = c.tier_basis or "points"
  if cfg.basis ~= "points" and cfg.basis ~= "spend" then fail("tier_basis", "must be \"points\" or \"spend\"") end
  local d = c.downgrade or "anniversary"
  if d ~= "anniversary" and d ~= "one_level" and d ~= "reevaluate" and not (type(d) == "string" and d:match("^lua:[%w_]+$")) then
    fail("downgrade", "must be \"anniversary\", \"one_level\", \"reevaluate\" or \"lua:<rule name>\"")
  end
  cfg.downgrade = d
  for i, n in ipairs(c.reminder_days or {}) do cfg.reminder_days[i] = int(n, "reminder_days[" .. i .. "]", 1) end
  for i, r in ipairs(c.rules or {}) do
    local f = "rules[" .. i .. "]"
    if type(r) ~= "table" or type(r.name) ~= "string" or not r.name:match("^[%w_]+$") then
      fail(f .. ".name", "must be a name of letters, digits or '_'")
    end
    if not RULE_TYPES[r.type] then fail(f .. ".type", "unknown rule type '" .. tostring(r.type) .. "'") end
    local rule = { name = r.name, type = r.type }
    if r.type == "tier_multiplier" then
      if type(r.tiers) ~= "table" then fail(f .. ".tiers", "must map tier names to a percentage") end
      rule.tiers = {}
      for name, pct in pairs(r.tiers) do
        if not cfg.tier_rank[name] then fail(f .. ".tiers", "no tier named '" .. tostring(name) .. "'") end
        rule.tiers[name] = int(pct, f .. ".tiers." .. name, 0)
      end
    elseif r.type == "category" then
      if type(r.category) ~= "string" then fail(f .. ".category", "must name a category") end
      rule.category = r.category
      rule.percent = int(r.percent, f .. ".percent", 0)
    elseif r.type == "product" then
      if type(r.sku) ~= "string" then fail(f .. ".sku", "must name a product") end
      rule.sku = r.sku
      rule.points = int(r.points, f .. ".points", 0)
    elseif r.type == "first_purchase" or r.type == "birthday" then
      rule.points = int(r.points, f .. ".points", 0)
    elseif r.type == "referral" then
      rule.referrer = int(r.referrer or 0, f .. ".referrer", 0)
      rule.referred = int(r.referred or 0, f .. ".referred", 0)
    elseif r.type == "lua" then
      if type(r.rule) ~= "string" then fail(f .. ".rule", "must name a Lua rule (rapport loyalty rule-set)") end
      rule.rule = r.rule
    end
    if r.limit ~= nil then
      local l = r.limit
      if type(l) ~= "table" or (l.per ~= "day" and l.per ~= "week" and l.per ~= "month") then
        fail(f .. ".limit", "must be {\"per\": \"day\"|\"week\"|\"month\", \"points\": N}")
      end
      rule.limit = { per = l.per, points = int(l.points, f .. ".limit.points", 0) }
    end
    cfg.rules[i] = rule
  end
  return cfg
end

-- The tier a qualifying value reaches.
function M.tier_for(cfg, value)
  local tier = cfg.tiers[1]
  for _, t in ipairs(cfg.tiers) do
    if value >= t.min then tier = t end
  end
  return tier
end

return M
