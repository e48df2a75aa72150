-- Specs of the bundled example plugin. Each `it` starts from an empty
-- database with the plugin enabled, at test.START (2026-01-01T00:00:00Z).
local DAY = crm.time.DAY

local function row(cid)
  return crm.db.one("SELECT * FROM activity_customers WHERE customer_id = ?", cid)
end

local function events_of(type)
  return crm.db.query("SELECT * FROM events WHERE type = ? ORDER BY id", type)
end

describe("activity", function()
  describe("touchpoints", function()
    it("records first and last activity of a customer", function()
      test.emit { type = "page.viewed", external_id = "C1", occurred_at = test.START - 5 * DAY }
      test.emit { type = "email.opened", external_id = "C1", occurred_at = test.START - 2 * DAY }
      test.emit { type = "page.viewed", external_id = "C1", occurred_at = test.START - 9 * DAY }
      local cid = crm.customers.find("external_id", "C1")
      local r = row(cid)
      assert.equals(test.START - 9 * DAY, r.first_seen)
      assert.equals(test.START - 2 * DAY, r.last_seen)
      assert.equals(3, r.touches)
    end)

    it("ignores event types it did not subscribe to", function()
      test.emit { type = "ticket.opened", external_id = "C1" }
      assert.equals(0, crm.db.value("SELECT count(*) FROM activity_customers"))
    end)
  end)

  describe("orders", function()
    it("sums net revenue per currency, refunds included", function()
      test.emit { type = "order.placed", external_id = "C1", properties = { amount = 12000, currency = "EUR" } }
      test.emit { type = "order.placed", external_id = "C1", properties = { amount = 3000, currency = "USD" } }
      test.emit { type = "order.refunded", external_id = "C1", properties = { amount = 2500, currency = "EUR" } }
      local cid = crm.customers.find("external_id", "C1")
      local r = row(cid)
      assert.equals(2, r.orders)
      assert.equals(1, r.refunds)
      assert.equals(9500, crm.db.value("SELECT amount FROM activity_revenue WHERE customer_id = ? AND currency = 'EUR'", cid))
      assert.equals(3000, crm.db.value("SELECT amount FROM activity_revenue WHERE customer_id = ? AND currency = 'USD'", cid))
    end)

    it("applies an event once even when the client sends it twice", function()
      local _, dup1 = test.emit { id = "o-1", type = "order.placed", external_id = "C1", properties = { amount = 100 } }
      local _, dup2 = test.emit { id = "o-1", type = "order.placed", external_id = "C1", properties = { amount = 100 } }
      assert.is_false(dup1)
      assert.is_true(dup2)
      assert.equals(1, crm.db.value("SELECT orders FROM activity_customers"))
      assert.equals(100, crm.db.value("SELECT amount FROM activity_revenue"))
    end)

    it("dead-letters an order whose amount is not integer minor units, and moves on", function()
      test.emit { type = "order.placed", external_id = "C1", properties = { amount = 12.5 } }
      test.emit { type = "order.placed", external_id = "C1", properties = { amount = 700 } }
      local dl = test.dead_letters()
      assert.equals(1, #dl)
      assert.matches("must be a non%-negative integer", dl[1].error)
      assert.matches("init.lua", dl[1].traceback)
      -- The failed event left nothing behind: its savepoint was rolled back.
      assert.equals(1, crm.db.value("SELECT orders FROM activity_customers"))
      assert.equals(700, crm.db.value("SELECT amount FROM activity_revenue"))
    end)
  end)

  describe("follow-up after a first order", function()
    it("fires once, three days later, as a customer.follow_up_due event", function()
      test.emit { type = "order.placed", external_id = "C1", properties = { amount = 100 } }
      test.emit { type = "order.placed", external_id = "C1", properties = { amount = 200 } }
      assert.equals(1, crm.db.value("SELECT count(*) FROM jobs WHERE owner = 'activity' AND kind = 'at'"))
      test.advance("2d")
      assert.equals(0, #events_of("customer.follow_up_due"))
      test.advance("1d")
      local due = events_of("customer.follow_up_due")
      assert.equals(1, #due)
      assert.equals(2, crm.json.decode(due[1].properties).orders_since_first)
      assert.equals(0, crm.db.value("SELECT count(*) FROM jobs WHERE owner = 'activity' AND kind = 'at'"))
      test.advance("3d")
      assert.equals(1, #events_of("customer.follow_up_due"))
    end)
  end)

  describe("dormancy", function()
    it("flags customers quiet for 60 days once, and emits customer.dormant", function()
      test.emit { type = "page.viewed", external_id = "QUIET", occurred_at = test.START - 61 * DAY }
      test.emit { type = "page.viewed", external_id = "BUSY", occurred_at = test.START - 1 * DAY }
      assert.equals("ok", (test.run_job("dormancy")))
      local quiet = crm.customers.find("external_id", "QUIET")
      assert.is_not_nil(row(quiet).dormant_since)
      assert.is_nil(row(crm.customers.find("external_id", "BUSY")).dormant_since)
      assert.equals(1, #events_of("customer.dormant"))
      test.run_job("dormancy")
      assert.equals(1, #events_of("customer.dormant"))
    end)

    it("runs nightly at 03:00 from the manifest's cron", function()
      test.emit { type = "page.viewed", external_id = "QUIET", occurred_at = test.START - 90 * DAY }
      test.advance("2h")
      assert.equals(0, #events_of("customer.dormant"))
      test.advance("1h")
      assert.equals(1, #events_of("customer.dormant"))
    end)

    it("emits customer.reactivated when a dormant customer comes back", function()
      test.emit { type = "page.viewed", external_id = "Q", occurred_at = test.START - 61 * DAY }
      test.run_job("dormancy")
      test.emit { type = "email.clicked", external_id = "Q" }
      assert.equals(1, #events_of("customer.reactivated"))
      assert.is_nil(row(crm.customers.find("external_id", "Q")).dormant_since)
    end)
  end)

  it("adds its summary to the customer's profile", function()
    test.emit { type = "order.placed", external_id = "C1", properties = { amount = 4200, currency = "EUR" } }
    local cid = crm.customers.find("external_id", "C1")
    local p = test.profile(cid)
    assert.equals(1, p.orders)
    assert.same({ EUR = 4200 }, p.revenue)
    assert.is_nil(test.profile(cid + 1000))
  end)
end)
