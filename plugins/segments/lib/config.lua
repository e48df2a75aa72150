-- The plugin's settings (plugin.json "config", overridden per instance in
-- rapport.json), checked once when it loads: a mistake names the setting.
local M = {}

local DAY = 86400000

local function fail(field, msg)
  error(("segments: config.%s: %s"):format(field, msg), 0)
end

local function int(v, field, min, max)
  if type(v) == "number" and v == math.floor(v) then v = math.tointeger(v) end
  if math.type(v) ~= "integer" or v < min or (max and v > max) then
    fail(field, ("must be a whole number from %d%s, got %s"):format(min, max and (" to " .. max) or "", tostring(v)))
  end
  return v
end

function M.load(c)
  local cfg = {
    purchase = {},
    property = c.amount_property or "amount",
    currency = c.currency or "EUR",
    rfm_window_ms = int(c.rfm_window_days or 365, "rfm_window_days", 1, 3650) * DAY,
    tier_event = c.tier_event or "loyalty.tier_changed",
    tier_property = c.tier_property or "to",
    batch = int(c.batch or 2000, "batch", 1, 10000),
    profile_lag_ms = int(c.profile_lag_ms or 5000, "profile_lag_ms", 0, 3600000),
    lifecycle = {},
  }
  if type(c.purchase_events) ~= "table" or #c.purchase_events == 0 then
    fail("purchase_events", "must list at least one event type")
  end
  for i, t in ipairs(c.purchase_events) do
    if type(t) ~= "string" or not t:match("^[%w_][%w_%.%-]*$") then fail("purchase_events[" .. i .. "]", "must be an event type") end
    cfg.purchase[t] = true
  end
  if type(cfg.property) ~= "string" or not cfg.property:match("^[%a_][%w_]*$") then
    fail("amount_property", "must be a property name")
  end
  if type(cfg.currency) ~= "string" or not cfg.currency:match("^%u%u%u$") then
    fail("currency", "must be an ISO 4217 code such as EUR")
  end
  if type(cfg.tier_event) ~= "string" or type(cfg.tier_property) ~= "string" then
    fail("tier_event", "tier_event and tier_property must be text")
  end
  local l = c.lifecycle or {}
  if type(l) ~= "table" then fail("lifecycle", "must be an object") end
  for k in pairs(l) do
    if k ~= "new_days" and k ~= "active_days" and k ~= "at_risk_days" and k ~= "lapsed_days" then
      fail("lifecycle." .. tostring(k), "unknown (new_days, active_days, at_risk_days, lapsed_days)")
    end
  end
  local new = int(l.new_days or 30, "lifecycle.new_days", 1, 3650)
  local active = int(l.active_days or 90, "lifecycle.active_days", 1, 3650)
  local at_risk = int(l.at_risk_days or 180, "lifecycle.at_risk_days", 1, 3650)
  local lapsed = int(l.lapsed_days or 365, "lifecycle.lapsed_days", 1, 3650)
  if not (active < at_risk and at_risk < lapsed) then
    fail("lifecycle", "needs active_days < at_risk_days < lapsed_days")
  end
  cfg.lifecycle = { new_ms = new * DAY, active_ms = active * DAY, at_risk_ms = at_risk * DAY, lapsed_ms = lapsed * DAY }
  return cfg
end

return M
