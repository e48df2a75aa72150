-- Earning rules: configured ones, limits per period, and an operator's Lua
-- rule.
local H = require("helpers")
local DAY = H.DAY

local function earned(order_id)
  local l = crm.db.one("SELECT points, detail FROM loyalty_ledger WHERE source = ?", "order:" .. order_id)
  return l and l.points or 0, l and crm.json.decode(l.detail) or {}
end

describe("configured rules", function()
  it("per currency, with tier multipliers, category and product bonuses and a first purchase bonus", function()
    test.reset { config = {
      currencies = { EUR = { points = 1, per = 100 }, USD = { points = 2, per = 100 } },
      rules = {
        { name = "gold_boost", type = "tier_multiplier", tiers = { gold = 150 } },
        { name = "shoes", type = "category", category = "shoes", percent = 300 },
        { name = "socks", type = "product", sku = "SOCK-1", points = 5 },
        { name = "welcome", type = "first_purchase", points = 200 },
      },
    } }
    H.buy("C1", "A1", 10000, { items = {
      { sku = "SHOE-9", category = "shoes", amount = 6000 },
      { sku = "SOCK-1", category = "socks", price = 1000, quantity = 4 },
    } })
    local p, d = earned("A1")
    -- base 100; shoes 60 x 3 = +120; 4 socks x 5 = +20; first purchase +200
    assert.same({ base = 100, shoes = 120, socks = 20, welcome = 200 }, d)
    assert.equals(440, p)
    H.buy("C1", "A2", 1000, { currency = "USD" })
    assert.equals(20, (earned("A2")))       -- no second welcome bonus
    H.buy("C1", "BIG", 600000)              -- 6000 more: gold from now on
    assert.equals("gold", H.member("C1").tier)
    assert.is_nil(select(2, earned("BIG")).gold_boost)
    H.buy("C1", "A3", 2000)                 -- gold: +50% of the base
    local p3, d3 = earned("A3")
    assert.equals(30, p3)
    assert.equals(10, d3.gold_boost)
  end)

  it("caps a rule by its limit per day, week and month", function()
    test.reset { config = { rules = {
      { name = "daily", type = "product", sku = "X", points = 40, limit = { per = "day", points = 100 } },
      { name = "monthly", type = "first_purchase", points = 0 },
    } } }
    for i = 1, 4 do H.buy("C1", "D" .. i, 0, { items = { { sku = "X", amount = 0 } } }) end
    local got = {}
    for i = 1, 4 do got[i] = (earned("D" .. i)) end
    assert.same({ 40, 40, 20, 0 }, got)
    test.advance("1d")
    H.buy("C1", "D5", 0, { items = { { sku = "X", amount = 0 } } })
    assert.equals(40, (earned("D5")))
    assert.equals(140, H.balance("C1"))
  end)

  it("limits by ISO week and calendar month", function()
    test.reset { config = { rules = {
      { name = "weekly", type = "product", sku = "W", points = 10, limit = { per = "week", points = 15 } },
      { name = "monthly", type = "product", sku = "M", points = 10, limit = { per = "month", points = 25 } },
    } } }
    -- 2026-01-01 is a Thursday: the week runs to Sunday 4 January.
    local function both(id) H.buy("C1", id, 0, { items = { { sku = "W" }, { sku = "M" } } }) end
    both("1"); both("2")                     -- W: 10 + 5; M: 10 + 10
    test.advance("3d")                       -- Sunday: same week
    both("3")                                -- W: 0; M: 5
    test.advance("1d")                       -- Monday: a new week
    both("4")                                -- W: 10; M: 0
    local rows = crm.db.query("SELECT rule, period, points FROM loyalty_rule_usage ORDER BY rule, period")
    assert.same({
      { rule = "monthly", period = "m:2026-01", points = 25 },
      { rule = "weekly", period = "w:2922", points = 15 },
      { rule = "weekly", period = "w:2923", points = 10 },
    }, rows)
    assert.equals(50, H.balance("C1"))
  end)

  it("gives birthday points once a year, on the day (28 February for 29 February)", function()
    test.reset { config = { rules = { { name = "bday", type = "birthday", points = 150 } } } }
    local cid = crm.customers.upsert { external_id = "C1" }
    H.cmd("enroll", { tostring(cid) }, { birthday = "1992-02-29" })
    test.advance("57d")                       -- 27 February 2026, 00:00
    assert.equals(0, H.balance("C1"))
    test.advance("1d")                        -- 28 February 2026 (no 29th this year)
    assert.equals(150, H.balance("C1"))
    test.run_job("birthdays")
    assert.equals(150, H.balance("C1"))
    assert.equals(1, crm.db.value("SELECT count(*) FROM events WHERE type = 'loyalty.birthday_bonus'"))
  end)

  it("rewards a referral, both sides, once per referred customer", function()
    test.reset { config = { rules = { { name = "ref", type = "referral", referrer = 300, referred = 100 } } } }
    local a = crm.customers.upsert { external_id = "A" }
    test.emit { type = "referral.completed", external_id = "B", properties = { referrer_id = a } }
    test.emit { type = "referral.completed", external_id = "B", properties = { referrer_external_id = "A" } }
    test.emit { type = "referral.completed", external_id = "C", properties = { referrer_external_id = "A" } }
    assert.equals(600, H.balance("A"))
    assert.equals(100, H.balance("B"))
    assert.equals(a, H.member("B").referred_by)
  end)

  it("refuses a configuration mistake by name when the plugin loads", function()
    assert.has_error(function()
      test.reset { config = { tiers = { { name = "a", min = 0 }, { name = "b", min = 0 } } } }
    end, "config.tiers[2].min: must be above the tier before")
    assert.has_error(function()
      test.reset { config = { rules = { { name = "x", type = "cashback" } } } }
    end, "config.rules[1].type: unknown rule type 'cashback'")
    assert.has_error(function() test.reset { config = { colour = 1 } } end, "colour")
  end)
end)

describe("an operator's Lua rule", function()
  local weekend = [[
    -- double points on weekends, for orders of 50.00 or more
    return function(ctx)
      local wday = os.date("!*t", ctx.at // 1000).wday   -- 1 = Sunday, 7 = Saturday
      if (wday == 1 or wday == 7) and ctx.amount >= 5000 then return ctx.base_points end
    end
  ]]

  it("runs for each purchase, compiled once, and can be replaced", function()
    test.reset { config = { rules = { { name = "weekend", type = "lua", rule = "double_weekend" } } } }
    local r = H.cmd("rule-set", { "double_weekend" }, { source = weekend })
    assert.equals("double_weekend", r.name)
    H.buy("C1", "THU", 6000)                  -- Thursday 1 January
    test.advance("2d")                        -- Saturday
    H.buy("C1", "SAT", 6000)
    H.buy("C1", "SAT2", 4000)
    assert.equals(60, (earned("THU")))
    local p, d = earned("SAT")
    assert.equals(120, p)
    assert.equals(60, d.weekend)
    assert.equals(40, (earned("SAT2")))
    H.cmd("rule-set", { "double_weekend" }, { source = "return function(ctx) return 7 end" })
    H.buy("C1", "SAT3", 100)
    assert.equals(8, (earned("SAT3")))
  end)

  it("is refused with its line when it does not compile, and a bad result dead-letters the event", function()
    test.reset { config = { rules = { { name = "bad", type = "lua", rule = "bad" } } } }
    assert.has_error(function() H.cmd("rule-set", { "bad" }, { source = "return function(ctx)\n  retrun 1\nend" }) end,
                     "lua rule bad:2:")
    assert.has_error(function() H.cmd("rule-set", { "bad" }, { source = "return 42" }) end, "must return a function")
    H.cmd("rule-set", { "bad" }, { source = "return function(ctx) return 1.5 end" })
    H.buy("C1", "A1", 1000)
    local dl = test.dead_letters()
    assert.equals(1, #dl)
    assert.matches("returned 1.5, not a whole number", dl[1].error)
    H.cmd("rule-set", { "bad" }, { remove = true })
    assert.has_error(function() H.cmd("rule-set", { "bad" }, { remove = true }) end, "no lua rule 'bad'")
  end)

  it("cannot reach the plugin's own modules or write outside the sandbox", function()
    test.reset { config = { rules = { { name = "sneaky", type = "lua", rule = "sneaky" } } } }
    H.cmd("rule-set", { "sneaky" }, { source = "return function(ctx) return require('lib.ledger') and 1 end" })
    H.buy("C1", "A1", 1000)
    assert.matches("require", test.dead_letters()[1].error)
  end)
end)
