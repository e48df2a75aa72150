-- The ledger and its lots. Every change of points is one ledger row; points
-- are held in lots (one per earning, each with its expiry); spending takes
-- from the lots that expire first. The member's balance is kept by a
-- trigger on the ledger (migrations/001_loyalty.sql), so
--   balance = sum(ledger.points) = sum(lots.remaining)
-- holds after every statement that this module runs in pairs.
local dates = require("lib.dates")

local M = {}

-- A failure the caller reports as an HTTP status (routes) or a message
-- (commands): raised as a table, caught by lib/ops.lua.
function M.refuse(status, code, message)
  error({ status = status, code = code, message = message }, 0)
end

function M.member(cid)
  return crm.db.one("SELECT * FROM loyalty_members WHERE customer_id = ?", cid)
end

-- The ledger row of this customer from this source, if any: the
-- idempotency check of every effect.
function M.find(cid, source)
  return crm.db.one("SELECT * FROM loyalty_ledger WHERE customer_id = ? AND source = ?", cid, source)
end

-- Enrolls cid at time at (once; the birthday may be set or changed later).
-- Returns the member row and whether it was created.
function M.enroll(cfg, cid, at, birth_md)
  local m = M.member(cid)
  if m then
    if birth_md and m.birth_md ~= birth_md then
      crm.db.exec("UPDATE loyalty_members SET birth_md = ? WHERE customer_id = ?", birth_md, cid)
      m.birth_md = birth_md
    end
    return m, false
  end
  local tier = cfg.tiers[1].name
  crm.db.exec([[INSERT INTO loyalty_members(customer_id, joined_at, anniv_md, birth_md, tier, tier_since)
                VALUES (?, ?, ?, ?, ?, ?)]], cid, at, dates.month_day(at), birth_md, tier, at)
  crm.events.emit {
    type = "loyalty.enrolled", customer_id = cid, id = "loyalty:enrolled:" .. cid,
    occurred_at = at, properties = { tier = tier },
  }
  return M.member(cid), true
end

-- Points spendable now (lots active by now, not expired: a lot past its
-- expiry is not spendable even before the nightly job records it), and
-- points still pending.
function M.available(cid, now)
  local r = crm.db.one([[SELECT coalesce(sum(CASE WHEN active_at <= ?2 THEN remaining END), 0) AS available,
                                coalesce(sum(CASE WHEN active_at > ?2 THEN remaining END), 0) AS pending
                         FROM loyalty_lots WHERE customer_id = ?1 AND remaining > 0 AND expires_at > ?2]],
                       cid, now)
  return r.available, r.pending
end

-- Adds a lot of points and its ledger row. o = {kind, source, reason, actor,
-- detail (table), at, active_at, expires_at}. Returns the ledger id and the
-- lot id.
function M.credit(cid, points, o)
  local _, lot = crm.db.exec([[INSERT INTO loyalty_lots(customer_id, points, remaining, earned_at, active_at,
                                                        expires_at, pending, source)
                               VALUES (?, ?, ?, ?, ?, ?, ?, ?)]],
                             cid, points, points, o.at, o.active_at or o.at, o.expires_at,
                             (o.active_at or o.at) > o.at and 1 or 0, o.source)
  local _, id = crm.db.exec([[INSERT INTO loyalty_ledger(customer_id, kind, points, lot_id, source, reason,
                                                         actor, detail, at)
                              VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)]],
                            cid, o.kind, points, lot, o.source, o.reason, o.actor,
                            o.detail and crm.json.encode(o.detail), o.at)
  return id, lot
end

-- Takes up to want points from cid's lots: first from o.lot (when given),
-- then from the unexpired lots that expire first (only spendable ones
-- unless o.include_pending). All or nothing unless o.partial. Returns the points
-- taken and the parts {lot, points, expires_at}.
function M.take(cid, want, o)
  local taken, parts = 0, {}
  local function from(lot)
    local n = math.min(lot.remaining, want - taken)
    if n <= 0 then return end
    crm.db.exec("UPDATE loyalty_lots SET remaining = remaining - ? WHERE id = ?", n, lot.id)
    taken = taken + n
    parts[#parts + 1] = { lot = lot.id, points = n, expires_at = lot.expires_at }
  end
  if o.lot then
    local lot = crm.db.one("SELECT id, remaining, expires_at FROM loyalty_lots WHERE id = ? AND customer_id = ?",
                           o.lot, cid)
    if lot then from(lot) end
  end
  -- Read a page of lots before changing any (no statement stays open over
  -- the rows it updates).
  local after_exp, after_id = math.mininteger, 0
  while taken < want do
    local lots = crm.db.query([[SELECT id, remaining, expires_at FROM loyalty_lots
                                WHERE customer_id = ?1 AND remaining > 0 AND (?2 OR active_at <= ?3)
                                  AND expires_at > ?3 AND (expires_at, id) > (?4, ?5)
                                ORDER BY expires_at, id LIMIT 200]],
                              cid, o.include_pending == true, o.now, after_exp, after_id)
    if #lots == 0 then break end
    for _, lot in ipairs(lots) do
      if lot.id ~= o.lot then from(lot) end
      if taken >= want then break end
    end
    after_exp, after_id = lots[#lots].expires_at, lots[#lots].id
  end
  if taken < want and not o.partial then
    M.refuse(409, "insufficient_points",
             ("customer %d has %d spendable point(s), %d needed"):format(cid, taken, want))
  end
  return taken, parts
end

-- Takes points (as M.take) and writes the ledger row of the debit. o adds
-- {kind, source, reason, actor, detail (table), at}. Returns the ledger id
-- (nil when nothing was taken), the points taken and the parts.
function M.debit(cid, want, o)
  local taken, parts = M.take(cid, want, o)
  if taken == 0 then return nil, 0, parts end
  local detail = o.detail or {}
  detail.lots = {}
  for i, p in ipairs(parts) do detail.lots[i] = { p.lot, p.points } end
  local _, id = crm.db.exec([[INSERT INTO loyalty_ledger(customer_id, kind, points, source, reason, actor,
                                                         detail, at)
                              VALUES (?, ?, ?, ?, ?, ?, ?, ?)]],
                            cid, o.kind, -taken, o.source, o.reason, o.actor, crm.json.encode(detail), o.at)
  return id, taken, parts
end

return M
