-- Shared by the loyalty specs (loaded with require("helpers")).
local H = {}

H.DAY = crm.time.DAY

function H.buy(ext, order_id, amount, props)
  local p = props or {}
  p.order_id, p.amount = order_id, amount
  p.currency = p.currency or "EUR"
  return test.emit { type = "order.placed", external_id = ext, properties = p }
end

function H.refund(ext, order_id, amount, refund_id)
  return test.emit { type = "order.refunded", external_id = ext,
                     properties = { order_id = order_id, amount = amount, refund_id = refund_id } }
end

function H.cid(ext) return crm.customers.find("external_id", ext) end

function H.member(ext) return crm.db.one("SELECT * FROM loyalty_members WHERE customer_id = ?", H.cid(ext)) end

function H.balance(ext) return H.member(ext).balance end

function H.lots(ext)
  return crm.db.query("SELECT * FROM loyalty_lots WHERE customer_id = ? ORDER BY id", H.cid(ext))
end

-- The ledger's invariant for every member: the cached balance equals the
-- sum of the ledger and the sum of what the lots hold, and is not negative.
function H.check_invariant()
  local bad = crm.db.query([[
    SELECT m.customer_id, m.balance,
           (SELECT coalesce(sum(points), 0) FROM loyalty_ledger l WHERE l.customer_id = m.customer_id) AS ledger,
           (SELECT coalesce(sum(remaining), 0) FROM loyalty_lots o WHERE o.customer_id = m.customer_id) AS lots
    FROM loyalty_members m
    WHERE m.balance != ledger OR m.balance != lots OR m.balance < 0]])
  assert(#bad == 0, "ledger invariant broken: " .. crm.json.encode(bad))
end

-- A command that must succeed: its value.
function H.cmd(name, args, opts)
  local v = test.command(name, args or {}, opts or {})
  return v
end

return H
