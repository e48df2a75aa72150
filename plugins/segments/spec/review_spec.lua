-- Regressions found by a review: each of these once went wrong.
local H = require("helpers")

describe("robustness", function()
  it("keeps the edges job going when a Lua predicate fails for one customer", function()
    H.customer("A")
    H.customer("B")
    test.command("define", { "fragile" }, { lua = [[return function(c)
      if c.external_id == "A" and c.orders > 0 then error("boom") end
      return false
    end]] })
    test.command("define", { "recent", "count(order.placed, 1d) >= 1" })
    H.buy("B", 100)
    H.buy("A", 100) -- the predicate fails for A: logged, A's event still counts
    assert.same({ "A", "B" }, H.members("recent"))
    test.advance("2d")
    assert.same({}, H.members("recent"))
    assert.same({}, test.dead_letters())
  end)

  it("keeps the time a Lua predicate asks to be looked at again", function()
    H.customer("D")
    test.command("define", { "two_hours" }, { lua = [[return function(c, now)
      if not c.last_order_at then return false end
      local until_ = c.last_order_at + 2 * HOUR
      return now < until_, until_
    end]] })
    H.buy("D", 100)
    assert.same({ "D" }, H.members("two_hours"))
    test.advance("3h")
    assert.same({}, H.members("two_hours"))
  end)

  it("follows profile changes made before the profiles job first ran", function()
    local id = H.customer("P", { plan = "free" })
    test.command("define", { "paying", 'plan = "pro"' })
    crm.customers.set(id, { plan = "pro" })
    test.advance("1m")
    assert.same({ "P" }, H.members("paying"))
  end)

  it("survives amounts with fractions and sums past 64 bits", function()
    H.customer("M")
    test.command("define", { "spenders", "sum(order.placed, 30d) > 1000" })
    H.buy("M", 10.5)
    H.buy("M", 9000000000000000000)
    H.buy("M", 9000000000000000000)
    assert.same({}, test.dead_letters())
    assert.same({ "M" }, H.members("spenders"))
    assert.equals("ok", (test.run_job("scores")))
  end)

  it("refuses a window given as a bare number, and prints names that are keywords quoted", function()
    local s, b = test.route("POST", "/previews", { body = { rule = { count = "a", within = 90, gte = 1 } } })
    assert.equals(422, s)
    assert.matches("within: must be a duration", b.error.message)
    local _, p = test.route("POST", "/previews", { body = { rule = { sum = "a", property = "not", where = { ["in"] = "x" }, gt = 1 } } })
    assert.equals('sum(a:"not", "in" = "x") > 1', p.rule)
    test.advance("1s")
    local _, done = test.route("GET", "/previews", { query = { id = tostring(p.id) } })
    assert.equals("done", done.status)
  end)

  it("refuses a table nested too deeply", function()
    local r = { attr = "a", eq = 1 }
    for _ = 1, 40 do r = { ["not"] = r } end
    local s, b = test.route("POST", "/previews", { body = { rule = r } })
    assert.equals(422, s)
    assert.matches("nested too deeply", b.error.message)
  end)

  it("keeps previews and Lua sources from partner keys", function()
    test.command("define", { "luaseg" }, { lua = "return function() return false end" })
    local s = test.route("POST", "/previews", { body = { rule = "x = 1" }, role = "partner" })
    assert.equals(403, s)
    local _, list = test.route("GET", "/segments", { role = "partner" })
    assert.is_nil(list[1].source)
    local _, mine = test.route("GET", "/segments", { role = "operator" })
    assert.is_not_nil(mine[1].source)
  end)

  it("moves a merged customer's places on static lists to the survivor", function()
    crm.customers.upsert { external_id = "G1", email = "g1@example.com" }
    crm.customers.upsert { external_id = "G2", phone = "+33600000002" }
    test.command("define", { "list" }, { static = true })
    test.command("define", { "on_list", "segment(list)" })
    test.command("add", { "list", "G2" })
    test.advance("1m")
    crm.customers.upsert { email = "g1@example.com", phone = "+33600000002" }
    test.advance("1m")
    assert.same({ "G1" }, H.members("list"))
    assert.same({ "G1" }, H.members("on_list"))
  end)
end)
