-- Specs run with `rapport plugin test {{name}}`: each `it` gets a fresh
-- database with the plugin enabled and the clock frozen at test.START.
describe("{{name}}", function()
  it("records each order event for its customer", function()
    test.emit { type = "order.placed", external_id = "C1",
                properties = { amount = 1250, currency = "EUR" } }
    local row = crm.db.one("SELECT * FROM {{name}}_orders")
    assert.equals(1250, row.amount)
    assert.equals(crm.customers.find("external_id", "C1"), row.customer_id)
  end)

  it("summarises the last day every morning at 06:00", function()
    test.emit { type = "order.placed", external_id = "C1", properties = { amount = 500 } }
    test.emit { type = "order.placed", external_id = "C2", properties = { amount = 700 } }
    test.advance("6h") -- test.START is midnight UTC: the cron job fires at 06:00
    local s = crm.db.one("SELECT * FROM {{name}}_summaries")
    assert.equals(2, s.orders)
    assert.equals(1200, s.total)
  end)
end)
