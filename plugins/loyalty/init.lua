-- loyalty: a points program on the public plugin API (docs/loyalty.md).
--
--   lib/config.lua   the program's settings, checked when the plugin loads
--   lib/dates.lua    UTC calendar arithmetic (anniversaries, rule periods)
--   lib/ledger.lua   the ledger and its lots: credit, debit, oldest expiry first
--   lib/rules.lua    earning rules, configured and Lua, with their limits
--   lib/tiers.lua    qualifying totals over a rolling window, upgrades, the
--                    nightly downgrade policies
--   lib/ops.lua      what people do by hand, for routes and commands
--
-- Purchases and refunds arrive as events (order.*); every effect is keyed
-- by what caused it (the order id, the refund), so a replayed event changes
-- nothing.
local config = require("lib.config")
local dates = require("lib.dates")
local ledger = require("lib.ledger")
local ops = require("lib.ops")
local rules = require("lib.rules")
local tiers = require("lib.tiers")

local cfg = config.load(crm.config)

local M = { handlers = {}, jobs = {}, routes = {}, commands = {} }

-- ---- events -------------------------------------------------------------------

local function member_for(cid, at)
  local m = ledger.member(cid)
  if m or not cfg.auto_enroll then return m end
  return (ledger.enroll(cfg, cid, at))
end

-- A property's value, nil for JSON null as for absent (crm.json.null is a
-- value in Lua, and a true one).
local function given(v)
  if v == crm.json.null then return nil end
  return v
end

local function amount_of(p, event)
  local amount = math.tointeger(given(p.amount))
  if amount == nil or amount < 0 then
    error(("event %d: properties.amount must be a non-negative integer (minor units), got %s")
          :format(event.id, tostring(given(p.amount))), 0)
  end
  return amount
end

local function currency_of(p, event)
  local c = given(p.currency)
  if c == nil then
    local only, n = nil, 0
    for code in pairs(cfg.currencies) do only, n = code, n + 1 end
    if n == 1 then return only end
    error(("event %d: properties.currency is needed (the program has several currencies)"):format(event.id), 0)
  end
  return tostring(c)
end

local function on_purchase(event)
  local p = event.properties
  local order_id = tostring(given(p.order_id) or event.event_id or ("event:" .. event.id))
  if crm.db.value("SELECT 1 FROM loyalty_orders WHERE order_id = ?", order_id) then return end
  local amount, currency = amount_of(p, event), currency_of(p, event)
  local cid, at, now = event.customer_id, event.occurred_at, crm.time.now()
  local m = member_for(cid, at)
  if not m then return end
  local items = type(given(p.items)) == "table" and p.items or {}
  local points, parts = rules.purchase(cfg, {
    customer_id = cid, member = m, amount = amount, currency = currency, items = items,
    event = event, at = at,
  })
  local cur = cfg.currencies[currency]
  local spend = cur and amount * cur.spend_ppm // 1000000 or 0
  local source = "order:" .. order_id
  local lot
  if points > 0 then
    lot = select(2, ledger.credit(cid, points, {
      kind = "earn", source = source, actor = "event:" .. event.id, detail = parts, at = at,
      active_at = at + cfg.pending_ms, expires_at = at + cfg.expiry_ms,
      reason = "purchase " .. order_id,
    }))
  end
  crm.db.exec([[INSERT INTO loyalty_orders(order_id, customer_id, amount, currency, spend, points, lot_id, day, at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)]], order_id, cid, amount, currency, spend, points, lot,
              dates.day(at), at)
  crm.db.exec("UPDATE loyalty_members SET purchases = purchases + 1 WHERE customer_id = ?", cid)
  m.purchases = m.purchases + 1
  tiers.qualify(cfg, m, at, points, spend, now, source)
end

-- A refund or return reverses the points its order earned, in proportion
-- to the amount refunded so far (all of what is left when no amount is
-- given; a refund of a free order returns all of its points): first from
-- the order's own lot, then from the lots that expire first. Points already
-- spent cannot be taken back below zero: loyalty_refunds records what the
-- refund wanted and what it took, and is what makes it apply once.
local function on_refund(event)
  local p = event.properties
  local order_id = given(p.order_id)
  if order_id == nil then error(("event %d: properties.order_id names the order refunded"):format(event.id), 0) end
  local o = crm.db.one("SELECT * FROM loyalty_orders WHERE order_id = ?", tostring(order_id))
  if not o then return end -- an order that earned nothing here
  local key = tostring(given(p.refund_id) or event.event_id or ("event:" .. event.id))
  if crm.db.value("SELECT 1 FROM loyalty_refunds WHERE order_id = ? AND refund_key = ?", o.order_id, key) then
    return
  end
  local cid, now = o.customer_id, crm.time.now()
  local left = o.amount - o.refunded
  local amount = given(p.amount) ~= nil and math.min(amount_of(p, event), left) or left
  local refunded, target = o.refunded + amount, o.points
  local spend_back = 0
  if o.amount > 0 then
    target = o.points * refunded // o.amount
    spend_back = o.spend * refunded // o.amount - o.spend * o.refunded // o.amount
  end
  local want = math.max(0, target - o.reversed)
  crm.db.exec("UPDATE loyalty_orders SET refunded = ?, reversed = ? WHERE order_id = ?",
              refunded, math.max(target, o.reversed), o.order_id)
  local taken = 0
  if want > 0 then
    taken = select(2, ledger.debit(cid, want, {
      kind = "reverse", source = "refund:" .. o.order_id .. ":" .. key, actor = "event:" .. event.id,
      at = event.occurred_at, now = now, lot = o.lot_id, include_pending = true, partial = true,
      reason = "refund of order " .. o.order_id,
      detail = { order_id = o.order_id, amount = amount, wanted = want },
    }))
    if taken < want then
      crm.log.warn(("order %s: %d of %d point(s) to reverse were already spent"):format(o.order_id, want - taken, want))
    end
  end
  crm.db.exec([[INSERT INTO loyalty_refunds(order_id, refund_key, customer_id, amount, wanted, taken, at)
                VALUES (?, ?, ?, ?, ?, ?, ?)]], o.order_id, key, cid, amount, want, taken, event.occurred_at)
  local m = ledger.member(cid)
  if m then tiers.qualify(cfg, m, o.at, -want, -spend_back, now, "refund:" .. o.order_id .. ":" .. key) end
end

function M.handlers.on_order(event)
  if cfg.purchase[event.type] then on_purchase(event)
  elseif cfg.refund[event.type] then on_refund(event) end
end

-- referral.completed: the event's customer was referred by
-- properties.referrer_id (a customer id) or properties.referrer_external_id.
-- The referral rules give points to both, once per referred customer.
function M.handlers.on_referral(event)
  local p = event.properties
  local referrer = math.tointeger(given(p.referrer_id))
  if not referrer and given(p.referrer_external_id) then
    referrer = crm.customers.find("external_id", tostring(p.referrer_external_id))
  end
  if not referrer then error(("event %d: properties.referrer_id or referrer_external_id names the referrer"):format(event.id), 0) end
  local referred, at = event.customer_id, event.occurred_at
  if referrer == referred then return end
  local dm = member_for(referred, at)
  -- A customer is referred once: the first referral counts, for both sides.
  if not dm or dm.referred_by then return end
  local rm = member_for(referrer, at)
  crm.db.exec("UPDATE loyalty_members SET referred_by = ? WHERE customer_id = ?", referrer, referred)
  local now = crm.time.now()
  local function give(m, field, source)
    if not m or ledger.find(m.customer_id, source) then return end
    local points, parts = rules.fixed(cfg, "referral", field, m.customer_id, at)
    if points <= 0 then return end
    ledger.credit(m.customer_id, points, { kind = "earn", source = source, actor = "event:" .. event.id,
                                           detail = parts, at = at, expires_at = at + cfg.expiry_ms,
                                           reason = field == "referrer" and ("referred customer " .. referred)
                                                                      or ("referred by customer " .. referrer) })
    tiers.qualify(cfg, m, at, points, 0, now, source)
  end
  give(rm, "referrer", "referral:" .. referred)
  give(dm, "referred", "referred:" .. referred)
end

-- loyalty.enroll: {birthday = "MM-DD"} optional.
function M.handlers.on_enroll(event)
  local b = given(event.properties.birthday)
  local md = b and dates.parse_month_day(b)
  ledger.enroll(cfg, event.customer_id, event.occurred_at, md)
end

-- ---- jobs ---------------------------------------------------------------------
-- Set-based SQL in chunks of job_batch rows, each chunk atomic, so that the
-- host can slice a run between chunks and a run cut short resumes. A run
-- that starts late (the server was down) works as of when it runs.

-- Lots past their expiry: one expire row per lot, the lot emptied, and one
-- loyalty.points_expired event per customer and run. A chunk's rows, lots
-- and events commit together and an emptied lot never expires again, so
-- neither the rows nor the events need an idempotency key (none is
-- written: each would be one more index entry at a random place per lot,
-- and the nightly run over millions of lots is bound by such writes).
function M.jobs.expire(job)
  local now = math.max(job.scheduled_for, crm.time.now())
  local total = 0
  while true do
    local b = crm.db.one([[SELECT expires_at, id FROM loyalty_lots WHERE remaining > 0 AND expires_at <= ?1
                           ORDER BY expires_at, id LIMIT 1 OFFSET ?2]], now, cfg.batch - 1)
    local bexp, bid = now, math.maxinteger
    if b then bexp, bid = b.expires_at, b.id end
    local n = crm.db.atomic(function()
      -- GROUP BY +customer_id: grouped by the index on customers, SQLite
      -- would walk every live lot (5M at 1M members: 0.4 s a chunk, the
      -- server's loop held) instead of the chunk's range of the expiry
      -- index.
      local per = crm.db.query([[SELECT customer_id, sum(remaining) AS points FROM loyalty_lots
                                 WHERE remaining > 0 AND expires_at <= ?1 AND (expires_at, id) <= (?2, ?3)
                                 GROUP BY +customer_id]], now, bexp, bid)
      local count = crm.db.exec([[INSERT INTO loyalty_ledger(customer_id, kind, points, lot_id, source, actor, at)
                                  SELECT customer_id, 'expire', -remaining, id, NULL, 'job:expire', ?1
                                  FROM loyalty_lots
                                  WHERE remaining > 0 AND expires_at <= ?1 AND (expires_at, id) <= (?2, ?3)]],
                                now, bexp, bid)
      crm.db.exec([[UPDATE loyalty_lots SET remaining = 0, pending = 0
                    WHERE remaining > 0 AND expires_at <= ?1 AND (expires_at, id) <= (?2, ?3)]], now, bexp, bid)
      for _, r in ipairs(per) do
        crm.events.emit { type = "loyalty.points_expired", customer_id = r.customer_id, occurred_at = now,
                          properties = { points = r.points } }
      end
      return count
    end)
    total = total + n
    if not b then break end
  end
  crm.log.info("expiry:", total, "lot(s) expired")
end

-- Tier window and downgrade policy.
function M.jobs.tiers(job)
  local now = math.max(job.scheduled_for, crm.time.now())
  local rolled = tiers.roll_window(cfg, dates.day(now) - cfg.window_days)
  local changed = tiers.review(cfg, now)
  crm.log.info("tiers:", rolled, "qualifying day(s) rolled off,", changed, "tier change(s)")
end

-- Pending points whose return window ended: announced once per customer.
function M.jobs.activate(job)
  local now = math.max(job.scheduled_for, crm.time.now())
  while true do
    local lots = crm.db.query([[SELECT id, customer_id, remaining FROM loyalty_lots
                                WHERE pending = 1 AND active_at <= ? ORDER BY active_at, id LIMIT ?]],
                              now, cfg.batch)
    if #lots == 0 then break end
    crm.db.atomic(function()
      local per = {}
      for _, l in ipairs(lots) do
        crm.db.exec("UPDATE loyalty_lots SET pending = 0 WHERE id = ?", l.id)
        per[l.customer_id] = (per[l.customer_id] or 0) + l.remaining
      end
      for cid, points in pairs(per) do
        if points > 0 then
          crm.events.emit { type = "loyalty.points_activated", customer_id = cid, occurred_at = now,
                            id = ("loyalty:activated:%d:%d:%d"):format(cid, now, lots[#lots].id),
                            properties = { points = points } }
        end
      end
    end)
  end
end

-- Birthday points, once a year, on the birthday (UTC day; 29 February
-- birthdays on 28 February in other years).
function M.jobs.birthdays(job)
  local now = math.max(job.scheduled_for, crm.time.now())
  local y = dates.civil(dates.day(now))
  local days = dates.anniversaries_on(now)
  local after = math.mininteger
  while true do
    local batch = crm.db.query([[SELECT customer_id FROM loyalty_members
                                 WHERE birth_md IN (?1, ?2) AND customer_id > ?3
                                 ORDER BY customer_id LIMIT ?4]], days[1], days[2] or days[1], after, cfg.batch)
    if #batch == 0 then break end
    crm.db.atomic(function()
      for _, r in ipairs(batch) do
        local source = "birthday:" .. y
        if not ledger.find(r.customer_id, source) then
          local points, parts = rules.fixed(cfg, "birthday", "points", r.customer_id, now)
          if points > 0 then
            ledger.credit(r.customer_id, points, { kind = "earn", source = source, actor = "job:birthdays",
                                                   detail = parts, at = now, expires_at = now + cfg.expiry_ms,
                                                   reason = "birthday " .. y })
            tiers.qualify(cfg, ledger.member(r.customer_id), now, points, 0, now, source)
            crm.events.emit { type = "loyalty.birthday_bonus", customer_id = r.customer_id, occurred_at = now,
                              id = ("loyalty:birthday:%d:%d"):format(r.customer_id, y),
                              properties = { points = points } }
          end
        end
      end
    end)
    after = batch[#batch].customer_id
  end
end

-- loyalty.points_expiring, reminder_days before points expire: one event per
-- customer, expiry day and reminder.
function M.jobs.reminders(job)
  local now = math.max(job.scheduled_for, crm.time.now())
  for _, d in ipairs(cfg.reminder_days) do
    local day = dates.day(now) + d
    local from, to = day * dates.DAY, (day + 1) * dates.DAY
    local after = math.mininteger
    while true do
      local batch = crm.db.query([[SELECT customer_id, sum(remaining) AS points, min(expires_at) AS expires_at
                                   FROM loyalty_lots WHERE remaining > 0 AND expires_at >= ?1 AND expires_at < ?2
                                     AND customer_id > ?3
                                   GROUP BY customer_id ORDER BY customer_id LIMIT ?4]], from, to, after, cfg.batch)
      if #batch == 0 then break end
      crm.db.atomic(function()
        for _, r in ipairs(batch) do
          crm.events.emit { type = "loyalty.points_expiring", customer_id = r.customer_id, occurred_at = now,
                            id = ("loyalty:expiring:%d:%d:%d"):format(r.customer_id, day, d),
                            properties = { points = r.points, expires_at = r.expires_at, days = d } }
        end
      end)
      after = batch[#batch].customer_id
    end
  end
end

-- ---- routes and commands -------------------------------------------------------

-- A route: runs op under a savepoint; a refusal becomes its status.
local function route(fn)
  return function(req)
    local body = type(req.body) == "table" and req.body or {}
    local ok, res = ops.attempt(fn, req, body, req.query or {},
                                req.key_id and ("key:" .. req.key_id) or "token")
    if ok then return 200, res end
    return res.status, { error = { code = res.code, message = res.message } }
  end
end

-- A command: the same operation; a refusal is its error message.
local function command(fn, text)
  return function(input)
    local ok, res = ops.attempt(fn, input, input.args, input.options, "cli")
    if not ok then error(res.message, 0) end
    return res, text and text(res) or nil
  end
end

local function both(name, for_route, for_command, text)
  M.routes[name] = route(for_route)
  M.commands[name] = command(for_command, text)
end

local now = crm.time.now

both("balance",
  function(_, _, q) return ops.balance(cfg, ops.customer(q.customer), now()) end,
  function(_, a) return ops.balance(cfg, ops.customer(a[1]), now()) end,
  function(r)
    return ("customer %d: %d point(s), %d spendable, %d pending; tier %s"):format(
      r.customer_id, r.balance, r.available, r.pending, r.tier)
  end)
both("history",
  function(_, _, q) return ops.history(ops.customer(q.customer), q.limit, q.before) end,
  function(_, a, o) return ops.history(ops.customer(a[1]), o.limit, o.before) end,
  function(r)
    local lines = {}
    for _, e in ipairs(r.entries) do
      lines[#lines + 1] = ("#%-8d %s  %-8s %+8d  %s"):format(e.id, crm.time.format(e.at), e.kind, e.points,
                                                           e.reason or e.source or "")
    end
    return #lines > 0 and table.concat(lines, "\n") or "no entries"
  end)
both("enroll",
  function(_, b) return ops.enroll(cfg, ops.customer(b.customer), b.birthday, now()) end,
  function(_, a, o) return ops.enroll(cfg, ops.customer(a[1]), o.birthday, now()) end,
  function(r) return ("customer %d %s (tier %s)"):format(r.customer_id, r.enrolled and "enrolled" or "was already a member", r.tier) end)
for _, kind in ipairs({ "earn", "adjust" }) do
  both(kind,
    function(_, b, _, actor) return ops.manual(cfg, kind, ops.customer(b.customer), b.points, b.reason, b.request_id, actor, now()) end,
    function(_, a, o, actor) return ops.manual(cfg, kind, ops.customer(a[1]), a[2], o.reason, o["request-id"], actor, now()) end,
    function(r) return ("%+d point(s)%s; balance %d"):format(r.points, r.duplicate and " (already applied)" or "", r.balance) end)
end
both("redeem",
  function(_, b, _, actor) return ops.redeem(ops.customer(b.customer), b.reward, b.request_id, actor, now()) end,
  function(_, a, o, actor) return ops.redeem(ops.customer(a[1]), a[2], o["request-id"], actor, now()) end,
  function(r) return ("coupon %s, valid until %s; balance %d"):format(r.coupon, crm.time.format(r.expires_at), r.balance) end)
both("transfer",
  function(_, b, _, actor) return ops.transfer(cfg, ops.customer(b.from), ops.customer(b.to), b.points, b.request_id, actor, now()) end,
  function(_, a, o, actor) return ops.transfer(cfg, ops.customer(a[1]), ops.customer(a[2]), a[3], o["request-id"], actor, now()) end,
  function(r) return ("%d point(s) transferred%s"):format(r.points, r.duplicate and " (already applied)" or "") end)
both("rewards",
  function() return ops.rewards() end,
  function() return ops.rewards() end,
  function(list)
    local lines = {}
    for _, r in ipairs(list) do
      lines[#lines + 1] = ("%-16s %8d pts  %-30s stock %s%s"):format(r.code, r.cost, r.name,
        r.stock == nil and "unlimited" or tostring(r.stock), r.active == 1 and "" or "  (inactive)")
    end
    return #lines > 0 and table.concat(lines, "\n") or "no rewards"
  end)
both("reward_set",
  function(req, b)
    ops.require_staff(req.role)
    return ops.reward_set(b, now())
  end,
  function(_, a, o)
    local active -- nil: unchanged
    if o.inactive then active = false elseif o.active then active = true end
    return ops.reward_set({ code = a[1], name = o.name, cost = o.cost, stock = o.stock,
                            per_customer = o["per-customer"], valid_days = o["valid-days"],
                            active = active }, now())
  end)
both("coupon_use",
  function(_, b) return ops.coupon_use(b.code, now()) end,
  function(_, a) return ops.coupon_use(a[1], now()) end,
  function(r) return ("coupon %s used"):format(r.coupon) end)
both("rules",
  function() return ops.rules(cfg) end,
  function() return ops.rules(cfg) end)
both("rule_set",
  function(req, b)
    ops.require_staff(req.role)
    return ops.rule_set(b.name, b.source, b.remove == true, now())
  end,
  function(_, a, o) return ops.rule_set(a[1], o.source, o.remove == true, now()) end,
  function(r) return ("lua rule %s %s"):format(r.name, r.removed and "removed" or "saved") end)

-- ---- the unified view and data-subject requests --------------------------------

function M.profile(customer_id)
  local m = ledger.member(customer_id)
  if not m then return nil end
  local available, pending = ledger.available(customer_id, crm.time.now())
  return { balance = m.balance, available = available, pending = pending, tier = m.tier,
           tier_since = m.tier_since, joined_at = m.joined_at }
end

-- Every row, however many (crm.db.query stops at 10,000).
local function all(sql, ...)
  local out = {}
  for r in crm.db.rows(sql, ...) do out[#out + 1] = r end
  return crm.json.array(out)
end

function M.export(customer_id)
  local m = ledger.member(customer_id)
  local orders = all("SELECT * FROM loyalty_orders WHERE customer_id = ?", customer_id)
  if not m and #orders == 0 then return nil end
  return {
    member = m or crm.json.null,
    ledger = all("SELECT * FROM loyalty_ledger WHERE customer_id = ? ORDER BY id", customer_id),
    lots = all("SELECT * FROM loyalty_lots WHERE customer_id = ? ORDER BY id", customer_id),
    orders = orders,
    refunds = all("SELECT * FROM loyalty_refunds WHERE customer_id = ?", customer_id),
    coupons = all("SELECT * FROM loyalty_coupons WHERE customer_id = ?", customer_id),
    qualifying_days = all("SELECT day, points, spend FROM loyalty_qual WHERE customer_id = ? ORDER BY day", customer_id),
    rule_usage = all("SELECT rule, period, points FROM loyalty_rule_usage WHERE customer_id = ?", customer_id),
  }
end

-- Erasure keeps the ledger's anonymous totals (points issued, redeemed,
-- expired, per day) under customer 0 and forgets everything else, including
-- the mentions of this customer in other members' rows (transfers,
-- referrals).
function M.erase(customer_id)
  crm.db.exec([[UPDATE loyalty_ledger SET customer_id = 0, source = NULL, reason = NULL, actor = NULL,
                                          detail = NULL WHERE customer_id = ?]], customer_id)
  crm.db.exec([[UPDATE loyalty_ledger SET source = NULL, reason = NULL, detail = NULL
                WHERE kind = 'transfer' AND (json_extract(detail, '$.from') = ?1 OR json_extract(detail, '$.to') = ?1)]],
              customer_id)
  crm.db.exec([[UPDATE loyalty_ledger SET source = NULL, reason = NULL, detail = NULL
                WHERE kind = 'earn' AND (source = 'referral:' || ?1 OR source = 'referred:' || ?1
                                         OR reason = 'referred by customer ' || ?1)]], customer_id)
  for _, t in ipairs({ "loyalty_lots", "loyalty_orders", "loyalty_refunds", "loyalty_coupons", "loyalty_qual",
                       "loyalty_rule_usage", "loyalty_members" }) do
    crm.db.exec("DELETE FROM " .. t .. " WHERE customer_id = ?", customer_id)
  end
  crm.db.exec("UPDATE loyalty_members SET referred_by = NULL WHERE referred_by = ?", customer_id)
end

return M
