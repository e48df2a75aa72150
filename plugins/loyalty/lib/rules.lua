-- Earning rules: the configured ones (config.rules) and operators' Lua
-- rules (loyalty_lua_rules, set with `rapport loyalty rule-set`). Each rule
-- yields points for a purchase, capped by its limit per day, week or month.
local dates = require("lib.dates")

local M = {}

-- ---- Lua rules ----------------------------------------------------------------

-- A copy of a table of functions one level deep: a rule may change its
-- copy, never the plugin's own.
local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = type(v) == "table" and copy(v) or v end
  return c
end

-- What a Lua rule sees: copies of the crm API (with this plugin's
-- permissions) and of the pure parts of the standard library. Changing
-- them changes nothing outside the rule; it cannot reach the plugin's own
-- modules or globals.
local function rule_env()
  return {
    crm = copy(crm), math = copy(math), string = copy(string), table = copy(table), utf8 = copy(utf8),
    pairs = pairs, ipairs = ipairs, next = next, select = select, type = type,
    tostring = tostring, tonumber = tonumber, error = error, assert = assert,
    pcall = pcall, os = { time = os.time, date = os.date },
  }
end

-- Compiles a rule's source: the chunk must return a function. Returns the
-- function, or nil and the error (with the line).
function M.compile(name, source)
  local chunk, err = load(source, "=lua rule " .. name, "t", rule_env())
  if not chunk then return nil, err end
  local ok, fn = pcall(chunk)
  if not ok then return nil, fn end
  if type(fn) ~= "function" then
    return nil, ("lua rule %s: the chunk must return a function, returned %s"):format(name, type(fn))
  end
  return fn
end

local compiled = {} -- name -> {source = text, fn = function}

-- The function of the Lua rule called name, compiled once per source text.
function M.lua_rule(name)
  local source = crm.db.value("SELECT source FROM loyalty_lua_rules WHERE name = ?", name)
  if not source then error(("lua rule '%s' is not defined (rapport loyalty rule-set %s --source @FILE)"):format(name, name), 0) end
  local c = compiled[name]
  if c and c.source == source then return c.fn end
  local fn, err = M.compile(name, source)
  if not fn then error(err, 0) end
  compiled[name] = { source = source, fn = fn }
  return fn
end

-- Runs Lua rule name with ctx; its result must be a whole number of points
-- (or nil for none).
function M.run_lua(name, ctx)
  local v = M.lua_rule(name)(ctx)
  if v == nil then return 0 end
  local n = math.tointeger(v)
  if not n then
    error(("lua rule %s returned %s, not a whole number of points"):format(name, tostring(v)), 0)
  end
  return n
end

-- ---- limits -------------------------------------------------------------------

-- Caps points by the rule's limit for the period of at, and counts what is
-- granted. Returns the points granted.
function M.limit(rule, cid, at, points)
  if not rule.limit or points <= 0 then return points end
  local period = dates.period(rule.limit.per, at)
  local used = crm.db.value([[SELECT points FROM loyalty_rule_usage
                              WHERE customer_id = ? AND rule = ? AND period = ?]], cid, rule.name, period) or 0
  local granted = math.max(0, math.min(points, rule.limit.points - used))
  if granted > 0 then
    crm.db.exec([[INSERT INTO loyalty_rule_usage(customer_id, rule, period, points) VALUES (?1, ?2, ?3, ?4)
                  ON CONFLICT(customer_id, rule, period) DO UPDATE SET points = points + ?4]],
                cid, rule.name, period, granted)
  end
  return granted
end

-- ---- purchases ----------------------------------------------------------------

-- An item's amount in minor units: its "amount", or "price" x "quantity".
local function item_amount(item)
  local a = math.tointeger(item.amount)
  if a then return a end
  local p, q = math.tointeger(item.price), math.tointeger(item.quantity or 1)
  return (p and q) and p * q or 0
end

local function base_of(cur, amount)
  return cur and (amount // cur.per) * cur.points or 0
end

-- The points of a purchase. ctx = {customer_id, member, amount, currency,
-- items, event, at}. Returns the total (never negative) and the points per
-- rule, as {rule = points}.
function M.purchase(cfg, ctx)
  local cur = cfg.currencies[ctx.currency]
  local base = base_of(cur, ctx.amount)
  local parts, total = { base = base }, base
  ctx.base_points = base
  for _, r in ipairs(cfg.rules) do
    local p = 0
    if r.type == "tier_multiplier" then
      local pct = r.tiers[ctx.member.tier]
      if pct then p = base * pct // 100 - base end
    elseif r.type == "category" then
      for _, item in ipairs(ctx.items) do
        if item.category == r.category then
          local b = base_of(cur, item_amount(item))
          p = p + b * r.percent // 100 - b
        end
      end
    elseif r.type == "product" then
      for _, item in ipairs(ctx.items) do
        if item.sku == r.sku then p = p + r.points * (math.tointeger(item.quantity) or 1) end
      end
    elseif r.type == "first_purchase" then
      if ctx.member.purchases == 0 then p = r.points end
    elseif r.type == "lua" then
      p = M.run_lua(r.rule, ctx)
    end
    p = M.limit(r, ctx.customer_id, ctx.at, p)
    if p ~= 0 then
      parts[r.name] = p
      total = total + p
    end
  end
  return math.max(0, total), parts
end

-- The points rules of a type give on their own (birthday, referral):
-- {rule = points} after limits, and the total.
function M.fixed(cfg, type_, field, cid, at)
  local parts, total = {}, 0
  for _, r in ipairs(cfg.rules) do
    if r.type == type_ then
      local p = M.limit(r, cid, at, r[field] or 0)
      if p > 0 then
        parts[r.name] = p
        total = total + p
      end
    end
  end
  return total, parts
end

return M
