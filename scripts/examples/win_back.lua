-- Operator script: emits a `campaign.win_back` event for every customer the
-- `activity` plugin flagged dormant, at most once per customer and campaign
-- (the event id makes a re-run a no-op). Journeys and other plugins react to
-- the event like to any other.
--
--   rapport run scripts/examples/win_back.lua [CAMPAIGN]
local campaign = arg[1] or "winter"
local sent = 0
for r in crm.db.rows("SELECT customer_id FROM activity_customers WHERE dormant_since IS NOT NULL") do
  local _, duplicate = crm.events.emit {
    type = "campaign.win_back",
    id = ("win_back:%s:%d"):format(campaign, r.customer_id),
    customer_id = r.customer_id,
    properties = { campaign = campaign },
  }
  if not duplicate then sent = sent + 1 end
end
crm.log.info("win-back", campaign, ":", sent, "new event(s)")
return { campaign = campaign, emitted = sent }
