-- Edge cases: replays that must change nothing, JSON nulls, the rule
-- sandbox, lots past their expiry, ambiguous customer references.
local H = require("helpers")
local DAY = H.DAY

local function id(ext) return tostring(H.cid(ext)) end

describe("edges", function()
  it("a refund resent after the points were spent and earned again changes nothing", function()
    H.buy("C1", "A1", 10000)                          -- 100
    H.cmd("reward-set", { "ALL" }, { name = "All", cost = "100" })
    H.cmd("redeem", { id("C1"), "ALL" })
    H.refund("C1", "A1", 5000, "R1")                  -- wants 50, takes nothing
    H.buy("C1", "A2", 20000)                          -- 200
    H.refund("C1", "A1", 5000, "R1")                  -- the same refund again
    assert.equals(200, H.balance("C1"))
    local r = crm.db.one("SELECT * FROM loyalty_refunds WHERE refund_key = 'R1'")
    assert.equals(50, r.wanted)
    assert.equals(0, r.taken)
    assert.equals(5000, crm.db.value("SELECT refunded FROM loyalty_orders WHERE order_id = 'A1'"))
    H.refund("C1", "A1", nil, "R2")                   -- the other half: 50 more wanted, taken now
    assert.equals(150, H.balance("C1"))
    H.check_invariant()
  end)

  it("the same refund id on two orders refunds both", function()
    H.buy("C1", "A1", 10000)
    H.buy("C1", "A2", 10000)
    H.refund("C1", "A1", nil, "1")
    H.refund("C1", "A2", nil, "1")
    assert.equals(0, H.balance("C1"))
  end)

  it("a refund of a free order takes back the points it earned", function()
    test.reset { config = { rules = { { name = "gift", type = "product", sku = "G", points = 40 } } } }
    H.buy("C1", "F1", 0, { items = { { sku = "G" } } })
    assert.equals(40, H.balance("C1"))
    H.refund("C1", "F1")
    assert.equals(0, H.balance("C1"))
  end)

  it("treats JSON null properties as absent", function()
    local n = crm.json.null
    test.emit { type = "order.placed", external_id = "C1", properties = { order_id = n, amount = 1000, currency = n, items = n } }
    test.emit { type = "order.placed", external_id = "C1", properties = { order_id = n, amount = 2000 } }
    assert.equals(30, H.balance("C1"))
    test.emit { type = "order.refunded", external_id = "C1", properties = { order_id = "x", amount = n } }
    assert.equals(0, #test.dead_letters())
  end)

  it("pays a referral once per referred customer, whoever else claims it", function()
    test.reset { config = { rules = { { name = "ref", type = "referral", referrer = 300, referred = 100 } } } }
    local a = crm.customers.upsert { external_id = "A" }
    local b = crm.customers.upsert { external_id = "B" }
    test.emit { type = "referral.completed", external_id = "C", properties = { referrer_id = a } }
    test.emit { type = "referral.completed", external_id = "C", properties = { referrer_id = b } }
    assert.equals(300, H.balance("A"))
    assert.is_nil(H.member("B"))
    assert.equals(100, H.balance("C"))
  end)

  it("a Lua rule cannot change the plugin's libraries, even when saved without being used", function()
    H.cmd("rule-set", { "evil" }, { source = [[
      math.max = function() return 1000000 end
      string.format = function() return "x" end
      crm.db.exec = nil
      return function() return 0 end]] })
    H.buy("C1", "A1", 100)
    assert.equals(1, H.balance("C1"))
    H.check_invariant()
  end)

  it("a lot past its expiry is not spendable before the nightly job records it", function()
    test.advance("3h")
    H.buy("C1", "A1", 10000)                          -- expires a year later at 03:00
    test.advance("364d")
    H.buy("C1", "A2", 1000)
    test.advance("23h")                               -- 02:00: the nightly job runs, nothing expired yet
    test.advance("2h")                                -- 04:00: A1's lot expired, not yet recorded
    assert.equals(110, H.balance("C1"))
    local b = H.cmd("balance", { id("C1") })
    assert.equals(10, b.available)
    H.cmd("reward-set", { "X" }, { name = "X", cost = "11" })
    assert.has_error(function() H.cmd("redeem", { id("C1"), "X" }) end, "10 spendable")
  end)

  it("names customers by external id first, by id with id:N or #N", function()
    local other = crm.customers.upsert { external_id = "OTHER" }
    local one = crm.customers.upsert { external_id = tostring(other) }  -- external id = the other's id
    H.cmd("enroll", { tostring(other) })
    assert.is_not_nil(crm.db.one("SELECT 1 FROM loyalty_members WHERE customer_id = ?", one))
    assert.is_nil(crm.db.one("SELECT 1 FROM loyalty_members WHERE customer_id = ?", other))
    H.cmd("enroll", { "id:" .. other })
    assert.is_not_nil(crm.db.one("SELECT 1 FROM loyalty_members WHERE customer_id = ?", other))
    assert.has_error(function() H.cmd("balance", { "#999999" }) end, "no customer 999999")
  end)

  it("keeps partners from changing the program, and reads active as 0 or 1", function()
    local st, body = test.route("PUT", "/rules", { body = { name = "x", source = "return function() end" },
                                                   key_id = 3, role = "partner" })
    assert.equals(403, st)
    assert.equals("denied", body.error.code)
    st = test.route("PUT", "/rewards", { body = { code = "R", name = "R", cost = 5, active = 0 }, key_id = 3, role = "operator" })
    assert.equals(200, st)
    assert.equals(0, crm.db.value("SELECT active FROM loyalty_rewards WHERE code = 'R'"))
    st = test.route("PUT", "/rewards", { body = { code = "R", stock = crm.json.null }, key_id = 3, role = "operator" })
    assert.equals(200, st)
    assert.is_nil(crm.db.value("SELECT stock FROM loyalty_rewards WHERE code = 'R'"))
  end)
end)
