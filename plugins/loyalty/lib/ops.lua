-- What operators and partners do by hand, shared by the HTTP routes and the
-- CLI commands: balances and history, enrolment, manual points, redemption,
-- transfers, the rewards catalogue, coupons and Lua rules. Each operation
-- runs under its own savepoint: a refusal (ledger.refuse) leaves nothing.
local dates = require("lib.dates")
local ledger = require("lib.ledger")
local rules = require("lib.rules")
local tiers = require("lib.tiers")

local M = {}
local refuse = ledger.refuse

-- The customer a reference names: a number, "id:N" or "#N" is an id; other
-- text is an external id (and all-digit text that is nobody's external id,
-- an id). A merged-away id gives its survivor, unless it is a member itself
-- (its points stay on it; see docs/loyalty.md).
function M.customer(ref)
  if ref == crm.json.null then ref = nil end
  local id = math.type(ref) == "integer" and ref or nil
  if type(ref) == "string" then
    local n = ref:match("^id:(%d+)$") or ref:match("^#(%d+)$")
    if n then
      id = math.tointeger(tonumber(n))
    elseif ref ~= "" then
      local found = crm.customers.find("external_id", ref)
      if found then return found end
      if ref:match("^%d+$") then id = math.tointeger(tonumber(ref)) end
      if not id then refuse(404, "not_found", ("no customer with external id '%s'"):format(ref)) end
    end
  end
  if not id then refuse(422, "invalid", "customer: an id or an external id is needed") end
  local c = crm.db.one("SELECT id, merged_into FROM customers WHERE id = ?", id)
  if not c then refuse(404, "not_found", ("no customer %d"):format(id)) end
  if c.merged_into and not ledger.member(c.id) then return c.merged_into end
  return c.id
end

-- Changing the program (rewards, Lua rules) is for admin and operator keys
-- and local users, not for partners.
function M.require_staff(role)
  if role == "partner" then refuse(403, "denied", "a partner key may not change the program") end
end

local function points_arg(v, field, allow_negative)
  local n = math.tointeger(v) or math.tointeger(tonumber(v or ""))
  if not n or n == 0 or (n < 0 and not allow_negative) then
    refuse(422, "invalid", ("%s: a whole number of points%s is needed"):format(field, allow_negative and " (not 0)" or " above 0"))
  end
  return n
end

local function member_of(cid)
  local m = ledger.member(cid)
  if not m then refuse(404, "not_member", ("customer %d is not a member of the program"):format(cid)) end
  return m
end

-- The idempotency key of a manual operation: the client's request id, or a
-- fresh one (then a retry applies again).
local function source_of(kind, request_id)
  if request_id ~= nil and (type(request_id) ~= "string" or #request_id == 0 or #request_id > 128) then
    refuse(422, "invalid", "request_id: text of 1 to 128 characters")
  end
  return kind .. ":" .. (request_id or crm.random.code(20))
end

function M.balance(cfg, cid, now)
  local m = member_of(cid)
  local available, pending = ledger.available(cid, now)
  local expiring = crm.db.query([[SELECT expires_at, sum(remaining) AS points FROM loyalty_lots
                                  WHERE customer_id = ? AND remaining > 0
                                  GROUP BY expires_at ORDER BY expires_at LIMIT 5]], cid)
  crm.audit.record("loyalty.read", cid, { "balance", "tier" })
  local next_tier
  for _, t in ipairs(cfg.tiers) do
    if t.rank == (cfg.tier_rank[m.tier] or 0) + 1 then next_tier = t end
  end
  local value = cfg.basis == "spend" and m.qual_spend or m.qual_points
  return {
    customer_id = cid, balance = m.balance, available = available, pending = pending,
    tier = m.tier, tier_since = m.tier_since, qualifying = value, tier_basis = cfg.basis,
    next_tier = next_tier and { name = next_tier.name, needs = next_tier.min - value } or crm.json.null,
    joined_at = m.joined_at, expiring = crm.json.array(expiring),
  }
end

function M.history(cid, limit, before)
  member_of(cid)
  limit = math.tointeger(tonumber(limit or 50)) or 50
  if limit < 1 or limit > 1000 then refuse(422, "invalid", "limit: 1 to 1000") end
  before = math.tointeger(tonumber(before or "")) or math.maxinteger
  local rows = crm.db.query([[SELECT id, kind, points, source, reason, actor, detail, at FROM loyalty_ledger
                              WHERE customer_id = ? AND id < ? ORDER BY id DESC LIMIT ?]], cid, before, limit)
  for _, r in ipairs(rows) do
    if r.detail then r.detail = crm.json.decode(r.detail) end
  end
  crm.audit.record("loyalty.read", cid, { "ledger" })
  return { customer_id = cid, entries = crm.json.array(rows),
           next = #rows == limit and rows[#rows].id or crm.json.null }
end

function M.enroll(cfg, cid, birthday, now)
  local md
  if birthday ~= nil then
    md = dates.parse_month_day(birthday)
    if not md then refuse(422, "invalid", "birthday: MM-DD or YYYY-MM-DD") end
  end
  local m, created = ledger.enroll(cfg, cid, now, md)
  crm.audit.record("loyalty.enroll", cid, md and { "membership", "birthday" } or { "membership" })
  return { customer_id = cid, enrolled = created, tier = m.tier, joined_at = m.joined_at }
end

-- Points given or taken by hand: "earn" adds a lot (expiring like earned
-- points), "adjust" adds (positive) or takes from the oldest-expiring lots
-- (negative; never below zero).
function M.manual(cfg, kind, cid, points, reason, request_id, actor, now)
  local m = member_of(cid)
  points = points_arg(points, "points", kind == "adjust")
  if type(reason) ~= "string" or reason == "" or #reason > 500 then
    refuse(422, "invalid", "reason: why, in 1 to 500 characters (it is kept in the ledger)")
  end
  local source = source_of(kind, request_id)
  local done = ledger.find(cid, source)
  if done then return { ledger_id = done.id, points = done.points, duplicate = true, balance = m.balance } end
  local id
  if points > 0 then
    id = ledger.credit(cid, points, { kind = kind, source = source, reason = reason, actor = actor,
                                      at = now, expires_at = now + cfg.expiry_ms })
    if kind == "earn" then tiers.qualify(cfg, m, now, points, 0, now, source) end
  else
    id = ledger.debit(cid, -points, { kind = kind, source = source, reason = reason, actor = actor,
                                      at = now, now = now })
  end
  crm.audit.record("loyalty." .. kind, cid, { "points", "reason" })
  return { ledger_id = id, points = points, duplicate = false, balance = ledger.member(cid).balance }
end

function M.redeem(cid, reward_code, request_id, actor, now)
  local m = member_of(cid)
  local source = source_of("redeem", request_id)
  local coupon = crm.db.one("SELECT * FROM loyalty_coupons WHERE customer_id = ? AND source = ?", cid, source)
  if coupon then
    return { coupon = coupon.code, expires_at = coupon.expires_at, duplicate = true, balance = m.balance }
  end
  local r = crm.db.one("SELECT * FROM loyalty_rewards WHERE code = ?", reward_code)
  if not r or r.active == 0 then refuse(404, "not_found", ("no active reward '%s'"):format(tostring(reward_code))) end
  if r.stock and r.stock <= 0 then refuse(409, "out_of_stock", ("reward '%s' is out of stock"):format(r.code)) end
  if r.per_customer then
    local had = crm.db.value("SELECT count(*) FROM loyalty_coupons WHERE customer_id = ? AND reward_id = ?", cid, r.id)
    if had >= r.per_customer then
      refuse(409, "limit_reached", ("customer %d already redeemed '%s' %d time(s), the most allowed"):format(cid, r.code, had))
    end
  end
  local id = ledger.debit(cid, r.cost, { kind = "redeem", source = source, reason = "reward " .. r.code,
                                         actor = actor, at = now, now = now, detail = { reward = r.code } })
  if r.stock then crm.db.exec("UPDATE loyalty_rewards SET stock = stock - 1 WHERE id = ?", r.id) end
  local code, expires = nil, now + r.valid_days * dates.DAY
  for _ = 1, 5 do -- 32^12 codes: a collision is a one-in-10^18 event, but checked
    local c = crm.random.code(12)
    c = c:sub(1, 4) .. "-" .. c:sub(5, 8) .. "-" .. c:sub(9, 12)
    if not crm.db.value("SELECT 1 FROM loyalty_coupons WHERE code = ?", c) then code = c break end
  end
  crm.db.exec([[INSERT INTO loyalty_coupons(code, reward_id, customer_id, ledger_id, source, issued_at, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)]], code, r.id, cid, id, source, now, expires)
  crm.events.emit {
    type = "loyalty.reward_redeemed", customer_id = cid, id = "loyalty:redeemed:" .. code, occurred_at = now,
    properties = { reward = r.code, name = r.name, cost = r.cost, coupon = code, expires_at = expires },
  }
  crm.audit.record("loyalty.redeem", cid, { "points", "coupon" })
  return { coupon = code, expires_at = expires, reward = r.code, cost = r.cost, duplicate = false,
           balance = ledger.member(cid).balance }
end

function M.transfer(cfg, from, to, points, request_id, actor, now)
  if not cfg.allow_transfers then refuse(403, "not_allowed", "this program does not allow transfers of points") end
  if from == to then refuse(422, "invalid", "a transfer needs two different customers") end
  member_of(from)
  member_of(to)
  points = points_arg(points, "points")
  local source = source_of("transfer", request_id)
  local done = ledger.find(from, source)
  if done then return { ledger_id = done.id, points = -done.points, duplicate = true } end
  -- The receiver's lots keep the expiry of the points they came from.
  local id, _, parts = ledger.debit(from, points, { kind = "transfer", source = source, actor = actor, at = now,
                                                    now = now, reason = "to customer " .. to,
                                                    detail = { to = to } })
  for i, p in ipairs(parts) do
    ledger.credit(to, p.points, { kind = "transfer", source = source .. ":" .. i, actor = actor, at = now,
                                  expires_at = p.expires_at, reason = "from customer " .. from,
                                  detail = { from = from } })
  end
  crm.audit.record("loyalty.transfer", from, { "points" })
  crm.audit.record("loyalty.transfer", to, { "points" })
  return { ledger_id = id, points = points, duplicate = false }
end

function M.rewards()
  return crm.json.array(crm.db.query([[SELECT code, name, cost, stock, per_customer, valid_days, active
                                       FROM loyalty_rewards ORDER BY cost, code]]))
end

function M.reward_set(o, now)
  if type(o.code) ~= "string" or not o.code:match("^[%w_%-]+$") or #o.code > 64 then
    refuse(422, "invalid", "code: letters, digits, '_' or '-' (at most 64)")
  end
  local function opt_int(v, field, min)
    if v == nil then return nil end
    local n = math.tointeger(v) or math.tointeger(tonumber(v))
    if not n or n < min then refuse(422, "invalid", ("%s: a whole number >= %d"):format(field, min)) end
    return n
  end
  local cur = crm.db.one("SELECT * FROM loyalty_rewards WHERE code = ?", o.code)
  local name = o.name or (cur and cur.name)
  if type(name) ~= "string" or name == "" then refuse(422, "invalid", "name: required for a new reward") end
  local cost = opt_int(o.cost, "cost", 1) or (cur and cur.cost)
  if not cost then refuse(422, "invalid", "cost: required for a new reward") end
  -- stock: a number, "unlimited" or JSON null (no limit), or absent (unchanged)
  local unlimited = o.stock == "unlimited" or o.stock == crm.json.null
  local stock = not unlimited and opt_int(o.stock, "stock", 0) or nil
  if stock == nil and not unlimited and o.stock == nil then stock = cur and cur.stock end
  local per = o.per_customer ~= crm.json.null and opt_int(o.per_customer, "per_customer", 1) or nil
  if per == nil and o.per_customer == nil then per = cur and cur.per_customer end
  local valid = opt_int(o.valid_days, "valid_days", 1) or (cur and cur.valid_days) or 90
  local active = o.active
  if active == 0 or active == "0" or active == "false" then active = false end
  if active == 1 or active == "1" or active == "true" then active = true end
  if active == nil or active == crm.json.null then active = cur == nil or cur.active == 1 end
  if type(active) ~= "boolean" then refuse(422, "invalid", "active: true or false") end
  crm.db.exec([[INSERT INTO loyalty_rewards(code, name, cost, stock, per_customer, valid_days, active, created_at)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                ON CONFLICT(code) DO UPDATE SET name = ?2, cost = ?3, stock = ?4, per_customer = ?5,
                                                valid_days = ?6, active = ?7]],
              o.code, name, cost, stock, per, valid, active and 1 or 0, now)
  return crm.db.one("SELECT code, name, cost, stock, per_customer, valid_days, active FROM loyalty_rewards WHERE code = ?", o.code)
end

function M.coupon_use(code, now)
  if type(code) ~= "string" then refuse(422, "invalid", "code: the coupon's code") end
  local c = crm.db.one("SELECT * FROM loyalty_coupons WHERE code = ?", code:upper())
  if not c then refuse(404, "not_found", "no such coupon") end
  if c.used_at then refuse(409, "used", ("coupon %s was used at %s"):format(c.code, crm.time.format(c.used_at))) end
  if c.expires_at <= now then refuse(410, "expired", ("coupon %s expired at %s"):format(c.code, crm.time.format(c.expires_at))) end
  crm.db.exec("UPDATE loyalty_coupons SET used_at = ? WHERE code = ?", now, c.code)
  crm.events.emit { type = "loyalty.coupon_used", customer_id = c.customer_id, id = "loyalty:used:" .. c.code,
                    occurred_at = now, properties = { coupon = c.code } }
  return { coupon = c.code, customer_id = c.customer_id, used_at = now }
end

function M.rules(cfg)
  local configured = {}
  for i, r in ipairs(cfg.rules) do configured[i] = r end
  return { configured = crm.json.array(configured),
           lua = crm.json.array(crm.db.query("SELECT name, updated_at, source FROM loyalty_lua_rules ORDER BY name")) }
end

function M.rule_set(name, source, remove, now)
  if type(name) ~= "string" or not name:match("^[%w_]+$") or #name > 64 then
    refuse(422, "invalid", "name: letters, digits or '_' (at most 64)")
  end
  if remove then
    local n = crm.db.exec("DELETE FROM loyalty_lua_rules WHERE name = ?", name)
    if n == 0 then refuse(404, "not_found", ("no lua rule '%s'"):format(name)) end
    return { name = name, removed = true }
  end
  if type(source) ~= "string" or source == "" then refuse(422, "invalid", "source: the rule's Lua code") end
  local fn, err = rules.compile(name, source)
  if not fn then refuse(422, "invalid_rule", tostring(err)) end
  crm.db.exec([[INSERT INTO loyalty_lua_rules(name, source, updated_at) VALUES (?1, ?2, ?3)
                ON CONFLICT(name) DO UPDATE SET source = ?2,
                  updated_at = max(?3, loyalty_lua_rules.updated_at + 1)]], name, source, now)
  return { name = name, removed = false }
end

-- Runs fn(...) under a savepoint. Returns true and its result, or false and
-- the refusal {status, code, message} (anything else raised is a bug and
-- raised again).
function M.attempt(fn, ...)
  local args = table.pack(...)
  local ok, res = pcall(crm.db.atomic, function() return fn(table.unpack(args, 1, args.n)) end)
  if ok then return true, res end
  if type(res) == "table" and res.status then return false, res end
  error(res, 0)
end

return M
