-- Every condition of the rule language, in both forms, against customers
-- built for it; parse errors name the column or the field.
local H = require("helpers")
local DAY = crm.time.DAY

local function preview(rule) return test.command("preview", { rule }).count end

local function who(rule)
  test.command("define", { "t", rule })
  return H.members("t")
end

describe("rules", function()
  before_each(function()
    crm.customers.upsert { external_id = "A", email = "a@example.com",
                           attributes = { country = "FR", age = 34, vip = true, signup = { type = "timestamp", value = "2025-12-20T00:00:00Z" } },
                           consent = { email = { granted = true, source = "form" } } }
    crm.customers.upsert { external_id = "B", phone = "+33612345678",
                           attributes = { country = "DE", age = 19, vip = false, signup = { type = "timestamp", value = "2025-06-01T00:00:00Z" } },
                           consent = { email = { granted = false, source = "form" } } }
    crm.customers.upsert { external_id = "C", attributes = { country = "ES" } }
  end)

  it("compares attributes: = != < <= > >= in exists, booleans, and dates with 'ago'", function()
    assert.same({ "A" }, who('country = "FR"'))
    assert.same({ "B", "C" }, who('country != "FR"'))
    assert.same({ "A", "C" }, who('not (country = "DE")'))
    assert.same({ "A" }, who("age >= 30"))
    assert.same({ "B" }, who("age < 30"))
    assert.same({ "A", "C" }, who('country in ("FR", "ES")'))
    assert.same({ "A", "B" }, who("exists(age)"))
    assert.same({ "C" }, who("not exists(age)"))
    assert.same({ "A" }, who("vip = true"))
    assert.same({ "A" }, who("signup > 30d ago"))
    assert.same({ "B" }, who("signup <= 30d ago"))
    -- A signup (12 days back) leaves "the last 30 days" by itself when its day comes.
    test.command("define", { "recent", "signup > 30d ago" })
    assert.same({ "A" }, H.members("recent"))
    test.advance("17d")
    assert.same({ "A" }, H.members("recent"))
    test.advance("2d")
    assert.same({}, H.members("recent"))
    assert.same({ "in:A", "out:A" }, H.moves("recent"))
  end)

  it("reads identities present, and consent granted", function()
    assert.same({ "A" }, who("has(email)"))
    assert.same({ "B" }, who("has(phone)"))
    assert.same({ "A", "B", "C" }, who("has(external_id)"))
    assert.same({ "A" }, who("consent(email)"))
    assert.same({ "B", "C" }, who("not consent(email)"))
  end)

  it("counts and sums events in windows, with property filters and type patterns", function()
    H.buy("A", 30000, test.START - 100 * DAY)
    H.buy("A", 30000, test.START - 10 * DAY)
    H.buy("A", 25000, test.START - 5 * DAY, { currency = "USD" })
    H.buy("B", 1000, test.START - DAY)
    H.buy("B", 1000, test.START - DAY)
    H.buy("B", 1000, test.START - DAY)
    test.emit { type = "page.view", external_id = "C" }
    test.emit { type = "page.search", external_id = "C" }
    assert.same({ "B" }, who("count(order.placed, 90d) >= 3"))
    assert.same({ "A" }, who('sum(order.placed, 365d, currency = "EUR") > 50000'))
    assert.same({}, who('sum(order.placed, 30d, currency = "EUR") > 50000'))
    assert.same({ "A", "B" }, who("sum(order.placed:amount, 30d) >= 3000"))
    assert.same({ "C" }, who("count(order.placed, 60d) = 0"))
    assert.same({ "C" }, who("count(page.*) >= 2"))
    assert.same({ "C" }, who("count(page.view|order.refunded, 7d) = 1"))
    assert.same({ "A", "B" }, who("count(order.placed) >= 3"))
  end)

  it("combines with and, or, not and parentheses; reads other segments", function()
    H.buy("A", 100)
    test.command("define", { "buyers", "count(order.placed) >= 1" })
    assert.same({ "A", "C" }, who('segment(buyers) or country = "ES"'))
    assert.same({ "C" }, who('not segment(buyers) and (country = "ES" or age > 100)'))
    test.command("define", { "t2", 'segment(buyers) or country = "ES"' })
    -- A change of the read segment reaches its readers.
    H.buy("B", 100)
    assert.same({ "A", "B", "C" }, H.members("t2"))
    assert.same({ "C" }, H.members("t"))
    assert.same({ "in:A", "in:C", "in:B" }, H.moves("t2"))
  end)

  it("takes the same rule as a table, and prints both as the same text", function()
    local text = 'country = "FR" and consent(email) and count(order.placed, 90d) >= 3'
    local table_form = { all = { { attr = "country", eq = "FR" }, { consent = "email" },
                                 { count = "order.placed", within = "90d", gte = 3 } } }
    local a = test.route("PUT", "/segments", { body = { name = "t1", rule = text } })
    local s, b = test.route("PUT", "/segments", { body = { name = "t2", rule = table_form } })
    assert.equals(200, s)
    assert.equals(a, 200)
    assert.equals(text, b.rule)
    assert.equals(text, test.command("show", { "t1" }).rule)
    -- The printed text parses back to the same rule.
    test.command("define", { "my-list" }, { static = true })
    for _, r in ipairs({ 'not (a = 1 or b in ("x", "y")) and rfm.group in ("champions", "loyal")',
                         'sum(order.placed:total, 2w, currency = "EUR", channel = "web") > 100 or segment("my-list")',
                         "lifecycle in (\"at_risk\", \"lapsed\") and tier = \"gold\" and signup < 1d ago",
                         'attr.tier = "x" and has(email) and count(a.b|c.*, 1h) != 0' }) do
      local first = test.command("preview", { r }).rule
      assert.equals(first, test.command("preview", { first }).rule)
    end
  end)

  it("refuses mistakes with the column or the field", function()
    local cases = {
      { 'country = "FR" and', "column 19: expected a condition" },
      { "count(order.placed, 90x) >= 1", "column" },
      { 'country = "FR', "never closed" },
      { "age >= 30d", "ago" },
      { "frobnicate(x)", "unknown function 'frobnicate'" },
      { 'lifecycle = "sleepy"', "not a lifecycle stage" },
      { 'rfm.group = "kings"', "not an RFM group" },
      { "rfm.x > 1", "rfm has r, f, m and group" },
      { "consent(fax)", "consent channels" },
      { "segment(nope)", "segment 'nope' does not exist" },
      { "count(order.placed) >= \"3\"", "compares with a number" },
    }
    for _, c in ipairs(cases) do
      assert.has_error(function() test.command("preview", { c[1] }) end, c[2])
    end
    local s, b = test.route("PUT", "/segments", { body = { name = "x", rule = { all = { { attr = "a", eq = 1, bogus = 2 } } } } })
    assert.equals(422, s)
    assert.matches("rule.all%[1%]: unknown field 'bogus'", b.error.message)
    s, b = test.route("PUT", "/segments", { body = { name = "x", rule = { any = {} } } })
    assert.equals(422, s)
    assert.matches("must be a non%-empty list", b.error.message)
  end)

  it("refuses a cycle of segments", function()
    test.command("define", { "s1", "age > 1" })
    test.command("define", { "s2", "segment(s1)" })
    assert.has_error(function() test.command("define", { "s1", "segment(s2)" }) end, "segments read each other in a cycle")
    assert.has_error(function() test.command("remove", { "s1" }) end, "read by s2")
  end)

  it("counts a draft without saving anything", function()
    assert.equals(2, preview("age > 1"))
    assert.equals(0, crm.db.value("SELECT count(*) FROM segments_defs"))
  end)
end)

describe("attribute kinds", function()
  it("compares numbers with numbers and text with text", function()
    crm.customers.upsert { external_id = "N1", attributes = { age = 34, code = "34" } }
    crm.customers.upsert { external_id = "N2", attributes = { age = 9, code = "9" } }
    assert.equals(1, test.command("preview", { "age >= 30" }).count)
    -- "34" is text: a number never matches it (SQLite would put any text above any number).
    assert.equals(0, test.command("preview", { "code >= 30" }).count)
    assert.equals(1, test.command("preview", { 'code = "34"' }).count)
    assert.has_error(function() test.command("preview", { 'code in ("34", 9)' }) end, "text or numbers, not both")
  end)
end)
